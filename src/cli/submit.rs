//! `dcms-bulk submit FILE...`: check each file as `validate` does, send its
//! ready orders (see `submit`), write its report and run facts, and print a
//! summary. Each file is a batch of its own; every batch to one API and
//! tenant shares that destination's ledger. A folder stands for the order
//! sheets in it.
//!
//! Where the API is: flags, then the environment (`DCMS_BASE_URL`,
//! `DCMS_TENANT`, `DCMS_TOKEN`, `DCMS_TOKEN_FILE`), then a profile of the
//! config file. `--sandbox` runs the simulator inside the process instead.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::news::News;
use super::{CheckArgs, Console, print_json, print_problems};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::job::Job;
use crate::pipeline;
use crate::report;
use crate::service::{self, Event, Filing, Inputs, Output, Service};
use crate::submit::Stop;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Order sheets (.csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods), or folders
    /// holding them; each file is a batch with its own report
    #[arg(required = true, value_name = "FILE", value_parser = super::no_stdin)]
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

    /// After its run, move each file whose orders were all handled but
    /// with rows a person must see (invalid, held, rejected, conflict)
    /// here, with its report, run facts and rows to fix
    /// [default: with --failed-dir, the folder needs-attention beside it]
    #[arg(long, value_name = "DIR", help_heading = "Folders")]
    pub attention_dir: Option<PathBuf>,

    /// After its run, move each file that could not be processed (not
    /// readable, the API away, orders left unsettled) here, with its
    /// report or the record of why
    #[arg(long, value_name = "DIR", help_heading = "Folders")]
    pub failed_dir: Option<PathBuf>,

    /// In a folder, take a sheet only once its size and modification time
    /// have not changed for this long (a copy still running is waited
    /// for); 0 takes every sheet at once
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = humantime::parse_duration,
        help_heading = "Folders"
    )]
    pub settle: Duration,
}

impl OutArgs {
    /// The service's output settings, checked, with the report folder
    /// made.
    pub(super) fn output(&self) -> Result<Output> {
        let out = Output {
            report: self.report.clone(),
            report_dir: self.report_dir.clone(),
            report_format: self.report_format,
            csv_bom: self.csv_bom,
            done_dir: self.done_dir.clone(),
            attention_dir: self.attention_dir.clone().or_else(|| {
                // Never with the files that could not be processed.
                let failed = self.failed_dir.as_deref()?;
                let beside = failed.parent().filter(|p| !p.as_os_str().is_empty());
                Some(
                    beside
                        .unwrap_or(std::path::Path::new("."))
                        .join("needs-attention"),
                )
            }),
            failed_dir: self.failed_dir.clone(),
            settle: self.settle,
        };
        out.prepare()?;
        Ok(out)
    }
}

pub fn run(args: &SubmitArgs, console: Console) -> Result<Exit> {
    let mut opts = args.check.to_opts()?;
    opts.rules.strict |= args.api.profile.refuses_warnings()?;

    let inputs = service::inputs(&args.files)?;
    if args.out.report.is_some() && inputs.len() > 1 {
        return Err(Error::Usage(
            "--report names one file; with several inputs use --report-dir".into(),
        ));
    }
    let out = args.out.output()?;
    if args.dry_run {
        return dry_run(args, &opts, inputs, console);
    }
    let api = args.api.resolve(&args.send, console)?;
    let notices = args.api.profile.notify(console)?;
    let engine = super::api::engine(&api, &args.send, console)?;
    let gate = super::api::gate(&args.api.profile, &args.send, &api)?;
    let news = News::new(console, false);
    let on = |e: Event<'_>| news.tell(e);
    let service = Service {
        engine: &engine,
        out: &out,
        command: "submit",
        options: args.check.facts(),
        on: &on,
        gate: gate.as_ref(),
    };
    let (files, passed) = service.settled(inputs);
    let summaries = service.run(&files, &opts);
    let stopped = engine.stopper.reason();
    engine.runtime.shutdown_timeout(Duration::from_secs(1));

    let exit = Exit::most_serious(summaries.iter().map(|s| s.exit_code));
    say_end(stopped.as_ref(), &summaries, exit, console);
    // Told when it ends: what was done, what needs a person, where the
    // reports are (never a failure of the run).
    if let Some(n) = super::notify::notifier(notices)
        && !summaries.is_empty()
    {
        let host = report::host().unwrap_or_else(|| "this machine".into());
        let files: Vec<&service::FileOutcome> = summaries.iter().collect();
        n.send(crate::notify::notice("submit", &host, &files));
        n.finish();
    }
    if args.out.json {
        print_json(&serde_json::json!({
            "tenant": api.tenant,
            "base_url": api.base_url,
            "files": summaries,
            "passed_over": passed,
            "stopped": stopped.map(|r| r.to_string()),
            "exit_code": exit,
        }))?;
    }
    Ok(exit)
}

/// The run's end in the log: why it stopped, if it did, with what is safe
/// to do next; and, for several files, how many ended each way.
fn say_end(
    stopped: Option<&Stop>,
    summaries: &[service::FileOutcome],
    exit: Exit,
    console: Console,
) {
    if let Some(why) = stopped
        && (!console.quiet || *why != Stop::Interrupted)
    {
        let level = match why.exit() {
            Exit::Interrupted => tracing::Level::WARN,
            exit => super::log::level_of(exit),
        };
        super::log::at_level!(
            level,
            event = "stopped",
            code = why.exit().code(),
            "dcms-bulk: stopped: {why}; {}",
            why.advice()
        );
    }
    if summaries.len() > 1 && !console.quiet {
        let n = |f: Filing| summaries.iter().filter(|s| s.outcome == f).count();
        let (done, attention, failed) = (
            n(Filing::Done),
            n(Filing::NeedsAttention),
            n(Filing::Failed),
        );
        super::log::at_level!(
            super::log::level_of(exit),
            event = "files",
            files = summaries.len(),
            done,
            attention,
            failed,
            "dcms-bulk: {}: {done} done, {attention} needing attention, {failed} failed{}",
            super::count(summaries.len() as u64, "file"),
            match summaries.len() - done - attention - failed {
                0 => String::new(),
                left => format!(", {left} left for a re-run"),
            }
        );
    }
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
        let job = match Job::open(file, opts.clone()) {
            Ok(job) => job,
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
        let checked = job.checked();
        print_problems(checked, &name, console);
        let facts = checked.facts("submit --dry-run", args.check.facts(), started);
        let open = super::validate::print_orders(checked, &fields)?;
        if !console.quiet {
            tracing::info!(
                event = "dry_run",
                file = name,
                "{name}: {}; dry run: {} would be sent, nothing sent",
                super::validate::summary_line(checked, &facts),
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
