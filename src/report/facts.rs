//! The run-facts record: what an auditor needs to trust a report weeks
//! later — which file (by hash), which tool, which options, when, how many
//! rows ended how, and the report's own hash.

use serde::Serialize;

use super::Format;

#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    pub tool: &'static str,
    pub version: &'static str,
    /// The commit the binary was built from (`dcms-bulk --version`).
    pub commit: &'static str,
    pub command: String,
    /// The machine and the user that ran it.
    pub host: Option<String>,
    pub user: Option<String>,
    pub input: InputFacts,
    /// The `--batch-id` salt of the order ids; `null` when none was given.
    pub batch_id: Option<String>,
    pub options: serde_json::Value,
    pub started_at: String,
    pub finished_at: String,
    pub counts: FactCounts,
    /// Sending runs: where the items went (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiFacts>,
    /// Sending runs: rows (and, for submit, orders) by outcome. The valid
    /// rows split into accepted + rejected + failed + skipped + conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<SentCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportFacts>,
}

/// The API a sending run talked to.
#[derive(Debug, Clone, Serialize)]
pub struct ApiFacts {
    pub tenant: String,
    pub base_url: String,
    /// The config file's profile that named the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The ledger (SQLite) of this API and tenant, its absolute path.
    pub ledger: String,
    /// This run's id in the ledger.
    pub ledger_run: i64,
    /// HTTP requests made in this run (creates and lookups).
    pub requests: u64,
    /// Why the run stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Outcomes of the rows sent and, for orders, of the orders.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SentCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Of the failed, those never sent (the run stopped first).
    pub not_sent: u64,
    pub skipped: u64,
    pub conflict: u64,
    /// Decided sent by a person (`resolve --sent`): ACCEPTED_BY_DECISION.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decided: u64,
    /// Submit runs only.
    #[serde(flatten)]
    pub orders: Option<SentOrders>,
}

/// Orders by outcome (an order's rows share it).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SentOrders {
    pub orders_accepted: u64,
    pub orders_rejected: u64,
    pub orders_failed: u64,
    pub orders_skipped: u64,
    pub orders_conflict: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders_decided: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The user running this process, from the environment.
pub fn user() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
}

/// This machine's name.
pub fn host() -> Option<String> {
    crate::host::name()
}

impl InputFacts {
    /// `path` from the root, if this machine can say.
    pub fn absolute(path: &std::path::Path) -> Option<String> {
        std::path::absolute(path)
            .ok()
            .map(|p| p.display().to_string())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InputFacts {
    /// As given.
    pub path: String,
    /// The same, from the root (a report read weeks later, elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absolute_path: Option<String>,
    pub sha256: String,
    pub bytes: u64,
    pub sheet: String,
    pub header_row: u64,
    /// What the reader detected (encoding, delimiter, sheet).
    pub detected: Vec<String>,
}

/// Rows by status and, for order sheets, orders; `valid + invalid + held
/// == rows`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct FactCounts {
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    pub held: u64,
    /// Rows with a warning, whatever their status.
    pub warnings: u64,
    pub blank_rows: u64,
    /// Order sheets only.
    #[serde(flatten)]
    pub orders: Option<OrderCounts>,
}

/// The orders of an order sheet, ready or held.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct OrderCounts {
    pub orders_ready: u64,
    pub orders_held: u64,
}

/// The record of an input that could not be read as a sheet, written
/// where its run facts would go: no report, but the run is not silent.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableFacts {
    pub tool: &'static str,
    pub version: &'static str,
    /// The commit the binary was built from (`dcms-bulk --version`).
    pub commit: &'static str,
    pub command: String,
    pub input: UnreadableInput,
    pub options: serde_json::Value,
    pub started_at: String,
    pub finished_at: String,
    /// Why it could not be read, and the exit code that says so.
    pub error: String,
    pub exit_code: crate::exit::Exit,
    /// Always `null`: no report was written.
    pub report: Option<ReportFacts>,
    /// The run the ledger recorded for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_run: Option<i64>,
}

/// The input of an [`UnreadableFacts`]: its hash and size when its bytes
/// could be read at all.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableInput {
    pub path: String,
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
}

impl UnreadableFacts {
    pub fn new(
        command: &str,
        input: &std::path::Path,
        options: serde_json::Value,
        started_at: String,
        error: &crate::error::Error,
    ) -> Self {
        // Only a regular file is hashed (a pipe or device is never read).
        let hashed = crate::files::sha256_file(input).ok();
        UnreadableFacts {
            tool: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("BUILD_COMMIT"),
            command: command.to_string(),
            input: UnreadableInput {
                path: input.display().to_string(),
                sha256: hashed.as_ref().map(|(sha, _)| sha.clone()),
                bytes: hashed.map(|(_, n)| n),
            },
            options,
            started_at,
            finished_at: crate::clock::now(),
            error: error.to_string(),
            exit_code: error.exit(),
            report: None,
            ledger_run: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportFacts {
    pub path: String,
    pub format: Format,
    pub sha256: String,
}

impl RunFacts {
    /// The facts of a run on `input`; `finished_at` is now.
    pub fn new(
        command: &str,
        input: InputFacts,
        batch_id: Option<String>,
        options: serde_json::Value,
        started_at: String,
        counts: FactCounts,
    ) -> Self {
        RunFacts {
            tool: "dcms-bulk",
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("BUILD_COMMIT"),
            command: command.to_string(),
            host: host(),
            user: user(),
            input,
            batch_id,
            options,
            finished_at: super::now(),
            started_at,
            counts,
            api: None,
            sent: None,
            report: None,
        }
    }

    /// Whether every row was done: none invalid or held, and none of those
    /// sent rejected, failed or in conflict.
    pub fn all_done(&self) -> bool {
        let c = &self.counts;
        let not_sent = self.sent.map_or(0, |s| s.rejected + s.failed + s.conflict);
        c.invalid + c.held + not_sent == 0
    }

    /// `(what, count)` lines for an XLSX report's Summary sheet.
    pub fn summary(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counts;
        let mut lines = vec![
            ("rows", c.rows),
            ("valid", c.valid),
            ("invalid", c.invalid),
            ("held", c.held),
            ("rows with a warning", c.warnings),
            ("blank rows (not data)", c.blank_rows),
        ];
        if let Some(o) = c.orders {
            lines.extend([
                ("orders ready", o.orders_ready),
                ("orders held", o.orders_held),
            ]);
        }
        if let Some(sent) = &self.sent {
            lines.extend([
                ("rows accepted", sent.accepted),
                ("rows rejected", sent.rejected),
                ("rows failed", sent.failed),
                ("rows skipped", sent.skipped),
                ("rows accepted by a person's decision", sent.decided),
                ("rows conflict", sent.conflict),
            ]);
            if let Some(o) = sent.orders {
                lines.extend([
                    ("orders accepted", o.orders_accepted),
                    ("orders rejected", o.orders_rejected),
                    ("orders failed", o.orders_failed),
                    ("orders skipped", o.orders_skipped),
                    ("orders conflict", o.orders_conflict),
                ]);
            }
        }
        lines
    }

    /// `(key, value)` lines for the XLSX report's run-facts sheet.
    pub fn lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten(
            "",
            &serde_json::to_value(self).unwrap_or_default(),
            &mut out,
        );
        out
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Array(a) => {
            out.push((
                prefix.to_string(),
                a.iter()
                    .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        // Nothing to say (an option not given): no line, not "null".
        serde_json::Value::Null => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
