//! The ledger: one SQLite database per API destination (tenant and base
//! URL) holding every run and every item ever planned there: orders,
//! cancels and upgrades, each with the fingerprint of what it asked for, the
//! run that first sent it, its state (planned → sent → answered), its
//! attempts and its answer. Before anything is sent the engine asks it what
//! already happened to each item, whatever file or batch the item came
//! from.
//!
//! Durability: WAL mode with `synchronous = FULL`; a state change is
//! committed before the engine moves on (a request goes out only after its
//! `sent` row is on disk). Writes go through one thread that commits in
//! groups: every record that arrives while a commit runs goes into the
//! next one, so many workers share each fsync.
//!
//! One run at a time per ledger: a lock file beside the database is held
//! for the whole run. A second run waits for it (saying so) or, with
//! `wait: false`, stops with a message naming the lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::outcome::{SendStatus, Sent};

/// Where items go: the tenant and the base URL, normalised (scheme and host
/// in lower case, the default port written out, no trailing slash), so
/// `HTTPS://Api.Bank:443/v1/` and `https://api.bank/v1` share one ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub tenant: String,
    pub base_url: String,
}

impl Destination {
    pub fn new(tenant: &str, base_url: &str) -> Destination {
        Destination {
            tenant: tenant.to_owned(),
            base_url: normalise_url(base_url),
        }
    }

    /// The database's file name: a hash of tenant and normalised URL.
    pub fn file_name(&self) -> String {
        let digest = Sha256::new()
            .chain_update(self.tenant.as_bytes())
            .chain_update([0])
            .chain_update(self.base_url.as_bytes())
            .finalize();
        format!("ledger-{}.sqlite", &hex::encode(digest)[..24])
    }
}

/// `scheme://host:port/path` with scheme and host lower-cased, the port
/// explicit and no trailing slash. Text that is not a URL is kept as given
/// (trailing slashes trimmed).
pub fn normalise_url(text: &str) -> String {
    let Ok(url) = url::Url::parse(text.trim()) else {
        return text.trim().trim_end_matches('/').to_owned();
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "{}://{host}{port}{}",
        url.scheme(),
        url.path().trim_end_matches('/')
    )
}

pub use crate::error::LedgerError;

/// One state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The item will be sent (or looked up, then sent): what it asks for.
    Planned {
        kind: &'static str,
        key: String,
        fingerprint: String,
        summary: String,
        run: i64,
        at: String,
    },
    /// A request for the item is about to go out.
    Sent {
        kind: &'static str,
        key: String,
        attempt: u32,
        run: i64,
        at: String,
    },
    /// What an attempt's request got: the request id sent (and the one
    /// the API answered with), the HTTP status (`None`: no answer).
    /// Committed with the item's next record.
    Attempted {
        kind: &'static str,
        key: String,
        attempt: u32,
        request_id: Option<String>,
        answer_request_id: Option<String>,
        http_status: Option<u16>,
    },
    /// The item's outcome in this run. `uncertain`: a request may have
    /// been processed without our knowing (the next run looks it up).
    Answered {
        kind: &'static str,
        key: String,
        sent: Sent,
        uncertain: bool,
        run: i64,
        at: String,
    },
    /// What the absence controls answered, and what that proved.
    Controls {
        kind: &'static str,
        answers: String,
        verdict: String,
        run: i64,
        at: String,
    },
}

/// What the ledger knows of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Past {
    pub fingerprint: String,
    pub summary: String,
    /// Create (or cancel, upgrade) requests sent, over all runs.
    pub attempts: u32,
    /// The last answer, if any.
    pub outcome: Option<Sent>,
    /// A request may have been processed without our knowing.
    pub uncertain: bool,
    /// The run that first sent it: id, input, when.
    pub first_run: Option<RunRef>,
    /// The run whose answer (or lookup) accepted it.
    pub accepted_run: Option<RunRef>,
    pub accepted_at: Option<String>,
    pub sent_at: Option<String>,
}

/// A run, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub id: i64,
    pub input: String,
    pub started_at: String,
}

impl std::fmt::Display for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} of {} (started {})",
            self.id, self.input, self.started_at
        )
    }
}

