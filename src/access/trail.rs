//! The audit trail: every action, who did it, when, from where, on what,
//! and why. Append-only (triggers refuse an update or a delete) and
//! chained: a record's hash covers its fields and the previous record's
//! hash, so an edit or a removal made around the triggers breaks the
//! chain from there on.

use rusqlite::params;
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
        let sql = |e| self.sql(e);
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(sql)?;
        let last: Option<(i64, String)> = rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))
        .map_err(sql)?;
        let (seq, prev) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        let at = crate::clock::now();
        let what = what.to_string();
        let hash = hash_of(seq, [&at, &by.name, &by.origin, action, &what, why, &prev]);
        tx.execute(
            "INSERT INTO audit (seq, at, who, origin, action, what, why, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![seq, at, by.name, by.origin, action, what, why, prev, hash],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Written { seq, hash })
    }

    /// The trail, oldest first (at most `limit`, the newest ones, if
    /// given).
    pub fn records(&self, limit: Option<u64>) -> Result<Vec<Record>> {
        let sql = |e| self.sql(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, at, who, origin, action, what, why, prev, hash FROM audit
                 WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM audit) - ?1 ORDER BY seq",
            )
            .map_err(sql)?;
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        stmt.query_map([limit], |r| {
            let what: String = r.get(5)?;
            Ok(Record {
                seq: r.get(0)?,
                at: r.get(1)?,
                who: r.get(2)?,
                origin: r.get(3)?,
                action: r.get(4)?,
                what: serde_json::from_str(&what).unwrap_or(serde_json::Value::String(what)),
                why: r.get(6)?,
                prev: r.get(7)?,
                hash: r.get(8)?,
            })
        })
        .and_then(Iterator::collect::<rusqlite::Result<Vec<Record>>>)
        .map_err(sql)
    }

    /// Walks the whole chain: each record's hash, its link to the one
    /// before, and the numbering (a record removed leaves a gap). Every
    /// place where it does not hold.
    pub fn check_trail(&self) -> Result<Vec<TrailProblem>> {
        let sql = |e| self.sql(e);
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, who, origin, action, what, why, prev, hash FROM audit ORDER BY seq")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        let mut problems = Vec::new();
        let (mut expected_seq, mut expected_prev) = (1i64, GENESIS.to_owned());
        while let Some(r) = rows.next().map_err(sql)? {
            let get = |i| r.get::<_, String>(i);
            let seq: i64 = r.get(0).map_err(sql)?;
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
