//! `dcms-bulk validate`: check and group sheets, write their reports, print
//! a summary (or the order bodies `submit` would send); send nothing.

use std::path::{Path, PathBuf};

use clap::Args;

use super::api::ProfileArgs;
use super::{CheckArgs, Console, print_stdout};
use crate::dcms::OrderBody;
use crate::drop;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::job::Job;
use crate::ops;
use crate::pipeline;
use crate::report::same_file;
use crate::report::{self, Format, Target};
use crate::template::Kind;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Sheets (.csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods) of orders, or
    /// of rows for cancel or upgrade; folders holding them; or - for a CSV
    /// on standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub check: CheckArgs,

    /// Write the per-row report here (one input only): .csv, .jsonl or
    /// .xlsx (a run-facts JSON is written beside it, as REPORT.run.json)
    #[arg(long, value_name = "PATH", help_heading = "Report")]
    pub report: Option<PathBuf>,

    /// Write each input's report into this folder, as NAME.report.EXT
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Report",
        conflicts_with = "report"
    )]
    pub report_dir: Option<PathBuf>,

    /// The format of the reports in --report-dir [default: as the input:
    /// xlsx for a workbook, csv for text]
    #[arg(long, value_enum, help_heading = "Report", requires = "report_dir")]
    pub report_format: Option<Format>,

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

    /// What the sheets hold: orders, or rows for `cancel` or `upgrade`
    /// [default: told from the header row: an order sheet, else a cancel
    /// sheet, else an upgrade sheet]
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<crate::template::Kind>,
}

/// Standard input, as a file: `-` is copied into a temporary file first
/// (the reader reads files), and named `<stdin>` wherever it is shown.
struct Stdin {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Stdin {
    fn read() -> Result<Stdin> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("standard input", e))?;
        let path = dir.path().join("stdin.csv");
        let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        std::io::copy(&mut std::io::stdin().lock(), &mut file)
            .map_err(|e| Error::io("standard input", e))?;
        Ok(Stdin { _dir: dir, path })
    }
}

/// What the console calls standard input.
const STDIN: &str = "<stdin>";

pub fn run(args: &ValidateArgs, console: Console) -> Result<Exit> {
    let mut opts = args.check.to_opts()?;
    opts.rules.strict |= args.profile.refuses_warnings()?;
    let (mut inputs, mut folders) = (Vec::new(), false);
    for path in &args.files {
        if path.as_os_str() == "-" || !path.is_dir() {
            inputs.push(path.clone());
            continue;
        }
        folders = true;
        let found = drop::scan(path).map_err(|e| Error::io(path, e))?;
        for p in &found.passed {
            if !console.quiet {
                super::say_passed(p);
            }
        }
        inputs.extend(found.sheets);
    }
    if args.report.is_some() && inputs.len() > 1 {
        return Err(Error::Usage(
            "--report names one file; with several inputs use --report-dir".into(),
        ));
    }
    if args.files.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Error::Usage("- (standard input) can be read once".into()));
    }
    if let Some(r) = &args.report {
        Target::at(r)?;
    }
    if let Some(dir) = &args.report_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
    }
    let single = inputs.len() == 1 && !folders;
    let mut summaries = Vec::new();
    let mut codes = Vec::new();
    for input in &inputs {
        match validate_one(args, &opts, input, console) {
            Ok((code, summary)) => {
                codes.push(code);
                summaries.push(summary);
            }
            // One file's error stops the command when it is the only one.
            Err(e) if single => return Err(e),
            Err(e) => {
                tracing::error!(event = "error", file = %input.display(), code = e.exit().code(), "{}", super::error_message(&e));
                codes.push(e.exit());
                summaries.push(serde_json::json!({
                    "input": input.display().to_string(),
                    "error": e.to_string(),
                    "exit_code": e.exit(),
                }));
            }
        }
    }
    let code = Exit::most_serious(codes);
    if args.json {
        let summary = match summaries.pop() {
            Some(one) if single => one,
            last => {
                summaries.extend(last);
                serde_json::json!({ "files": summaries, "exit_code": code })
            }
        };
        super::print_json(&summary)?;
    }
    if !single && !console.quiet {
        tracing::info!(
            event = "files",
            files = inputs.len(),
            "dcms-bulk: {} checked",
            super::count(inputs.len() as u64, "file")
        );
    }
    Ok(code)
}

