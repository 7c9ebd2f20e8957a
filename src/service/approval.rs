//! Four eyes for files (`submit`, `watch`): under a profile that requires
//! approval, a sheet is not sent until a checker approved that very
//! version. The first run files it for approval (on the desk's Approvals
//! page, or `dcms-bulk approve`); a run after the approval sends it, once.

use std::path::Path;
use std::sync::Mutex;

use crate::access::{Access, Actor, ApprovalState, Ask};
use crate::error::Result;
use crate::job::Job;

/// What stands between a file and the API under four eyes.
pub struct Gate {
    access: Mutex<Access>,
    /// Who files the sheets (the command line's user).
    maker: Actor,
    /// Where the orders go (`... as tenant ...`).
    destination: String,
}

/// Whether a file may be sent now.
pub enum Gated {
    /// Approved, and taken for sending (once): the approval, for the run
    /// facts.
    Send(serde_json::Value),
    /// Not now, and why (filed, waiting, rejected).
    Held(String),
}

impl Gate {
    pub fn new(access: Access, maker: Actor, destination: String) -> Gate {
        Gate {
            access: Mutex::new(access),
            maker,
            destination,
        }
    }

    /// Whether `job` (the file at `path`, as it is now) may be sent: an
    /// approval of this version in force is taken; else the file is filed
    /// for approval (or found waiting, or rejected).
    pub fn check(&self, job: &Job, path: &Path) -> Result<Gated> {
        let (version, orders) = job.fingerprints(job.checked().sheet.sha256())?;
        let where_ = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let subject = format!("file {}", where_.display());
        let access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let latest = access.approval_of(&subject)?;
        let same = latest
            .as_ref()
            .is_some_and(|a| a.sheet_sha256 == version && a.orders_fp == orders);
        match latest {
            Some(a) if same && a.in_force() => {
                let a = access.take_for_sending(a.id, &version, &orders, &self.maker)?;
                Ok(Gated::Send(serde_json::json!({
                    "id": a.id, "maker": a.maker, "checker": a.checker, "sha256": a.sheet_sha256,
                })))
            }
            // Sent before (a run cut off, run again): it goes on; the
            // ledger sends nothing twice.
            Some(a) if same && a.state == ApprovalState::Sent => {
                Ok(Gated::Send(serde_json::json!({
                    "id": a.id, "maker": a.maker, "checker": a.checker, "sha256": a.sheet_sha256,
                })))
            }
            Some(a) if same && a.state == ApprovalState::Pending => Ok(Gated::Held(format!(
                "waiting for approval #{} (asked {}): a checker approves it on the desk's Approvals page or with `dcms-bulk approve {}`; the next run then sends it",
                a.id, a.asked_at, a.id
            ))),
            Some(a) if same && a.state == ApprovalState::Rejected => Ok(Gated::Held(format!(
                "approval #{} was rejected by {}: {}; fix the sheet and run it again",
                a.id,
                a.checker.as_deref().unwrap_or("a checker"),
                a.reason.as_deref().unwrap_or("")
            ))),
            _ => {
                let expired = latest
                    .as_ref()
                    .filter(|a| same && a.state == ApprovalState::Approved && a.expired())
                    .map(|a| {
                        format!(
                            "approval #{} expired at {}; ",
                            a.id,
                            a.expires_at.as_deref().unwrap_or("?")
                        )
                    });
                let c = job.checked().grouping.counts;
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let ask = Ask {
                    subject,
                    destination: self.destination.clone(),
                    sheet: name,
                    sheet_sha256: version,
                    orders_fp: orders,
                    orders: c.orders_ready,
                    rows: c.rows,
                    summary: format!(
                        "{} rows: {} valid, {} invalid, {} held, {} with warnings; {} orders to send, {} held back; the file {}",
                        c.rows,
                        c.valid,
                        c.invalid,
                        c.held,
                        c.warnings,
                        c.orders_ready,
                        c.orders_held,
                        where_.display()
                    ),
                    editors: Vec::new(),
                };
                let id = access.ask(&ask, &self.maker)?;
                Ok(Gated::Held(format!(
                    "{}filed for approval #{id}: a checker (not {}) approves it on the desk's Approvals page or with `dcms-bulk approve {id}`; the next run then sends it",
                    expired.unwrap_or_default(),
                    self.maker.name
                )))
            }
        }
    }
}
