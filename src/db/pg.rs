//! The PostgreSQL engine: the `postgres` client on a thread of its own,
//! TLS by rustls, statements prepared once per connection.
//!
//! A server is named by a URL, `postgres://USER@HOST:PORT/DATABASE`, with
//! these parameters: `sslmode` (`disable`, `prefer` or `require`; a
//! required TLS connection always checks the server's certificate and
//! name), `sslrootcert` (a PEM file of the CA to trust instead of the
//! system's), `host` (a folder holding the server's Unix socket). The
//! password is never in the URL: it comes from the environment or a file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};

use super::{DbError, Row, Value};

/// A PostgreSQL server to connect to, as the user named it (the password
/// held apart, never shown).
#[derive(Clone)]
pub struct PgTarget {
    config: std::sync::Arc<Config>,
    shown: String,
    tls: Tls,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgTarget {
    /// Whether `text` names a PostgreSQL server rather than a folder.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The server `url` names, its password from `DCMS_LEDGER_PASSWORD`
    /// (where no profile gives a file for it).
    pub fn parse_with_env(url: &str) -> Result<PgTarget, String> {
        let password = std::env::var("DCMS_LEDGER_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        PgTarget::parse(url, password)
    }

    /// The server `url` names; `password` from the environment or a file.
    /// A URL holding a password is refused: it would show in process
    /// lists, shell histories and logs.
    pub fn parse(url: &str, password: Option<String>) -> Result<PgTarget, String> {
        let u = url::Url::parse(url).map_err(|e| format!("the ledger URL: {e}"))?;
        if !matches!(u.scheme(), "postgres" | "postgresql") {
            return Err("the ledger URL must start with postgres://".into());
        }
        if u.password().is_some() {
            return Err(
                "the ledger URL holds a password; give it in DCMS_LEDGER_PASSWORD or the \
                 profile's ledger_password_file instead"
                    .into(),
            );
        }
        let mut config = Config::new();
        config
            .application_name("dcms-bulk")
            .connect_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(Duration::from_secs(30));
        let (tls, ca_file, socket) = options(&u)?;
        let host = u.host_str().unwrap_or_default();
        let local = socket.is_some()
            || host.is_empty()
            || host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match &socket {
            Some(dir) => {
                config.host_path(dir);
            }
            None if host.is_empty() => {
                config.host_path("/var/run/postgresql");
            }
            None => {
                config.host(host.trim_start_matches('[').trim_end_matches(']'));
            }
        }
        config.port(u.port().unwrap_or(5432));
        let user = if u.username().is_empty() {
            "dcms".to_string()
        } else {
            percent(u.username())
        };
        config.user(&user);
        let dbname = u.path().trim_start_matches('/');
        config.dbname(if dbname.is_empty() { &user } else { dbname });
        if let Some(p) = password {
            config.password(p);
        }
        let tls = tls.unwrap_or(if local { Tls::Prefer } else { Tls::Require });
        let mut shown = u.clone();
        let _ = shown.set_password(None);
        Ok(PgTarget {
            config: std::sync::Arc::new(config),
            shown: shown.to_string(),
            tls,
            ca_file,
        })
    }

    fn client(&self) -> Result<Client, DbError> {
        let mut config = (*self.config).clone();
        let lost = |e: postgres::Error| DbError::Lost(format!("{self}: {}", describe(&e)));
        match self.tls {
            Tls::Disable => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                config.connect(NoTls).map_err(lost)
            }
            mode => {
                config.ssl_mode(if mode == Tls::Require {
                    postgres::config::SslMode::Require
                } else {
                    postgres::config::SslMode::Prefer
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
                config.connect(tls).map_err(lost)
            }
        }
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, DbError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| {
                        DbError::Refused(format!("the ledger's CA file {}: {e}", path.display()))
                    })?;
                roots.add_parsable_certificates(certs);
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Refused(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// The URL's parameters: `sslmode`, `sslrootcert` and `host` (a socket's
/// folder); any other is refused.
type Options = (Option<Tls>, Option<PathBuf>, Option<PathBuf>);

fn options(u: &url::Url) -> Result<Options, String> {
    let (mut tls, mut ca_file, mut socket) = (None, None, None);
    for (k, v) in u.query_pairs() {
        match &*k {
            "sslmode" => {
                tls = Some(match &*v {
                    "disable" => Tls::Disable,
                    "prefer" => Tls::Prefer,
                    "require" | "verify-ca" | "verify-full" => Tls::Require,
                    other => {
                        return Err(format!(
                            "the ledger URL's sslmode {other:?} is not one of disable, prefer, require"
                        ));
                    }
                })
            }
            "sslrootcert" => ca_file = Some(PathBuf::from(&*v)),
            "host" => socket = Some(PathBuf::from(&*v)),
            other => {
                return Err(format!(
                    "the ledger URL's parameter {other:?} is not known (sslmode, sslrootcert, host)"
                ));
            }
        }
    }
    Ok((tls, ca_file, socket))
}

fn percent(text: &str) -> String {
    url::form_urlencoded::parse(format!("u={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// A postgres error in words: the server's message, or what broke.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

fn error(e: &postgres::Error) -> DbError {
    if e.as_db_error().is_some() {
        let code = e.code().map(|c| c.code()).unwrap_or_default();
        // Class 57 (operator intervention: the server shutting down) and
        // 08 (connection exception) mean the server is going away.
        if code.starts_with("57") || code.starts_with("08") {
            return DbError::Lost(describe(e));
        }
        DbError::Refused(describe(e))
    } else {
        DbError::Lost(describe(e))
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `?1` → `$1`, outside quoted text.
fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&dollar(sql)).map_err(|e| error(&e))?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let s = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.client.execute(&s, &refs).map_err(|e| error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let s = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.client.query(&s, &refs).map_err(|e| error(&e))?;
        rows.iter().map(row_of).collect()
    }
}

fn row_of(r: &postgres::Row) -> Result<Row, DbError> {
    let bad = |e: postgres::Error| DbError::Refused(describe(&e));
    let mut out = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)
                .map_err(bad)?
                .map(|v| Value::Int(v.into())),
            Type::BYTEA => r
                .try_get::<_, Option<Vec<u8>>>(i)
                .map_err(bad)?
                .map(Value::Bytes),
            _ => r
                .try_get::<_, Option<String>>(i)
                .map_err(bad)?
                .map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// A connection on its own thread; each call waits for its answer.
pub(super) struct Handle {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shown: String,
}

impl Handle {
    pub(super) fn connect(target: &PgTarget, schema: &str, make: bool) -> Result<Handle, DbError> {
        let target = target.clone();
        let schema = schema.to_owned();
        let shown = target.to_string();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("dcms-postgres".into())
            .spawn(move || {
                let conn = target.client().and_then(|client| {
                    let mut conn = Conn {
                        client,
                        prepared: HashMap::new(),
                    };
                    use_schema(&mut conn, &schema, make)?;
                    Ok(conn)
                });
                let mut conn = match conn {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| DbError::Refused(format!("a thread for the database: {e}")))?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Handle {
                jobs: Some(jobs),
                thread: Some(thread),
                shown,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DbError::Lost(format!(
                "{shown}: the connection's thread ended"
            ))),
        }
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let gone = || DbError::Lost(format!("{}: the connection's thread ended", self.shown));
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    pub(super) fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, DbError> {
        let sql = sql.to_owned();
        self.call(move |c| c.execute(&sql, &params))
    }

    pub(super) fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let sql = sql.to_owned();
        self.call(move |c| c.query(&sql, &params))
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_owned();
        self.call(move |c| c.client.batch_execute(&sql).map_err(|e| error(&e)))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Works in `schema` from now on; makes it first if `make` (two hosts
/// making it at once: the second finds it made).
fn use_schema(conn: &mut Conn, schema: &str, make: bool) -> Result<(), DbError> {
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    if make {
        let made = conn
            .client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"));
        if let Err(e) = made {
            let exists = conn
                .client
                .query_one(
                    "SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1",
                    &[&schema],
                )
                .map_err(|e| error(&e))?
                .get::<_, i64>(0)
                > 0;
            if !exists {
                return Err(error(&e));
            }
        }
    }
    conn.client
        .batch_execute(&format!("SET search_path TO {quoted}"))
        .map_err(|e| error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            dollar("SELECT '?1' FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1' FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn a_url_names_its_server_and_never_holds_a_password() {
        let t = PgTarget::parse("postgres://dcms@db.bank:6543/ledger", Some("pw".into())).unwrap();
        assert_eq!(t.to_string(), "postgres://dcms@db.bank:6543/ledger");
        assert_eq!(t.tls, Tls::Require, "TLS is required off this machine");
        let local = PgTarget::parse("postgres://dcms@127.0.0.1/ledger", None).unwrap();
        assert_eq!(local.tls, Tls::Prefer);
        let e = PgTarget::parse("postgres://dcms:secret@db.bank/ledger", None).unwrap_err();
        assert!(
            e.contains("holds a password") && !e.contains("secret"),
            "{e}"
        );
        let e = PgTarget::parse("postgres://db.bank/l?sslmode=maybe", None).unwrap_err();
        assert!(e.contains("sslmode"), "{e}");
        let e = PgTarget::parse("postgres://db.bank/l?options=x", None).unwrap_err();
        assert!(e.contains("not known"), "{e}");
        assert!(PgTarget::is_url("postgresql://x/y") && !PgTarget::is_url("/var/lib/dcms"));
    }
}
