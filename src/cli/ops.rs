//! `dcms-bulk cancel FILE` and `dcms-bulk upgrade FILE`: one API call per
//! sheet row, on the submit engine (rate limit, retries, ledger, resume),
//! with a report line per row and run facts beside it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::api::{ApiArgs, SendArgs};
use super::news::News;
use super::progress::print_finished;
use super::{Console, ReadArgs, check_batch_id, print_json};
use crate::batch::{Batch, RowSheet};
use crate::error::Result;
use crate::exit::Exit;
use crate::ops::sheet::{self, OpSheet};
use crate::ops::{self, CancelOrders, RowCheck, UpgradeCards};
use crate::report;
use crate::service;
use crate::submit::{Operation, Tally};
use crate::template::Kind;

#[derive(Debug, Args)]
pub struct OpArgs {
    /// The sheet: .csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods (see
    /// `dcms-bulk template`)
    #[arg(value_parser = super::no_stdin)]
    pub file: PathBuf,

    #[command(flatten)]
    pub read: ReadArgs,

    /// A label for this run in the ledger; what was done is never repeated
    /// whatever the label (the ledger knows every cancel and upgrade by its
    /// order id or kit number)
    #[arg(long, value_name = "ID")]
    pub batch_id: Option<String>,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Write the report here: .csv, .jsonl or .xlsx [default: FILE's
    /// folder, as NAME.report.csv]
    #[arg(long, value_name = "PATH", help_heading = "Report")]
    pub report: Option<PathBuf>,

    /// Begin a CSV report with a UTF-8 byte-order mark, so that Excel reads
    /// its accents right (it still drops leading zeros: use the XLSX report,
    /// or import the CSV with the id columns as Text)
    #[arg(long, help_heading = "Report")]
    pub csv_bom: bool,

    /// Report format when no --report path gives it
    /// [default: as the input: xlsx for a workbook, csv for text]
    #[arg(long, value_enum, help_heading = "Report")]
    pub report_format: Option<report::Format>,

    /// Print the summary as JSON on stdout
    #[arg(long, help_heading = "Report")]
    pub json: bool,

    /// Check the sheet and print, as JSON Lines on stdout, the request body
    /// of every row that would be sent; send nothing, write no report, touch
    /// no ledger
    #[arg(long)]
    pub dry_run: bool,
}

pub fn cancel(args: &OpArgs, console: Console) -> Result<Exit> {
    run(
        Kind::Cancel,
        args,
        console,
        CancelOrders,
        ops::check_cancels,
    )
}

pub fn upgrade(args: &OpArgs, console: Console) -> Result<Exit> {
    run(
        Kind::Upgrade,
        args,
        console,
        UpgradeCards,
        ops::check_upgrades,
    )
}

/// `kind`'s sheet, read and checked, each valid row sent as `op`.
fn run<O: Operation>(
    kind: Kind,
    args: &OpArgs,
    console: Console,
    op: O,
    check: fn(&OpSheet) -> Vec<RowCheck<O::Item>>,
) -> Result<Exit> {
    let started = report::now();
    let read = args.read.to_opts()?;
    check_batch_id(args.batch_id.as_deref())?;
    if args.dry_run {
        return dry_run(kind, args, &read, console);
    }
    let target = report::Target::for_input(
        args.report.as_deref(),
        args.report_format,
        &args.file,
        None,
        "sheet",
    )?;
    let report_path = target.path.clone();
    report::not_the_input(&report_path, &args.file)?;
    report::keep_earlier(&report_path)?;
    report::prepare(&report_path)?;
    let api = args.api.resolve(&args.send, console)?;

    let file = &args.file;
    let name = file.display().to_string();
    let sheet = sheet::read(file, &read, kind)?;
    let checks = check(&sheet);
    if !console.quiet {
        ops::print_problems(&name, &sheet, &checks, console.verbose);
    }
    let input = RowSheet {
        path: file,
        sha256: sheet.sheet.sha256(),
        bytes: sheet.sheet.bytes(),
        sheet: &sheet,
        checks: &checks,
        batch_id: args.batch_id.as_deref(),
    };
    let batch = Batch {
        command: O::KIND,
        options: json!({ "batch_id": args.batch_id }),
        started,
        report: &target,
        tally: Arc::new(Tally::default()),
        csv_bom: args.csv_bom,
    };
    let done = send(&api, &args.send, console, op, &input, batch)?;
    print_finished(&name, &done, console);
    if args.json {
        print_json(&json!({
            "input": name,
            "command": O::KIND,
            "tenant": api.tenant,
            "counts": done.counts_json(),
            "report": report_path.display().to_string(),
            "run_facts": done.facts_path.display().to_string(),
            "exit_code": done.exit,
        }))?;
    }
    Ok(done.exit)
}

/// `--dry-run`: the sheet read and checked as for a real run, the bodies
/// that would be sent on stdout, nothing sent. Exit 0 when every row would
/// be sent, 1 otherwise.
fn dry_run(
    kind: Kind,
    args: &OpArgs,
    read: &crate::read::ReadOpts,
    console: Console,
) -> Result<Exit> {
    let name = args.file.display().to_string();
    let checked = ops::Checked::read(&args.file, read, kind)?;
    if !console.quiet {
        checked.print_problems(&name, console.verbose);
    }
    super::print_stdout(&checked.bodies()).map_err(crate::error::Error::Stdout)?;
    let rows = checked.checks.len() as u64;
    let valid = checked.valid();
    let what = match kind {
        Kind::Upgrade => "upgrade",
        _ => "cancel",
    };
    if !console.quiet {
        tracing::info!(
            event = "dry_run",
            file = name,
            "{name}: {}: {valid} valid, {} invalid; dry run: {} would be sent, nothing sent",
            super::count(rows, "row"),
            rows - valid,
            super::count(valid, what)
        );
    }
    Ok(Exit::rows(valid == rows))
}

/// Sends a checked sheet's valid rows through the batch engine, with a
/// progress display; says so when the run was stopped.
fn send<O: Operation>(
    api: &super::api::Api,
    send: &SendArgs,
    console: Console,
    op: O,
    input: &RowSheet<'_, O::Item>,
    batch: Batch<'_>,
) -> Result<crate::batch::Finished> {
    let engine = super::api::engine(api, send, console)?;
    let items = input.checks.iter().filter(|c| c.item.is_some()).count() as u64;
    let name = input.path.display().to_string();
    let news = News::new(console, false);
    let tally = batch.tally.clone();
    let done = service::with_progress(&|e| news.tell(e), &name, items, &tally, || {
        engine.rows(op, input, batch)
    });
    let stopped = engine.stopper.reason();
    engine
        .runtime
        .shutdown_timeout(std::time::Duration::from_secs(1));
    let done = done?;
    if let Some(why) = stopped {
        tracing::warn!(
            event = "stopped",
            code = why.exit().code(),
            "dcms-bulk: stopped: {why}; re-run the same command to resume"
        );
    }
    Ok(done)
}
