//! Hosts sharing one ledger database: runs to a destination take turns
//! (the destination's session lock, held for a run and let go between a
//! watch's files), and the files of a shared drop folder are taken one
//! host at a time by a lease in the database, kept alive by a heartbeat
//! and taken over by another host once it runs out (its host died).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::db::{Db, DbError, Engine, params};

use super::read::sql_at;
use super::{Ledger, LedgerError, Store};

/// Who holds a file of a shared drop folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This watch holds it now.
    Ours,
    /// This watch took it over from `host`, whose lease had run out.
    TakenOver(String),
    /// `host` holds it, its lease alive.
    Held(String),
}

impl Ledger {
    /// Whether other hosts may share this ledger (it is in a database).
    pub fn shared(&self) -> bool {
        matches!(self.store, Store::Server(_))
    }

    /// Lets other hosts' runs to this destination go while this process
    /// has no run going (a watch between files). A no-op for a folder's
    /// ledger, which one host alone uses.
    pub fn let_go(&self) -> Result<(), LedgerError> {
        if !self.shared() || !self.turn.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.conn
            .query_one(
                "SELECT pg_advisory_unlock(2, hashtext(current_schema()))",
                params![],
            )
            .map_err(sql_at(&self.path))?;
        Ok(())
    }

    /// Takes this destination's turn back before a run, waiting (and
    /// telling `waiting`) while another host's run holds it.
    pub fn take_turn(&self, waiting: impl FnOnce(&Path)) -> Result<(), LedgerError> {
        if !self.shared() || self.turn.load(Ordering::SeqCst) {
            return Ok(());
        }
        super::session_lock(&self.conn, &self.path, true, waiting)?;
        self.turn.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Takes the file `name` (its content `sha256`) for `holder` (this
    /// watch) on `host` for `lease`, unless another watch holds it with
    /// its lease alive.
    pub fn claim_file(
        &self,
        name: &str,
        sha256: &str,
        holder: &str,
        host: &str,
        lease: Duration,
    ) -> Result<Claim, LedgerError> {
        let db = &self.conn;
        let now = db.now_ms_sql();
        let lock = match db.engine() {
            Engine::Postgres => " FOR UPDATE",
            Engine::Sqlite => "",
        };
        let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        db.transaction(|db| {
            let found = db.query_opt(
                &format!(
                    "SELECT holder, host, expires_ms < {now} FROM file_leases
                     WHERE name = ?1 AND sha256 = ?2{lock}"
                ),
                params![name, sha256],
            )?;
            let claim = match found {
                None => Claim::Ours,
                Some(r) => {
                    let (was, was_host, expired): (String, String, bool) =
                        (r.get(0)?, r.get(1)?, r.get(2)?);
                    if was == holder {
                        Claim::Ours
                    } else if expired {
                        Claim::TakenOver(was_host)
                    } else {
                        return Ok(Claim::Held(was_host));
                    }
                }
            };
            db.execute(
                &format!(
                    "INSERT INTO file_leases (name, sha256, holder, host, taken_at, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, {now} + ?6)
                     ON CONFLICT (name, sha256) DO UPDATE SET holder = excluded.holder,
                        host = excluded.host, taken_at = excluded.taken_at,
                        expires_ms = excluded.expires_ms"
                ),
                params![name, sha256, holder, host, crate::clock::now(), ms],
            )?;
            Ok::<_, DbError>(claim)
        })
        .map_err(sql_at(&self.path))
    }

    /// Gives the file up: filed, or left for a later try by whoever
    /// takes it then.
    pub fn release_file(&self, name: &str, sha256: &str, holder: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "DELETE FROM file_leases WHERE name = ?1 AND sha256 = ?2 AND holder = ?3",
                params![name, sha256, holder],
            )
            .map_err(sql_at(&self.path))?;
        Ok(())
    }

    /// Keeps `holder`'s leases alive, renewing them every third of
    /// `lease` on a connection of its own, until dropped.
    pub fn lease_keeper(&self, holder: &str, lease: Duration) -> Result<LeaseKeeper, LedgerError> {
        let db = self.store.connect(&self.dest, false)?;
        let holder = holder.to_owned();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dcms-leases".into())
            .spawn(move || keep_leases(&db, &holder, lease, &stopped))
            .map_err(|source| LedgerError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(LeaseKeeper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn keep_leases(db: &Db, holder: &str, lease: Duration, stopped: &std::sync::mpsc::Receiver<()>) {
    let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE file_leases SET expires_ms = {} + ?2 WHERE holder = ?1",
        db.now_ms_sql()
    );
    loop {
        // A failed renewal is tried again at the next beat; the runs
        // themselves stop when the database does.
        let _ = db.execute(&sql, params![holder, ms]);
        match stopped.recv_timeout(lease / 3) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// The heartbeat of a watch's leases; stops when dropped.
pub struct LeaseKeeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
