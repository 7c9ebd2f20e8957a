//! Keeping ledgers, for operators: bringing every ledger of a store to
//! the newest version (`ledger migrate`), and moving an SQLite ledger's
//! whole history into a shared PostgreSQL database (`ledger copy`).

use std::path::{Path, PathBuf};

use crate::db::{Db, DbError, PgTarget, params};

use super::read::sql_at;
use super::schema::MIGRATIONS;
use super::{Destination, LedgerError, Store};

/// One ledger brought up to date.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migrated {
    /// Its file, or its server and schema.
    pub ledger: String,
    pub tenant: String,
    pub base_url: String,
    /// The versions applied now (none: it was up to date).
    pub applied: Vec<u32>,
    pub version: u32,
}

/// Applies the migrations every ledger of `store` lacks: each
/// `ledger-*.sqlite` of the folder, or each `ledger-*` schema of the
/// database.
pub fn migrate_all(store: &Store) -> Result<Vec<Migrated>, LedgerError> {
    let mut out = Vec::new();
    match store {
        Store::Dir(dir) => {
            let io = |source| LedgerError::Io {
                path: dir.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ledger-") && n.ends_with(".sqlite"))
                })
                .collect();
            files.sort();
            for path in files {
                let db = Db::open_file(&path).map_err(sql_at(&path))?;
                out.push(migrate_one(&db, &path)?);
            }
        }
        Store::Server(target) => {
            for schema in schemas(target)? {
                let path = PathBuf::from(format!("{target}#{schema}"));
                let db = Db::connect(target, &schema, false).map_err(sql_at(&path))?;
                out.push(migrate_one(&db, &path)?);
            }
        }
    }
    Ok(out)
}

/// The ledgers' schemas in the database at `target`.
fn schemas(target: &PgTarget) -> Result<Vec<String>, LedgerError> {
    let path = PathBuf::from(target.to_string());
    let db = Db::connect(target, "public", false).map_err(sql_at(&path))?;
    db.query(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ledger-%' ORDER BY nspname",
        params![],
    )
    .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
    .map_err(sql_at(&path))
}

fn migrate_one(db: &Db, path: &Path) -> Result<Migrated, LedgerError> {
    let sql = sql_at(path);
    let applied = crate::db::migrate(db, MIGRATIONS).map_err(sql)?;
    let version = crate::db::version(db).map_err(sql)?;
    let (tenant, base_url) = destination_of(db).map_err(sql)?.unwrap_or_default();
    Ok(Migrated {
        ledger: path.display().to_string(),
        tenant,
        base_url,
        applied,
        version,
    })
}

fn destination_of(db: &Db) -> Result<Option<(String, String)>, DbError> {
    db.query_opt("SELECT tenant, base_url FROM destination", params![])?
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .transpose()
}

/// What `ledger copy` moved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copied {
    pub from: String,
    pub to: String,
    pub tenant: String,
    pub base_url: String,
    /// Rows copied, by table.
    pub rows: Vec<(String, u64)>,
    /// Ended runs whose chain holds in the copy.
    pub chained: u64,
}

/// The tables of a ledger, in the order their references need, each with
/// its columns and the key it is read in order of.
const TABLES: [(&str, &str, &str); 6] = [
    (
        "runs",
        "id, command, input, input_sha256, batch_id, options, started_at, finished_at, counts, \
         report, stopped, report_sha256, line_columns, prev_hash, hash",
        "id",
    ),
    (
        "items",
        "kind, key, fingerprint, summary, first_run, last_run, state, attempts, uncertain, \
         outcome, planned_at, sent_at, answered_at, accepted_run, accepted_at",
        "kind, key",
    ),
    (
        "attempts",
        "kind, key, attempt, run, at, request_id, answer_request_id, http_status",
        "kind, key, attempt",
    ),
    ("run_rows", "run, row, key, status, line", "run, row"),
    (
        "decisions",
        "kind, key, decision, reason, by_user, host, at, was",
        "rowid",
    ),
    ("controls", "run, kind, at, answers, verdict", "rowid"),
];

/// Copies the SQLite ledger at `from` (brought to the newest version
/// first) into its destination's schema in the database at `to`: every
/// run with its id and chain, every item, attempt, row record, decision
/// and control, in one transaction. Refused when the database already
/// holds runs of that destination.
pub fn copy(from: &Path, to: &PgTarget) -> Result<Copied, LedgerError> {
    if !from.is_file() {
        return Err(LedgerError::Io {
            path: from.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no ledger there"),
        });
    }
    let source = Db::open_file(from).map_err(sql_at(from))?;
    crate::db::migrate(&source, MIGRATIONS).map_err(sql_at(from))?;
    let Some((tenant, base_url)) = destination_of(&source).map_err(sql_at(from))? else {
        return Err(LedgerError::Mismatch {
            path: from.to_owned(),
            found: "no destination recorded".into(),
        });
    };
    let dest = Destination::new(&tenant, &base_url);
    let store = Store::Server(to.clone());
    let place = store.place_of(&dest);
    let sql = sql_at(&place);
    // Holding the destination's lock: no run sends meanwhile.
    let target = super::Ledger::open_in(&store, &dest, false, |_| {})?;
    let held: i64 = target
        .conn
        .query_one("SELECT COUNT(*) FROM runs", params![])
        .and_then(|r| r.get(0))
        .map_err(sql)?;
    if held > 0 {
        return Err(LedgerError::Mismatch {
            path: place,
            found: format!("{held} runs already; a ledger is copied only into an empty one"),
        });
    }
    let rows = target
        .conn
        .transaction(|db| {
            let mut rows = Vec::new();
            for (table, columns, order) in TABLES {
                rows.push((
                    table.to_owned(),
                    copy_table(&source, db, table, columns, order)?,
                ));
            }
            for (table, column) in [("runs", "id"), ("decisions", "rowid")] {
                db.query_one(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)"
                    ),
                    params![],
                )?;
            }
            Ok::<_, DbError>(rows)
        })
        .map_err(sql)?;
    drop(target);
    let (chained, broken) = super::check_chain_in(&store, &dest)?;
    if let Some(first) = broken.first() {
        return Err(LedgerError::Mismatch {
            path: place,
            found: format!("the copy's chain of runs does not hold: {first}"),
        });
    }
    Ok(Copied {
        from: from.display().to_string(),
        to: place.display().to_string(),
        tenant,
        base_url,
        rows,
        chained,
    })
}

/// Copies one table, a page at a time, in the order of its key.
fn copy_table(from: &Db, to: &Db, table: &str, columns: &str, order: &str) -> Result<u64, DbError> {
    crate::db::copy_in_pages(from, to, (table, columns, order), 5_000)
}
