//! `dcms-bulk submit FILE...`: check each file as `validate` does, send its
//! ready orders (see `submit`), write its report and run facts, and print a
//! summary. Each file is a batch of its own; every batch to one API and
//! tenant shares that destination's ledger. A folder stands for the order
//! sheets in it.
//!
//! Where the API is: flags, then the environment (`DCMS_BASE_URL`,
//! `DCMS_TENANT`, `DCMS_TOKEN`, `DCMS_TOKEN_FILE`), then a profile of the
//! config file. `--sandbox` runs the simulator inside the process instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::progress::{Progress, print_finished};
use super::{CheckArgs, Console, print_json, print_problems};
use crate::batch::{Batch, Engine};
use crate::drop;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pipeline;
use crate::report;
use crate::submit::{Stop, Tally};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Order sheets (.csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods), or folders
    /// holding them; each file is a batch with its own report
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub out: OutArgs,

    /// Check and print each ready order's request body (JSON, one a line,
    /// as `validate --print-orders`), and send nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Where each file's report goes, and where the file goes after its run
/// (`submit` and `watch`).
#[derive(Debug, Args)]
pub struct OutArgs {
    /// Write the report here (one input file only): .csv, .jsonl or .xlsx
    /// [default: FILE's folder, as NAME.report.csv]
    #[arg(long, value_name = "PATH", help_heading = "Report")]
    pub report: Option<PathBuf>,

    /// Folder for the reports [default: beside each input file]
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Report",
        conflicts_with = "report"
    )]
    pub report_dir: Option<PathBuf>,

    /// Report format when no --report path gives it
    /// [default: as the input: xlsx for a workbook, csv for text]
    #[arg(long, value_enum, help_heading = "Report")]
    pub report_format: Option<report::Format>,

    /// Begin a CSV report with a UTF-8 byte-order mark, so that Excel reads
    /// its accents right (it still drops leading zeros: use the XLSX report,
    /// or import the CSV with the id columns as Text)
    #[arg(long, help_heading = "Report")]
    pub csv_bom: bool,

    /// Print the summary as JSON on stdout (watch: one object a line as
    /// each file is done)
    #[arg(long, help_heading = "Report")]
    pub json: bool,

    /// After its run, move each file whose rows were all done here, with
    /// its report and run facts (a rename: the same file system)
    #[arg(long, value_name = "DIR", help_heading = "Folders")]
    pub done_dir: Option<PathBuf>,

    /// After its run, move each file with rows not done, or that could
    /// not be read, here, with its report and run facts
    #[arg(long, value_name = "DIR", help_heading = "Folders")]
    pub failed_dir: Option<PathBuf>,

    /// In a folder, take a sheet only once its size and modification time
    /// have not changed for this long (a copy still running is waited
    /// for); 0 takes every sheet at once
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = super::api::parse_duration,
        help_heading = "Folders"
    )]
    pub settle: Duration,
}

impl OutArgs {
    /// Checks the report options and makes the report folder.
    pub(super) fn prepare(&self) -> Result<()> {
        if let Some(r) = &self.report {
            report::Target::at(r)?;
        }
        if let Some(dir) = &self.report_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
        }
        Ok(())
    }

    /// Where `input`'s report goes (see [`report::Target::for_input`]).
    pub(super) fn target(&self, input: &Path) -> Result<report::Target> {
        report::Target::for_input(
            self.report.as_deref(),
            self.report_format,
            input,
            self.report_dir.as_deref(),
            "orders",
        )
    }
}

/// The order sheets named: files as given, and of a folder its sheets
/// (sorted by name) with the files passed over and why (see
/// [`drop::scan`]).
fn input_files(named: &[PathBuf]) -> Result<Inputs> {
    let (mut files, mut in_folders, mut passed) = (Vec::new(), Vec::new(), Vec::new());
    for path in named {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let found = drop::scan(path).map_err(|e| Error::io(path, e))?;
        in_folders.extend(found.sheets);
        passed.extend(found.passed);
    }
    // An empty drop folder is a quiet night, not a mistake: nothing to
    // send, exit 0 (said by the caller).
    Ok(Inputs {
        files,
        in_folders,
        passed,
    })
}

