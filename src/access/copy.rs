//! Moving the access database of one machine (`access.sqlite`) into the
//! database hosts share: users, approvals, the audit trail with its chain,
//! and the desk's sheets with their saves, keys kept. Sessions are not
//! moved: everyone signs in again.

use std::path::Path;

use crate::db::{Db, DbError, PgTarget, Store, copy_in_pages, params};

use super::{Access, AccessError, MIGRATIONS, Result};

/// The tables moved, in the order their references need, each with its
/// columns and its key.
const TABLES: [(&str, &str, &str); 8] = [
    (
        "users",
        "name, hash, roles, disabled, created_at, changed_at",
        "name",
    ),
    (
        "approvals",
        "id, subject, destination, sheet, sheet_sha256, orders_fp, orders, rows, summary, maker, \
         asked_at, state, checker, decided_at, expires_at, reason, run",
        "id",
    ),
    (
        "approval_editors",
        "approval, \"user\"",
        "approval, \"user\"",
    ),
    (
        "audit",
        "seq, at, who, origin, action, what, why, prev, hash",
        "seq",
    ),
    (
        "desk_sheets",
        "id, name, sha256, dropped_by, dropped_at, revision, can_undo, rows_total, invalid, \
         sending_by, sending_until_ms, closed_at",
        "id",
    ),
    ("desk_files", "sheet_id, content", "sheet_id"),
    (
        "desk_saves",
        "sheet_id, seq, edits, by_name, at",
        "sheet_id, seq",
    ),
    ("desk_editors", "sheet_id, user_name", "sheet_id, user_name"),
];

/// Copies the access database at `from` (brought to the newest version
/// first) into the shared database at `to`, in one transaction; refused
/// when the shared one already has users or an audit trail. Rows copied,
/// by table.
pub fn copy(from: &Path, to: &PgTarget) -> Result<Vec<(String, u64)>> {
    let at = |source| AccessError::Sql {
        path: from.to_owned(),
        source,
    };
    if !from.is_file() {
        return Err(AccessError::Io {
            path: from.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no access database there"),
        });
    }
    let source = Db::open_file(from).map_err(at)?;
    crate::db::migrate(&source, MIGRATIONS).map_err(at)?;
    let target = Access::open_in(&Store::Server(to.clone()))?;
    let held: i64 = target
        .conn
        .query_one(
            "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM audit)",
            params![],
        )
        .and_then(|r| r.get(0))
        .map_err(|e| target.sql(e))?;
    if held > 0 {
        return Err(AccessError::Refused(format!(
            "{}: it has users or an audit trail already; the access database is copied only into an empty one",
            target.path.display()
        )));
    }
    let rows = target
        .conn
        .transaction(|db| {
            let mut rows = Vec::new();
            for (table, columns, order) in TABLES {
                let n = copy_in_pages(&source, db, (table, columns, order), 5_000)?;
                rows.push((table.to_owned(), n));
            }
            for table in ["approvals", "desk_sheets"] {
                moved_past(db, table)?;
            }
            Ok::<_, DbError>(rows)
        })
        .map_err(|e| target.sql(e))?;
    if let Some(first) = target.check_trail()?.first() {
        return Err(AccessError::Refused(format!(
            "the copy's audit trail does not hold at record {}: {}",
            first.seq, first.problem
        )));
    }
    Ok(rows)
}

/// `table`'s identity sequence moved past the ids copied into it.
fn moved_past(db: &Db, table: &str) -> std::result::Result<(), DbError> {
    db.query_one(
        &format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                           (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
        ),
        params![],
    )
    .map(|_| ())
}
