//! `dcms-bulk cancel FILE` and `dcms-bulk upgrade FILE`: one API call per
//! sheet row, on the submit engine (rate limit, retries, ledger, resume),
//! with a report line per row and run facts beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use serde_json::json;

use super::api::{ApiArgs, Progress, SendArgs, runtime, stop_code};
use super::submit::ReportFormat;
use super::{Console, check_batch_id, print_stdout, read_opts};
use crate::error::{Error, Result};
use crate::exit;
use crate::ops::sheet::{self, OpSheet};
use crate::ops::{self, CancelOrders, RowCheck, UpgradeCards};
use crate::pipeline::sha256_file;
use crate::report::{self, table};
use crate::submit::ledger::RunStart;
use crate::submit::{self, Operation, SendStatus, Sent, Stopper, Tally};
use crate::template::Kind;

#[derive(Debug, Args)]
pub struct OpArgs {
    /// The sheet: .csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods (see
    /// `dcms-bulk template`)
    pub file: PathBuf,

    /// Workbook sheet to read, by name or 1-based position [default: the
    /// first sheet with the headers]
    #[arg(long, value_name = "NAME|INDEX")]
    pub sheet: Option<String>,

    /// CSV delimiter: ',', ';', tab, '|' [default: detected]
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,

    /// CSV encoding: utf-8, utf-16le, utf-16be, windows-1252 [default:
    /// detected]
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,

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

    /// Report format when no --report path gives it
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv, help_heading = "Report")]
    pub report_format: ReportFormat,

    /// Print the summary as JSON on stdout
    #[arg(long, help_heading = "Report")]
    pub json: bool,
}

pub fn cancel(args: &OpArgs, console: Console) -> Result<i32> {
    run(
        Kind::Cancel,
        args,
        console,
        CancelOrders,
        ops::check_cancels,
    )
}

pub fn upgrade(args: &OpArgs, console: Console) -> Result<i32> {
    run(
        Kind::Upgrade,
        args,
        console,
        UpgradeCards,
        ops::check_upgrades,
    )
}

/// The result columns, after `status`.
fn result_columns(kind: Kind) -> Vec<&'static str> {
    let mut cols = vec![
        "status",
        "error_code",
        "errors",
        "http_status",
        "attempts",
        "submitted_at",
        "latency_ms",
    ];
    if kind == Kind::Upgrade {
        cols.extend(["new_kit_no", "card_number", "card_status"]);
    }
    cols
}

fn command_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Order => "submit",
        Kind::Cancel => "cancel",
        Kind::Upgrade => "upgrade",
    }
}

