//! Four eyes: a maker asks for approval of a sheet version; a checker who
//! neither made nor edited it approves or rejects it (a reason required);
//! an approval is bound to the version's SHA-256 and its orders'
//! fingerprints, voided by any change, and expires. Once approved, the
//! orders are sent once: taking an approval for sending is one update
//! that only an approved, unexpired, matching approval passes.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::{Access, AccessError, Actor, Result};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    destination TEXT NOT NULL,
    sheet TEXT NOT NULL,
    sheet_sha256 TEXT NOT NULL,
    orders_fp TEXT NOT NULL,
    orders INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    summary TEXT NOT NULL,
    maker TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'void', 'sent')),
    checker TEXT,
    decided_at TEXT,
    expires_at TEXT,
    reason TEXT,
    run INTEGER,
    CHECK (checker IS NULL OR checker <> maker),
    CHECK (state <> 'rejected' OR length(trim(COALESCE(reason, ''))) > 0),
    CHECK (state NOT IN ('approved', 'rejected', 'sent') OR checker IS NOT NULL)
);
CREATE TABLE IF NOT EXISTS approval_editors (
    approval INTEGER NOT NULL REFERENCES approvals(id),
    user TEXT NOT NULL,
    PRIMARY KEY (approval, user)
);
CREATE TRIGGER IF NOT EXISTS four_eyes BEFORE UPDATE OF checker ON approvals
WHEN NEW.checker IN (SELECT user FROM approval_editors WHERE approval = NEW.id)
BEGIN SELECT RAISE(ABORT, 'four eyes: the checker made or changed this version'); END;
";

/// Where an approval is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    /// The sheet changed after it was asked for, or it was asked again.
    Void,
    /// Taken for sending (once).
    Sent,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Void => "void",
            State::Sent => "sent",
        }
    }

    fn parse(text: &str) -> State {
        match text {
            "pending" => State::Pending,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "sent" => State::Sent,
            _ => State::Void,
        }
    }
}

/// What a maker asks to have approved.
#[derive(Debug, Clone)]
pub struct Ask {
    /// What the sheet is (a desk's sheet, a file), so that asking again
    /// voids the earlier request.
    pub subject: String,
    /// Where its orders go (`tenant at base URL`).
    pub destination: String,
    pub sheet: String,
    /// The version's SHA-256, and a hash of its ready orders'
    /// fingerprints.
    pub sheet_sha256: String,
    pub orders_fp: String,
    pub orders: u64,
    pub rows: u64,
    /// Its counts and warnings, in a line.
    pub summary: String,
    /// Who made or changed this version (the maker among them).
    pub editors: Vec<String>,
}

/// An approval, asked for and maybe decided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    pub id: i64,
    pub subject: String,
    pub destination: String,
    pub sheet: String,
    pub sheet_sha256: String,
    pub orders_fp: String,
    pub orders: u64,
    pub rows: u64,
    pub summary: String,
    pub maker: String,
    pub editors: Vec<String>,
    pub asked_at: String,
    pub state: State,
    pub checker: Option<String>,
    pub decided_at: Option<String>,
    pub expires_at: Option<String>,
    pub reason: Option<String>,
    pub run: Option<i64>,
}

impl Approval {
    /// Approved, and not expired.
    pub fn in_force(&self) -> bool {
        self.state == State::Approved && !self.expired()
    }

    pub fn expired(&self) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t < chrono::Utc::now())
    }

    /// Whether `user` may decide it: not its maker, nor an editor.
    pub fn may_decide(&self, user: &str) -> bool {
        self.maker != user && !self.editors.iter().any(|e| e == user)
    }
}

/// A checker's decision.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve,
    Reject(String),
}

const COLUMNS: &str = "id, subject, destination, sheet, sheet_sha256, orders_fp, orders, rows, summary, \
                       maker, asked_at, state, checker, decided_at, expires_at, reason, run";

