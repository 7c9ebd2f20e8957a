//! The ledger's writer: one thread that commits records in groups (every
//! record that arrives while a commit runs goes into the next one), so
//! many workers share each fsync; a record's sender waits for its commit.

use std::path::PathBuf;

use crate::db::{Db, DbError, params};

use super::{LedgerError, Record};
use crate::stage;
use crate::submit::outcome::{SendStatus, Sent};

pub(super) type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Hands records to the writer thread and waits until they are committed.
pub struct Writer {
    path: PathBuf,
    tx: Option<stage::Sender<(Vec<Record>, Ack)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`, the ledger at `path`.
    pub(super) fn start(path: &std::path::Path, conn: Db) -> Result<Writer, LedgerError> {
        let (tx, rx) = stage::unbounded();
        let thread =
            stage::apart("dcms-ledger", move || write_behind(conn, rx)).map_err(|source| {
                LedgerError::Io {
                    path: path.to_owned(),
                    source,
                }
            })?;
        Ok(Writer {
            path: path.to_owned(),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

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
pub(super) fn write_behind(conn: Db, rx: stage::Receiver<(Vec<Record>, Ack)>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = apply(&conn, jobs.iter().flat_map(|(r, _)| r)).map_err(|e| e.to_string());
        for (_, ack) in jobs {
            let _ = ack.send(result.clone());
        }
    }
}

pub(super) fn apply<'r>(
    conn: &Db,
    records: impl Iterator<Item = &'r Record>,
) -> Result<(), DbError> {
    conn.transaction(|tx| {
        for record in records {
            apply_one(tx, record)?;
        }
        Ok(())
    })
}

/// Applies one record within the transaction `tx`.
fn apply_one(tx: &Db, record: &Record) -> Result<(), DbError> {
    match record {
        Record::Planned {
            kind,
            key,
            fingerprint,
            summary,
            run,
            at,
        } => planned(tx, kind, key, fingerprint, summary, *run, at)?,
        Record::Sent {
            kind,
            key,
            attempt,
            run,
            at,
        } => {
            tx.execute(
                "UPDATE items SET state = 'sent', attempts = ?3, sent_at = ?5, last_run = ?4,
                    first_run = COALESCE(first_run, ?4)
                 WHERE kind = ?1 AND key = ?2",
                params![*kind, key, *attempt, *run, at],
            )?;
            tx.execute(
                "INSERT INTO attempts (kind, key, attempt, run, at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, key, attempt) DO UPDATE SET run = excluded.run,
                    at = excluded.at, request_id = NULL, answer_request_id = NULL,
                    http_status = NULL",
                params![*kind, key, *attempt, *run, at],
            )?;
        }
        Record::Attempted {
            kind,
            key,
            attempt,
            request_id,
            answer_request_id,
            http_status,
        } => {
            tx.execute(
                "UPDATE attempts SET request_id = ?4, answer_request_id = ?5, http_status = ?6
                 WHERE kind = ?1 AND key = ?2 AND attempt = ?3",
                params![
                    *kind,
                    key,
                    *attempt,
                    request_id,
                    answer_request_id,
                    *http_status
                ],
            )?;
        }
        Record::Answered {
            kind,
            key,
            sent,
            uncertain,
            run,
            at,
        } => answered(tx, kind, key, sent, *uncertain, *run, at)?,
        Record::Controls {
            kind,
            answers,
            verdict,
            run,
            at,
        } => {
            tx.execute(
                "INSERT INTO controls (run, kind, at, answers, verdict) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![*run, *kind, at, answers, verdict],
            )?;
        }
    }
    Ok(())
}

/// An item's answer: its outcome, and whether it was accepted (the first
/// acceptance is kept).
fn answered(
    tx: &Db,
    kind: &str,
    key: &str,
    sent: &Sent,
    uncertain: bool,
    run: i64,
    at: &str,
) -> Result<(), DbError> {
    let accepted = matches!(sent.status, SendStatus::Accepted | SendStatus::Skipped);
    let outcome = serde_json::to_string(sent).map_err(|e| DbError::Refused(e.to_string()))?;
    tx.execute(
        "UPDATE items SET state = 'answered', outcome = ?3, uncertain = ?4, answered_at = ?6,
            attempts = CASE WHEN attempts > ?7 THEN attempts ELSE ?7 END,
            accepted_run = CASE WHEN ?5 = 1 THEN COALESCE(accepted_run, ?8) ELSE accepted_run END,
            accepted_at = CASE WHEN ?5 = 1 THEN COALESCE(accepted_at, ?6) ELSE accepted_at END
         WHERE kind = ?1 AND key = ?2",
        params![
            kind,
            key,
            outcome,
            uncertain,
            accepted,
            at,
            sent.attempts,
            run
        ],
    )?;
    Ok(())
}

/// An item planned: a new one, or a known one with its history kept.
fn planned(
    tx: &Db,
    kind: &str,
    key: &str,
    fingerprint: &str,
    summary: &str,
    run: i64,
    at: &str,
) -> Result<(), DbError> {
    // A known item keeps its history; only an item that no
    // request ever reached (never sent, or refused for good)
    // may take new content.
    tx.execute(
        "INSERT INTO items (kind, key, fingerprint, summary, first_run, last_run, state, planned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'planned', ?6)
         ON CONFLICT (kind, key) DO UPDATE SET
            last_run = excluded.last_run,
            outcome = CASE WHEN items.fingerprint = excluded.fingerprint THEN items.outcome ELSE NULL END,
            fingerprint = excluded.fingerprint,
            summary = excluded.summary",
        params![kind, key, fingerprint, summary, run, at],
    )?;
    Ok(())
}
