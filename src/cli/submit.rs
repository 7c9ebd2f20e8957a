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
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::api::{Api, ApiArgs, Progress, SendArgs, runtime, stop_code};
use super::{CheckArgs, Console, print_problems, print_stdout};
use crate::dcms::Client;
use crate::dcms::OrderBody;
use crate::error::{Error, Result};
use crate::exit;
use crate::pipeline::{self, Checked};
use crate::report::{self, ApiFacts, RunFacts, SentCounts};
use crate::submit::ledger::RunStart;
use crate::submit::{
    self, CreateOrders, Destination, Ledger, SendStatus, Sent, Stop, Stopper, SubmitOpts, Tally,
};

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
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv, help_heading = "Report")]
    pub report_format: ReportFormat,

    /// Print the summary as JSON on stdout
    #[arg(long, help_heading = "Report")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Xlsx,
    Jsonl,
}

impl SubmitArgs {
    fn report_path(&self, input: &Path) -> PathBuf {
        if let Some(p) = &self.report {
            return p.clone();
        }
        let ext = match self.report_format {
            ReportFormat::Csv => "csv",
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Jsonl => "jsonl",
        };
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "orders".into());
        let dir = match &self.report_dir {
            Some(d) => d.clone(),
            None => input.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        dir.join(format!("{stem}.report.{ext}"))
    }
}

/// The order sheets named: files as given, folders by their sheets (sorted;
/// hidden files, Excel's `~$` lock files and our own reports left out).
fn input_files(named: &[PathBuf]) -> Result<Vec<PathBuf>> {
    const SHEETS: [&str; 8] = ["csv", "tsv", "txt", "xlsx", "xlsm", "xlsb", "xls", "ods"];
    let mut files = Vec::new();
    for path in named {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                !name.starts_with('.')
                    && !name.starts_with("~$")
                    && !name.contains(".report.")
                    && SHEETS.contains(&ext.as_str())
            })
            .collect();
        found.sort();
        if found.is_empty() && !files.is_empty() {
            continue;
        }
        files.extend(found);
    }
    if files.is_empty() {
        return Err(Error::Usage(
            "no order sheets found in the folder(s) given".into(),
        ));
    }
    Ok(files)
}

/// One file's result, for the combined summary.
#[derive(Debug, serde::Serialize)]
struct FileSummary {
    input: String,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<serde_json::Value>,
}