/// A run as it starts.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    pub command: &'a str,
    pub input: &'a str,
    pub input_sha256: &'a str,
    pub batch_id: &'a str,
    pub options: &'a serde_json::Value,
    pub started_at: &'a str,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS destination (
    tenant TEXT NOT NULL,
    base_url TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    input TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    options TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT,
    report TEXT,
    stopped TEXT
);
CREATE TABLE IF NOT EXISTS items (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    summary TEXT NOT NULL,
    first_run INTEGER REFERENCES runs(id),
    last_run INTEGER REFERENCES runs(id),
    state TEXT NOT NULL CHECK (state IN ('planned', 'sent', 'answered')),
    attempts INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    planned_at TEXT NOT NULL,
    sent_at TEXT,
    answered_at TEXT,
    accepted_run INTEGER REFERENCES runs(id),
    accepted_at TEXT,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    run INTEGER NOT NULL REFERENCES runs(id),
    at TEXT NOT NULL,
    request_id TEXT,
    answer_request_id TEXT,
    http_status INTEGER,
    PRIMARY KEY (kind, key, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_rows (
    run INTEGER NOT NULL REFERENCES runs(id),
    row INTEGER NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('sent', 'not sent')),
    reason TEXT NOT NULL,
    by_user TEXT NOT NULL,
    host TEXT NOT NULL,
    at TEXT NOT NULL,
    was TEXT
);
CREATE TABLE IF NOT EXISTS controls (
    run INTEGER NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    answers TEXT NOT NULL,
    verdict TEXT NOT NULL
);
";

/// Columns added to a table after its first release, with their type:
/// added to a ledger that lacks them.
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("attempts", "request_id", "TEXT"),
    ("attempts", "answer_request_id", "TEXT"),
    ("attempts", "http_status", "INTEGER"),
    ("runs", "report_sha256", "TEXT"),
    ("runs", "line_columns", "TEXT"),
    ("runs", "prev_hash", "TEXT"),
    ("runs", "hash", "TEXT"),
];

/// One input row's outcome in a run, as its report gives it: the row
/// number, its order id (or item key), its status, and a fingerprint of
/// its product line as the report shows it (empty for a row with no
/// order sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRecord {
    pub row: u64,
    pub key: String,
    pub status: String,
    pub line: String,
}

/// What a run's end records besides its counts: the report's SHA-256,
/// the report columns its rows' product lines are read from, and every
/// row's outcome (made one at a time: a million rows are not held as
/// records).
pub struct RunEnd<'a> {
    pub report_sha256: String,
    pub line_columns: Vec<String>,
    pub rows: Box<dyn Iterator<Item = RowRecord> + 'a>,
}

/// The hash of a run's record, chained to the previous ended run's.
fn run_hash(prev: &str, fields: &[&str], rows_digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    for f in fields {
        h.update([0x1e]);
        h.update(f.as_bytes());
    }
    h.update([0x1e]);
    h.update(rows_digest.as_bytes());
    hex::encode(h.finalize())
}

