//! The local DCMS simulator: a real HTTP server (axum on tokio) that answers
//! the four endpoints dcms-bulk uses the way `shared/dcms-api.md` documents
//! them, chooses (and the manual documents, reference/sandbox.md) where the docs are silent, and
//! misbehaves on demand. It owns the server, its per-tenant store and its
//! faults; it knows nothing of sheets or reports.
//!
//! ```text
//! request → body limit → token → tenant → rate limit → fault plan → endpoint → store
//! ```
//!
//! [`Sandbox::start`] runs it on its own thread for tests and `--sandbox`;
//! [`serve`] runs it in the caller's runtime for `dcms-bulk sandbox`.

mod api;
mod delay;
mod envelope;
mod faults;
mod fields;
mod gateway;
mod inspect;
mod kits;
mod orders;
mod shared;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

pub use faults::{FaultApplies, FaultOpts, Latency};
pub use gateway::LoginUser;

pub use store::{Kit, KitSeed, read_kits};

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a stopping server waits for answers in flight.
const DRAIN: Duration = Duration::from_secs(3);

/// Everything the sandbox can be told. `Default` is a well-behaved server
/// on a free loopback port whose orders move only when told to.
#[derive(Debug, Clone)]
pub struct SandboxOpts {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// When set, every API call needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// When set, `POST /api/authenticate` logs this user in, and every API
    /// call needs a live token of that login.
    pub login: Option<LoginUser>,
    /// How long a login's token lives.
    pub token_ttl: Duration,
    /// Tokens that are not JWTs: their end shows only as a 401.
    pub opaque_tokens: bool,
    /// Exceptions in shape B (`errorCode`, `errorMessage`, `httpStatus`).
    pub exception_shape_b: bool,
    /// `Retry-After` as an HTTP date.
    pub retry_after_date: bool,
    /// Serve HTTPS with this certificate.
    pub tls: Option<TlsServer>,
    /// The create body's product field names (a profile's
    /// `[create_fields]`), so a rehearsal matches the real API.
    pub create_fields: crate::dcms::CreateFields,
    /// Each order moves one state on after this long; `None`: only
    /// `POST /_sandbox/advance` moves orders.
    pub advance_after: Option<Duration>,
    /// Share of orders (0..=1) that end FAILED instead of SUCCESS.
    pub failed_share: f64,
    /// Allow cancelling a PENDING order (the docs say it "may" be refused;
    /// refused by default).
    pub cancel_pending: bool,
    /// Seeds every random choice (faults, failed orders, card numbers).
    pub seed: u64,
    pub faults: FaultOpts,
    /// Kits read from a file; when given, tenants have only these.
    pub kits: Option<Vec<KitSeed>>,
    /// Kits generated per tenant when no kits file is given.
    pub generated_kits: u32,
    /// Most orders stored over all tenants; creates beyond are refused
    /// with 507 so memory stays bounded.
    pub max_orders: usize,
    /// Branch ids the tenant does not have: their creates are refused as
    /// invalid (a branch not yet set up at the bank).
    pub unknown_branches: Vec<String>,
    /// Log every request on stderr.
    pub verbose: bool,
    /// Behaviours a real DCMS may have where its docs are silent.
    pub quirks: Quirks,
}

/// Answers a real DCMS may give where its docs are silent, each off by
/// default (the sandbox's own choices are the safe ones). Tests turn them
/// on to prove the client stays exactly-once without the server's help.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `fetchStatus` of an unknown order answers HTTP 200 with
    /// `"result": null` instead of 404 `order.not.found`.
    pub unknown_as_null: bool,
    /// A create with an `orderId` the tenant already has is *accepted* and
    /// stored as one more order (counted in `creates`), not refused.
    pub accept_duplicates: bool,
    /// Lookups (`fetchStatus`, the inventory) return the order with every
    /// product's quantity one higher than was ordered.
    pub lookup_other_products: bool,
    /// A broken `fetchStatus`: every id, held or not, is answered HTTP 200
    /// with a null result.
    pub lookup_always_null: bool,
    /// A gateway whose policy forbids this client the lookups:
    /// `fetchStatus` and the inventory are answered 403.
    pub lookups_forbidden: bool,
}

impl Default for SandboxOpts {
    fn default() -> Self {
        SandboxOpts {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            login: None,
            token_ttl: Duration::from_secs(3600),
            opaque_tokens: false,
            exception_shape_b: false,
            retry_after_date: false,
            tls: None,
            create_fields: crate::dcms::CreateFields::default(),
            advance_after: None,
            failed_share: 0.0,
            cancel_pending: false,
            seed: 0,
            faults: FaultOpts::default(),
            kits: None,
            generated_kits: 100,
            max_orders: 2_000_000,
            unknown_branches: Vec::new(),
            verbose: false,
            quirks: Quirks::default(),
        }
    }
}

