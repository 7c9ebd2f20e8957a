//! `dcms-bulk ledger`: keeping the ledgers. `migrate` brings every ledger
//! of a folder or a database to the newest version (runs do it on their
//! own when they open one; operators who apply changes by hand run it
//! first); `copy` moves an SQLite ledger's whole history into a shared
//! PostgreSQL database.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Console, print_json, print_stdout};
use crate::db::PgTarget;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::submit::ledger::{self, Store};

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub action: LedgerAction,
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Apply the migrations every ledger lacks: each SQLite ledger of the
    /// journal folder, or each destination's schema in the database
    Migrate {
        /// The ledger database (a PostgreSQL URL) [default: the SQLite
        /// ledgers of --journal-dir]
        #[arg(
            long,
            env = "DCMS_LEDGER_URL",
            hide_env_values = true,
            value_name = "URL"
        )]
        ledger: Option<String>,

        /// The folder of the SQLite ledgers [default:
        /// ~/.local/state/dcms-bulk/journals]
        #[arg(
            long,
            env = "DCMS_JOURNAL_DIR",
            hide_env_values = true,
            value_name = "DIR"
        )]
        journal_dir: Option<PathBuf>,

        /// Print what was done as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Copy an SQLite ledger's whole history (every run with its id and
    /// chain, every order, request, row record and decision) into a
    /// PostgreSQL database, for hosts to share; refused if the database
    /// already holds runs of that API and tenant. Given the journal
    /// folder's access.sqlite, copies the users, approvals, audit trail
    /// and desk sheets instead (refused if the database has users or an
    /// audit trail already)
    Copy {
        /// The SQLite ledger (a ledger-….sqlite file of the journal
        /// folder), or its access.sqlite
        #[arg(long, value_name = "FILE")]
        from: PathBuf,

        /// The database: postgres://USER@HOST:PORT/DATABASE (its password
        /// from DCMS_LEDGER_PASSWORD)
        #[arg(long, value_name = "URL")]
        to: String,

        /// Print what was done as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &LedgerArgs, console: Console) -> Result<Exit> {
    match &args.action {
        LedgerAction::Migrate {
            ledger,
            journal_dir,
            json,
        } => {
            let store = match ledger {
                Some(url) => Store::Server(target(url)?),
                None => Store::Dir(super::profile::access_dir(journal_dir.as_deref())),
            };
            let done = ledger::migrate_all(&store)?;
            if *json {
                print_json(&serde_json::json!({ "ledgers": done }))?;
            } else {
                let mut text = String::new();
                for m in &done {
                    let applied = match m.applied.as_slice() {
                        [] => "up to date".to_string(),
                        v => format!(
                            "applied {}",
                            v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    text += &format!(
                        "{}: tenant {}, {}: version {} ({applied})\n",
                        m.ledger, m.tenant, m.base_url, m.version
                    );
                }
                print_stdout(&text).map_err(Error::Stdout)?;
            }
            if done.is_empty() && !console.quiet {
                tracing::info!(event = "no_ledgers", "dcms-bulk: no ledgers there yet");
            }
            Ok(Exit::Ok)
        }
        LedgerAction::Copy { from, to, json } if is_access(from) => copy_access(from, to, *json),
        LedgerAction::Copy { from, to, json } => {
            let copied = ledger::copy(from, &target(to)?)?;
            if *json {
                print_json(&serde_json::to_value(&copied).unwrap_or_default())?;
            } else {
                let rows: Vec<String> = copied
                    .rows
                    .iter()
                    .map(|(table, n)| format!("{n} {table}"))
                    .collect();
                print_stdout(&format!(
                    "copied {} (tenant {}, {}) to {}: {}; {} ended runs chained\n",
                    copied.from,
                    copied.tenant,
                    copied.base_url,
                    copied.to,
                    rows.join(", "),
                    copied.chained
                ))
                .map_err(Error::Stdout)?;
            }
            Ok(Exit::Ok)
        }
    }
}

/// `ledger copy` of an access database.
fn copy_access(from: &std::path::Path, to: &str, json: bool) -> Result<Exit> {
    let rows = crate::access::copy(from, &target(to)?)?;
    let place = format!("{}#access", target(to)?);
    if json {
        let rows: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(t, n)| (t.clone(), (*n).into())).collect();
        print_json(&serde_json::json!({
            "from": from.display().to_string(), "to": place, "rows": rows,
        }))?;
    } else {
        let rows: Vec<String> = rows.iter().map(|(t, n)| format!("{n} {t}")).collect();
        print_stdout(&format!(
            "copied {} to {place}: {}; the audit trail's chain holds (sessions are not copied: everyone signs in again)\n",
            from.display(),
            rows.join(", ")
        ))
        .map_err(Error::Stdout)?;
    }
    Ok(Exit::Ok)
}

/// Whether `from` is an access database (users, approvals, the audit
/// trail), not a ledger.
fn is_access(from: &std::path::Path) -> bool {
    from.file_name().is_some_and(|n| n == "access.sqlite")
}

/// The database `url` names, its password from `DCMS_LEDGER_PASSWORD`.
fn target(url: &str) -> Result<PgTarget> {
    PgTarget::parse_with_env(url).map_err(Error::Usage)
}
