//! The audit trail: every action, who did it, when, from where, on what,
//! and why. Append-only (triggers refuse an update or a delete) and
//! chained: a record's hash covers its fields and the previous record's
//! hash, so an edit or a removal made around the triggers breaks the
//! chain from there on.

use crate::db::{DbError, Engine, params};
use sha2::{Digest, Sha256};

use super::{Access, Actor, Result};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    what TEXT NOT NULL,
    why TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// The same on PostgreSQL: append-only by a trigger function.
pub(super) const POSTGRES: &str = "
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    what TEXT NOT NULL,
    why TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
";

/// The hash before the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record of the trail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub seq: i64,
    pub at: String,
    pub who: String,
    /// Where from: an address, or `command line`.
    pub origin: String,
    pub action: String,
    /// What it was done to (a sheet's name and hash, counts, a user...).
    pub what: serde_json::Value,
    pub why: String,
    pub prev: String,
    pub hash: String,
}

/// A record written: its number and hash.
#[derive(Debug, Clone)]
pub struct Written {
    pub seq: i64,
    pub hash: String,
}

/// Where the chain does not hold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrailProblem {
    pub seq: i64,
    pub problem: String,
}

/// The hash of record `seq`: its fields (at, who, origin, action, what,
/// why) and the one before's hash (`prev`, last).
fn hash_of(seq: i64, fields: [&str; 7]) -> String {
    let fields = serde_json::json!([seq, fields]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

impl Access {
    /// Appends a record to the trail.
    pub fn record(
        &self,
        by: &Actor,
        action: &str,
        what: serde_json::Value,
        why: &str,
    ) -> Result<()> {
        self.append(by, action, what, why).map(|_| ())
    }

    /// Appends a record, in one transaction with the read of the last
    /// hash (two writers cannot chain to the same record).
    pub fn append(
        &self,
        by: &Actor,
        action: &str,
        what: serde_json::Value,
        why: &str,
    ) -> Result<Written> {
        let at = crate::clock::now();
        let what = what.to_string();
        self.conn
            .transaction(|tx| {
                // Desks on several hosts append in turn.
                if tx.engine() == Engine::Postgres {
                    tx.query_one(
                        "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(4, 0)) l",
                        params![],
                    )?;
                }
                let last = tx.query_opt(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                    params![],
                )?;
                let (seq, prev) = match last {
                    Some(r) => (r.get::<i64>(0)? + 1, r.get::<String>(1)?),
                    None => (1, GENESIS.to_owned()),
                };
                let hash = hash_of(seq, [&at, &by.name, &by.origin, action, &what, why, &prev]);
                tx.execute(
                    "INSERT INTO audit (seq, at, who, origin, action, what, why, prev, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        seq, &at, &by.name, &by.origin, action, &what, why, prev, &hash
                    ],
                )?;
                Ok::<_, DbError>(Written { seq, hash })
            })
            .map_err(|e| self.sql(e))
    }

    /// The trail, oldest first (at most `limit`, the newest ones, if
    /// given).
    pub fn records(&self, limit: Option<u64>) -> Result<Vec<Record>> {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.conn
            .query(
                "SELECT seq, at, who, origin, action, what, why, prev, hash FROM audit
                 WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM audit) - ?1 ORDER BY seq",
                params![limit],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| {
                        let what: String = r.get(5)?;
                        Ok(Record {
                            seq: r.get(0)?,
                            at: r.get(1)?,
                            who: r.get(2)?,
                            origin: r.get(3)?,
                            action: r.get(4)?,
                            what: serde_json::from_str(&what)
                                .unwrap_or(serde_json::Value::String(what)),
                            why: r.get(6)?,
                            prev: r.get(7)?,
                            hash: r.get(8)?,
                        })
                    })
                    .collect()
            })
            .map_err(|e| self.sql(e))
    }

    /// Walks the whole chain: each record's hash, its link to the one
    /// before, and the numbering (a record removed leaves a gap). Every
    /// place where it does not hold.
    pub fn check_trail(&self) -> Result<Vec<TrailProblem>> {
        let rows = self
            .conn
            .query(
                "SELECT seq, at, who, origin, action, what, why, prev, hash FROM audit ORDER BY seq",
                params![],
            )
            .map_err(|e| self.sql(e))?;
        let mut problems = Vec::new();
        let (mut expected_seq, mut expected_prev) = (1i64, GENESIS.to_owned());
        for r in &rows {
            let get = |i| r.get::<String>(i);
            let seq: i64 = r.get(0).map_err(|e| self.sql(e))?;
            let [at, who, origin, action, what, why, prev, hash] =
                [1, 2, 3, 4, 5, 6, 7, 8].map(|i| get(i).unwrap_or_default());
            let mut problem = |p: String| problems.push(TrailProblem { seq, problem: p });
            if seq != expected_seq {
                problem(format!("records {expected_seq} to {} are missing", seq - 1));
            }
            if prev != expected_prev {
                problem("it does not follow the record before it (removed or changed)".into());
            }
            if hash_of(seq, [&at, &who, &origin, &action, &what, &why, &prev]) != hash {
                problem(
                    "its content does not match its hash (changed after it was written)".into(),
                );
            }
            (expected_seq, expected_prev) = (seq + 1, hash);
        }
        Ok(problems)
    }
}