/// The digest of a run's row records, in row order.
fn rows_digest(conn: &Connection, run: i64) -> rusqlite::Result<String> {
    let mut q = conn.prepare_cached(
        "SELECT row, key, status, line FROM run_rows WHERE run = ?1 ORDER BY row",
    )?;
    let mut rows = q.query(params![run])?;
    let mut h = Sha256::new();
    while let Some(r) = rows.next()? {
        let (row, key, status, line): (i64, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        h.update(format!("{row}\x1f{key}\x1f{status}\x1f{line}\x1e").as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// The fields of an ended run that its hash covers.
const HASHED: &str = "id, command, input, input_sha256, batch_id, started_at, finished_at,
     COALESCE(counts, ''), COALESCE(report_sha256, ''), COALESCE(line_columns, '')";

fn hashed_fields(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<String>> {
    let mut out = vec![r.get::<_, i64>(0)?.to_string()];
    for i in 1..10 {
        out.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
    }
    Ok(out)
}

/// An open ledger; the destination's lock is held until it is dropped.
pub struct Ledger {
    path: PathBuf,
    conn: Connection,
    _lock: File,
}

impl Ledger {
    /// Opens (or creates) the ledger of `dest` in `dir` and takes its lock.
    /// When another run holds it: `waiting` is called once, and the open
    /// waits, if `wait`; otherwise [`LedgerError::Locked`].
    pub fn open(
        dir: &Path,
        dest: &Destination,
        wait: bool,
        waiting: impl FnOnce(&Path),
    ) -> Result<Ledger, LedgerError> {
        let path = dir.join(dest.file_name());
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) if wait => {
                waiting(&lock_path);
                lock.lock().map_err(io)?;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let conn = connect(&path)?;
        let sql = |source| LedgerError::Sql {
            path: path.clone(),
            source,
        };
        conn.execute_batch(SCHEMA).map_err(sql)?;
        for (table, column, kind) in ADDED_COLUMNS {
            let has: bool = conn
                .query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                    params![table, column],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                    .map_err(sql)?;
            }
        }
        let found: Option<(String, String)> = conn
            .query_row("SELECT tenant, base_url FROM destination", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(sql)?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO destination (tenant, base_url) VALUES (?1, ?2)",
                    params![dest.tenant, dest.base_url],
                )
                .map_err(sql)?;
            }
            Some((tenant, base_url)) if tenant == dest.tenant && base_url == dest.base_url => {}
            Some((tenant, base_url)) => {
                return Err(LedgerError::Mismatch {
                    path,
                    found: format!("tenant {tenant}, API {base_url}"),
                });
            }
        }
        Ok(Ledger {
            path,
            conn,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a run's start; returns its id.
    pub fn begin_run(&self, run: &RunStart<'_>) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO runs (command, input, input_sha256, batch_id, options, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run.command,
                    run.input,
                    run.input_sha256,
                    run.batch_id,
                    run.options.to_string(),
                    run.started_at
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a run's end, now: its counts, its report, why it stopped
    /// early (if it did).
    ///
    /// The run's record is chained: its hash covers what it recorded (its
    /// counts, its report's SHA-256, every row's outcome) and the previous
    /// ended run's hash, so a run deleted or edited later shows.
    pub fn end_run(
        &self,
        id: i64,
        counts: &serde_json::Value,
        report: &Path,
        stopped: Option<String>,
        end: RunEnd<'_>,
    ) -> Result<(), LedgerError> {
        let sql = sql_at(&self.path);
        // The ledger's lock is ours: no other process writes meanwhile.
        let tx = self.conn.unchecked_transaction().map_err(sql)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO run_rows (run, row, key, status, line) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql)?;
            for r in end.rows {
                insert
                    .execute(params![id, r.row as i64, r.key, r.status, r.line])
                    .map_err(sql)?;
            }
        }
        let line_columns = serde_json::to_string(&end.line_columns).unwrap_or_default();
        tx.execute(
            "UPDATE runs SET finished_at = ?2, counts = ?3, report = ?4, stopped = ?5,
                report_sha256 = ?6, line_columns = ?7 WHERE id = ?1",
            params![
                id,
                crate::clock::now(),
                counts.to_string(),
                report.display().to_string(),
                stopped,
                end.report_sha256,
                line_columns
            ],
        )
        .map_err(sql)?;
        let prev: String = tx
            .query_row(
                "SELECT COALESCE(hash, '') FROM runs WHERE id < ?1 AND hash IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?
            .unwrap_or_default();
        let fields = tx
            .query_row(
                &format!("SELECT {HASHED} FROM runs WHERE id = ?1"),
                params![id],
                hashed_fields,
            )
            .map_err(sql)?;
        let digest = rows_digest(&tx, id).map_err(sql)?;
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let hash = run_hash(&prev, &refs, &digest);
        tx.execute(
            "UPDATE runs SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
            params![id, prev, hash],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(())
    }

    /// Records where run `id`'s report is now (moved to a done or failed
    /// folder after the run).
    pub fn report_moved(&self, id: i64, report: &Path) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE runs SET report = ?2 WHERE id = ?1",
                params![id, report.display().to_string()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// An item of `kind` the API is known to hold: one whose request was
    /// answered with success (not one found by a lookup or decided by a
    /// person), the latest; `None` when there is none yet.
    pub fn known_item(&self, kind: &str) -> Result<Option<String>, LedgerError> {
        known_item_of(&self.conn, kind).map_err(|e| self.sql(e))
    }

    /// Records a person's decision on an item whose outcome is unknown:
    /// `sent` makes it ACCEPTED_BY_DECISION (done, never sent again);
    /// otherwise it is FAILED `DECIDED_NOT_SENT`, which the next run sends.
    /// `Ok(Err(why))` when the item is unknown or not in doubt (nothing
    /// recorded); `Ok(Ok(what))` says what was recorded.
    pub fn resolve(
        &mut self,
        kind: &str,
        key: &str,
        sent: bool,
        who: &Who<'_>,
    ) -> Result<Result<String, String>, LedgerError> {
        let path = self.path.clone();
        let sql = sql_at(&path);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let found: Option<(String, bool, u32, Option<String>)> = tx
            .query_row(
                "SELECT state, uncertain, attempts, outcome FROM items WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((state, uncertain, attempts, outcome)) = found else {
            return Ok(Err(format!("the ledger has no {kind} {key}")));
        };
        let earlier: Option<Sent> = outcome
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok());
        let in_doubt = state == "sent" || uncertain;
        if !in_doubt {
            let what = earlier.as_ref().map_or_else(
                || "never sent".to_string(),
                |s| {
                    let code = s
                        .error_code
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default();
                    format!("{}{code}", s.status.as_str())
                },
            );
            return Ok(Err(format!(
                "{kind} {key} is {what}: its outcome is known, there is nothing to decide"
            )));
        }
        let (decision, outcome) = if sent {
            (
                "sent",
                Sent {
                    status: SendStatus::Decided,
                    error_code: None,
                    messages: vec![format!(
                        "decided sent by {} on {} at {}: {}; not sent again",
                        who.user, who.host, who.at, who.reason
                    )],
                    attempts,
                    ..earlier.clone().unwrap_or_default()
                },
            )
        } else {
            (
                "not sent",
                Sent {
                    status: SendStatus::Failed,
                    error_code: Some("DECIDED_NOT_SENT".into()),
                    messages: vec![format!(
                        "decided not sent by {} on {} at {}: {}; the next run sends it",
                        who.user, who.host, who.at, who.reason
                    )],
                    attempts,
                    ..earlier.clone().unwrap_or_default()
                },
            )
        };
        let text = serde_json::to_string(&outcome)
            .map_err(|e| sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        tx.execute(
            "INSERT INTO decisions (kind, key, decision, reason, by_user, host, at, was)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                kind,
                key,
                decision,
                who.reason,
                who.user,
                who.host,
                who.at,
                outcome_was(&earlier)
            ],
        )
        .map_err(sql)?;
        tx.execute(
            "UPDATE items SET state = 'answered', uncertain = 0, outcome = ?3, answered_at = ?4
             WHERE kind = ?1 AND key = ?2",
            params![kind, key, text, who.at],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Ok(if sent {
            format!("{kind} {key}: decided sent; reported ACCEPTED_BY_DECISION, never sent again")
        } else {
            format!("{kind} {key}: decided not sent; the next run sends it")
        }))
    }

    /// What the ledger knows of each of `keys` of `kind` (keys it has never
    /// seen are left out).
    pub fn past<'k>(
        &self,
        kind: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<HashMap<String, Past>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT i.fingerprint, i.summary, i.attempts, i.outcome, i.uncertain,
                        f.id, f.input, f.started_at, a.id, a.input, a.started_at,
                        i.accepted_at, i.sent_at, i.state
                 FROM items i
                 LEFT JOIN runs f ON f.id = i.first_run
                 LEFT JOIN runs a ON a.id = i.accepted_run
                 WHERE i.kind = ?1 AND i.key = ?2",
            )
            .map_err(|e| self.sql(e))?;
        let mut out = HashMap::new();
        for key in keys {
            let row = stmt
                .query_row(params![kind, key], |r| {
                    let run = |i: usize| -> rusqlite::Result<Option<RunRef>> {
                        Ok(match r.get::<_, Option<i64>>(i)? {
                            Some(id) => Some(RunRef {
                                id,
                                input: r.get(i + 1)?,
                                started_at: r.get(i + 2)?,
                            }),
                            None => None,
                        })
                    };
                    let outcome: Option<String> = r.get(3)?;
                    let state: String = r.get(13)?;
                    Ok(Past {
                        fingerprint: r.get(0)?,
                        summary: r.get(1)?,
                        attempts: r.get(2)?,
                        outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
                        // A request out and no answer recorded: a crash
                        // mid-request. It may have been processed.
                        uncertain: r.get::<_, bool>(4)? || state == "sent",
                        first_run: run(5)?,
                        accepted_run: run(8)?,
                        accepted_at: r.get(11)?,
                        sent_at: r.get(12)?,
                    })
                })
                .optional()
                .map_err(|e| self.sql(e))?;
            if let Some(p) = row {
                out.insert(key.to_owned(), p);
            }
        }
        Ok(out)
    }

    /// Starts the group-commit writer for the engine's records.
    pub fn writer(&self) -> Result<Writer, LedgerError> {
        let conn = connect(&self.path)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dcms-ledger".into())
            .spawn(move || write_behind(conn, rx))
            .map_err(|source| LedgerError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(Writer {
            path: self.path.clone(),
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

/// One run as the ledger recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub batch_id: String,
    pub started_at: String,
    /// `None` while it runs, or if it never ended (a crash).
    pub finished_at: Option<String>,
    pub counts: Option<serde_json::Value>,
    /// Where its report was written.
    pub report: Option<String>,
    pub stopped: Option<String>,
}

/// Every run the ledger of `dest` in `dir` recorded, oldest first; none if
/// there is no ledger. Read only, without its lock: a run may be sending
/// meanwhile.
pub fn runs(dir: &Path, dest: &Destination) -> Result<Vec<RunRecord>, LedgerError> {
    let Some((conn, path)) = open_read(dir, dest)? else {
        return Ok(Vec::new());
    };
    let sql = sql_at(&path);
    let mut q = conn
        .prepare(
            "SELECT id, command, input, input_sha256, batch_id, started_at, finished_at, counts, report, stopped
             FROM runs ORDER BY id",
        )
        .map_err(sql)?;
    let rows = q
        .query_map([], |r| {
            let counts: Option<String> = r.get(7)?;
            Ok(RunRecord {
                id: r.get(0)?,
                command: r.get(1)?,
                input: r.get(2)?,
                input_sha256: r.get(3)?,
                batch_id: r.get(4)?,
                started_at: r.get(5)?,
                finished_at: r.get(6)?,
                counts: counts.and_then(|c| serde_json::from_str(&c).ok()),
                report: r.get(8)?,
                stopped: r.get(9)?,
            })
        })
        .map_err(sql)?;
    rows.collect::<Result<_, _>>().map_err(sql)
}

/// The ledger of `dest` in `dir`, opened read only and without its lock;
/// `None` if there is none.
fn open_read(dir: &Path, dest: &Destination) -> Result<Option<(Connection, PathBuf)>, LedgerError> {
    let path = dir.join(dest.file_name());
    if !path.exists() {
        return Ok(None);
    }
    open_read_at(path).map(Some)
}

/// See [`Ledger::known_item`].
fn known_item_of(conn: &Connection, kind: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT i.key FROM items i
         JOIN attempts a ON a.kind = i.kind AND a.key = i.key
         WHERE i.kind = ?1 AND i.accepted_run IS NOT NULL
           AND a.http_status BETWEEN 200 AND 299
         ORDER BY i.accepted_at DESC LIMIT 1",
        params![kind],
        |r| r.get(0),
    )
    .optional()
}

/// [`Ledger::known_item`] of the ledger of `dest` in `dir`, read only,
/// without its lock; `None` without a ledger.
pub fn known_item_in(
    dir: &Path,
    dest: &Destination,
    kind: &str,
) -> Result<Option<String>, LedgerError> {
    let Some((conn, path)) = open_read(dir, dest)? else {
        return Ok(None);
    };
    known_item_of(&conn, kind).map_err(sql_at(&path))
}

/// Which of `keys` of `kind` the ledger at `path` records as accepted (a
/// success answer, or a lookup that found it). Read only.
pub fn accepted_among<'k>(
    path: &Path,
    kind: &str,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<std::collections::HashSet<String>, LedgerError> {
    if !path.is_file() {
        return Err(LedgerError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no ledger there"),
        });
    }
    let (conn, path) = open_read_at(path.to_owned())?;
    let sql = sql_at(&path);
    let mut q = conn
        .prepare("SELECT 1 FROM items WHERE kind = ?1 AND key = ?2 AND accepted_run IS NOT NULL")
        .map_err(sql)?;
    let mut accepted = std::collections::HashSet::new();
    for key in keys {
        if q.exists(params![kind, key]).map_err(sql)? {
            accepted.insert(key.to_owned());
        }
    }
    Ok(accepted)
}

/// The decisions recorded on each of `keys` of `kind` in the ledger at
/// `path`, by key.
pub fn decisions_among<'k>(
    path: &Path,
    kind: &str,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<HashMap<String, Vec<DecisionRecord>>, LedgerError> {
    let (conn, path) = open_read_at(path.to_owned())?;
    let sql = sql_at(&path);
    let mut out = HashMap::new();
    for key in keys {
        let found = decisions_of(&conn, kind, key).map_err(sql)?;
        if !found.is_empty() {
            out.insert(key.to_owned(), found);
        }
    }
    Ok(out)
}

/// What the ledger recorded of one run, for `verify`.
#[derive(Debug)]
pub struct RunLedger {
    pub report_sha256: Option<String>,
    pub counts: Option<serde_json::Value>,
    pub line_columns: Vec<String>,
    pub rows: std::collections::BTreeMap<u64, RowRecord>,
    /// The run ended with a chained record (a ledger older than chaining
    /// has none).
    pub chained: bool,
}

/// What the ledger at `path` recorded of run `id`; `None` when it has no
/// such run.
pub fn run_ledger(path: &Path, id: i64) -> Result<Option<RunLedger>, LedgerError> {
    let (conn, path) = open_read_at(path.to_owned())?;
    let sql = sql_at(&path);
    let has_rows = table_exists(&conn, "run_rows").map_err(sql)?;
    if !has_rows {
        return Ok(None);
    }
    let found = conn
        .query_row(
            "SELECT report_sha256, counts, line_columns, hash FROM runs WHERE id = ?1",
            params![id],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()
        .map_err(sql)?;
    let Some((report_sha256, counts, line_columns, hash)) = found else {
        return Ok(None);
    };
    let mut q = conn
        .prepare("SELECT row, key, status, line FROM run_rows WHERE run = ?1")
        .map_err(sql)?;
    let rows = q
        .query_map(params![id], |r| {
            Ok(RowRecord {
                row: r.get::<_, i64>(0)? as u64,
                key: r.get(1)?,
                status: r.get(2)?,
                line: r.get(3)?,
            })
        })
        .map_err(sql)?
        .map(|r| r.map(|r| (r.row, r)))
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    Ok(Some(RunLedger {
        report_sha256,
        counts: counts.and_then(|c| serde_json::from_str(&c).ok()),
        line_columns: line_columns
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default(),
        rows,
        chained: hash.is_some(),
    }))
}

/// Walks the chain of ended runs in the ledger at `path`: each run's hash
/// recomputed from what it holds and the previous one's. Returns how many
/// runs are chained and what does not hold (a run edited, deleted or
/// inserted), at most ten.
pub fn check_chain(path: &Path) -> Result<(u64, Vec<String>), LedgerError> {
    let (conn, path) = open_read_at(path.to_owned())?;
    let sql = sql_at(&path);
    if !table_exists(&conn, "run_rows").map_err(sql)? {
        return Ok((0, Vec::new()));
    }
    let mut q = conn
        .prepare(&format!(
            "SELECT {HASHED}, COALESCE(prev_hash, ''), hash FROM runs WHERE hash IS NOT NULL ORDER BY id"
        ))
        .map_err(sql)?;
    let runs: Vec<(Vec<String>, String, String)> = q
        .query_map([], |r| Ok((hashed_fields(r)?, r.get(10)?, r.get(11)?)))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    let mut broken = Vec::new();
    let mut prev = String::new();
    for (fields, recorded_prev, hash) in &runs {
        let id = &fields[0];
        if *recorded_prev != prev {
            broken.push(format!(
                "run {id} follows a run the ledger no longer holds as it was (a run before it was deleted or changed)"
            ));
        }
        let digest = rows_digest(&conn, fields[0].parse().unwrap_or(0)).map_err(sql)?;
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        if run_hash(recorded_prev, &refs, &digest) != *hash {
            broken.push(format!("run {id}'s record was changed after it ended"));
        }
        prev = hash.clone();
        if broken.len() >= 10 {
            break;
        }
    }
    Ok((runs.len() as u64, broken))
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |r| r.get(0),
    )
}

fn open_read_at(path: PathBuf) -> Result<(Connection, PathBuf), LedgerError> {
    let sql = sql_at(&path);
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&path, flags).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sql)?;
    Ok((conn, path))
}

/// Everything the ledger holds of one item (an order by its id, a cancel,
/// an upgrade): its state, its last answer, and every request sent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemHistory {
    pub kind: String,
    pub key: String,
    /// What was sent, in short (an order's products).
    pub summary: String,
    pub state: String,
    pub attempts: u32,
    pub first_run: Option<i64>,
    pub accepted_run: Option<i64>,
    pub accepted_at: Option<String>,
    /// The last answer as recorded (status, code, messages, request id).
    pub outcome: Option<serde_json::Value>,
    pub requests: Vec<RequestRecord>,
    /// People's decisions on it, first first.
    pub decisions: Vec<DecisionRecord>,
}

/// Who decided an item's outcome, where, when and why.
#[derive(Debug, Clone)]
pub struct Who<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub at: &'a str,
    pub reason: &'a str,
}

/// A person's decision on an item, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionRecord {
    pub decision: String,
    pub reason: String,
    pub by: String,
    pub host: String,
    pub at: String,
    /// The outcome before the decision (`FAILED OUTCOME_UNKNOWN`).
    pub was: Option<String>,
}

/// An earlier outcome in short: `FAILED OUTCOME_UNKNOWN`.
fn outcome_was(earlier: &Option<Sent>) -> Option<String> {
    earlier.as_ref().map(|s| {
        let code = s
            .error_code
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        format!("{}{code}", s.status.as_str())
    })
}

/// One request sent for an item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRecord {
    pub attempt: u32,
    pub run: i64,
    pub at: String,
    pub request_id: Option<String>,
    pub answer_request_id: Option<String>,
    /// `None`: no answer (or none recorded: cut off mid-request).
    pub http_status: Option<u16>,
}