/// The inputs of a run: the files named, the sheets found in the folders
/// named, and the folders' files passed over.
struct Inputs {
    files: Vec<PathBuf>,
    in_folders: Vec<PathBuf>,
    passed: Vec<drop::Passed>,
}

/// The folders' sheets that have settled (see [`drop::settled`]), after
/// the files named; says which were waited for and which passed over.
fn settled_inputs(
    args: &OutArgs,
    inputs: Inputs,
    engine: &Engine,
    console: Console,
) -> (Vec<PathBuf>, Vec<drop::Passed>) {
    let Inputs {
        mut files,
        in_folders,
        mut passed,
    } = inputs;
    let mut waiting = |path: &Path, unchanged: Duration| {
        if !console.quiet {
            tracing::info!(
                event = "waiting", file = %path.display(), "dcms-bulk: waiting for {} to settle (unchanged for {:.0} s of {})",
                path.display(),
                unchanged.as_secs_f64(),
                humantime::format_duration(args.settle)
            );
        }
    };
    let (taken, not_settled) = drop::settled(in_folders, args.settle, &mut waiting, &|| {
        engine.stopper.is_stopped()
    });
    files.extend(taken);
    passed.extend(not_settled);
    if !console.quiet {
        for p in &passed {
            super::say_passed(p);
        }
        if files.is_empty() {
            tracing::info!(
                event = "nothing_ready",
                "dcms-bulk: no sheet in the folder(s) is ready; nothing sent"
            );
        }
    }
    (files, passed)
}

/// One file's result, for the combined summary.
#[derive(Debug, serde::Serialize)]
pub(super) struct FileSummary {
    pub(super) input: String,
    pub(super) exit_code: Exit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) report: Option<String>,
    /// The run facts, or for a file that could not be read the record of
    /// why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) run_facts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) counts: Option<serde_json::Value>,
    /// The `--done-dir` or `--failed-dir` the file went to, with its
    /// report and run facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) filed_in: Option<String>,
    /// What tells this run's files from another's of the same name.
    #[serde(skip)]
    pub(super) tag: String,
    /// Rows FAILED: sent, with no answer that settles them (a watch tries
    /// the file again).
    #[serde(skip)]
    pub(super) failed_rows: u64,
    /// The ledger's id of the run.
    #[serde(skip)]
    pub(super) run: Option<i64>,
}

impl FileSummary {
    /// A file with no report: it could not be read, or was not reached.
    pub(super) fn failed(input: String, exit_code: Exit, error: String) -> Self {
        FileSummary {
            input,
            exit_code,
            error: Some(error),
            report: None,
            run_facts: None,
            batch_id: None,
            counts: None,
            filed_in: None,
            tag: format!("at-{}", crate::clock::in_name(&report::now())),
            failed_rows: 0,
            run: None,
        }
    }
}

