//! `dcms-bulk show ORDER_ID`: what the ledger of one API and tenant holds
//! of one order (or cancel, or upgrade): the run that sent it and the one
//! that accepted it, its rows in that run's report, every request with its
//! time, HTTP status and request id, and the last answer.

use clap::{Args, ValueEnum};

use super::api::{ApiArgs, SendArgs};
use super::{Console, print_json, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::report;
use crate::submit::ledger::{self, ItemHistory};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The order id (as the report's order_id column gives it), or with
    /// --kind the cancelled order's id or the upgraded kit number
    #[arg(value_name = "ORDER_ID")]
    pub id: String,

    /// What the id names
    #[arg(long, value_enum, default_value_t = Kind::Order)]
    pub kind: Kind,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Print it as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Order,
    Cancel,
    Upgrade,
}

impl Kind {
    pub(super) fn ledger_kind(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::Cancel => "cancel",
            Kind::Upgrade => "upgrade",
        }
    }
}

/// Exit 0 when the ledger knows the item, 1 when it does not.
pub fn run(args: &ShowArgs, console: Console) -> Result<Exit> {
    let (store, dest) = super::runs::ledger_of(&args.api, &args.send, console, "show")?;
    let kind = args.kind.ledger_kind();
    let Some(item) = ledger::history(&store, &dest, kind, &args.id)? else {
        tracing::info!(
            event = "unknown_order",
            "dcms-bulk: the ledger of {} (tenant {}) has no {kind} {}",
            dest.base_url,
            dest.tenant,
            args.id
        );
        return Ok(Exit::RowsNotDone);
    };
    let runs = crate::service::runs(&store, &dest)?;
    // The rows are those of the report of the run that accepted it, else
    // of the last run that sent it.
    let run = item
        .accepted_run
        .or(item.requests.last().map(|r| r.run))
        .or(item.first_run);
    let hosts: std::collections::HashMap<i64, String> = runs
        .iter()
        .filter_map(|r| Some((r.id, r.host.clone()?)))
        .collect();
    let report = run
        .and_then(|id| runs.into_iter().find(|r| r.id == id))
        .and_then(|r| r.report.map(std::path::PathBuf::from));
    let rows = report
        .as_deref()
        .and_then(|r| report::read::rows_of(r, &args.id).ok());
    if args.json {
        print_json(&serde_json::json!({
            "tenant": dest.tenant,
            "base_url": dest.base_url,
            "item": item,
            "report": report.map(|p| p.display().to_string()),
            "rows": rows,
        }))?;
        return Ok(Exit::Ok);
    }
    let mut text = describe(&item, &hosts);
    match (&report, &rows) {
        (Some(r), Some(rows)) => text.push_str(&format!(
            "rows {} of {}\n",
            rows.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            r.display()
        )),
        (Some(r), None) => text.push_str(&format!("rows: see {}\n", r.display())),
        (None, _) => {}
    }
    print_stdout(&text).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

/// The item in lines: what it is and where it stands, each request, the
/// last answer.
fn describe(item: &ItemHistory, hosts: &std::collections::HashMap<i64, String>) -> String {
    let o = item.outcome.as_ref();
    let status = o.and_then(|o| o["status"].as_str()).unwrap_or("no answer");
    let mut text = format!(
        "{} {}: {status} ({}), {} request{}\n{}\n",
        item.kind,
        item.key,
        item.state,
        item.attempts,
        if item.attempts == 1 { "" } else { "s" },
        item.summary
    );
    if let Some(run) = item.first_run {
        text.push_str(&format!("first sent by run {run}"));
        if let (Some(run), Some(at)) = (item.accepted_run, &item.accepted_at) {
            text.push_str(&format!("; accepted in run {run} at {at}"));
        }
        text.push('\n');
    }
    for r in &item.requests {
        let answer = r
            .http_status
            .map_or("no answer".to_string(), |s| format!("HTTP {s}"));
        let on = hosts.get(&r.run).map_or(String::new(), |h| {
            format!(" on {}", crate::quote::escaped(h))
        });
        text.push_str(&format!(
            "request {} (run {}{on}) at {}: {answer}, request id {}\n",
            r.attempt,
            r.run,
            r.at,
            r.request_id.as_deref().unwrap_or("none")
        ));
    }
    if let Some(o) = o {
        let code = o["error_code"]
            .as_str()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let messages: Vec<&str> = o["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        text.push_str(&format!("last answer: {status}{code}"));
        if !messages.is_empty() {
            text.push_str(&format!(": {}", messages.join("; ")));
        }
        text.push('\n');
    }
    for d in &item.decisions {
        let was = d
            .was
            .as_deref()
            .map(|w| format!(" (it was {w})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "decided {} by {} on {} at {}{was}: {}\n",
            d.decision, d.by, d.host, d.at, d.reason
        ));
    }
    text
}
