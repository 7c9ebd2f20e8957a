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

mod admin;
mod hosts;
mod read;
mod schema;
mod writer;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::outcome::{SendStatus, Sent};
pub use crate::db::Store;
use crate::db::{Db, DbError, params};
pub use admin::{Copied, Migrated, copy, migrate_all};
pub use hosts::{Claim, LeaseKeeper};
pub use read::{
    CutOff, DecisionRecord, ItemHistory, RequestRecord, RunLedger, RunRecord, Who, accepted_among,
    at_hand, check_chain, check_chain_in, decisions_among, history, known_item_in, run_ledger,
    runs,
};
use read::{known_item_of, outcome_was, sql_at};
use schema::{HASHED, MIGRATIONS, create_private_dir, hashed_fields, rows_digest, run_hash};
pub use writer::Writer;

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

    /// The schema of its ledger in a shared PostgreSQL database: the
    /// file name's stem.
    pub fn schema(&self) -> String {
        self.file_name().trim_end_matches(".sqlite").to_owned()
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

impl Store {
    /// Where the ledger of `dest` is, as messages and run facts name it:
    /// its file, or the server and the destination's schema.
    pub fn place_of(&self, dest: &Destination) -> PathBuf {
        match self {
            Store::Dir(dir) => dir.join(dest.file_name()),
            Store::Server(target) => PathBuf::from(format!("{target}#{}", dest.schema())),
        }
    }

    /// A connection to the ledger of `dest`; made if need be (`make`).
    pub(super) fn connect(&self, dest: &Destination, make: bool) -> Result<Db, LedgerError> {
        let path = self.place_of(dest);
        match self {
            Store::Dir(_) => Db::open_file(&path).map_err(sql_at(&path)),
            Store::Server(target) => {
                Db::connect(target, &dest.schema(), make).map_err(sql_at(&path))
            }
        }
    }
}

/// What keeps a second run of the same destination out: a lock file, or
/// a PostgreSQL session lock (let go when the connection ends, a host's
/// crash included).
enum RunLock {
    File(#[allow(dead_code)] File),
    Session,
}

/// An open ledger; the destination's lock is held until it is dropped.
pub struct Ledger {
    path: PathBuf,
    store: Store,
    dest: Destination,
    conn: Db,
    _lock: RunLock,
    /// The destination's turn is this process's (a shared ledger's
    /// session lock is held).
    turn: std::sync::atomic::AtomicBool,
    /// The host its runs are recorded as made on.
    host: String,
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
        Ledger::open_in(&Store::Dir(dir.to_owned()), dest, wait, waiting)
    }

    /// [`Ledger::open`] in `store`.
    pub fn open_in(
        store: &Store,
        dest: &Destination,
        wait: bool,
        waiting: impl FnOnce(&Path),
    ) -> Result<Ledger, LedgerError> {
        let path = store.place_of(dest);
        let (conn, lock) = match store {
            Store::Dir(dir) => {
                let lock = file_lock(dir, &path, wait, waiting)?;
                (store.connect(dest, true)?, RunLock::File(lock))
            }
            Store::Server(_) => {
                let conn = store.connect(dest, true)?;
                session_lock(&conn, &path, wait, waiting)?;
                (conn, RunLock::Session)
            }
        };
        let sql = sql_at(&path);
        crate::db::migrate(&conn, MIGRATIONS).map_err(sql)?;
        let found = conn
            .query_opt("SELECT tenant, base_url FROM destination", params![])
            .map_err(sql)?
            .map(|r| Ok::<_, DbError>((r.get::<String>(0)?, r.get::<String>(1)?)))
            .transpose()
            .map_err(sql)?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO destination (tenant, base_url) VALUES (?1, ?2)",
                    params![&dest.tenant, &dest.base_url],
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
            store: store.clone(),
            dest: dest.clone(),
            conn,
            _lock: lock,
            turn: std::sync::atomic::AtomicBool::new(true),
            host: crate::host::name().unwrap_or_else(|| "unknown host".into()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the ledger is, as run facts record it: its file's absolute
    /// path, or the server's URL (never a password) and the schema.
    pub fn place(&self) -> String {
        match self.store {
            Store::Dir(_) => std::path::absolute(&self.path)
                .unwrap_or_else(|_| self.path.clone())
                .display()
                .to_string(),
            Store::Server(_) => self.path.display().to_string(),
        }
    }

    fn sql(&self, source: DbError) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The latest run of the same sheet (command, input's SHA-256, batch
    /// id), if it never ended: a new run of the sheet takes it up.
    /// Called before [`Ledger::begin_run`].
    pub fn cut_off(
        &self,
        command: &str,
        input_sha256: &str,
        batch_id: &str,
    ) -> Result<Option<CutOff>, LedgerError> {
        read::cut_off_of(&self.conn, command, input_sha256, batch_id).map_err(|e| self.sql(e))
    }

    /// Names the host its runs are recorded as made on (its host name by
    /// default).
    pub fn set_host(&mut self, host: &str) {
        host.clone_into(&mut self.host);
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Records a run's start; returns its id.
    pub fn begin_run(&self, run: &RunStart<'_>) -> Result<i64, LedgerError> {
        self.conn
            .query_one(
                "INSERT INTO runs (command, input, input_sha256, batch_id, options, started_at, host)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                params![
                    run.command,
                    run.input,
                    run.input_sha256,
                    run.batch_id,
                    run.options.to_string(),
                    run.started_at,
                    &self.host
                ],
            )
            .and_then(|r| r.get(0))
            .map_err(|e| self.sql(e))
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
        self.conn
            .transaction(|tx| {
                let mut rows = end.rows;
                loop {
                    let chunk: Vec<RowRecord> = rows.by_ref().take(ROWS_AT_ONCE).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    insert_rows(tx, id, chunk)?;
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
                )?;
                let prev: String = match tx.query_opt(
                    "SELECT COALESCE(hash, '') FROM runs WHERE id < ?1 AND hash IS NOT NULL
                     ORDER BY id DESC LIMIT 1",
                    params![id],
                )? {
                    Some(r) => r.get(0)?,
                    None => String::new(),
                };
                let fields = hashed_fields(&tx.query_one(
                    &format!("SELECT {HASHED} FROM runs WHERE id = ?1"),
                    params![id],
                )?)?;
                let digest = rows_digest(tx, id)?;
                let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                let hash = run_hash(&prev, &refs, &digest);
                tx.execute(
                    "UPDATE runs SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
                    params![id, prev, hash],
                )?;
                Ok(())
            })
            .map_err(sql)
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
        let sql = sql_at(&self.path);
        self.conn
            .transaction(|tx| {
                let found = tx.query_opt(
                    "SELECT state, uncertain, attempts, outcome FROM items WHERE kind = ?1 AND key = ?2",
                    params![kind, key],
                )?;
                let Some(found) = found else {
                    return Ok(Err(format!("the ledger has no {kind} {key}")));
                };
                let (state, uncertain, attempts, outcome): (String, bool, u32, Option<String>) =
                    (found.get(0)?, found.get(1)?, found.get(2)?, found.get(3)?);
                let earlier: Option<Sent> = outcome
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok());
                if !(state == "sent" || uncertain) {
                    return Ok(Err(format!(
                        "{kind} {key} is {}: its outcome is known, there is nothing to decide",
                        known_outcome(earlier.as_ref())
                    )));
                }
                let (decision, outcome) = decided(sent, who, attempts, earlier.clone());
                let text = serde_json::to_string(&outcome)
                    .map_err(|e| DbError::Refused(e.to_string()))?;
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
                )?;
                tx.execute(
                    "UPDATE items SET state = 'answered', uncertain = 0, outcome = ?3, answered_at = ?4
                     WHERE kind = ?1 AND key = ?2",
                    params![kind, key, text, who.at],
                )?;
                Ok(Ok(if sent {
                    format!(
                        "{kind} {key}: decided sent; reported ACCEPTED_BY_DECISION, never sent again"
                    )
                } else {
                    format!("{kind} {key}: decided not sent; the next run sends it")
                }))
            })
            .map_err(sql)
    }

    /// What the ledger knows of each of `keys` of `kind` (keys it has never
    /// seen are left out).
    pub fn past<'k>(
        &self,
        kind: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<HashMap<String, Past>, LedgerError> {
        let keys: Vec<&str> = keys.into_iter().collect();
        let mut out = HashMap::new();
        // A statement for many keys: each statement is a read of its own
        // (a lock of the file, a server's answer).
        for part in keys.chunks(ROWS_AT_ONCE) {
            let marks: Vec<String> = (0..part.len()).map(|i| format!("?{}", i + 2)).collect();
            let mut params = vec![kind.into()];
            params.extend(part.iter().map(|&k| k.into()));
            let rows = self
                .conn
                .query(
                    &format!(
                        "SELECT i.fingerprint, i.summary, i.attempts, i.outcome, i.uncertain,
                                f.id, f.input, f.started_at, a.id, a.input, a.started_at,
                                i.accepted_at, i.sent_at, i.state, i.key
                         FROM items i
                         LEFT JOIN runs f ON f.id = i.first_run
                         LEFT JOIN runs a ON a.id = i.accepted_run
                         WHERE i.kind = ?1 AND i.key IN ({})",
                        marks.join(", ")
                    ),
                    params,
                )
                .map_err(|e| self.sql(e))?;
            for r in &rows {
                let key: String = r.get(14).map_err(|e| self.sql(e))?;
                out.insert(key, past_of(r).map_err(|e| self.sql(e))?);
            }
        }
        Ok(out)
    }

    /// Starts the group-commit writer for the engine's records.
    pub fn writer(&self) -> Result<Writer, LedgerError> {
        Writer::start(&self.path, self.store.connect(&self.dest, false)?)
    }
}

/// Row records written by one statement at a run's end (a database
/// server answers each statement in turn: fewer, larger ones).
const ROWS_AT_ONCE: usize = 200;

fn insert_rows(tx: &Db, run: i64, rows: Vec<RowRecord>) -> Result<(), DbError> {
    let tuples: Vec<String> = (0..rows.len())
        .map(|i| {
            let at = i * 5;
            format!(
                "(?{}, ?{}, ?{}, ?{}, ?{})",
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5
            )
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len() * 5);
    for r in rows {
        values.extend(params![run, r.row, r.key, r.status, r.line]);
    }
    tx.execute(
        &format!(
            "INSERT INTO run_rows (run, row, key, status, line) VALUES {}
             ON CONFLICT (run, row) DO UPDATE SET
                key = excluded.key, status = excluded.status, line = excluded.line",
            tuples.join(", ")
        ),
        values,
    )?;
    Ok(())
}

/// Takes the lock file beside the ledger at `path`.
fn file_lock(
    dir: &Path,
    path: &Path,
    wait: bool,
    waiting: impl FnOnce(&Path),
) -> Result<File, LedgerError> {
    let io = |source| LedgerError::Io {
        path: path.to_owned(),
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
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) if wait => {
            waiting(&lock_path);
            lock.lock().map_err(io)?;
            Ok(lock)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked { path: lock_path }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Takes the destination's session lock on a PostgreSQL connection.
fn session_lock(
    conn: &Db,
    path: &Path,
    wait: bool,
    waiting: impl FnOnce(&Path),
) -> Result<(), LedgerError> {
    let sql = sql_at(path);
    let took: bool = conn
        .query_one(
            "SELECT pg_try_advisory_lock(2, hashtext(current_schema()))",
            params![],
        )
        .and_then(|r| r.get(0))
        .map_err(sql)?;
    if took {
        return Ok(());
    }
    if !wait {
        return Err(LedgerError::Locked {
            path: path.to_owned(),
        });
    }
    waiting(path);
    conn.query_one(
        "SELECT COUNT(*) FROM (SELECT pg_advisory_lock(2, hashtext(current_schema()))) l",
        params![],
    )
    .map_err(sql)?;
    Ok(())
}

/// What a row of [`Ledger::past`]'s query says of an item.
fn past_of(r: &crate::db::Row) -> Result<Past, DbError> {
    let run = |i: usize| -> Result<Option<RunRef>, DbError> {
        Ok(match r.get::<Option<i64>>(i)? {
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
        // A request out and no answer recorded: a crash mid-request. It
        // may have been processed.
        uncertain: r.get::<bool>(4)? || state == "sent",
        first_run: run(5)?,
        accepted_run: run(8)?,
        accepted_at: r.get(11)?,
        sent_at: r.get(12)?,
    })
}

/// A known outcome in words: `ACCEPTED`, `REJECTED ORD001`, `never sent`.
fn known_outcome(earlier: Option<&Sent>) -> String {
    earlier.map_or_else(
        || "never sent".to_string(),
        |s| {
            let code = s
                .error_code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            format!("{}{code}", s.status.as_str())
        },
    )
}

/// A person's decision on an item in doubt, as the ledger records it and
/// the reports show it.
fn decided(
    sent: bool,
    who: &Who<'_>,
    attempts: u32,
    earlier: Option<Sent>,
) -> (&'static str, Sent) {
    let earlier = earlier.unwrap_or_default();
    if sent {
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
                ..earlier
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
                ..earlier
            },
        )
    }
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