/// One input checked, its report written: its exit code and its summary.
fn validate_one(
    args: &ValidateArgs,
    opts: &pipeline::CheckOpts,
    input: &Path,
    console: Console,
) -> Result<(Exit, serde_json::Value)> {
    let started = report::now();
    let stdin = if input.as_os_str() == "-" {
        Some(Stdin::read()?)
    } else {
        None
    };
    let path = stdin.as_ref().map_or(input, |s| s.path.as_path());
    let report_path = report_target(args, path)?;
    let name = match &stdin {
        Some(_) => STDIN.to_string(),
        None => input.display().to_string(),
    };
    let shown = |e: Error| match &stdin {
        // The temporary copy is an implementation detail.
        Some(s) => {
            let text = e.to_string().replace(&s.path.display().to_string(), STDIN);
            let text = text.strip_prefix("<stdin>: ").unwrap_or(&text).to_string();
            Error::input(STDIN, text)
        }
        None => e,
    };
    let facts_input = stdin.as_ref().map_or(path, |_| Path::new(STDIN));
    let sheet = read_sheet(args, opts, path, &shown)?;
    let job = match sheet {
        Sheet::Orders(job) => *job,
        Sheet::Ops(ops) => {
            return validate_ops(
                args,
                &ops,
                facts_input,
                &name,
                report_path,
                started,
                console,
            );
        }
    };
    let stdin_path = stdin.as_ref().map(|_| PathBuf::from(STDIN));
    finish_orders(args, job, stdin_path, &name, report_path, started, console)
}

/// Where the report goes, if one is asked for; refused when it would
/// overwrite the input.
fn report_target(args: &ValidateArgs, path: &Path) -> Result<Option<Target>> {
    let report_path = match (&args.report, &args.report_dir) {
        (None, None) => None,
        // Standard input's copy is `stdin.csv`: its report `stdin.report.csv`.
        (report, dir) => Some(Target::for_input(
            report.as_deref(),
            args.report_format,
            path,
            dir.as_deref(),
            "orders",
        )?),
    };
    if let Some(r) = &report_path {
        if same_file(&r.path, path) {
            return Err(Error::Usage(format!(
                "--report {} would overwrite the input file",
                r.path.display()
            )));
        }
        report::prepare(&r.path)?;
    }
    Ok(report_path)
}

/// What the input turned out to be.
enum Sheet {
    Orders(Box<Job>),
    Ops(Box<ops::Checked>),
}

/// Reads the input as the sheet `--kind` names, or as an order sheet and,
/// failing that, as a cancel or upgrade sheet told by its header.
fn read_sheet(
    args: &ValidateArgs,
    opts: &pipeline::CheckOpts,
    path: &Path,
    shown: &dyn Fn(Error) -> Error,
) -> Result<Sheet> {
    let op_kind = match args.kind {
        Some(Kind::Order) => None,
        Some(k) => Some(k),
        None => None,
    };
    Ok(match op_kind {
        Some(kind) => Sheet::Ops(Box::new(
            ops::Checked::read(path, &opts.read, kind).map_err(shown)?,
        )),
        None => match Job::open(path, opts.clone()) {
            // Not an order sheet: a cancel or upgrade sheet, told by its header?
            Err(e) if args.kind.is_none() && e.exit() == Exit::InputUnreadable => {
                let other = [Kind::Cancel, Kind::Upgrade]
                    .into_iter()
                    .find_map(|k| ops::Checked::read(path, &opts.read, k).ok());
                Sheet::Ops(Box::new(other.ok_or_else(|| shown(e))?))
            }
            other => Sheet::Orders(Box::new(other.map_err(shown)?)),
        },
    })
}