fn run<O: Operation>(
    kind: Kind,
    args: &OpArgs,
    console: Console,
    op: O,
    check: fn(&OpSheet) -> Vec<RowCheck<O::Item>>,
) -> Result<i32> {
    let started = report::now();
    let read = read_opts(
        args.sheet.as_deref(),
        args.delimiter.as_deref(),
        args.encoding.as_deref(),
    )?;
    check_batch_id(args.batch_id.as_deref())?;
    let send = args.send.to_opts()?;
    let report_path = report_path(args);
    report::Format::from_path(&report_path)?;
    super::not_the_input(&report_path, &args.file)?;
    let api = args.api.resolve(&args.send, console)?;
    let client = api.client(&args.send)?;

    let file = &args.file;
    let name = file.display().to_string();
    let (sha, _) = sha256_file(file)?;
    let sheet = sheet::read(file, &read, kind)?;
    let checks = check(&sheet);
    if !console.quiet {
        let sheet = &sheet;
        let problems = sheet.rows.iter().zip(&checks).flat_map(|(row, c)| {
            c.problems
                .iter()
                .map(move |p| (sheet.at(p.col, row.number), p))
        });
        for (i, (at, p)) in problems.enumerate() {
            if i == 50 && !console.verbose {
                eprintln!("{name}: … more problems; the report lists every one");
                break;
            }
            eprintln!("{name}: {at} {}: {}", p.field, p.message);
        }
    }

    let batch_id = args.batch_id.clone().unwrap_or_default();
    let ledger = super::submit::open_ledger(&api, console)?;
    let options = json!({ "batch_id": args.batch_id });
    let start = RunStart {
        command: command_name(kind),
        input: &name,
        input_sha256: &sha,
        batch_id: &batch_id,
        options: &options,
        started_at: &started,
    };
    let stopper = Arc::new(Stopper::default());
    let runtime = runtime(&stopper)?;
    let tally = Arc::new(Tally::default());
    let items = checks.iter().filter(|c| c.item.is_some()).count() as u64;
    let progress = Progress::start(&runtime, &name, tally.clone(), items, console);
    // Each row's item, with its row as its slot.
    let sent = submit::send_batch(
        &runtime,
        &ledger,
        &start,
        op,
        client,
        checks.len(),
        |emit| {
            for (i, c) in checks.iter().enumerate() {
                if let Some(item) = &c.item
                    && !emit(i, item.clone())
                {
                    break;
                }
            }
            Ok(())
        },
        &send,
        tally.clone(),
        stopper.clone(),
    );
    progress.finish();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let (run_id, sent) = sent?;
    let results = result_columns(kind);
    let lines: Vec<table::Line> = sheet
        .rows
        .iter()
        .zip(&checks)
        .zip(&sent)
        .map(|((row, check), sent)| line(&sheet, kind, row, check, sent.as_ref(), &results))
        .collect();

    let mut counts = std::collections::BTreeMap::from([
        ("rows", 0u64),
        ("invalid", 0),
        ("accepted", 0),
        ("rejected", 0),
        ("failed", 0),
        ("skipped", 0),
        ("conflict", 0),
    ]);
    for l in &lines {
        *counts.entry("rows").or_default() += 1;
        let k = match l.results[0].as_str() {
            "ACCEPTED" => "accepted",
            "REJECTED" => "rejected",
            "FAILED" => "failed",
            "SKIPPED" => "skipped",
            "CONFLICT" => "conflict",
            _ => "invalid",
        };
        *counts.entry(k).or_default() += 1;
    }
    counts.insert("blank_rows", sheet.blank_rows);

    let mut facts = json!({
        "tool": "dcms-bulk",
        "version": env!("CARGO_PKG_VERSION"),
        "command": command_name(kind),
        "input": {
            "path": name,
            "sha256": sha,
            "sheet": sheet.sheet.name(),
            "header_row": sheet.header_row,
            "detected": sheet.sheet.notes(),
        },
        "batch_id": batch_id,
        "api": {
            "tenant": api.tenant,
            "base_url": api.base_url,
            "ledger": ledger.path().display().to_string(),
            "ledger_run": run_id,
            "requests": tally.requests.load(Ordering::Relaxed),
            "stopped": stopper.reason().map(|r| r.to_string()),
        },
        "started_at": started,
        "finished_at": report::now(),
        "counts": counts,
    });
    let table = table::Table {
        source_file: &name,
        sheet: sheet.sheet.name(),
        columns: &sheet.headers,
        results: &results,
        summary: counts
            .iter()
            .map(|(k, v)| (k.replace('_', " "), *v))
            .collect(),
        facts: report::fact_lines(&facts),
    };
    let report_sha = table::write(&report_path, &table, &lines)?;
    facts["report"] = json!({
        "path": report_path.display().to_string(),
        "format": report::Format::from_path(&report_path)?,
        "sha256": report_sha,
    });
    let facts_path = report::facts_path(&report_path);
    report::write_atomic(&facts_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &facts).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })?;
    ledger
        .end_run(
            run_id,
            &json!(counts),
            &report_path,
            stopper.reason().map(|r| r.to_string()),
        )
        .map_err(|e| Error::Usage(e.to_string()))?;

    let done = counts["accepted"] + counts["skipped"] == counts["rows"];
    let code = match stopper.reason() {
        Some(why) => {
            eprintln!("dcms-bulk: stopped: {why}; re-run the same command to resume");
            stop_code(&why)
        }
        None if done => exit::OK,
        None => exit::ROWS_NOT_DONE,
    };
    if !console.quiet {
        eprintln!(
            "{name}: {} rows: {} accepted, {} skipped (done before), {} rejected, {} failed, {} invalid; report: {}",
            counts["rows"],
            counts["accepted"],
            counts["skipped"],
            counts["rejected"],
            counts["failed"],
            counts["invalid"],
            report_path.display()
        );
    }
    if args.json {
        let text = serde_json::to_string_pretty(&json!({
            "input": name,
            "command": command_name(kind),
            "tenant": api.tenant,
            "counts": counts,
            "report": report_path.display().to_string(),
            "run_facts": facts_path.display().to_string(),
            "exit_code": code,
        }))
        .map_err(|e| Error::Usage(e.to_string()))?
            + "\n";
        print_stdout(&text).map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(code)
}

/// A report line: the row's cells, then its status and the API's answer.
fn line<T>(
    sheet: &OpSheet,
    kind: Kind,
    row: &sheet::OpRow,
    check: &RowCheck<T>,
    sent: Option<&Sent>,
    results: &[&str],
) -> table::Line {
    let mut cells = row.cells.clone();
    cells.resize(sheet.headers.len(), String::new());
    cells.truncate(sheet.headers.len());
    let mut out: Vec<String> = vec![String::new(); results.len()];
    let mut errors: Vec<String> = check
        .problems
        .iter()
        .map(|p| match p.col {
            Some(c) => format!(
                "{} {}: {}",
                sheet.sheet.cell_ref(c, row.number),
                p.field,
                p.message
            ),
            None => format!("{}: {}", p.field, p.message),
        })
        .collect();
    match sent {
        None => out[0] = "INVALID".into(),
        Some(s) => {
            out[0] = s.status.as_str().into();
            out[1] = s.error_code.clone().unwrap_or_default();
            let source = match s.status {
                SendStatus::Rejected | SendStatus::Failed => "api",
                _ => "ledger",
            };
            errors.extend(s.messages.iter().map(|m| format!("{source}: {m}")));
            out[3] = s.http_status.map(|h| h.to_string()).unwrap_or_default();
            out[4] = s.attempts.to_string();
            out[5] = s.submitted_at.clone().unwrap_or_default();
            out[6] = s.latency_ms.map(|l| l.to_string()).unwrap_or_default();
            if kind == Kind::Upgrade {
                for (i, col) in ["new_kit_no", "card_number", "card_status"]
                    .iter()
                    .enumerate()
                {
                    out[7 + i] = s.result.get(*col).cloned().unwrap_or_default();
                }
            }
        }
    }
    out[2] = errors.join("; ");
    table::Line {
        number: row.number,
        cells,
        results: out,
    }
}

fn report_path(args: &OpArgs) -> PathBuf {
    if let Some(p) = &args.report {
        return p.clone();
    }
    let ext = match args.report_format {
        ReportFormat::Csv => "csv",
        ReportFormat::Xlsx => "xlsx",
        ReportFormat::Jsonl => "jsonl",
    };
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sheet".into());
    args.file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(format!("{stem}.report.{ext}"))
}