/// The sandbox's HTTPS: its certificate chain and key (PEM), and the CA
/// whose client certificates it requires, if any (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServer {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsServer {
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, SandboxError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let tls = |what: &PathBuf, e: &dyn std::fmt::Display| SandboxError::Tls {
            path: what.clone(),
            message: e.to_string(),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls(&self.cert, &e))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| tls(&self.key, &e))?;
        let builder = rustls::ServerConfig::builder();
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls(ca, &e))? {
                    roots
                        .add(cert.map_err(|e| tls(ca, &e))?)
                        .map_err(|e| tls(ca, &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| tls(ca, &e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| tls(&self.cert, &e))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the sandbox's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("kits file {path}: {message}")]
    Kits { path: PathBuf, message: String },
    #[error("TLS file {path}: {message}")]
    Tls { path: PathBuf, message: String },
}

impl From<SandboxError> for crate::error::Error {
    fn from(e: SandboxError) -> Self {
        crate::error::Error::Sandbox(e.to_string())
    }
}

/// Binds the listening socket (so a taken port is an error now, not later).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, SandboxError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| SandboxError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| SandboxError::Bind { addr, source })?;
    Ok(listener)
}

/// The base URL clients use for a bound listener, `/v1` included.
pub fn base_url(listener: &std::net::TcpListener, tls: bool) -> Result<String, SandboxError> {
    let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}/v1"))
}

/// The whole application: API under `/v1`, inspection under `/_sandbox`.
fn app(opts: SandboxOpts) -> (Router, Arc<shared::Shared>) {
    let state = Arc::new(shared::Shared::new(opts));
    let router = api::routes(state.clone()).merge(inspect::routes(state.clone()));
    (router, state)
}

/// Marks a response the connection should be closed for instead of sent.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

/// Serves until `shutdown` completes, then waits (at most a few seconds)
/// for answers in flight. Runs in the caller's tokio runtime.
pub async fn serve(
    listener: std::net::TcpListener,
    opts: SandboxOpts,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SandboxError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let acceptor = opts.tls.as_ref().map(TlsServer::acceptor).transpose()?;
    let (app, shared) = app(opts);
    let mut graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = shared.outage_asked.notified() => {
                let Some(pause) = faults::lock(&shared.outage).take() else { continue };
                // Nothing listens, and open connections are closed once
                // their answers are out: the API is gone for a while.
                drop(listener);
                let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut shutdown => return Ok(()),
                }
                listener = rebind(addr).await?;
                graceful = hyper_util::server::graceful::GracefulShutdown::new();
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: wait, go on.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let app = app.clone();
                match &acceptor {
                    None => serve_connection(stream, app, &graceful),
                    Some(acceptor) => {
                        let accept = acceptor.accept(stream);
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            // A client that never finishes the handshake
                            // (or fails it) is let go.
                            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), accept).await {
                                let connection = watcher.watch(connection(tls, app));
                                let _ = connection.await;
                            }
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

/// Listens on `addr` again after an outage; the port may take a moment to
/// be free.
async fn rebind(addr: SocketAddr) -> Result<tokio::net::TcpListener, SandboxError> {
    let mut tries = 0;
    loop {
        match bind(addr).and_then(|l| {
            tokio::net::TcpListener::from_std(l)
                .map_err(|source| SandboxError::Bind { addr, source })
        }) {
            Ok(l) => return Ok(l),
            Err(e) if tries >= 50 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
) {
    let connection = graceful.watch(connection(stream, app));
    tokio::spawn(async move {
        let _ = connection.await;
    });
}

/// One HTTP/1 connection on `io` (plain or TLS).
fn connection<I>(io: I, app: Router) -> impl hyper_util::server::graceful::GracefulConnection
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let response = match app.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // An error from the service makes hyper close the connection
            // without writing an answer.
            if response.extensions().get::<DropConnection>().is_some() {
                Err(DropConnection)
            } else {
                Ok(response)
            }
        }
    });
    // A client that connects and sends nothing is let go after a while
    // rather than held forever.
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service)
}

/// A sandbox running on a thread of its own, for tests and `--sandbox`.
/// Dropping it stops the server.
pub struct Sandbox {
    base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sandbox {
    /// Starts a sandbox on `opts.listen` (a free loopback port by default).
    pub fn start(opts: SandboxOpts) -> Result<Sandbox, SandboxError> {
        let listener = bind(opts.listen)?;
        let base_url = base_url(&listener, opts.tls.is_some())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dcms-sandbox")
            .enable_all()
            .build()
            .map_err(SandboxError::Runtime)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = crate::stage::apart("dcms-sandbox", move || {
            let _ = runtime.block_on(serve(listener, opts, async {
                let _ = stopped.await;
            }));
            // Hung answers still sleeping are abandoned here.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(SandboxError::Runtime)?;
        Ok(Sandbox {
            base_url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:PORT/_sandbox`, the inspection API.
    pub fn inspect_url(&self) -> String {
        format!("{}/_sandbox", self.base_url.trim_end_matches("/v1"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