/// An order sheet checked: its problems said, its report written.
fn finish_orders(
    args: &ValidateArgs,
    job: Job,
    stdin_path: Option<PathBuf>,
    name: &str,
    report_path: Option<Target>,
    started: String,
    console: Console,
) -> Result<(Exit, serde_json::Value)> {
    let stdin = stdin_path.is_some();
    // Not freed when the command ends: the process exits next, and freeing
    // a large file's tables piece by piece took longer than anything after
    // the report (17 ms for a million rows).
    let mut job = std::mem::ManuallyDrop::new(job);
    if let Some(p) = stdin_path {
        job.name_input(p);
    }
    let checked = job.checked();
    super::print_problems(checked, name, console);

    let mut facts = checked.facts("validate", args.check.facts(), started);
    if stdin {
        facts.input.absolute_path = None;
    }
    let facts_path = match &report_path {
        Some(target) => Some(job.report(target, args.csv_bom, &mut facts)?),
        None => None,
    };
    let code = Exit::rows(facts.all_done());
    if args.print_orders {
        print_orders(checked, &args.profile.create_fields()?)?;
    }
    if !console.quiet {
        tracing::info!(
            event = "checked",
            file = name,
            "{name}: {}",
            summary_line(checked, &facts)
        );
    }
    Ok((
        code,
        serde_json::json!({
            "input": facts.input.path,
            "input_sha256": facts.input.sha256,
            "sheet": facts.input.sheet,
            "batch_id": facts.batch_id,
            "counts": facts.counts,
            "report": facts.report.as_ref().map(|r| &r.path),
            "run_facts": facts_path.as_ref().map(|p| p.display().to_string()),
            "exit_code": code,
        }),
    ))
}

/// A cancel or upgrade sheet checked: its problems said, its report
/// written, with the same messages `cancel` and `upgrade` give.
fn validate_ops(
    args: &ValidateArgs,
    checked: &ops::Checked,
    path: &Path,
    name: &str,
    report_path: Option<Target>,
    started: String,
    console: Console,
) -> Result<(Exit, serde_json::Value)> {
    let (kind, article) = match checked.kind {
        Kind::Upgrade => ("upgrade", "an"),
        _ => ("cancel", "a"),
    };
    if !console.quiet {
        checked.print_problems(name, console.verbose);
    }
    let command = format!("validate --kind {kind}");
    let mut facts =
        crate::lines::op_check_facts(checked, path, &command, args.check.facts(), started);
    if path == Path::new(STDIN) {
        facts.input.absolute_path = None;
    }
    let facts_path = match &report_path {
        Some(r) => Some(crate::lines::op_check_report(
            checked,
            r,
            args.csv_bom,
            &mut facts,
        )?),
        None => None,
    };
    let c = facts.counts;
    let code = Exit::rows(c.invalid == 0);
    if args.print_orders {
        print_stdout(&checked.bodies()).map_err(Error::Stdout)?;
    }
    if !console.quiet {
        let report = facts
            .report
            .as_ref()
            .map(|r| format!("; report: {}", r.path))
            .unwrap_or_default();
        tracing::info!(
            event = "checked",
            file = name,
            "{name}: {article} {kind} sheet: {}: {} valid, {} invalid{report}",
            super::count(c.rows, "row"),
            c.valid,
            c.invalid
        );
    }
    Ok((
        code,
        serde_json::json!({
            "input": facts.input.path,
            "kind": kind,
            "input_sha256": facts.input.sha256,
            "sheet": facts.input.sheet,
            "counts": facts.counts,
            "report": facts.report.as_ref().map(|r| &r.path),
            "run_facts": facts_path.as_ref().map(|p| p.display().to_string()),
            "exit_code": code,
        }),
    ))
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
    let warned = if c.warnings > 0 {
        format!("; {} with a warning", super::count(c.warnings, "row"))
    } else {
        String::new()
    };
    format!(
        "{}: {} valid, {} invalid, {} held{warned}; {} ready, {} held{blank}{report}",
        super::count(c.rows, "row"),
        c.valid,
        c.invalid,
        c.held,
        super::count(checked.grouping.counts.orders_ready, "order"),
        checked.grouping.counts.orders_held,
    )
}