/// What the ledger of `dest` in `dir` holds of item `key` of `kind`.
pub fn history(
    dir: &Path,
    dest: &Destination,
    kind: &str,
    key: &str,
) -> Result<Option<ItemHistory>, LedgerError> {
    let Some((conn, path)) = open_read(dir, dest)? else {
        return Ok(None);
    };
    let sql = sql_at(&path);
    let item = conn
        .query_row(
            "SELECT summary, state, attempts, first_run, accepted_run, accepted_at, outcome
             FROM items WHERE kind = ?1 AND key = ?2",
            params![kind, key],
            |r| {
                let outcome: Option<String> = r.get(6)?;
                Ok(ItemHistory {
                    kind: kind.to_owned(),
                    key: key.to_owned(),
                    summary: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    first_run: r.get(3)?,
                    accepted_run: r.get(4)?,
                    accepted_at: r.get(5)?,
                    outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
                    requests: Vec::new(),
                    decisions: Vec::new(),
                })
            },
        )
        .optional()
        .map_err(sql)?;
    let Some(mut item) = item else {
        return Ok(None);
    };
    let mut q = conn
        .prepare(
            "SELECT attempt, run, at, request_id, answer_request_id, http_status
             FROM attempts WHERE kind = ?1 AND key = ?2 ORDER BY attempt",
        )
        .map_err(sql)?;
    let requests = q
        .query_map(params![kind, key], |r| {
            Ok(RequestRecord {
                attempt: r.get(0)?,
                run: r.get(1)?,
                at: r.get(2)?,
                request_id: r.get(3)?,
                answer_request_id: r.get(4)?,
                http_status: r.get(5)?,
            })
        })
        .map_err(sql)?;
    item.requests = requests.collect::<Result<_, _>>().map_err(sql)?;
    item.decisions = decisions_of(&conn, kind, key).map_err(sql)?;
    Ok(Some(item))
}