pub fn run(args: &SubmitArgs, console: Console) -> Result<Exit> {
    let mut opts = args.check.to_opts()?;
    opts.rules.strict |= args.api.profile.refuses_warnings()?;
    let inputs = input_files(&args.files)?;
    let out = &args.out;
    if out.report.is_some() && inputs.files.len() + inputs.in_folders.len() > 1 {
        return Err(Error::Usage(
            "--report names one file; with several inputs use --report-dir".into(),
        ));
    }
    out.prepare()?;
    if args.dry_run {
        return dry_run(args, &opts, inputs, console);
    }
    let api = args.api.resolve(&args.send, console)?;
    let engine = super::api::engine(&api, &args.send, console)?;
    let (files, passed) = settled_inputs(out, inputs, &engine, console);

    let mut summaries = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let summary = match engine.stopper.reason() {
            Some(why) => FileSummary::failed(name, why.exit(), format!("not processed: {why}")),
            None => {
                let started = report::now();
                let checked = pipeline::check(file, &opts);
                send_checked(out, &args.check, &engine, file, started, checked, console)
            }
        };
        summaries.push(file_away(out, &engine, file, summary));
    }
    let stopped = engine.stopper.reason();
    engine.runtime.shutdown_timeout(Duration::from_secs(1));

    let code = Exit::most_serious(summaries.iter().map(|s| s.exit_code));
    if let Some(why) = &stopped
        && (!console.quiet || *why != Stop::Interrupted)
    {
        tracing::warn!(
            event = "stopped",
            code = why.exit().code(),
            "dcms-bulk: stopped: {why}; re-run the same command to resume"
        );
    }
    if files.len() > 1 && !console.quiet {
        let ok = summaries.iter().filter(|s| s.exit_code == Exit::Ok).count();
        tracing::info!(
            event = "files",
            files = summaries.len(),
            done = ok,
            "dcms-bulk: {}: {ok} fully done, {} with rows not done or errors",
            super::count(summaries.len() as u64, "file"),
            summaries.len() - ok
        );
    }
    if out.json {
        print_json(&serde_json::json!({
            "tenant": api.tenant,
            "base_url": api.base_url,
            "files": summaries,
            "passed_over": passed,
            "stopped": stopped.map(|r| r.to_string()),
            "exit_code": code,
        }))?;
    }
    Ok(code)
}

/// `--dry-run`: each file checked as `validate --print-orders` checks it,
/// its request bodies on stdout, nothing sent, no report written, nothing
/// moved. Folders are taken as they are, without waiting for a sheet to
/// settle.
fn dry_run(
    args: &SubmitArgs,
    opts: &pipeline::CheckOpts,
    inputs: Inputs,
    console: Console,
) -> Result<Exit> {
    let fields = args.api.profile.create_fields()?;
    if !console.quiet {
        for p in &inputs.passed {
            super::say_passed(p);
        }
    }
    let mut codes = Vec::new();
    for file in inputs.files.iter().chain(&inputs.in_folders) {
        let name = file.display().to_string();
        let started = report::now();
        let checked = match pipeline::check(file, opts) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    event = "error",
                    file = name,
                    code = e.exit().code(),
                    "dcms-bulk: error: {e}"
                );
                codes.push(e.exit());
                continue;
            }
        };
        print_problems(&checked, &name, console);
        let facts = checked.facts("submit --dry-run", args.check.facts(), started);
        let open = super::validate::print_orders(&checked, &fields)?;
        if !console.quiet {
            tracing::info!(
                event = "dry_run",
                file = name,
                "{name}: {}; dry run: {} would be sent, nothing sent",
                super::validate::summary_line(&checked, &facts),
                super::count(checked.grouping.counts.orders_ready, "order")
            );
        }
        codes.push(Exit::rows(facts.all_done()));
        if !open {
            break;
        }
    }
    Ok(Exit::most_serious(codes))
}

/// Moves a processed file with its report and run facts to the done or
/// failed folder, if one is given; a file not processed (the run stopped
/// before it) stays. A move that fails is said, and counts as this
/// machine's failure.
pub(super) fn file_away(
    args: &OutArgs,
    engine: &Engine,
    file: &Path,
    mut summary: FileSummary,
) -> FileSummary {
    let Some(facts) = summary.run_facts.clone() else {
        return summary;
    };
    let dir = if summary.exit_code == Exit::Ok {
        &args.done_dir
    } else {
        &args.failed_dir
    };
    let Some(dir) = dir else {
        return summary;
    };
    let report = summary.report.clone().map(PathBuf::from);
    let mut paths: Vec<&Path> = vec![file];
    paths.extend(report.as_deref());
    let facts = PathBuf::from(facts);
    paths.push(&facts);
    match drop::file_away(dir, &paths, &summary.tag) {
        Ok(moved) => {
            let at = |i: usize| {
                moved
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|p| p.display().to_string())
            };
            if report.is_some() {
                summary.report = at(1);
            }
            // The ledger's list of runs says where the report is now.
            if let (Some(run), Some(now)) = (summary.run, &summary.report)
                && let Err(e) = engine.ledger.report_moved(run, Path::new(now))
            {
                tracing::error!(
                    event = "error",
                    file = %file.display(),
                    code = Exit::LocalFailure.code(),
                    "dcms-bulk: error: the ledger cannot record where the report went: {e}"
                );
                summary.exit_code = summary.exit_code.and(Exit::LocalFailure);
            }
            summary.run_facts = at(paths.len() - 1);
            summary.filed_in = Some(dir.display().to_string());
        }
        Err(e) => {
            tracing::error!(
                event = "error", file = %file.display(), code = Exit::LocalFailure.code(), "dcms-bulk: error: {}: could not move it to {}: {e}",
                file.display(),
                dir.display()
            );
            summary.exit_code = summary.exit_code.and(Exit::LocalFailure);
        }
    }
    summary
}

