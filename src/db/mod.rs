//! One SQL connection, to SQLite or to PostgreSQL, behind one small API:
//! statements with `?1`-style parameters, values that are integers, text
//! or NULL, rows read by position, and transactions. The ledger and the
//! access database are written once against it and run on either engine.
//!
//! The SQL is kept to what both engines read alike: `ON CONFLICT … DO`,
//! `RETURNING`, `COALESCE`, `CASE`; flags are integers 0/1 on both. A
//! PostgreSQL connection works on its own thread (its client must not run
//! inside the async runtime that sends orders), and its statements are
//! prepared once per connection.

mod pg;
mod sqlite;

use std::path::{Path, PathBuf};

pub use pg::PgTarget;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Text(String),
    /// Bytes as they are (`BLOB`, `BYTEA`).
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Clone + Into<Value>> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Value {
        v.clone().map_or(Value::Null, Into::into)
    }
}

/// Parameters of a statement: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    () => { Vec::<$crate::db::Value>::new() };
    ($($v:expr),+ $(,)?) => { vec![$($crate::db::Value::from($v)),+] };
}
pub use params;

/// A type a column is read as.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Option<Value> {
        Some(v.clone())
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<u64> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for u32 {
    fn from_value(v: &Value) -> Option<u32> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for u16 {
    fn from_value(v: &Value) -> Option<u16> {
        i64::from_value(v).and_then(|i| u16::try_from(i).ok())
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<bool> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Vec<u8>> {
        match v {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Option<T>> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i`, read as `T`; an error names the column when it is
    /// missing or of another type.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        let v = self.0.get(i).ok_or_else(|| DbError::Type {
            column: i,
            found: "no such column".into(),
        })?;
        T::from_value(v).ok_or_else(|| DbError::Type {
            column: i,
            found: format!("{v:?}"),
        })
    }
}

/// What went wrong with a statement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database stopped answering: the connection broke, the server
    /// went away. Nothing more may be sent until it is back.
    #[error("the database stopped answering: {0}")]
    Lost(String),
    /// The database answered with an error.
    #[error("{0}")]
    Refused(String),
    #[error("column {column} holds {found}, not what was expected")]
    Type { column: usize, found: String },
}

impl DbError {
    pub fn is_lost(&self) -> bool {
        matches!(self, DbError::Lost(_))
    }
}

/// Where the ledgers are kept: a folder of SQLite files, one per
/// destination; or one PostgreSQL database, a schema per destination,
/// shared by every host that points at it.
#[derive(Debug, Clone)]
pub enum Store {
    Dir(PathBuf),
    Server(pg::PgTarget),
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A connection.
pub struct Db {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(pg::Handle),
}

impl Db {
    /// An SQLite database file, opened (or made) for writing: WAL, full
    /// sync, foreign keys.
    pub fn open_file(path: &Path) -> Result<Db, DbError> {
        Ok(Db {
            inner: Inner::Sqlite(sqlite::open(path)?),
        })
    }

    /// An SQLite database file, read only.
    pub fn open_file_read_only(path: &Path) -> Result<Db, DbError> {
        Ok(Db {
            inner: Inner::Sqlite(sqlite::open_read_only(path)?),
        })
    }

    /// A PostgreSQL server, working in `schema` (made if need be when
    /// `make` is set).
    pub fn connect(target: &PgTarget, schema: &str, make: bool) -> Result<Db, DbError> {
        Ok(Db {
            inner: Inner::Postgres(pg::Handle::connect(target, schema, make)?),
        })
    }

    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => sqlite::execute(c, sql, &params),
            Inner::Postgres(h) => h.execute(sql, params),
        }
    }

    /// Runs one query; returns every row.
    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => sqlite::query(c, sql, &params),
            Inner::Postgres(h) => h.query(sql, params),
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always gives one.
    pub fn query_one(&self, sql: &str, params: Vec<Value>) -> Result<Row, DbError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| DbError::Refused(format!("no row from: {}", first_line(sql))))
    }

    /// Statements without parameters, separated by `;` (a schema).
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch(sql).map_err(sqlite::error),
            Inner::Postgres(h) => h.batch(sql),
        }
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled
    /// back otherwise. SQLite's is taken for writing at once (`BEGIN
    /// IMMEDIATE`), so two writers never deadlock.
    pub fn transaction<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.batch(match self.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        })?;
        match f(self) {
            Ok(v) => {
                if let Err(e) = self.batch("COMMIT") {
                    let _ = self.batch("ROLLBACK");
                    return Err(e.into());
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// SQL for the database server's clock, in milliseconds since 1970
    /// (one clock for every host).
    pub fn now_ms_sql(&self) -> &'static str {
        match self.engine() {
            Engine::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Engine::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Whether the connection's schema exists (a PostgreSQL connection
    /// may name one that was never made; an SQLite file is its own).
    pub fn schema_exists(&self) -> Result<bool, DbError> {
        match self.engine() {
            Engine::Sqlite => Ok(true),
            Engine::Postgres => self
                .query_one("SELECT current_schema() IS NOT NULL", params![])?
                .get(0),
        }
    }

    /// Whether a table exists (in the connection's schema).
    pub fn has_table(&self, name: &str) -> Result<bool, DbError> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = ?1"
            }
        };
        Ok(self.query_one(sql, params![name])?.get::<i64>(0)? > 0)
    }

    /// Whether a table has a column.
    pub fn has_column(&self, table: &str, column: &str) -> Result<bool, DbError> {
        let sql = match self.engine() {
            Engine::Sqlite => "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            Engine::Postgres => {
                "SELECT COUNT(*) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 AND column_name = ?2"
            }
        };
        Ok(self.query_one(sql, params![table, column])?.get::<i64>(0)? > 0)
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// Applies the migrations a database lacks, in order, in one
/// transaction, each version recorded in `schema_version`: `steps[i]` is
/// version `i + 1`. Two processes migrating at once take turns (SQLite's
/// write lock; a PostgreSQL transaction lock on the schema). Returns the
/// versions applied. A database a newer build brought past the versions
/// `steps` knows is refused, untouched: this build would misread what
/// the newer one writes.
pub fn migrate(db: &Db, steps: &[Migration]) -> Result<Vec<u32>, DbError> {
    db.transaction(|db| {
        if db.engine() == Engine::Postgres {
            db.query_one(
                "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(1, hashtext(current_schema()))) l",
                params![],
            )?;
        }
        db.batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL
            )",
        )?;
        let newest: u32 = db
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                params![],
            )?
            .get(0)?;
        let known = u32::try_from(steps.len()).unwrap_or(u32::MAX);
        if newest > known {
            return Err(DbError::Refused(format!(
                "a newer dcms-bulk has brought this database to version {newest} of its tables, and \
                 this one knows versions up to {known}: use the newer dcms-bulk (an older one must \
                 not write where a newer one keeps its records)"
            )));
        }
        let mut applied = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let version = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let done = db
                .query_opt(
                    "SELECT version FROM schema_version WHERE version = ?1",
                    params![version],
                )?
                .is_some();
            if done {
                continue;
            }
            (step.apply)(db)?;
            db.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                params![version, crate::clock::now()],
            )?;
            applied.push(version);
        }
        Ok(applied)
    })
}

