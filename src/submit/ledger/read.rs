//! Reading a ledger without holding its lock: the runs, an item's history,
//! what a run recorded, the chain's check (for `runs`, `show`, `verify`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{HASHED, hashed_fields, rows_digest, run_hash};
use super::{Destination, LedgerError, RowRecord};
use crate::submit::outcome::Sent;

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
    /// Never ended, and a later run of this ledger began since: it was
    /// cut off (a crash, a kill, a power cut).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut_off: bool,
    /// The later run of the same sheet (command, input's SHA-256, batch
    /// id) that took up a cut-off run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_by: Option<i64>,
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
                cut_off: false,
                resumed_by: None,
            })
        })
        .map_err(sql)?;
    let mut runs: Vec<RunRecord> = rows.collect::<Result<_, _>>().map_err(sql)?;
    // Only one run holds the ledger at a time: a run not ended when a
    // later one began was cut off.
    for i in 0..runs.len() {
        if runs[i].finished_at.is_some() || i + 1 == runs.len() {
            continue;
        }
        let (earlier, later) = runs.split_at_mut(i + 1);
        let r = &mut earlier[i];
        r.cut_off = true;
        r.resumed_by = later
            .iter()
            .find(|l| {
                l.command == r.command
                    && l.input_sha256 == r.input_sha256
                    && l.batch_id == r.batch_id
            })
            .map(|l| l.id);
    }
    Ok(runs)
}

/// A run of the same sheet (command, input's SHA-256, batch id) that was
/// cut off, the latest of its runs: what a new run of it takes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutOff {
    pub run: i64,
    /// When it last sent (or began, if it sent nothing).
    pub at: String,
    /// Its items answered, and those sent with no answer (looked up
    /// before anything of them is sent again).
    pub done: u64,
    pub in_doubt: u64,
}

/// See [`Ledger::cut_off`].
pub(super) fn cut_off_of(
    conn: &Connection,
    command: &str,
    input_sha256: &str,
    batch_id: &str,
) -> rusqlite::Result<Option<CutOff>> {
    let latest: Option<(i64, String, Option<String>)> = conn
        .query_row(
            "SELECT id, started_at, finished_at FROM runs
             WHERE command = ?1 AND input_sha256 = ?2 AND batch_id = ?3
             ORDER BY id DESC LIMIT 1",
            params![command, input_sha256, batch_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((run, started, None)) = latest else {
        return Ok(None);
    };
    let at: Option<String> = conn.query_row(
        "SELECT MAX(at) FROM attempts WHERE run = ?1",
        params![run],
        |r| r.get(0),
    )?;
    let count = |state: &str| -> rusqlite::Result<u64> {
        conn.query_row(
            "SELECT COUNT(*) FROM items WHERE last_run = ?1 AND state = ?2",
            params![run, state],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
    };
    Ok(Some(CutOff {
        run,
        at: at.unwrap_or(started),
        done: count("answered")?,
        in_doubt: count("sent")?,
    }))
}

/// The ledger of `dest` in `dir`, opened read only and without its lock;
/// `None` if there is none.
pub(super) fn open_read(
    dir: &Path,
    dest: &Destination,
) -> Result<Option<(Connection, PathBuf)>, LedgerError> {
    let path = dir.join(dest.file_name());
    if !path.exists() {
        return Ok(None);
    }
    open_read_at(path).map(Some)
}

/// See [`Ledger::known_item`].
pub(super) fn known_item_of(conn: &Connection, kind: &str) -> rusqlite::Result<Option<String>> {
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

pub(super) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |r| r.get(0),
    )
}

pub(super) fn open_read_at(path: PathBuf) -> Result<(Connection, PathBuf), LedgerError> {
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
pub(super) fn outcome_was(earlier: &Option<Sent>) -> Option<String> {
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
pub(super) fn decisions_of(
    conn: &Connection,
    kind: &str,
    key: &str,
) -> rusqlite::Result<Vec<DecisionRecord>> {
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
pub(super) fn sql_at(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + Copy + '_ {
    move |source| LedgerError::Sql {
        path: path.to_owned(),
        source,
    }
}