pub fn run(args: &SubmitArgs, console: Console) -> Result<i32> {
    let opts = args.check.to_opts()?;
    let mut send = args.send.to_opts()?;
    let files = input_files(&args.files)?;
    if args.report.is_some() && files.len() > 1 {
        return Err(Error::Usage(
            "--report names one file; with several inputs use --report-dir".into(),
        ));
    }
    if let Some(r) = &args.report {
        report::Format::from_path(r)?;
    }
    if let Some(dir) = &args.report_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
    }
    let api = args.api.resolve(&args.send, console)?;
    send.precheck = api.precheck;
    let client = api.client(&args.send)?;
    let ledger = open_ledger(&api, console)?;
    let stopper = Arc::new(Stopper::default());
    let runtime = runtime(&stopper)?;

    let mut summaries = Vec::new();
    for (n, file) in files.iter().enumerate() {
        if let Some(why) = stopper.reason() {
            for rest in &files[n..] {
                summaries.push(FileSummary {
                    input: rest.display().to_string(),
                    exit_code: stop_code(&why),
                    error: Some(format!("not processed: {why}")),
                    report: None,
                    batch_id: None,
                    counts: None,
                });
            }
            break;
        }
        let summary = match submit_file(
            args, &opts, &send, &api, &ledger, &client, &runtime, &stopper, file, console,
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dcms-bulk: error: {e}");
                FileSummary {
                    input: file.display().to_string(),
                    exit_code: e.exit_code(),
                    error: Some(e.to_string()),
                    report: None,
                    batch_id: None,
                    counts: None,
                }
            }
        };
        summaries.push(summary);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let code = exit::most_serious(summaries.iter().map(|s| s.exit_code));
    if let Some(why) = stopper.reason()
        && (!console.quiet || why != Stop::Interrupted)
    {
        eprintln!("dcms-bulk: stopped: {why}; re-run the same command to resume");
    }
    if files.len() > 1 && !console.quiet {
        let ok = summaries.iter().filter(|s| s.exit_code == exit::OK).count();
        eprintln!(
            "dcms-bulk: {} files: {ok} fully done, {} with rows not done or errors",
            summaries.len(),
            summaries.len() - ok
        );
    }
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "tenant": api.tenant,
            "base_url": api.base_url,
            "files": summaries,
            "stopped": stopper.reason().map(|r| r.to_string()),
            "exit_code": code,
        }))
        .map_err(|e| Error::Usage(e.to_string()))?
            + "\n";
        print_stdout(&text).map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(code)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, passed once per file"
)]
fn submit_file(
    args: &SubmitArgs,
    opts: &pipeline::CheckOpts,
    send: &SubmitOpts,
    api: &Api,
    ledger: &Ledger,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    stopper: &Arc<Stopper>,
    file: &Path,
    console: Console,
) -> Result<FileSummary> {
    let started = report::now();
    let report_path = args.report_path(file);
    super::not_the_input(&report_path, file)?;
    let checked = pipeline::check(file, opts)?;
    let name = file.display().to_string();
    print_problems(&checked, &name, console);
    let options = args.check.facts();
    let start = RunStart {
        command: "submit",
        input: &name,
        input_sha256: &checked.input_sha256,
        batch_id: &checked.batch_id,
        options: &options,
        started_at: &started,
    };
    let tally = Arc::new(Tally::default());
    let ready = checked.grouping.counts.orders_ready;
    let progress = Progress::start(runtime, &name, tally.clone(), ready, console);
    // Ready orders are streamed to the engine as the check hands them on,
    // each with its group as its slot: never all bodies at once.
    let sent = submit::send_batch(
        runtime,
        ledger,
        &start,
        CreateOrders,
        client.clone(),
        checked.grouping.groups().len(),
        |emit| {
            checked.for_each_order(&mut |g, order| {
                let body = OrderBody::new(&order).map_err(|e| Error::Usage(e.to_string()))?;
                if emit(g as usize, body) {
                    Ok(())
                } else {
                    Err(Error::Usage("the send engine stopped taking orders".into()))
                }
            })
        },
        send,
        tally.clone(),
        stopper.clone(),
    );
    progress.finish();
    let (run_id, by_group) = sent?;
    if !console.quiet {
        for note in tally.take_notes() {
            eprintln!("{name}: {note}");
        }
    }

    let mut facts = RunFacts::new("submit", &checked, options, started);
    let counts = sent_counts(&checked, &by_group);
    facts.sent = Some(counts);
    facts.api = Some(ApiFacts {
        tenant: api.tenant.clone(),
        base_url: api.base_url.clone(),
        ledger: ledger.path().display().to_string(),
        ledger_run: run_id,
        requests: tally.requests.load(Ordering::Relaxed),
        stopped: stopper.reason().map(|r| r.to_string()),
    });
    report::write_with(&checked, &report_path, &mut facts, Some(&by_group))?;
    let facts_counts = serde_json::to_value(counts).unwrap_or_default();
    ledger
        .end_run(
            run_id,
            &facts_counts,
            &report_path,
            stopper.reason().map(|r| r.to_string()),
        )
        .map_err(|e| Error::Usage(e.to_string()))?;

    let c = facts.counts;
    let rows_done = c.invalid + c.held + counts.rejected + counts.failed + counts.conflict == 0;
    let code = match stopper.reason() {
        Some(why) => stop_code(&why),
        None if rows_done => exit::OK,
        None => exit::ROWS_NOT_DONE,
    };
    if !console.quiet {
        eprintln!(
            "{name}: {} rows: {} accepted, {} skipped (sent before), {} rejected, {} failed, {} conflict, {} invalid, {} held; orders: {} accepted, {} skipped, {} rejected, {} failed, {} conflict, {} held; {} requests; report: {}",
            c.rows,
            counts.accepted,
            counts.skipped,
            counts.rejected,
            counts.failed,
            counts.conflict,
            c.invalid,
            c.held,
            counts.orders_accepted,
            counts.orders_skipped,
            counts.orders_rejected,
            counts.orders_failed,
            counts.orders_conflict,
            c.orders_held,
            tally.requests.load(Ordering::Relaxed),
            report_path.display()
        );
    }
    let mut json_counts = serde_json::to_value(c).unwrap_or_default();
    if let (Some(obj), Ok(serde_json::Value::Object(sent))) =
        (json_counts.as_object_mut(), serde_json::to_value(counts))
    {
        obj.extend(sent);
    }
    Ok(FileSummary {
        input: name,
        exit_code: code,
        error: None,
        report: Some(report_path.display().to_string()),
        batch_id: Some(checked.batch_id.clone()),
        counts: Some(json_counts),
    })
}

/// Rows and orders by outcome. A sent order's valid rows take its outcome.
fn sent_counts(checked: &Checked, by_group: &[Option<Sent>]) -> SentCounts {
    let mut c = SentCounts::default();
    for (group, sent) in checked.grouping.groups().iter().zip(by_group) {
        let Some(sent) = sent else { continue };
        let rows = u64::from(group.rows - group.invalid);
        let (row_count, order_count) = match sent.status {
            SendStatus::Accepted => (&mut c.accepted, &mut c.orders_accepted),
            SendStatus::Rejected => (&mut c.rejected, &mut c.orders_rejected),
            SendStatus::Failed => (&mut c.failed, &mut c.orders_failed),
            SendStatus::Skipped => (&mut c.skipped, &mut c.orders_skipped),
            SendStatus::Conflict => (&mut c.conflict, &mut c.orders_conflict),
        };
        *row_count += rows;
        *order_count += 1;
    }
    debug_assert_eq!(
        c.accepted + c.rejected + c.failed + c.skipped + c.conflict,
        checked.grouping.counts.valid,
        "every valid row belongs to a sent order"
    );
    c
}

/// Opens the ledger of the API and tenant, waiting (and saying so) while
/// another run holds it.
pub(super) fn open_ledger(api: &Api, console: Console) -> Result<Ledger> {
    let dest = Destination::new(&api.tenant, &api.base_url);
    let ledger = Ledger::open(&api.journal_dir, &dest, true, |lock| {
        if !console.quiet {
            eprintln!(
                "dcms-bulk: another dcms-bulk run is sending to {} (tenant {}); waiting for it to end (lock {})",
                dest.base_url,
                dest.tenant,
                lock.display()
            );
        }
    })
    .map_err(|e| Error::Usage(e.to_string()))?;
    if console.verbose {
        eprintln!("dcms-bulk: ledger {}", ledger.path().display());
    }
    Ok(ledger)
}
