//! `dcms-bulk runs`: every run the ledger of one API and tenant recorded,
//! oldest first, with its input (and its SHA-256), its counts and where
//! its report is.

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::{Console, print_json, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::submit::ledger::{Destination, RunRecord, Store};

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Print the runs as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RunsArgs, console: Console) -> Result<Exit> {
    let (store, dest) = ledger_of(&args.api, &args.send, console, "runs")?;
    let runs = crate::service::runs(&store, &dest)?;
    if args.json {
        print_json(&serde_json::json!({
            "tenant": dest.tenant,
            "base_url": dest.base_url,
            "ledger": store.place_of(&dest).display().to_string(),
            "runs": runs,
        }))?;
        return Ok(Exit::Ok);
    }
    let mut text = String::new();
    for r in &runs {
        text.push_str(&line(r));
        text.push('\n');
    }
    if runs.is_empty() && !console.quiet {
        tracing::info!(
            event = "no_runs",
            "dcms-bulk: no runs recorded for {} (tenant {})",
            dest.base_url,
            dest.tenant
        );
    }
    print_stdout(&text).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

/// The ledger `runs` and `show` read: its folder and destination, from
/// the same flags as `submit` (never the built-in sandbox's, which is
/// temporary).
pub(super) fn ledger_of(
    api: &ApiArgs,
    send: &SendArgs,
    console: Console,
    command: &str,
) -> Result<(Store, Destination)> {
    if api.sandbox {
        return Err(Error::Usage(format!(
            "{command} reads the ledger of an API and tenant (--base-url, --tenant, or a profile); \
             the built-in sandbox's ledger is temporary"
        )));
    }
    let api = api.resolve(send, console)?;
    let dest = Destination::new(&api.tenant, &api.base_url);
    Ok((api.store(), dest))
}

/// One run on one line: `#3 2026-12-01T08:00:00.000Z submit orders.csv
/// sha256 1a2b3c4d5e6f: 10 rows, 9 accepted, 1 rejected; report ...`;
/// every count that is not zero, and how it ended (cut off, and which run
/// took it up; stopped; could not be read).
fn line(r: &RunRecord) -> String {
    let counts = r.counts.as_ref();
    if let Some(why) = counts.and_then(|c| c["unreadable"].as_str()) {
        return format!(
            "#{} {} {} {}: could not be read: {}; record {}",
            r.id,
            r.started_at,
            r.command,
            r.input,
            crate::quote::escaped(why),
            r.report.as_deref().unwrap_or("none"),
        );
    }
    let sent = counts.map(|c| &c["sent"]);
    let rows = counts.and_then(|c| c["counts"]["rows"].as_u64());
    let mut parts = Vec::new();
    if let Some(n) = rows {
        parts.push(super::count(n, "row"));
    }
    let of_sent = ["accepted", "skipped", "rejected", "failed", "conflict"]
        .map(|what| (what, sent.and_then(|s| s[what].as_u64())));
    let of_check =
        ["invalid", "held"].map(|what| (what, counts.and_then(|c| c["counts"][what].as_u64())));
    for (what, n) in of_sent.into_iter().chain(of_check) {
        if let Some(n) = n.filter(|n| *n > 0) {
            parts.push(format!("{n} {what}"));
        }
    }
    let end = match (&r.finished_at, &r.stopped, r.cut_off, r.resumed_by) {
        (None, _, true, Some(by)) => format!("; cut off; resumed by run {by}"),
        (None, _, true, None) => {
            "; cut off; not resumed yet (run the same sheet again)".to_string()
        }
        (None, _, false, _) => "; not ended (running, or cut off)".to_string(),
        (Some(_), Some(why), _, _) => format!("; stopped: {why}"),
        (Some(_), None, _, _) => String::new(),
    };
    let on = r.host.as_deref().map_or(String::new(), |h| {
        format!(" on {}", crate::quote::escaped(h))
    });
    format!(
        "#{} {}{on} {} {} sha256 {}: {}{end}; report {}",
        r.id,
        r.started_at,
        r.command,
        r.input,
        &r.input_sha256[..r.input_sha256.len().min(12)],
        if parts.is_empty() {
            "no counts".to_string()
        } else {
            parts.join(", ")
        },
        r.report.as_deref().unwrap_or("none"),
    )
}
