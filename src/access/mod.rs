//! Who may do what: the users of the desk and their roles, the audit
//! trail of what each did, and the approvals that four-eyes profiles need
//! before an order leaves. They live in one SQLite database beside the
//! ledgers (`access.sqlite` in the journal folder), shared by the desk and
//! the command line.
//!
//! Passwords are kept as Argon2id hashes only. The audit trail is
//! append-only (triggers refuse a change) and chained: each record holds
//! the hash of the one before, so an edit or a removal made around the
//! triggers is found by [`Access::check_trail`]. That the checker of an
//! approval is never its maker nor anyone who edited that version is held
//! by the database itself (a `CHECK` and a trigger), not only by the
//! pages.

mod approvals;
mod copy;
mod sessions;
mod sheets;
mod trail;

use std::path::{Path, PathBuf};

use crate::db::{Db, DbError, Engine, Migration, Row, params};
use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub use approvals::{Approval, Ask, Decision, State as ApprovalState};
pub use copy::copy;
pub use sheets::{DeskSheet, SENDING_LEASE, SheetChange};
pub use trail::{Record, TrailProblem, Written};

/// The roles a user may hold (several at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uploads, fixes, asks for approval (and sends where none is needed).
    Maker,
    /// Approves or rejects.
    Checker,
    /// Reads everything, changes nothing.
    Auditor,
    /// Manages users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Maker, Role::Checker, Role::Auditor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Maker => "maker",
            Role::Checker => "checker",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text.trim().to_ascii_lowercase())
    }

    /// `maker,checker` as roles; an unknown name is an error that names it.
    pub fn list(text: &str) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for name in text.split(',').filter(|n| !n.trim().is_empty()) {
            let role = Role::parse(name).ok_or_else(|| {
                format!("`{name}` is not a role (roles: maker, checker, auditor, admin)")
            })?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        roles.sort();
        Ok(roles)
    }
}

/// A user of the desk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    pub created_at: String,
    pub changed_at: String,
}

impl User {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// What the access database could not do.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the access database {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        #[source]
        source: DbError,
    },
    #[error("the access database's folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request that the rules refuse (a user that exists, a short
    /// password, a checker who made the sheet...).
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = AccessError> = std::result::Result<T, E>;

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 10;

/// The access database.
pub struct Access {
    path: PathBuf,
    conn: Db,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
";

/// The access database's migrations, oldest first.
const MIGRATIONS: &[Migration] = &[
    Migration { apply: first },
    Migration {
        apply: |db| db.batch(&sessions::schema(db.engine())),
    },
    Migration {
        apply: |db| db.batch(&sheets::schema(db.engine())),
    },
];

fn first(db: &Db) -> std::result::Result<(), DbError> {
    match db.engine() {
        Engine::Sqlite => {
            db.batch(SCHEMA)?;
            db.batch(trail::SCHEMA)?;
            db.batch(approvals::SCHEMA)
        }
        Engine::Postgres => {
            db.batch(&SCHEMA.replace("INTEGER", "BIGINT"))?;
            db.batch(trail::POSTGRES)?;
            db.batch(approvals::POSTGRES)
        }
    }
}

impl Access {
    /// The access database in `dir` (the ledgers' folder), made if need
    /// be.
    pub fn open(dir: &Path) -> Result<Access> {
        Access::open_in(&crate::db::Store::Dir(dir.to_owned()))
    }

