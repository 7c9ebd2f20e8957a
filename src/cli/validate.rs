//! `dcms-bulk validate`: check and group a sheet, write the report, print a
//! summary (or the order bodies `submit` would send); send nothing.

use std::path::PathBuf;

use clap::Args;

use super::api::ProfileArgs;
use super::{Console, InputArgs, print_stdout, same_file};
use crate::dcms::OrderBody;
use crate::error::{Error, Result};
use crate::exit;
use crate::pipeline;
use crate::report::{self, Format};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Write the per-row report here: .csv, .jsonl or .xlsx (a run-facts
    /// JSON is written beside it, as REPORT.run.json)
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Begin a CSV report with a UTF-8 byte-order mark, so that Excel reads
    /// its accents right (it still drops leading zeros: use the XLSX report,
    /// or import the CSV with the id columns as Text)
    #[arg(long, help_heading = "Report")]
    pub csv_bom: bool,

    /// Print the summary as JSON on stdout
    #[arg(long, conflicts_with = "print_orders")]
    pub json: bool,

    /// Print, as JSON Lines on stdout, the exact POST /card-order bodies
    /// submit would send for the orders that are ready
    #[arg(long)]
    pub print_orders: bool,

    /// With --print-orders: the profile whose [create_fields] name the
    /// body's fields
    #[command(flatten)]
    pub profile: ProfileArgs,
}

pub fn run(args: &ValidateArgs, console: Console) -> Result<i32> {
    let started = report::now();
    let opts = args.input.to_opts()?;
    if let Some(r) = &args.report {
        Format::from_path(r)?;
        if same_file(r, &args.input.file) {
            return Err(Error::Usage(
                "--report would overwrite the input file".into(),
            ));
        }
        report::prepare(r)?;
    }
    // Not freed when the command ends: the process exits next, and freeing
    // a large file's tables piece by piece took longer than anything after
    // the report (17 ms for a million rows).
    let checked = std::mem::ManuallyDrop::new(pipeline::check(&args.input.file, &opts)?);
    let file = args.input.file.display().to_string();
    super::print_problems(&checked, &file, console);

    let mut facts = checked.facts("validate", args.input.facts(), started);
    let facts_path = match &args.report {
        Some(path) => Some(crate::batch::order_report(
            &checked,
            path,
            args.csv_bom,
            &mut facts,
            None,
        )?),
        None => None,
    };
    let code = if facts.all_done() {
        exit::OK
    } else {
        exit::ROWS_NOT_DONE
    };
    if args.print_orders && !print_orders(&checked, &args.profile.create_fields()?)? {
        return Ok(code);
    }
    if args.json {
        super::print_json(&serde_json::json!({
            "input": facts.input.path,
            "input_sha256": facts.input.sha256,
            "sheet": facts.input.sheet,
            "batch_id": facts.batch_id,
            "counts": facts.counts,
            "report": facts.report.as_ref().map(|r| &r.path),
            "run_facts": facts_path.as_ref().map(|p| p.display().to_string()),
            "exit_code": code,
        }))?;
    }
    if !console.quiet {
        tracing::info!(
            event = "checked",
            file,
            "{file}: {}",
            summary_line(&checked, &facts)
        );
    }
    Ok(code)
}

/// Prints the ready orders' `POST /card-order` bodies, one a line; `false`
/// when standard output was closed.
pub(super) fn print_orders(
    checked: &pipeline::Checked,
    fields: &crate::dcms::CreateFields,
) -> Result<bool> {
    let mut out = String::new();
    for order in checked.orders()? {
        let body = OrderBody::new(&order, fields).map_err(Error::Body)?;
        out.push_str(body.json.get());
        out.push('\n');
    }
    print_stdout(&out).map_err(Error::Stdout)
}

/// `12 rows: 10 valid, 1 invalid, 1 held; 4 orders ready, 1 held; report: r.csv`.
pub(super) fn summary_line(checked: &pipeline::Checked, facts: &report::RunFacts) -> String {
    let c = facts.counts;
    let blank = if c.blank_rows > 0 {
        format!(" ({} skipped)", super::count(c.blank_rows, "blank row"))
    } else {
        String::new()
    };
    let report = match &facts.report {
        Some(r) => format!("; report: {}", r.path),
        None => String::new(),
    };
    format!(
        "{}: {} valid, {} invalid, {} held; {} ready, {} held{blank}{report}",
        super::count(c.rows, "row"),
        c.valid,
        c.invalid,
        c.held,
        super::count(checked.grouping.counts.orders_ready, "order"),
        checked.grouping.counts.orders_held,
    )
}
