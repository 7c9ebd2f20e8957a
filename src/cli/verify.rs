//! `dcms-bulk verify REPORT`: for an auditor, weeks later. The report is
//! the one its run wrote, the input the one it read (when at hand), every
//! row is in it once, its statuses add up to the run facts, and every
//! ACCEPTED or SKIPPED row's order is one the ledger records as accepted.

use std::path::PathBuf;

use clap::Args;

use super::{Console, print_json, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The report (.csv, .jsonl or .xlsx); its run facts are beside it
    #[arg(value_parser = super::no_stdin)]
    pub report: PathBuf,

    /// The run facts [default: REPORT.run.json]
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// The ledger to check the accepted rows against: its file, or the
    /// ledger database's URL (its password from DCMS_LEDGER_PASSWORD)
    /// [default: the one the run facts name]
    #[arg(long, value_name = "FILE|URL")]
    pub ledger: Option<PathBuf>,

    /// Print the findings as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VerifyArgs, console: Console) -> Result<Exit> {
    let audit =
        crate::service::verify::verify(&args.report, args.facts.as_deref(), args.ledger.clone())?;
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
    Ok(Exit::rows(holds))
}