    /// The access database of `store`: `access.sqlite` in the folder, or
    /// the `access` schema of the database that hosts and desks share.
    pub fn open_in(store: &crate::db::Store) -> Result<Access> {
        use crate::db::Store;
        let (path, conn) = match store {
            Store::Dir(dir) => {
                let path = dir.join("access.sqlite");
                crate::files::create_private_dir(dir).map_err(|source| AccessError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let conn = Db::open_file(&path).map_err(|source| AccessError::Sql {
                    path: path.clone(),
                    source,
                })?;
                (path, conn)
            }
            Store::Server(target) => {
                let path = PathBuf::from(format!("{target}#access"));
                let conn =
                    Db::connect(target, "access", true).map_err(|source| AccessError::Sql {
                        path: path.clone(),
                        source,
                    })?;
                (path, conn)
            }
        };
        let access = Access { path, conn };
        crate::db::migrate(&access.conn, MIGRATIONS).map_err(|e| access.sql(e))?;
        Ok(access)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: DbError) -> AccessError {
        AccessError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Whether any user is enabled (then the desk asks everyone to sign
    /// in).
    pub fn has_users(&self) -> Result<bool> {
        self.conn
            .query_one("SELECT COUNT(*) FROM users WHERE disabled = 0", params![])
            .and_then(|r| r.get::<i64>(0))
            .map(|n| n > 0)
            .map_err(|e| self.sql(e))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>> {
        self.conn
            .query(
                "SELECT name, roles, disabled, created_at, changed_at FROM users ORDER BY name",
                params![],
            )
            .and_then(|rows| rows.iter().map(user_of).collect())
            .map_err(|e| self.sql(e))
    }

    /// The user `name`, if there is one.
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.conn
            .query_opt(
                "SELECT name, roles, disabled, created_at, changed_at FROM users WHERE name = ?1",
                params![name],
            )
            .and_then(|r| r.as_ref().map(user_of).transpose())
            .map_err(|e| self.sql(e))
    }

    /// Adds a user; `by` did it (recorded).
    pub fn add_user(&self, name: &str, password: &str, roles: &[Role], by: &Actor) -> Result<()> {
        valid_name(name)?;
        let hash = hash_password(password)?;
        if self.user(name)?.is_some() {
            return Err(AccessError::Refused(format!(
                "a user `{name}` exists already"
            )));
        }
        let now = crate::clock::now();
        self.conn
            .execute(
                "INSERT INTO users (name, hash, roles, created_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![name, hash, roles_text(roles), now],
            )
            .map_err(|e| self.sql(e))?;
        self.record(
            by,
            "user added",
            serde_json::json!({ "user": name, "roles": roles }),
            "",
        )?;
        Ok(())
    }

    /// Sets a user's password.
    pub fn set_password(&self, name: &str, password: &str, by: &Actor) -> Result<()> {
        let hash = hash_password(password)?;
        self.change(name, "hash = ?2", hash)?;
        self.record(by, "password set", serde_json::json!({ "user": name }), "")
    }

    /// Sets a user's roles.
    pub fn set_roles(&self, name: &str, roles: &[Role], by: &Actor) -> Result<()> {
        self.change(name, "roles = ?2", roles_text(roles))?;
        self.record(
            by,
            "roles set",
            serde_json::json!({ "user": name, "roles": roles }),
            "",
        )
    }

    /// Disables (or enables again) a user: a disabled user cannot sign in,
    /// and their sessions end at once.
    pub fn set_disabled(&self, name: &str, disabled: bool, by: &Actor) -> Result<()> {
        self.change(name, "disabled = ?2", i64::from(disabled))?;
        let action = if disabled {
            "user disabled"
        } else {
            "user enabled"
        };
        self.record(by, action, serde_json::json!({ "user": name }), "")
    }

    fn change(&self, name: &str, set: &str, value: impl Into<crate::db::Value>) -> Result<()> {
        let n = self
            .conn
            .execute(
                &format!("UPDATE users SET {set}, changed_at = ?3 WHERE name = ?1"),
                vec![name.into(), value.into(), crate::clock::now().into()],
            )
            .map_err(|e| self.sql(e))?;
        if n == 0 {
            return Err(AccessError::Refused(format!("no user `{name}`")));
        }
        Ok(())
    }

    /// The enabled user `name` if `password` is theirs. An unknown user
    /// costs the same time as a wrong password (a hash is checked either
    /// way), so the answer does not tell which it was.
    pub fn sign_in(&self, name: &str, password: &str) -> Result<Option<User>> {
        let found: Option<(String, bool)> = self
            .conn
            .query_opt(
                "SELECT hash, disabled FROM users WHERE name = ?1",
                params![name],
            )
            .and_then(|r| r.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose())
            .map_err(|e| self.sql(e))?;
        let (hash, disabled) = found.unwrap_or_else(|| (decoy_hash().to_owned(), true));
        let ok = PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        if !ok || disabled {
            return Ok(None);
        }
        self.user(name)
    }
}

/// Who did something, and from where (an address, or `command line`).
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub origin: String,
}

impl Actor {
    /// Someone at this machine's command line, by the system's user name
    /// (`None`: not known).
    pub fn command_line(user: Option<String>) -> Actor {
        let name = user.unwrap_or_else(|| "unknown".into());
        Actor {
            name: format!("system user {name}"),
            origin: "command line".into(),
        }
    }
}

fn user_of(r: &Row) -> std::result::Result<User, DbError> {
    let roles: String = r.get(1)?;
    Ok(User {
        name: r.get(0)?,
        roles: Role::list(&roles).unwrap_or_default(),
        disabled: r.get(2)?,
        created_at: r.get(3)?,
        changed_at: r.get(4)?,
    })
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::Refused(format!(
            "`{name}`: a user name is 1 to 64 letters, digits, `.`, `-`, `_` or `@`"
        )))
    }
}

/// An Argon2id hash of `password` (the crate's default parameters), with
/// a random salt.
fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccessError::Refused(format!(
            "a password has at least {MIN_PASSWORD} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Refused(format!("the password could not be hashed: {e}")))
}

/// A hash no password matches, checked for an unknown user.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        hash_password(&hex::encode(bytes)).unwrap_or_default()
    })
}

