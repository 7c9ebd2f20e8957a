//! `dcms-bulk status REPORT`: ask the API where every order an earlier
//! `submit` created now stands, and write the report again with an
//! `order_status` column (and, in JSON Lines, each product's status).
//! The API defaults to the one the run facts beside the report name.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::api::{ApiArgs, SendArgs, runtime};
use super::{Console, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::report;
use crate::report::read::{self, Loaded};
use crate::submit::status::{self, Known, PollOpts};
use crate::submit::{Stop, Stopper};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A report written by `submit` (.csv, .jsonl or .xlsx); the API is the
    /// one its run facts (REPORT.run.json) name, unless given
    #[arg(value_parser = super::no_stdin)]
    pub report: PathBuf,

    /// Ask again, with growing pauses, until every order is in a final
    /// status (--final-statuses), or --wait-timeout passes
    #[arg(long)]
    pub wait: bool,

    /// The order statuses that count as final, comma-separated [default:
    /// the profile's final_statuses, else SUCCESS,FAILED,CANCELLED]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub final_statuses: Vec<String>,

    /// With --wait: give up after this long
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,

    /// With --wait: the first pause between rounds (it grows by half each
    /// round, up to a minute)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// Where to write the updated report [default: beside REPORT, as
    /// NAME.status.EXT]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// The orders the run created (rows ACCEPTED or SKIPPED), first seen first.
fn created_orders(loaded: &Loaded, path: &Path) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut add = |status: &str, id: &str| {
        if matches!(status, "ACCEPTED" | "SKIPPED") && !id.is_empty() && seen.insert(id.to_owned())
        {
            ids.push(id.to_owned());
        }
    };
    match loaded {
        Loaded::Table { headers, rows } => {
            let col = |n: &str| headers.iter().position(|h| h == n);
            let (Some(s), Some(o)) = (col("status"), col("order_id")) else {
                return Err(Error::input(
                    path,
                    "not a submit report: no status and order_id columns",
                ));
            };
            for r in rows {
                add(
                    r.get(s).map_or("", String::as_str),
                    r.get(o).map_or("", String::as_str),
                );
            }
        }
        Loaded::Lines(lines) => {
            for l in lines {
                let get = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("");
                add(get("status"), get("order_id"));
            }
        }
    }
    Ok(ids)
}

pub fn run(args: &StatusArgs, console: Console) -> Result<Exit> {
    let started = report::now();
    let out = out_path(args)?;
    report::prepare(&out)?;
    let api = api_of_run(args, console)?;
    let loaded = read::load(&args.report)?;
    let ids = created_orders(&loaded, &args.report)?;
    if !console.quiet {
        tracing::info!(
            event = "asking",
            "{}: {} created; asking {} (tenant {})",
            args.report.display(),
            super::count(ids.len() as u64, "order"),
            api.base_url,
            api.tenant
        );
    }
    let Answers {
        known,
        stopped,
        finals,
    } = poll(args, &api, &ids, console)?;

    let text_of = |id: &str| known.get(id).map(Known::text).unwrap_or_default();
    let out_sha = write_updated(&out, loaded, &known, &text_of)?;
    let polled = Polled::count(&ids, &known, &finals, &text_of);
    let timed_out = args.wait && polled.still_open() > 0 && stopped.is_none();
    if timed_out && !console.quiet {
        tracing::warn!(
            event = "gave_up",
            "status: gave up waiting after {}: {} of {} orders still open ({})",
            humantime::format_duration(args.wait_timeout),
            polled.still_open(),
            ids.len(),
            by_status(&polled.open)
        );
    }
    let code = polled.exit(stopped.as_ref(), timed_out);
    let unknown_why = say_unknown(&known, stopped.as_ref(), code, console);
    let summary = json!({
        "tool": "dcms-bulk",
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("BUILD_COMMIT"),
        "command": "status",
        "report": args.report.display().to_string(),
        "api": {"tenant": api.tenant, "base_url": api.base_url},
        "started_at": started,
        "finished_at": report::now(),
        "orders": ids.len(),
        "by_status": polled.by_status,
        "waited": args.wait,
        "final_statuses": finals,
        "timed_out": timed_out,
        "unknown_because": unknown_why,
        "still_open": polled.open,
        "output": {"path": out.display().to_string(), "sha256": out_sha},
        "exit_code": code,
    });
    finish(args, &out, &summary, &polled, ids.len(), console)?;
    Ok(code)
}