fn approval_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: r.get(0)?,
        subject: r.get(1)?,
        destination: r.get(2)?,
        sheet: r.get(3)?,
        sheet_sha256: r.get(4)?,
        orders_fp: r.get(5)?,
        orders: r.get::<_, i64>(6)?.max(0) as u64,
        rows: r.get::<_, i64>(7)?.max(0) as u64,
        summary: r.get(8)?,
        maker: r.get(9)?,
        editors: Vec::new(),
        asked_at: r.get(10)?,
        state: State::parse(&r.get::<_, String>(11)?),
        checker: r.get(12)?,
        decided_at: r.get(13)?,
        expires_at: r.get(14)?,
        reason: r.get(15)?,
        run: r.get(16)?,
    })
}

impl Access {
    /// Files `ask` for approval by `maker`; an earlier open request for
    /// the same subject is voided. Its number.
    pub fn ask(&self, ask: &Ask, maker: &Actor) -> Result<i64> {
        self.void(&ask.subject, "asked again", maker)?;
        let sql = |e| self.sql(e);
        self.conn
            .execute(
                "INSERT INTO approvals (subject, destination, sheet, sheet_sha256, orders_fp, orders, rows,
                                        summary, maker, asked_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending')",
                params![
                    ask.subject,
                    ask.destination,
                    ask.sheet,
                    ask.sheet_sha256,
                    ask.orders_fp,
                    ask.orders as i64,
                    ask.rows as i64,
                    ask.summary,
                    maker.name,
                    crate::clock::now()
                ],
            )
            .map_err(sql)?;
        let id = self.conn.last_insert_rowid();
        let mut editors = ask.editors.clone();
        editors.push(maker.name.clone());
        for user in editors {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO approval_editors (approval, user) VALUES (?1, ?2)",
                    params![id, user],
                )
                .map_err(sql)?;
        }
        self.record(
            maker,
            "approval asked",
            serde_json::json!({
                "approval": id, "sheet": ask.sheet, "sha256": ask.sheet_sha256,
                "orders": ask.orders, "rows": ask.rows, "destination": ask.destination,
                "summary": ask.summary, "editors": ask.editors,
            }),
            "",
        )?;
        Ok(id)
    }

    /// The approval `id`, with who made or changed its version.
    pub fn approval(&self, id: i64) -> Result<Option<Approval>> {
        let sql = |e| self.sql(e);
        let found = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                approval_of,
            )
            .optional()
            .map_err(sql)?;
        let Some(mut a) = found else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare("SELECT user FROM approval_editors WHERE approval = ?1 ORDER BY user")
            .map_err(sql)?;
        a.editors = stmt
            .query_map([id], |r| r.get(0))
            .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
            .map_err(sql)?;
        Ok(Some(a))
    }

    /// Approvals, newest first: those still open (pending, or approved
    /// and not sent), or all.
    pub fn approvals(&self, open_only: bool) -> Result<Vec<Approval>> {
        let sql = |e| self.sql(e);
        let filter = if open_only {
            "WHERE state IN ('pending', 'approved')"
        } else {
            ""
        };
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT id FROM approvals {filter} ORDER BY id DESC LIMIT 500"
                ))
                .map_err(sql)?;
            stmt.query_map([], |r| r.get(0))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<i64>>>)
                .map_err(sql)?
        };
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.approval(id)?);
        }
        Ok(out)
    }

    /// The latest approval asked for `subject`.
    pub fn approval_of(&self, subject: &str) -> Result<Option<Approval>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM approvals WHERE subject = ?1 ORDER BY id DESC LIMIT 1",
                [subject],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match id {
            Some(id) => self.approval(id),
            None => Ok(None),
        }
    }

    /// Voids the open request (or approval) of `subject`: its sheet
    /// changed.
    pub fn void(&self, subject: &str, why: &str, by: &Actor) -> Result<()> {
        let open: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM approvals WHERE subject = ?1 AND state IN ('pending', 'approved')")
                .map_err(|e| self.sql(e))?;
            stmt.query_map([subject], |r| r.get(0))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<i64>>>)
                .map_err(|e| self.sql(e))?
        };
        for id in open {
            self.conn
                .execute("UPDATE approvals SET state = 'void' WHERE id = ?1", [id])
                .map_err(|e| self.sql(e))?;
            self.record(
                by,
                "approval voided",
                serde_json::json!({ "approval": id }),
                why,
            )?;
        }
        Ok(())
    }

    /// `checker` decides approval `id`. The database refuses a checker who
    /// made or changed the version; the refusal is recorded. An approval
    /// holds for `valid_for`.
    pub fn decide(
        &self,
        id: i64,
        decision: &Decision,
        checker: &Actor,
        valid_for: Duration,
    ) -> Result<Approval> {
        let Some(a) = self.approval(id)? else {
            return Err(AccessError::Refused(format!("no approval {id}")));
        };
        if a.state != State::Pending {
            return Err(AccessError::Refused(format!(
                "approval {id} is {}: only a pending one can be decided",
                a.state.as_str()
            )));
        }
        let now = chrono::Utc::now();
        let (state, reason, expires) = match decision {
            Decision::Approve => {
                let until = now
                    + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::hours(24));
                (
                    "approved",
                    None,
                    Some(crate::clock::Stamp::from(until).to_string()),
                )
            }
            Decision::Reject(why) => ("rejected", Some(why.trim().to_owned()), None),
        };
        let changed = self.conn.execute(
            "UPDATE approvals SET state = ?2, checker = ?3, decided_at = ?4, expires_at = ?5, reason = ?6
             WHERE id = ?1 AND state = 'pending'",
            params![id, state, checker.name, crate::clock::now(), expires, reason],
        );
        let what = serde_json::json!({ "approval": id, "sheet": a.sheet, "sha256": a.sheet_sha256, "orders": a.orders });
        match changed {
            Ok(1) => {
                let action = if state == "approved" {
                    "approved"
                } else {
                    "rejected"
                };
                self.record(checker, action, what, reason.as_deref().unwrap_or(""))?;
                self.approval(id)?
                    .ok_or_else(|| AccessError::Refused(format!("no approval {id}")))
            }
            Ok(_) => Err(AccessError::Refused(format!(
                "approval {id} was decided meanwhile"
            ))),
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) => {
                let why = if message.contains("four eyes")
                    || message.contains("CHECK constraint failed: checker")
                {
                    "four eyes: the checker may not be the maker of the sheet nor anyone who changed it".to_owned()
                } else if message.contains("reason") {
                    "a rejection needs a reason".to_owned()
                } else {
                    message
                };
                self.record(checker, "decision refused", what, &why)?;
                Err(AccessError::Refused(why))
            }
            Err(e) => Err(self.sql(e)),
        }
    }

    /// Takes approval `id` for sending, once: only an approval in force
    /// whose version and orders are still these passes, and it is then
    /// `sent` (a second take fails).
    pub fn take_for_sending(
        &self,
        id: i64,
        sheet_sha256: &str,
        orders_fp: &str,
        by: &Actor,
    ) -> Result<Approval> {
        let Some(a) = self.approval(id)? else {
            return Err(AccessError::Refused(format!("no approval {id}")));
        };
        if !a.in_force() {
            let why = if a.state == State::Approved {
                "the approval has expired: ask again".to_owned()
            } else {
                format!("approval {id} is {}, not approved", a.state.as_str())
            };
            return Err(AccessError::Refused(why));
        }
        if a.sheet_sha256 != sheet_sha256 || a.orders_fp != orders_fp {
            self.void(&a.subject, "the sheet changed after it was approved", by)?;
            return Err(AccessError::Refused(
                "the sheet changed after it was approved: the approval is void; ask again".into(),
            ));
        }
        let n = self
            .conn
            .execute(
                "UPDATE approvals SET state = 'sent' WHERE id = ?1 AND state = 'approved'",
                [id],
            )
            .map_err(|e| self.sql(e))?;
        if n != 1 {
            return Err(AccessError::Refused(format!(
                "approval {id} was taken already"
            )));
        }
        self.record(
            by,
            "sent",
            serde_json::json!({ "approval": id, "sheet": a.sheet, "sha256": a.sheet_sha256, "orders": a.orders, "checker": a.checker }),
            "",
        )?;
        Ok(a)
    }

    /// The ledger's run that sent approval `id`.
    pub fn sent_as(&self, id: i64, run: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE approvals SET run = ?2 WHERE id = ?1",
                params![id, run],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }
}