/// One file, checked (or not: `checked` is why): its ready orders sent and
/// its report written; a file that could not be read leaves a record of
/// why where its run facts would go.
pub(super) fn send_checked(
    out: &OutArgs,
    check: &CheckArgs,
    engine: &Engine,
    file: &Path,
    started: String,
    checked: Result<pipeline::Checked>,
    console: Console,
) -> FileSummary {
    checked
        .and_then(|c| submit_file(out, check, engine, &c, &started, console))
        .unwrap_or_else(|e| unreadable(out, check, file, started, &e))
}

/// A file that could not be submitted: said on stderr and, when it could
/// not be read as a sheet, recorded where its run facts would go.
fn unreadable(
    out: &OutArgs,
    check: &CheckArgs,
    file: &Path,
    started: String,
    e: &Error,
) -> FileSummary {
    tracing::error!(
        event = "error",
        file = %file.display(),
        code = e.exit().code(),
        "{}",
        super::error_message(e)
    );
    let mut summary = FileSummary::failed(file.display().to_string(), e.exit(), e.to_string());
    if e.exit() == Exit::InputUnreadable {
        let facts = report::UnreadableFacts::new("submit", file, check.facts(), started, e);
        // As a report: an earlier run's there is kept, the plain name
        // holds this one.
        match out.target(file).and_then(|t| {
            report::keep_earlier(&t.path)?;
            report::write_unreadable(&t.path, &facts)
        }) {
            Ok(path) => summary.run_facts = Some(path.display().to_string()),
            Err(w) => tracing::error!(
                event = "error",
                file = %file.display(),
                code = w.exit().code(),
                "dcms-bulk: error: {w}"
            ),
        }
    }
    summary
}

/// One checked file: its ready orders sent, its report written.
fn submit_file(
    out: &OutArgs,
    check: &CheckArgs,
    engine: &Engine,
    checked: &pipeline::Checked,
    started: &str,
    console: Console,
) -> Result<FileSummary> {
    let file = &checked.path;
    let target = out.target(file)?;
    let report_path = target.path.clone();
    super::not_the_input(&report_path, file)?;
    // Before any order leaves: an earlier run's report there is kept, and
    // this run's can be written.
    report::keep_earlier(&report_path)?;
    report::prepare(&report_path)?;
    let name = file.display().to_string();
    print_problems(checked, &name, console);
    let tally = Arc::new(Tally::default());
    let ready = checked.grouping.counts.orders_ready;
    let progress = Progress::start(&engine.runtime, &name, tally.clone(), ready, console);
    let batch = Batch {
        command: "submit",
        options: check.facts(),
        started: started.to_owned(),
        report: &target,
        tally,
        csv_bom: out.csv_bom,
    };
    let done = engine.orders(checked, batch);
    progress.finish();
    let done = done?;
    print_finished(&name, &done, console);
    Ok(FileSummary {
        input: name,
        exit_code: done.exit,
        error: None,
        report: Some(report_path.display().to_string()),
        run_facts: Some(done.facts_path.display().to_string()),
        batch_id: Some(checked.batch_id.clone()),
        counts: Some(done.counts_json()),
        filed_in: None,
        tag: match &done.facts.api {
            Some(api) => format!("run-{}", api.ledger_run),
            None => String::new(),
        },
        failed_rows: done.facts.sent.map_or(0, |s| s.failed),
        run: done.facts.api.as_ref().map(|api| api.ledger_run),
    })
}
