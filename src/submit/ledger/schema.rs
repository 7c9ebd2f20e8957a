//! The ledger's tables, how a database is opened (WAL, `synchronous =
//! FULL`, columns added since the first release), and the chain of runs:
//! each ended run's record hashed with the one before it.

use std::path::Path;

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::LedgerError;

pub(super) const SCHEMA: &str = "
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
pub(super) const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("attempts", "request_id", "TEXT"),
    ("attempts", "answer_request_id", "TEXT"),
    ("attempts", "http_status", "INTEGER"),
    ("runs", "report_sha256", "TEXT"),
    ("runs", "line_columns", "TEXT"),
    ("runs", "prev_hash", "TEXT"),
    ("runs", "hash", "TEXT"),
];

/// The hash of a run's record, chained to the previous ended run's.
pub(super) fn run_hash(prev: &str, fields: &[&str], rows_digest: &str) -> String {
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
pub(super) fn rows_digest(conn: &Connection, run: i64) -> rusqlite::Result<String> {
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
pub(super) const HASHED: &str =
    "id, command, input, input_sha256, batch_id, started_at, finished_at,
     COALESCE(counts, ''), COALESCE(report_sha256, ''), COALESCE(line_columns, '')";

pub(super) fn hashed_fields(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<String>> {
    let mut out = vec![r.get::<_, i64>(0)?.to_string()];
    for i in 1..10 {
        out.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
    }
    Ok(out)
}

pub(super) fn connect(path: &Path) -> Result<Connection, LedgerError> {
    crate::files::open_sqlite(path).map_err(|source| LedgerError::Sql {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    crate::files::create_private_dir(dir)
}
