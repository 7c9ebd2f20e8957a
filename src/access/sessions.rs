//! The desk's sessions, kept with the users so that every desk in front
//! of one database knows them: a clerk signed in at one desk is signed in
//! at the others, and a sign-out or a disabled user ends the session
//! everywhere. Only the SHA-256 of a session's id is kept: someone who
//! reads the database cannot take a session over. Ages are measured by
//! the database's clock, one clock for every desk.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Access, Result, random_token};
use crate::db::{DbError, Engine, params};

/// Sessions not used for a day are let go of when another begins.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(24 * 3600);

pub(super) fn schema(engine: Engine) -> String {
    let int = match engine {
        Engine::Sqlite => "INTEGER",
        Engine::Postgres => "BIGINT",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS sessions (
            id_sha256 TEXT PRIMARY KEY,
            user_name TEXT NOT NULL,
            csrf TEXT NOT NULL,
            began_ms {int} NOT NULL,
            last_ms {int} NOT NULL
        )"
    )
}

fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Access {
    /// A new session for `user` (a new id: one held before sign-in is
    /// not kept), and its id.
    pub fn session_begin(&self, user: &str, old: Option<&str>) -> Result<String> {
        let id = random_token();
        let now = self.conn.now_ms_sql();
        self.conn
            .transaction(|db| {
                if let Some(old) = old {
                    db.execute(
                        "DELETE FROM sessions WHERE id_sha256 = ?1",
                        params![digest(old)],
                    )?;
                }
                db.execute(
                    &format!("DELETE FROM sessions WHERE last_ms < {now} - ?1"),
                    params![ms(FORGOTTEN_AFTER)],
                )?;
                db.execute(
                    &format!(
                        "INSERT INTO sessions (id_sha256, user_name, csrf, began_ms, last_ms)
                         VALUES (?1, ?2, ?3, {now}, {now})"
                    ),
                    params![digest(&id), user, random_token()],
                )?;
                Ok::<_, DbError>(())
            })
            .map_err(|e| self.sql(e))?;
        Ok(id)
    }

    /// The user of session `id` and its CSRF token, if it is alive: not
    /// idle longer than `idle`, nor older than `longest` (then it ends).
    pub fn session(
        &self,
        id: &str,
        idle: Duration,
        longest: Duration,
    ) -> Result<Option<(String, String)>> {
        let now = self.conn.now_ms_sql();
        let key = digest(id);
        let found = self
            .conn
            .query_opt(
                &format!(
                    "SELECT user_name, csrf, {now} - last_ms, {now} - began_ms FROM sessions
                     WHERE id_sha256 = ?1"
                ),
                params![&key],
            )
            .map_err(|e| self.sql(e))?;
        let Some(r) = found else {
            return Ok(None);
        };
        let (user, csrf, idle_ms, age_ms): (String, String, i64, i64) =
            (|| Ok::<_, DbError>((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))()
                .map_err(|e| self.sql(e))?;
        if idle_ms > ms(idle) || age_ms > ms(longest) {
            self.session_end(id)?;
            return Ok(None);
        }
        self.conn
            .execute(
                &format!("UPDATE sessions SET last_ms = {now} WHERE id_sha256 = ?1"),
                params![key],
            )
            .map_err(|e| self.sql(e))?;
        Ok(Some((user, csrf)))
    }

    /// The CSRF token of the user a trusted proxy names (a session of
    /// theirs, made at first sight).
    pub fn proxied_session(&self, user: &str) -> Result<String> {
        let key = digest(&format!("proxy:{user}"));
        let now = self.conn.now_ms_sql();
        self.conn
            .execute(
                &format!(
                    "INSERT INTO sessions (id_sha256, user_name, csrf, began_ms, last_ms)
                     VALUES (?1, ?2, ?3, {now}, {now}) ON CONFLICT DO NOTHING"
                ),
                params![&key, user, random_token()],
            )
            .and_then(|_| {
                self.conn
                    .query_one(
                        "SELECT csrf FROM sessions WHERE id_sha256 = ?1",
                        params![key],
                    )?
                    .get(0)
            })
            .map_err(|e| self.sql(e))
    }

    /// Ends session `id`.
    pub fn session_end(&self, id: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE id_sha256 = ?1",
                params![digest(id)],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Ends every session of `user` (disabled, or gone).
    pub fn sessions_end_of(&self, user: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE user_name = ?1", params![user])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }
}