/// The decisions recorded on an item (none in a ledger older than them).
fn decisions_of(conn: &Connection, kind: &str, key: &str) -> rusqlite::Result<Vec<DecisionRecord>> {
    if !table_exists(conn, "decisions")? {
        return Ok(Vec::new());
    }
    let mut q = conn.prepare(
        "SELECT decision, reason, by_user, host, at, was FROM decisions
         WHERE kind = ?1 AND key = ?2 ORDER BY rowid",
    )?;
    let rows = q.query_map(params![kind, key], |r| {
        Ok(DecisionRecord {
            decision: r.get(0)?,
            reason: r.get(1)?,
            by: r.get(2)?,
            host: r.get(3)?,
            at: r.get(4)?,
            was: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The error of an SQL statement on the ledger at `path`.
fn sql_at(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + Copy + '_ {
    move |source| LedgerError::Sql {
        path: path.to_owned(),
        source,
    }
}

fn connect(path: &Path) -> Result<Connection, LedgerError> {
    let sql = |source| LedgerError::Sql {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sql)?;
    // WAL, and every commit synced: a crash or power loss never forgets a
    // request that went out.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql)?;
    Ok(conn)
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Hands records to the writer thread and waits until they are committed.
pub struct Writer {
    path: PathBuf,
    tx: Option<mpsc::Sender<(Vec<Record>, Ack)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Commits `records` (with whatever else is waiting) and returns when
    /// they are on disk.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), LedgerError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        let stopped = || LedgerError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("the ledger writer has stopped"),
        };
        let sent = self.tx.as_ref().map(|tx| tx.send((records, ack)).is_ok());
        if sent != Some(true) {
            return Err(stopped());
        }
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(LedgerError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(message),
            }),
            Err(_) => Err(stopped()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: apply what has arrived in one transaction, commit
/// once, acknowledge all.
fn write_behind(mut conn: Connection, rx: mpsc::Receiver<(Vec<Record>, Ack)>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = apply(&mut conn, jobs.iter().flat_map(|(r, _)| r)).map_err(|e| e.to_string());
        for (_, ack) in jobs {
            let _ = ack.send(result.clone());
        }
    }
}

fn apply<'r>(
    conn: &mut Connection,
    records: impl Iterator<Item = &'r Record>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for record in records {
        match record {
            Record::Planned {
                kind,
                key,
                fingerprint,
                summary,
                run,
                at,
            } => {
                // A known item keeps its history; only an item that no
                // request ever reached (never sent, or refused for good)
                // may take new content.
                tx.prepare_cached(
                    "INSERT INTO items (kind, key, fingerprint, summary, first_run, last_run, state, planned_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'planned', ?6)
                     ON CONFLICT (kind, key) DO UPDATE SET
                        last_run = excluded.last_run,
                        outcome = CASE WHEN fingerprint = excluded.fingerprint THEN outcome ELSE NULL END,
                        fingerprint = excluded.fingerprint,
                        summary = excluded.summary",
                )?
                .execute(params![kind, key, fingerprint, summary, run, at])?;
            }
            Record::Sent {
                kind,
                key,
                attempt,
                run,
                at,
            } => {
                tx.prepare_cached(
                    "UPDATE items SET state = 'sent', attempts = ?3, sent_at = ?5, last_run = ?4,
                        first_run = COALESCE(first_run, ?4)
                     WHERE kind = ?1 AND key = ?2",
                )?
                .execute(params![kind, key, attempt, run, at])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO attempts (kind, key, attempt, run, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![kind, key, attempt, run, at])?;
            }
            Record::Attempted {
                kind,
                key,
                attempt,
                request_id,
                answer_request_id,
                http_status,
            } => {
                tx.prepare_cached(
                    "UPDATE attempts SET request_id = ?4, answer_request_id = ?5, http_status = ?6
                     WHERE kind = ?1 AND key = ?2 AND attempt = ?3",
                )?
                .execute(params![
                    kind,
                    key,
                    attempt,
                    request_id,
                    answer_request_id,
                    http_status
                ])?;
            }
            Record::Answered {
                kind,
                key,
                sent,
                uncertain,
                run,
                at,
            } => {
                let accepted = matches!(sent.status, SendStatus::Accepted | SendStatus::Skipped);
                let outcome = serde_json::to_string(sent)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                tx.prepare_cached(
                    "UPDATE items SET state = 'answered', outcome = ?3, uncertain = ?4, answered_at = ?6,
                        attempts = MAX(attempts, ?7),
                        accepted_run = CASE WHEN ?5 THEN COALESCE(accepted_run, ?8) ELSE accepted_run END,
                        accepted_at = CASE WHEN ?5 THEN COALESCE(accepted_at, ?6) ELSE accepted_at END
                     WHERE kind = ?1 AND key = ?2",
                )?
                .execute(params![
                    kind,
                    key,
                    outcome,
                    uncertain,
                    accepted,
                    at,
                    sent.attempts,
                    run
                ])?;
            }
            Record::Controls {
                kind,
                answers,
                verdict,
                run,
                at,
            } => {
                tx.prepare_cached(
                    "INSERT INTO controls (run, kind, at, answers, verdict) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![run, kind, at, answers, verdict])?;
            }
        }
    }
    tx.commit()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_normalised() {
        let a = Destination::new("ACME", "HTTPS://Api.Bank.example:443/dcms/v1/");
        let b = Destination::new("ACME", "https://api.bank.example/dcms/v1");
        assert_eq!(a, b);
        assert_eq!(a.base_url, "https://api.bank.example:443/dcms/v1");
        assert_eq!(a.file_name(), b.file_name());
        assert_eq!(
            normalise_url("http://127.0.0.1/v1"),
            "http://127.0.0.1:80/v1"
        );
        assert_ne!(
            Destination::new("OTHER", "https://api.bank.example/dcms/v1").file_name(),
            a.file_name()
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn states_survive_a_reopen_and_the_first_acceptance_is_kept() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
        let options = serde_json::json!({});
        let start = RunStart {
            command: "submit",
            input: "a.csv",
            input_sha256: "ab",
            batch_id: "",
            options: &options,
            started_at: "t0",
        };
        let planned = |key: &str, fp: &str, run| Record::Planned {
            kind: "order",
            key: key.into(),
            fingerprint: fp.into(),
            summary: format!("{fp} lines"),
            run,
            at: "t1".into(),
        };
        let sent = |key: &str, run| Record::Sent {
            kind: "order",
            key: key.into(),
            attempt: 1,
            run,
            at: "t2".into(),
        };
        let answered = |key: &str, status, run, at: &str| Record::Answered {
            kind: "order",
            key: key.into(),
            sent: Sent {
                status,
                attempts: 1,
                ..Sent::default()
            },
            uncertain: false,
            run,
            at: at.into(),
        };
        {
            let ledger = Ledger::open(dir.path(), &dest, false, |_| {}).expect("opens");
            let run = ledger.begin_run(&start).expect("a run");
            // A second open waits or is refused while the first holds it.
            assert!(matches!(
                Ledger::open(dir.path(), &dest, false, |_| {}),
                Err(LedgerError::Locked { .. })
            ));
            let w = ledger.writer().expect("a writer");
            runtime().block_on(async {
                w.record(vec![planned("A", "f1", run), planned("B", "f2", run)])
                    .await
                    .expect("planned");
                w.record(vec![sent("A", run), sent("B", run)])
                    .await
                    .expect("sent");
                w.record(vec![answered("A", SendStatus::Accepted, run, "t3")])
                    .await
                    .expect("answered");
            });
        }
        let ledger = Ledger::open(dir.path(), &dest, false, |_| {}).expect("reopens");
        let run2 = ledger.begin_run(&start).expect("a second run");
        let past = ledger.past("order", ["A", "B", "C"]).expect("past");
        assert_eq!(past.len(), 2, "C was never planned");
        let a = &past["A"];
        assert_eq!(a.fingerprint, "f1");
        assert_eq!(
            a.outcome.as_ref().map(|o| o.status),
            Some(SendStatus::Accepted)
        );
        assert!(!a.uncertain);
        assert_eq!(a.accepted_at.as_deref(), Some("t3"));
        assert_eq!(a.accepted_run.as_ref().map(|r| r.id), Some(1));
        // B went out and no answer came back: it may exist.
        assert!(past["B"].uncertain);
        assert_eq!(past["B"].attempts, 1);
        // A later acceptance does not move the first one.
        let w = ledger.writer().expect("a writer");
        runtime().block_on(async {
            w.record(vec![answered("A", SendStatus::Accepted, run2, "t9")])
                .await
                .expect("answered again");
        });
        drop(w);
        let past = ledger.past("order", ["A"]).expect("past");
        assert_eq!(past["A"].accepted_at.as_deref(), Some("t3"));
        assert_eq!(past["A"].accepted_run.as_ref().map(|r| r.id), Some(1));
    }

    #[test]
    fn a_ledger_of_another_destination_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let a = Destination::new("ACME", "http://127.0.0.1:1/v1");
        let b = Destination::new("OTHER", "http://127.0.0.1:1/v1");
        drop(Ledger::open(dir.path(), &a, false, |_| {}).expect("opens"));
        std::fs::rename(
            dir.path().join(a.file_name()),
            dir.path().join(b.file_name()),
        )
        .expect("renamed");
        assert!(matches!(
            Ledger::open(dir.path(), &b, false, |_| {}),
            Err(LedgerError::Mismatch { .. })
        ));
    }
}
