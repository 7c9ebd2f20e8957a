//! Reading a ledger without holding its lock: the runs, an item's history,
//! what a run recorded, the chain's check (for `runs`, `show`, `verify`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::db::{Db, DbError, PgTarget, Row, params};

use super::schema::{HASHED, hashed_fields, rows_digest, run_hash};
use super::{Destination, LedgerError, RowRecord, Store};
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
    /// The host it ran on (none for runs recorded before hosts were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Never ended, and a later run of this ledger began since: it was
    /// cut off (a crash, a kill, a power cut).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut_off: bool,
    /// The later run of the same sheet (command, input's SHA-256, batch
    /// id) that took up a cut-off run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_by: Option<i64>,
}

/// Every run the ledger of `dest` in `store` recorded, oldest first; none
/// if there is no ledger. Read only, without its lock: a run may be
/// sending meanwhile.
pub fn runs(store: &Store, dest: &Destination) -> Result<Vec<RunRecord>, LedgerError> {
    let Some((conn, path)) = open_read(store, dest)? else {
        return Ok(Vec::new());
    };
    let sql = sql_at(&path);
    // A ledger read as it is may be older than hosts (read only, it is
    // not brought up to date).
    let host = if conn.has_column("runs", "host").map_err(sql)? {
        "host"
    } else {
        "NULL"
    };
    let mut runs: Vec<RunRecord> = conn
        .query(
            &format!(
                "SELECT id, command, input, input_sha256, batch_id, started_at, finished_at, counts, report, stopped, {host}
                 FROM runs ORDER BY id"
            ),
            params![],
        )
        .and_then(|rows| rows.iter().map(run_record).collect())
        .map_err(sql)?;
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

fn run_record(r: &Row) -> Result<RunRecord, DbError> {
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
        host: r.get(10)?,
        cut_off: false,
        resumed_by: None,
    })
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
    conn: &Db,
    command: &str,
    input_sha256: &str,
    batch_id: &str,
) -> Result<Option<CutOff>, DbError> {
    let latest = conn.query_opt(
        "SELECT id, started_at, finished_at FROM runs
         WHERE command = ?1 AND input_sha256 = ?2 AND batch_id = ?3
         ORDER BY id DESC LIMIT 1",
        params![command, input_sha256, batch_id],
    )?;
    let Some(latest) = latest else {
        return Ok(None);
    };
    let (run, started, finished): (i64, String, Option<String>) =
        (latest.get(0)?, latest.get(1)?, latest.get(2)?);
    if finished.is_some() {
        return Ok(None);
    }
    let at: Option<String> = conn
        .query_one("SELECT MAX(at) FROM attempts WHERE run = ?1", params![run])?
        .get(0)?;
    let count = |state: &str| -> Result<u64, DbError> {
        conn.query_one(
            "SELECT COUNT(*) FROM items WHERE last_run = ?1 AND state = ?2",
            params![run, state],
        )?
        .get(0)
    };
    Ok(Some(CutOff {
        run,
        at: at.unwrap_or(started),
        done: count("answered")?,
        in_doubt: count("sent")?,
    }))
}

/// The ledger of `dest` in `store`, opened without its lock (read only,
/// where it is a file); `None` if there is none.
pub(super) fn open_read(
    store: &Store,
    dest: &Destination,
) -> Result<Option<(Db, PathBuf)>, LedgerError> {
    let path = store.place_of(dest);
    match store {
        Store::Dir(_) if !path.exists() => Ok(None),
        Store::Dir(_) => open_read_at(path).map(Some),
        Store::Server(_) => {
            let conn = store.connect(dest, false)?;
            let there = conn.schema_exists().map_err(sql_at(&path))?;
            Ok(there.then_some((conn, path)))
        }
    }
}