/// Why orders are UNKNOWN, said in the log with what is safe to do: the
/// run's stop, else the last lookup's words.
fn say_unknown(
    known: &BTreeMap<String, Known>,
    stopped: Option<&Stop>,
    code: Exit,
    console: Console,
) -> Option<String> {
    let unknown_why = stopped.map(ToString::to_string).or_else(|| {
        known.values().rev().find_map(|k| match k {
            Known::Unknown(why) => Some(why.clone()),
            _ => None,
        })
    });
    if let Some(why) = &unknown_why
        && !console.quiet
    {
        let advice = match stopped {
            Some(stop) => stop.advice(),
            None => {
                "wait until the API answers again, then ask again; `dcms-bulk doctor` checks the connection and the profile"
            }
        };
        super::log::at_level!(
            super::log::level_of(code),
            event = "unknown",
            code = code.code(),
            "status: {}: {why}; {advice}",
            match stopped {
                Some(_) => "stopped".to_string(),
                None => "some orders are UNKNOWN, the last because".to_string(),
            }
        );
    }
    unknown_why
}

/// `3 SUCCESS, 1 IN_PROGRESS`.
fn by_status(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    parts.join(", ")
}

/// What the API said of the orders.
struct Answers {
    known: BTreeMap<String, Known>,
    /// Why polling stopped early, if it did.
    stopped: Option<Stop>,
    /// The statuses that counted as final.
    finals: Vec<String>,
}

/// Asks the API for every order's status (until final, with `--wait`).
fn poll(
    args: &StatusArgs,
    api: &super::api::Api,
    ids: &[String],
    console: Console,
) -> Result<Answers> {
    let client = api.client(args.send.timeouts())?;
    let send = args.send.to_opts()?;
    let stopper = Arc::new(Stopper::default());
    let runtime = runtime(&stopper)?;
    let (rate, burst) = api.limits(args.send.rate(), &super::api::show(console));
    let poll = PollOpts {
        finals: final_statuses(args, api),
        concurrency: send.concurrency,
        rate,
        burst,
        retry: send.retry,
        wait: args.wait,
        interval: args.interval,
        timeout: args.wait_timeout,
    };
    let quiet = console.quiet;
    let known = runtime.block_on(status::poll(
        &client,
        ids,
        &poll,
        &stopper,
        &move |finals, total| {
            if !quiet {
                tracing::info!(
                    event = "progress",
                    done = finals,
                    total,
                    "status: {finals} of {total} orders final"
                );
            }
        },
    ));
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(Answers {
        known,
        stopped: stopper.reason(),
        finals: poll.finals,
    })
}

