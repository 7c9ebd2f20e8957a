//! Opening the engine: from an API's settings (however a face resolved
//! them: flags, profile, a web form) to a client, the API's ledger, the
//! sending options and a runtime whose stop signal Ctrl-C and SIGTERM
//! reach. What happens on the way is told as [`Event`]s, for the face to
//! show as it shows things (log lines, a page).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::dcms::{self, Client, ClientOpts, CreateFields, Credentials, TlsOpts, check_base_url};
use crate::error::{Error, Result};
use crate::sandbox::{Sandbox, SandboxOpts};
use crate::submit::{Destination, Ledger, Stop, Stopper, SubmitOpts, Tier};

/// The API settings, resolved: where the API is, who we are, and the
/// profile's choices.
pub struct Api {
    pub base_url: String,
    pub tenant: String,
    pub auth: Option<Credentials>,
    pub tls: TlsOpts,
    pub proxy: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Where each setting came from (`base_url` → `flag`, `profile uat`
    /// ...), for `doctor`; never a secret's value.
    pub sources: Vec<(&'static str, String)>,
    /// Where the ledgers are, unless `ledger_db` names a database.
    pub journal_dir: PathBuf,
    /// The PostgreSQL database of the ledgers, shared by hosts.
    pub ledger_db: Option<crate::db::PgTarget>,
    /// The name this host's runs are recorded under (its host name by
    /// default).
    pub host_id: Option<String>,
    /// Ask the API which orders it holds before sending.
    pub precheck: bool,
    /// The profile's rate tier.
    pub tier: Option<Tier>,
    /// The create body's field names (the profile's `[create_fields]`).
    pub create_fields: CreateFields,
    /// The profile's `final_statuses`.
    pub final_statuses: Option<Vec<String>>,
    /// The profile's name, if one was used.
    pub profile: Option<String>,
    /// Keeps the in-process sandbox running, and its temporary ledgers.
    pub(crate) sandbox: Option<(Sandbox, Option<tempfile::TempDir>)>,
}

impl Api {
    /// The built-in simulator on a free port, its ledger in `journal_dir`
    /// or, without one, in a temporary folder removed at the end.
    pub fn sandbox(tenant: String, journal_dir: Option<PathBuf>, precheck: bool) -> Result<Api> {
        let sandbox = Sandbox::start(SandboxOpts::default())?;
        let base_url = sandbox.base_url().to_owned();
        let (journal_dir, tmp) = match journal_dir {
            Some(d) => (d, None),
            None => {
                let tmp = tempfile::tempdir().map_err(|e| Error::io("journal folder", e))?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        Ok(Api {
            base_url,
            tenant,
            auth: None,
            tls: TlsOpts::default(),
            proxy: None,
            headers: Vec::new(),
            sources: vec![("base_url", "--sandbox".into())],
            journal_dir,
            ledger_db: None,
            host_id: None,
            precheck,
            tier: None,
            create_fields: CreateFields::default(),
            final_statuses: None,
            profile: None,
            sandbox: Some((sandbox, tmp)),
        })
    }

    /// Where the ledgers are: the shared database, else the folder.
    pub fn store(&self) -> crate::submit::ledger::Store {
        match &self.ledger_db {
            Some(target) => crate::submit::ledger::Store::Server(target.clone()),
            None => crate::submit::ledger::Store::Dir(self.journal_dir.clone()),
        }
    }

    /// Whether this is the built-in simulator.
    pub fn is_sandbox(&self) -> bool {
        self.sandbox.is_some()
    }

    /// The HTTP client for this API.
    pub fn client(&self, timeouts: Timeouts) -> Result<Client> {
        Client::new(&ClientOpts {
            base_url: check_base_url(&self.base_url, true).map_err(Error::Usage)?,
            tenant: self.tenant.clone(),
            auth: self.auth.clone(),
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            proxy: self.proxy.clone(),
            connect_timeout: timeouts.connect,
            timeout: timeouts.total,
        })
        .map_err(Error::Usage)
    }

    /// The rate and burst to send at: as `rate` asks, the profile's tier
    /// when it leaves it open, else none to this machine and the standard
    /// tier to any other.
    pub fn limits(&self, rate: Rate, on: &dyn Fn(Event<'_>)) -> (Option<f64>, Option<f64>) {
        let tier = match rate {
            Rate::Given { rate, burst } => return (Some(rate), burst),
            Rate::Unlimited => return (None, None),
            Rate::Tier(t) => Some(t),
            Rate::Profile => self.tier,
        };
        let tier = match tier {
            Some(t) => t,
            None if url::Url::parse(&self.base_url).is_ok_and(|u| dcms::is_loopback(&u)) => {
                return (None, None);
            }
            None => {
                on(Event::StandardTier);
                Tier::Standard
            }
        };
        let (rate, burst) = tier.limits();
        on(Event::Tier {
            name: tier.name(),
            rate,
            burst,
        });
        (Some(rate), Some(burst))
    }
}

/// How long a call may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// The rate asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// A rate (and burst) given.
    Given { rate: f64, burst: Option<f64> },
    /// A tier given.
    Tier(Tier),
    /// No limit.
    Unlimited,
    /// The profile's tier, else the default for the API's host.
    Profile,
}

/// What opening the engine (and, later, running it) has to tell.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Sending to this API.
    Destination {
        base_url: &'a str,
        tenant: &'a str,
        profile: Option<&'a str>,
    },
    /// Another run holds the ledger: waiting for it.
    LedgerBusy {
        base_url: &'a str,
        tenant: &'a str,
        lock: &'a Path,
    },
    /// The ledger in use.
    Ledger { path: &'a Path },
    /// No rate given: the API guide's standard tier.
    StandardTier,
    /// The tier sent at.
    Tier {
        name: &'static str,
        rate: f64,
        burst: f64,
    },
}

impl Event<'_> {
    /// A detail (shown when asked for), or news everyone is told.
    pub fn is_detail(&self) -> bool {
        matches!(self, Event::Ledger { .. } | Event::Tier { .. })
    }
}

/// What every batch of one command shares: where it sends, its ledger,
/// how it sends, and the stop signal.
pub struct Engine {
    pub runtime: tokio::runtime::Runtime,
    pub ledger: Ledger,
    pub client: Client,
    pub opts: SubmitOpts,
    pub stopper: Arc<Stopper>,
    pub tenant: String,
    pub base_url: String,
    /// The config file's profile that named the API, if one did.
    pub profile: Option<String>,
    /// The create body's field names.
    pub fields: CreateFields,
    /// This host's folder for the records of tries to be repeated (beside
    /// the ledger's file, or in the journal folder when the ledger is a
    /// shared database).
    pub history: PathBuf,
}

impl Engine {
    /// The batch engine for `api`: its client, its ledger (waiting, and
    /// saying so, while another run holds it), the sending options with
    /// the API's rate and pre-check, and a runtime with Ctrl-C / SIGTERM
    /// wired to its stop signal.
    pub fn open(
        api: &Api,
        mut opts: SubmitOpts,
        rate: Rate,
        timeouts: Timeouts,
        on: &dyn Fn(Event<'_>),
    ) -> Result<Engine> {
        if !api.is_sandbox() {
            on(Event::Destination {
                base_url: &api.base_url,
                tenant: &api.tenant,
                profile: api.profile.as_deref(),
            });
        }
        opts.precheck = opts.precheck && api.precheck;
        (opts.rate, opts.burst) = api.limits(rate, on);
        let client = api.client(timeouts)?;
        let dest = Destination::new(&api.tenant, &api.base_url);
        let mut ledger = Ledger::open_in(&api.store(), &dest, true, |lock| {
            on(Event::LedgerBusy {
                base_url: &dest.base_url,
                tenant: &dest.tenant,
                lock,
            });
        })?;
        if let Some(host) = &api.host_id {
            ledger.set_host(host);
        }
        on(Event::Ledger {
            path: ledger.path(),
        });
        let stopper = Arc::new(Stopper::default());
        Ok(Engine {
            runtime: runtime(&stopper)?,
            ledger,
            client,
            opts,
            stopper,
            tenant: api.tenant.clone(),
            base_url: api.base_url.clone(),
            profile: api.profile.clone(),
            fields: api.create_fields.clone(),
            history: api
                .journal_dir
                .join(dest.file_name())
                .with_extension("history"),
        })
    }
}

/// A runtime for the sends, with Ctrl-C / SIGTERM wired to `stopper`.
pub fn runtime(stopper: &Arc<Stopper>) -> Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dcms-send")
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let stopper = stopper.clone();
    runtime.spawn(async move {
        stop_signal().await;
        stopper.stop(Stop::Interrupted);
    });
    Ok(runtime)
}

/// Ctrl-C, or SIGTERM on Unix.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