/// The newest version recorded, 0 for none.
pub fn version(db: &Db) -> Result<u32, DbError> {
    if !db.has_table("schema_version")? {
        return Ok(0);
    }
    db.query_one(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        params![],
    )?
    .get(0)
}

/// One migration: what it does to a database of either engine.
pub struct Migration {
    pub apply: fn(&Db) -> Result<(), DbError>,
}

/// Copies `table`'s `columns` from `from` to `to`, `page` rows read at a
/// time in the order of its key `order`; how many rows.
pub fn copy_in_pages(
    from: &Db,
    to: &Db,
    (table, columns, order): (&str, &str, &str),
    page: i64,
) -> Result<u64, DbError> {
    let width = columns.split(',').count();
    let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        marks.join(", ")
    );
    // Each page goes on from the last key read (not an offset, which
    // would read every earlier row again).
    let keys = order.split(',').count();
    let after: Vec<String> = (2..2 + keys).map(|i| format!("?{i}")).collect();
    let first = format!("SELECT {columns}, {order} FROM {table} ORDER BY {order} LIMIT ?1");
    let next = format!(
        "SELECT {columns}, {order} FROM {table} WHERE ({order}) > ({}) ORDER BY {order} LIMIT ?1",
        after.join(", ")
    );
    let mut copied = 0_u64;
    let mut last: Option<Vec<Value>> = None;
    loop {
        let rows = match &last {
            None => from.query(&first, params![page])?,
            Some(key) => {
                let mut p = params![page];
                p.extend(key.iter().cloned());
                from.query(&next, p)?
            }
        };
        for r in &rows {
            let values: Vec<Value> = (0..width)
                .map(|i| r.get::<Value>(i))
                .collect::<Result<_, _>>()?;
            to.execute(&insert, values)?;
            copied += 1;
        }
        match rows.last() {
            Some(r) if (rows.len() as i64) == page => {
                last = Some(
                    (width..width + keys)
                        .map(|i| r.get::<Value>(i))
                        .collect::<Result<_, _>>()?,
                );
            }
            _ => return Ok(copied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_copied_whole_a_page_at_a_time_by_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Db::open_file(&dir.path().join("a.sqlite")).unwrap(),
            Db::open_file(&dir.path().join("b.sqlite")).unwrap(),
        );
        let table = "CREATE TABLE t (k TEXT, n INTEGER, v TEXT, PRIMARY KEY (k, n)) WITHOUT ROWID";
        a.batch(table).unwrap();
        b.batch(table).unwrap();
        for k in ["x", "y"] {
            for n in 0..13_i64 {
                a.execute(
                    "INSERT INTO t VALUES (?1, ?2, ?3)",
                    params![k, n, format!("{k}{n}")],
                )
                .unwrap();
            }
        }
        // 26 rows, pages of 10 and of 13 (a last page that is full).
        for page in [10, 13] {
            b.batch("DELETE FROM t").unwrap();
            assert_eq!(
                copy_in_pages(&a, &b, ("t", "k, n, v", "k, n"), page).unwrap(),
                26
            );
            let rows = b.query("SELECT v FROM t ORDER BY k, n", params![]).unwrap();
            let got: Vec<String> = rows.iter().map(|r| r.get(0).unwrap()).collect();
            let want: Vec<String> = ["x", "y"]
                .iter()
                .flat_map(|k| (0..13).map(move |n| format!("{k}{n}")))
                .collect();
            assert_eq!(got, want, "pages of {page}");
        }
    }
}