/// A random token of 32 bytes, as hex (session ids, CSRF tokens).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path()).unwrap();
        (dir, access)
    }

    fn actor(name: &str) -> Actor {
        Actor {
            name: name.into(),
            origin: "test".into(),
        }
    }

    fn ask(subject: &str) -> Ask {
        Ask {
            subject: subject.into(),
            destination: "ACME at http://dcms.test/v1".into(),
            sheet: "orders.csv".into(),
            sheet_sha256: "a".repeat(64),
            orders_fp: "b".repeat(64),
            orders: 4,
            rows: 10,
            summary: "10 rows".into(),
            editors: vec!["asha".into(), "bea".into()],
        }
    }

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash_and_checked() {
        let (_d, a) = open();
        let by = actor("admin");
        a.add_user("asha", "a long password", &[Role::Maker], &by)
            .unwrap();
        let hash: String = a
            .conn
            .query_one("SELECT hash FROM users WHERE name = 'asha'", params![])
            .and_then(|r| r.get(0))
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("a long password"));
        assert!(a.sign_in("asha", "a long password").unwrap().is_some());
        assert!(a.sign_in("asha", "a wrong password").unwrap().is_none());
        assert!(a.sign_in("nobody", "a long password").unwrap().is_none());
        assert!(matches!(
            a.add_user("bea", "short", &[Role::Maker], &by),
            Err(AccessError::Refused(_))
        ));
        a.set_disabled("asha", true, &by).unwrap();
        assert!(a.sign_in("asha", "a long password").unwrap().is_none());
    }

    #[test]
    fn the_database_refuses_a_checker_who_made_or_changed_the_sheet() {
        let (_d, a) = open();
        let id = a.ask(&ask("s1"), &actor("asha")).unwrap();
        let day = std::time::Duration::from_secs(86400);
        // Through the library...
        for who in ["asha", "bea"] {
            let refused = a.decide(id, &Decision::Approve, &actor(who), day);
            assert!(
                matches!(refused, Err(AccessError::Refused(ref w)) if w.contains("four eyes")),
                "{who}: {refused:?}"
            );
        }
        // ...and by hand, around it: the trigger and the CHECK hold.
        for who in ["asha", "bea"] {
            let direct = a.conn.execute(
                "UPDATE approvals SET state = 'approved', checker = ?1 WHERE id = ?2",
                params![who, id],
            );
            assert!(direct.is_err(), "{who}");
        }
        // A rejection needs its reason, in the database too.
        let no_reason = a.conn.execute(
            "UPDATE approvals SET state = 'rejected', checker = 'ravi' WHERE id = ?1",
            params![id],
        );
        assert!(no_reason.is_err());
        let ok = a
            .decide(id, &Decision::Approve, &actor("ravi"), day)
            .unwrap();
        assert!(ok.in_force());
        let trail = a.records(None).unwrap();
        assert_eq!(
            trail
                .iter()
                .filter(|r| r.action == "decision refused")
                .count(),
            2
        );
        assert!(a.check_trail().unwrap().is_empty());
    }

    #[test]
    fn an_approval_is_taken_for_sending_once_and_only_as_approved_and_in_time() {
        let (_d, a) = open();
        let by = actor("ravi");
        let day = std::time::Duration::from_secs(86400);
        let (sha, fp) = ("a".repeat(64), "b".repeat(64));
        let id = a.ask(&ask("s1"), &actor("asha")).unwrap();
        assert!(a.take_for_sending(id, &sha, &fp, &by).is_err(), "pending");
        a.decide(id, &Decision::Approve, &by, day).unwrap();
        assert!(a.take_for_sending(id, &sha, &fp, &by).is_ok());
        assert!(a.take_for_sending(id, &sha, &fp, &by).is_err(), "twice");

        // Another version than the one approved: refused, and void.
        let id = a.ask(&ask("s2"), &actor("asha")).unwrap();
        a.decide(id, &Decision::Approve, &by, day).unwrap();
        let other = "c".repeat(64);
        assert!(a.take_for_sending(id, &other, &fp, &by).is_err());
        assert_eq!(a.approval(id).unwrap().unwrap().state, ApprovalState::Void);

        // Expired.
        let id = a.ask(&ask("s3"), &actor("asha")).unwrap();
        a.decide(id, &Decision::Approve, &by, std::time::Duration::ZERO)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let late = a.take_for_sending(id, &sha, &fp, &by);
        assert!(
            matches!(late, Err(AccessError::Refused(ref w)) if w.contains("expired")),
            "{late:?}"
        );

        // Asked again: the earlier request is void.
        let first = a.ask(&ask("s4"), &actor("asha")).unwrap();
        a.ask(&ask("s4"), &actor("asha")).unwrap();
        assert_eq!(
            a.approval(first).unwrap().unwrap().state,
            ApprovalState::Void
        );
    }

    #[test]
    fn a_record_changed_or_removed_around_the_triggers_breaks_the_chain() {
        let (_d, a) = open();
        for n in 0..4 {
            a.record(
                &actor("asha"),
                "cells changed",
                serde_json::json!({ "n": n }),
                "",
            )
            .unwrap();
        }
        assert!(a.check_trail().unwrap().is_empty());
        assert!(
            a.conn
                .execute("DELETE FROM audit WHERE seq = 2", params![])
                .is_err()
        );
        assert!(
            a.conn
                .execute("UPDATE audit SET who = 'x' WHERE seq = 2", params![])
                .is_err()
        );
        a.conn
            .batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .unwrap();
        a.conn
            .execute("UPDATE audit SET who = 'mallory' WHERE seq = 2", params![])
            .unwrap();
        let found = a.check_trail().unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].seq, 2);
        a.conn
            .execute("DELETE FROM audit WHERE seq = 3", params![])
            .unwrap();
        let found = a.check_trail().unwrap();
        assert!(
            found
                .iter()
                .any(|p| p.seq == 4 && p.problem.contains("missing")),
            "{found:?}"
        );
    }
}