/// See [`Ledger::known_item`].
pub(super) fn known_item_of(conn: &Db, kind: &str) -> Result<Option<String>, DbError> {
    conn.query_opt(
        "SELECT i.key FROM items i
         JOIN attempts a ON a.kind = i.kind AND a.key = i.key
         WHERE i.kind = ?1 AND i.accepted_run IS NOT NULL
           AND a.http_status BETWEEN 200 AND 299
         ORDER BY i.accepted_at DESC LIMIT 1",
        params![kind],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// [`Ledger::known_item`] of the ledger of `dest` in `store`, read only,
/// without its lock; `None` without a ledger.
pub fn known_item_in(
    store: &Store,
    dest: &Destination,
    kind: &str,
) -> Result<Option<String>, LedgerError> {
    let Some((conn, path)) = open_read(store, dest)? else {
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
    if !at_hand(path) {
        return Err(LedgerError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no ledger there"),
        });
    }
    let (conn, path) = open_read_at(path.to_owned())?;
    let sql = sql_at(&path);
    let mut accepted = std::collections::HashSet::new();
    for key in keys {
        let found = conn
            .query_opt(
                "SELECT 1 FROM items WHERE kind = ?1 AND key = ?2 AND accepted_run IS NOT NULL",
                params![kind, key],
            )
            .map_err(sql)?;
        if found.is_some() {
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
    if !conn.has_table("run_rows").map_err(sql)? {
        return Ok(None);
    }
    let found = conn
        .query_opt(
            "SELECT report_sha256, counts, line_columns, hash FROM runs WHERE id = ?1",
            params![id],
        )
        .map_err(sql)?;
    let Some(found) = found else {
        return Ok(None);
    };
    let (report_sha256, counts, line_columns, hash): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (|| Ok((found.get(0)?, found.get(1)?, found.get(2)?, found.get(3)?)))().map_err(sql)?;
    let rows = conn
        .query(
            "SELECT row, key, status, line FROM run_rows WHERE run = ?1",
            params![id],
        )
        .and_then(|rows| {
            rows.iter()
                .map(|r| {
                    let record = RowRecord {
                        row: r.get(0)?,
                        key: r.get(1)?,
                        status: r.get(2)?,
                        line: r.get(3)?,
                    };
                    Ok((record.row, record))
                })
                .collect::<Result<_, DbError>>()
        })
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
    chain_of(&conn, &path)
}

/// [`check_chain`] of the ledger of `dest` in `store`; nothing chained
/// where there is no ledger.
pub fn check_chain_in(
    store: &Store,
    dest: &Destination,
) -> Result<(u64, Vec<String>), LedgerError> {
    match open_read(store, dest)? {
        Some((conn, path)) => chain_of(&conn, &path),
        None => Ok((0, Vec::new())),
    }
}

fn chain_of(conn: &Db, path: &Path) -> Result<(u64, Vec<String>), LedgerError> {
    let sql = sql_at(path);
    if !conn.has_table("run_rows").map_err(sql)? {
        return Ok((0, Vec::new()));
    }
    let runs: Vec<(Vec<String>, String, String)> = conn
        .query(
            &format!(
                "SELECT {HASHED}, COALESCE(prev_hash, ''), hash FROM runs WHERE hash IS NOT NULL ORDER BY id"
            ),
            params![],
        )
        .and_then(|rows| {
            rows.iter()
                .map(|r| Ok((hashed_fields(r)?, r.get(10)?, r.get(11)?)))
                .collect::<Result<_, DbError>>()
        })
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
        let digest = rows_digest(conn, fields[0].parse().unwrap_or(0)).map_err(sql)?;
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

/// The ledger at `path`, as run facts and `verify --ledger` name it: an
/// SQLite file (opened read only), or a database and its schema,
/// `postgres://…#ledger-…` (the password from `DCMS_LEDGER_PASSWORD`).
pub(super) fn open_read_at(path: PathBuf) -> Result<(Db, PathBuf), LedgerError> {
    let text = path.to_string_lossy().into_owned();
    if !PgTarget::is_url(&text) {
        let conn = Db::open_file_read_only(&path).map_err(sql_at(&path))?;
        return Ok((conn, path));
    }
    let refused = |why: String| LedgerError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
    };
    let Some((url, schema)) = text.split_once('#') else {
        return Err(refused(
            "a ledger database is named with its schema: URL#ledger-…".into(),
        ));
    };
    let target = PgTarget::parse_with_env(url).map_err(refused)?;
    let conn = Db::connect(&target, schema, false).map_err(sql_at(&path))?;
    if !conn.schema_exists().map_err(sql_at(&path))? {
        return Err(refused(format!("the database has no ledger {schema}")));
    }
    Ok((conn, path))
}

/// Whether the ledger at `path` can be read here: its file is, or it is
/// in a database (which the reading then reaches, or says why not).
pub fn at_hand(path: &Path) -> bool {
    PgTarget::is_url(&path.to_string_lossy()) || path.is_file()
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

/// What the ledger of `dest` in `store` holds of item `key` of `kind`.
pub fn history(
    store: &Store,
    dest: &Destination,
    kind: &str,
    key: &str,
) -> Result<Option<ItemHistory>, LedgerError> {
    let Some((conn, path)) = open_read(store, dest)? else {
        return Ok(None);
    };
    let sql = sql_at(&path);
    let item = conn
        .query_opt(
            "SELECT summary, state, attempts, first_run, accepted_run, accepted_at, outcome
             FROM items WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )
        .map_err(sql)?;
    let Some(item) = item else {
        return Ok(None);
    };
    let mut item = item_history(&item, kind, key).map_err(sql)?;
    item.requests = conn
        .query(
            "SELECT attempt, run, at, request_id, answer_request_id, http_status
             FROM attempts WHERE kind = ?1 AND key = ?2 ORDER BY attempt",
            params![kind, key],
        )
        .and_then(|rows| {
            rows.iter()
                .map(|r| {
                    Ok(RequestRecord {
                        attempt: r.get(0)?,
                        run: r.get(1)?,
                        at: r.get(2)?,
                        request_id: r.get(3)?,
                        answer_request_id: r.get(4)?,
                        http_status: r.get(5)?,
                    })
                })
                .collect::<Result<_, DbError>>()
        })
        .map_err(sql)?;
    item.decisions = decisions_of(&conn, kind, key).map_err(sql)?;
    Ok(Some(item))
}

fn item_history(r: &Row, kind: &str, key: &str) -> Result<ItemHistory, DbError> {
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
}

/// The decisions recorded on an item (none in a ledger older than them).
pub(super) fn decisions_of(
    conn: &Db,
    kind: &str,
    key: &str,
) -> Result<Vec<DecisionRecord>, DbError> {
    if !conn.has_table("decisions")? {
        return Ok(Vec::new());
    }
    conn.query(
        "SELECT decision, reason, by_user, host, at, was FROM decisions
         WHERE kind = ?1 AND key = ?2 ORDER BY rowid",
        params![kind, key],
    )?
    .iter()
    .map(|r| {
        Ok(DecisionRecord {
            decision: r.get(0)?,
            reason: r.get(1)?,
            by: r.get(2)?,
            host: r.get(3)?,
            at: r.get(4)?,
            was: r.get(5)?,
        })
    })
    .collect()
}

/// The error of an SQL statement on the ledger at `path`.
pub(super) fn sql_at(path: &Path) -> impl Fn(DbError) -> LedgerError + Copy + '_ {
    move |source| LedgerError::Sql {
        path: path.to_owned(),
        source,
    }
}