/// Where the updated report goes: `--out`, or `NAME.status.EXT` beside the
/// report, in the report's format.
fn out_path(args: &StatusArgs) -> Result<PathBuf> {
    let out = match &args.out {
        Some(p) => p.clone(),
        None => {
            let part = |p: Option<&std::ffi::OsStr>| {
                p.map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let (stem, ext) = (part(args.report.file_stem()), part(args.report.extension()));
            args.report.with_file_name(format!("{stem}.status.{ext}"))
        }
    };
    crate::report::not_the_input(&out, &args.report)?;
    if report::Target::at(&out)?.format != report::Target::at(&args.report)?.format {
        return Err(Error::Usage("--out must have the report's format".into()));
    }
    Ok(out)
}

/// The API to ask: the flags and profile, else the one the report's run
/// facts name.
fn api_of_run(args: &StatusArgs, console: Console) -> Result<super::api::Api> {
    let facts: Option<Value> = std::fs::read_to_string(report::facts_path(&args.report))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let api_of = |k: &str| {
        facts
            .as_ref()
            .and_then(|f| f["api"][k].as_str())
            .map(str::to_owned)
    };
    let fallback = api_of("base_url").zip(api_of("tenant"));
    args.api.resolve_or(
        &args.send,
        console,
        fallback.as_ref().map(|(u, t)| (u.as_str(), t.as_str())),
    )
}

/// The statuses that end an order's story: the flag, the profile's, or the
/// API guide's.
fn final_statuses(args: &StatusArgs, api: &super::api::Api) -> Vec<String> {
    let upper = |s: &String| s.trim().to_ascii_uppercase();
    if !args.final_statuses.is_empty() {
        args.final_statuses.iter().map(upper).collect()
    } else if let Some(f) = &api.final_statuses {
        f.iter().map(upper).collect()
    } else {
        status::FINAL.iter().map(|s| s.to_string()).collect()
    }
}

/// The orders by what the API said of them.
struct Polled {
    by_status: BTreeMap<String, u64>,
    /// Those not in a final status, by status.
    open: BTreeMap<String, u64>,
    all_success: bool,
    /// An order ended otherwise than a success.
    ended_badly: bool,
    /// No answer for any order.
    unreachable: bool,
}

impl Polled {
    fn count(
        ids: &[String],
        known: &BTreeMap<String, Known>,
        finals: &[String],
        text_of: &dyn Fn(&str) -> String,
    ) -> Polled {
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut open: BTreeMap<String, u64> = BTreeMap::new();
        for id in ids {
            *by_status.entry(text_of(id)).or_default() += 1;
            if !known.get(id).is_some_and(|k| k.is_final(finals)) {
                *open.entry(text_of(id)).or_default() += 1;
            }
        }
        let ended_badly = ids.iter().any(|id| {
            known.get(id).is_some_and(|k| k.is_final(finals)) && text_of(id) != "SUCCESS"
        });
        Polled {
            by_status,
            open,
            ended_badly,
            all_success: ids.iter().all(|id| text_of(id) == "SUCCESS"),
            unreachable: !ids.is_empty() && ids.iter().all(|id| text_of(id) == "UNKNOWN"),
        }
    }

    fn still_open(&self) -> u64 {
        self.open.values().sum()
    }

    /// Every order a success: 0; no answer at all, or the polling stopped
    /// for want of one: 4; interrupted: 130; `--wait` gave up with orders
    /// still open and none ended otherwise than a success: 6; otherwise 1.
    fn exit(&self, stopped: Option<&Stop>, timed_out: bool) -> Exit {
        match stopped {
            Some(Stop::Interrupted) => Exit::Interrupted,
            Some(_) => Exit::ApiUnavailable,
            None if self.unreachable => Exit::ApiUnavailable,
            None if self.all_success => Exit::Ok,
            None if timed_out && !self.ended_badly => Exit::StillOpen,
            None => Exit::RowsNotDone,
        }
    }
}

/// Writes the run facts beside the updated report, and says what came of
/// the orders.
fn finish(
    args: &StatusArgs,
    out: &Path,
    summary: &Value,
    polled: &Polled,
    orders: usize,
    console: Console,
) -> Result<()> {
    let facts_path = report::facts_path(out);
    let mut json = serde_json::to_vec_pretty(summary).map_err(|e| Error::report(&facts_path, e))?;
    json.push(b'\n');
    crate::files::write_atomic(&facts_path, &json).map_err(|e| Error::report(&facts_path, e))?;
    if !console.quiet {
        let counted = match by_status(&polled.by_status) {
            parts if parts.is_empty() => "none".to_string(),
            parts => parts,
        };
        tracing::info!(
            event = "finished",
            "{}: {}: {counted}; report: {}",
            args.report.display(),
            super::count(orders as u64, "order"),
            out.display()
        );
    }
    if args.json {
        print_stdout(&String::from_utf8_lossy(&json)).map_err(Error::Stdout)?;
    }
    Ok(())
}

/// The report again, with `order_status` (and per-product statuses in JSON
/// Lines). Cells are written as read: the original report already
/// neutralised them.
fn write_updated(
    out: &Path,
    loaded: Loaded,
    known: &BTreeMap<String, Known>,
    text_of: &dyn Fn(&str) -> String,
) -> Result<String> {
    match loaded {
        Loaded::Lines(lines) => report::write_objects(
            out,
            lines.into_iter().map(|mut l| {
                let id = l.get("order_id").and_then(Value::as_str).unwrap_or("");
                if let Some(k) = known.get(id) {
                    l.insert("order_status".into(), k.text().into());
                    if let Known::Status { products, .. } = k {
                        l.insert("product_statuses".into(), Value::Array(products.clone()));
                    }
                }
                l
            }),
        ),
        Loaded::Table { mut headers, rows } => {
            let o = headers.iter().position(|h| h == "order_id");
            headers.push("order_status".into());
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|mut r| {
                    let id = o.and_then(|o| r.get(o)).cloned().unwrap_or_default();
                    r.push(text_of(&id));
                    r
                })
                .collect();
            report::write_table(out, &headers, &rows)
        }
    }
}
