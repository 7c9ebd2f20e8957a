//! `dcms-bulk verify REPORT`: for an auditor, weeks later. The report is
//! the one its run wrote, the input the one it read (when at hand), every
//! row is in it once, its statuses add up to the run facts, and every
//! ACCEPTED or SKIPPED row's order is one the ledger records as accepted.

use std::path::PathBuf;

use clap::Args;

use super::{Console, print_json, print_stdout};
use crate::error::{Error, Result};
use crate::exit;
use crate::report::audit::{self, Audit};
use crate::submit::ledger;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The report (.csv, .jsonl or .xlsx); its run facts are beside it
    pub report: PathBuf,

    /// The run facts [default: REPORT.run.json]
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// The ledger to check the accepted rows against [default: the one the
    /// run facts name]
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,

    /// Print the findings as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VerifyArgs, console: Console) -> Result<i32> {
    let mut audit = audit::audit(&args.report, args.facts.as_deref())?;
    ledger_check(&mut audit, args.ledger.clone());
    let holds = audit.all_hold();
    if args.json {
        print_json(&serde_json::json!({
            "report": args.report.display().to_string(),
            "holds": holds,
            "findings": audit.findings,
        }))?;
    } else {
        let mut text = String::new();
        for f in &audit.findings {
            let mark = match f.ok {
                Some(true) => "ok  ",
                Some(false) => "FAIL",
                None => "--  ",
            };
            text += &format!("{mark} {}: {}\n", f.check, f.detail);
        }
        print_stdout(&text).map_err(Error::Stdout)?;
    }
    let failed = audit
        .findings
        .iter()
        .filter(|f| f.ok == Some(false))
        .count();
    if !console.quiet || failed > 0 {
        tracing::info!(
            event = "verified",
            file = %args.report.display(),
            discrepancies = failed,
            "{}: {}",
            args.report.display(),
            match failed {
                0 => "every check holds".to_string(),
                1 => "1 discrepancy".to_string(),
                n => format!("{n} discrepancies"),
            }
        );
    }
    Ok(if holds { exit::OK } else { exit::ROWS_NOT_DONE })
}

/// Every ACCEPTED or SKIPPED row's order (or item) recorded as accepted in
/// the ledger, for a run that sent.
fn ledger_check(audit: &mut Audit, ledger: Option<PathBuf>) {
    const CHECK: &str = "accepted in the ledger";
    let kind = match audit.facts["command"].as_str() {
        Some("submit") => "order",
        Some("cancel") => "cancel",
        Some("upgrade") => "upgrade",
        _ => return,
    };
    let Some(path) = ledger.or_else(|| audit.facts["api"]["ledger"].as_str().map(PathBuf::from))
    else {
        return;
    };
    if !path.is_file() {
        let detail = format!("{} is not at hand: not checked", path.display());
        audit.say(CHECK, None, detail);
        return;
    }
    let keys = audit.done.iter().map(|(_, k)| k.as_str());
    match ledger::accepted_among(&path, kind, keys) {
        Ok(accepted) => {
            let missing: Vec<String> = audit
                .done
                .iter()
                .filter(|(_, k)| !accepted.contains(k))
                .map(|(row, k)| format!("row {row} ({k})"))
                .collect();
            let detail = if missing.is_empty() {
                format!(
                    "the {} accepted or skipped rows' {kind}s, each recorded as accepted in {}",
                    audit.done.len(),
                    path.display()
                )
            } else {
                let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
                format!(
                    "{} say their {kind} was accepted, the ledger does not: {}{}",
                    super::count(missing.len() as u64, "row"),
                    shown.join(", "),
                    if missing.len() > 10 { ", ..." } else { "" }
                )
            };
            audit.say(CHECK, Some(missing.is_empty()), detail);
        }
        Err(e) => audit.say(CHECK, Some(false), e.to_string()),
    }
}
