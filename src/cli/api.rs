//! The API part of the commands that talk to DCMS (`submit`, `cancel`,
//! `upgrade`, `status`): where the API is (flags, environment, config
//! profile, or the in-process sandbox), how to send, the interrupt signal,
//! and progress on the console.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::Console;
use crate::batch::{Engine, Finished};
use crate::dcms::{Client, ClientOpts, Secret, check_base_url};
use crate::error::{Error, Result};
use crate::sandbox::{Sandbox, SandboxOpts};
use crate::submit::{Destination, Ledger, RetryPolicy, Stop, Stopper, SubmitOpts, Tally};

/// Where the API is and who we are.
#[derive(Debug, Args)]
#[command(next_help_heading = "API")]
pub struct ApiArgs {
    /// The API's base URL, e.g. https://uat.example.com/dcms/v1
    #[arg(
        long,
        env = "DCMS_BASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub base_url: Option<String>,

    /// The DCMS tenant (sent as the `tenant` header)
    #[arg(long, env = "DCMS_TENANT", hide_env_values = true, value_name = "NAME")]
    pub tenant: Option<String>,

    /// File holding the bearer token. Without it: DCMS_TOKEN (the token),
    /// then DCMS_TOKEN_FILE, then the profile's token_file. The token is
    /// never printed or written anywhere
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Profile of the config file to use [default: its default_profile]
    #[arg(
        long,
        env = "DCMS_PROFILE",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub profile: Option<String>,

    /// Config file with named profiles [default:
    /// ~/.config/dcms-bulk/config.toml when it exists]
    #[arg(long, env = "DCMS_CONFIG", hide_env_values = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Send to a DCMS simulator started inside this process (nothing leaves
    /// the machine); any configured base URL is not used
    #[arg(long, conflicts_with = "base_url")]
    pub sandbox: bool,

    /// Allow plain http:// to a host other than this machine
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// How to send.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct SendArgs {
    /// Requests in flight at most
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    /// Requests per second over all workers [default: no limit]
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Retries of a call that failed in a way a retry can help (no answer,
    /// 429, 5xx)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,

    /// Time allowed for one request, answer included
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Time allowed to connect
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Stop (exit 4) after this many failed calls in a row (no answer or 5xx)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_failures: u32,

    /// Folder for the ledgers that make re-runs safe, one per API and
    /// tenant [default: ~/.local/state/dcms-bulk/journals; with --sandbox a
    /// temporary one]
    #[arg(
        long,
        env = "DCMS_JOURNAL_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub journal_dir: Option<PathBuf>,

    /// Do not ask the API (fetchCardOrderDetailsFromInventory) which orders
    /// it already holds before sending; rely on the ledger alone (also
    /// `precheck = false` in a profile)
    #[arg(long)]
    pub no_precheck: bool,
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    base_url: Option<String>,
    tenant: Option<String>,
    token_file: Option<PathBuf>,
    /// Ask the API which orders it holds before sending (default true).
    precheck: Option<bool>,
}

/// The API settings after flags, environment and profile.
pub struct Api {
    pub base_url: String,
    pub tenant: String,
    pub token: Option<Secret>,
    /// Keeps the in-process sandbox running.
    _sandbox: Option<Sandbox>,
    /// Keeps the sandbox's temporary ledgers until the end.
    _journal_tmp: Option<tempfile::TempDir>,
    /// Where the ledgers are.
    pub journal_dir: PathBuf,
    /// Ask the API which orders it holds before sending.
    pub precheck: bool,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(fallback)))
}

fn read_profile(api: &ApiArgs) -> Result<Profile> {
    let (path, explicit) = match &api.config {
        Some(p) => (p.clone(), true),
        None => match xdg("XDG_CONFIG_HOME", ".config") {
            Some(dir) => (dir.join("dcms-bulk").join("config.toml"), false),
            None => return Ok(Profile::default()),
        },
    };
    if !explicit && !path.exists() {
        if let Some(name) = &api.profile {
            return Err(Error::Usage(format!(
                "--profile {name}: there is no config file ({} does not exist)",
                path.display()
            )));
        }
        return Ok(Profile::default());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let config: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let name = api.profile.clone().or(config.default_profile.clone());
    let Some(name) = name else {
        return Ok(Profile::default());
    };
    config.profiles.get(&name).cloned().ok_or_else(|| {
        Error::Usage(format!(
            "config file {}: no profile `{name}` (profiles: {})",
            path.display(),
            config
                .profiles
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn read_token_file(path: &Path) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::Usage(format!(
            "token file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Secret::new(token))
}

impl ApiArgs {
    /// Second stage: where, who, which token.
    pub fn resolve(&self, send: &SendArgs, console: Console) -> Result<Api> {
        self.resolve_or(send, console, None)
    }

    /// [`ApiArgs::resolve`], with a base URL and tenant to fall back on
    /// when flags, environment and profile give none (an earlier run's).
    pub fn resolve_or(
        &self,
        send: &SendArgs,
        console: Console,
        fallback: Option<(&str, &str)>,
    ) -> Result<Api> {
        let journal_dir = send.journal_dir.clone();
        if self.sandbox {
            let sandbox = Sandbox::start(SandboxOpts::default())?;
            let base_url = sandbox.base_url().to_owned();
            if !console.quiet {
                eprintln!(
                    "dcms-bulk: sending to the built-in sandbox at {base_url} (nothing leaves this machine)"
                );
            }
            let (journal_dir, tmp) = match journal_dir {
                Some(d) => (d, None),
                None => {
                    let tmp = tempfile::tempdir().map_err(|e| Error::io("journal folder", e))?;
                    (tmp.path().to_owned(), Some(tmp))
                }
            };
            let tenant = self.tenant.clone().unwrap_or_else(|| "SANDBOX".into());
            return Ok(Api {
                base_url,
                tenant,
                token: None,
                _sandbox: Some(sandbox),
                _journal_tmp: tmp,
                journal_dir,
                precheck: !send.no_precheck,
            });
        }
        let profile = read_profile(self)?;
        let base_url = self
            .base_url
            .clone()
            .or(profile.base_url)
            .or(fallback.map(|(url, _)| url.to_owned()))
            .ok_or_else(|| {
            Error::Usage(
                "no API to send to: give --base-url, set DCMS_BASE_URL, use a config profile, or try --sandbox"
                    .into(),
            )
        })?;
        let url = check_base_url(&base_url, self.allow_insecure_http).map_err(Error::Usage)?;
        let tenant = self
            .tenant
            .clone()
            .or(profile.tenant)
            .or(fallback.map(|(_, t)| t.to_owned()))
            .ok_or_else(|| {
                Error::Usage(
                    "no tenant: give --tenant, set DCMS_TENANT, or use a config profile".into(),
                )
            })?;
        // Flag, then environment (the token itself before a file of it),
        // then profile.
        let env_token = std::env::var("DCMS_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let env_file = std::env::var_os("DCMS_TOKEN_FILE")
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        let token = match (&self.token_file, env_token, env_file, profile.token_file) {
            (Some(flag), ..) => Some(read_token_file(flag)?),
            (None, Some(t), ..) => Some(Secret::new(t.trim())),
            (None, None, Some(f), _) | (None, None, None, Some(f)) => Some(read_token_file(&f)?),
            (None, None, None, None) => None,
        };
        let journal_dir = match journal_dir {
            Some(d) => d,
            None => xdg("XDG_STATE_HOME", ".local/state")
                .map(|d| d.join("dcms-bulk").join("journals"))
                .unwrap_or_else(|| PathBuf::from(".dcms-bulk/journals")),
        };
        Ok(Api {
            base_url: url.to_string(),
            tenant,
            token,
            _sandbox: None,
            _journal_tmp: None,
            journal_dir,
            precheck: !send.no_precheck && profile.precheck.unwrap_or(true),
        })
    }
}

impl Api {
    /// The batch engine for this API: its client, its ledger (waiting,
    /// and saying so, while another run holds it), the sending options,
    /// and a runtime with Ctrl-C / SIGTERM wired to its stop signal.
    pub fn engine(&self, send: &SendArgs, console: Console) -> Result<Engine> {
        let mut opts = send.to_opts()?;
        opts.precheck = self.precheck;
        let client = self.client(send)?;
        let dest = Destination::new(&self.tenant, &self.base_url);
        let ledger = Ledger::open(&self.journal_dir, &dest, true, |lock| {
            if !console.quiet {
                eprintln!(
                    "dcms-bulk: another dcms-bulk run is sending to {} (tenant {}); waiting for it to end (lock {})",
                    dest.base_url,
                    dest.tenant,
                    lock.display()
                );
            }
        })
        .map_err(|e| Error::Usage(e.to_string()))?;
        if console.verbose {
            eprintln!("dcms-bulk: ledger {}", ledger.path().display());
        }
        let stopper = Arc::new(Stopper::default());
        Ok(Engine {
            runtime: runtime(&stopper)?,
            ledger,
            client,
            opts,
            stopper,
            tenant: self.tenant.clone(),
            base_url: self.base_url.clone(),
        })
    }

    /// The HTTP client for this API.
    pub fn client(&self, send: &SendArgs) -> Result<Client> {
        Client::new(&ClientOpts {
            base_url: check_base_url(&self.base_url, true).map_err(Error::Usage)?,
            tenant: self.tenant.clone(),
            token: self.token.clone(),
            connect_timeout: send.connect_timeout,
            timeout: send.timeout,
        })
        .map_err(Error::Usage)
    }
}

impl SendArgs {
    /// Second stage: checked sending options.
    pub fn to_opts(&self) -> Result<SubmitOpts> {
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(Error::Usage("--concurrency must be 1 to 256".into()));
        }
        if let Some(r) = self.rate
            && !(r > 0.0 && r.is_finite())
        {
            return Err(Error::Usage("--rate must be above 0".into()));
        }
        if self.retries > 20 {
            return Err(Error::Usage("--retries must be 20 or fewer".into()));
        }
        Ok(SubmitOpts {
            concurrency: self.concurrency,
            rate: self.rate,
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
            max_failures: self.max_failures,
            drain: Duration::from_secs(10),
            precheck: !self.no_precheck,
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
        interrupted().await;
        stopper.stop(Stop::Interrupted);
    });
    Ok(runtime)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn interrupted() {
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

/// A progress bar on a terminal; a log line every few seconds otherwise.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        name: &str,
        tally: Arc<Tally>,
        orders: u64,
        console: Console,
    ) -> Progress {
        if console.quiet || orders == 0 {
            return Progress {
                task: None,
                bar: None,
            };
        }
        let counts = |t: &Tally| {
            format!(
                "accepted {} · rejected {} · failed {} · skipped {}",
                t.accepted.load(Ordering::Relaxed),
                t.rejected.load(Ordering::Relaxed),
                t.failed.load(Ordering::Relaxed),
                t.skipped.load(Ordering::Relaxed)
            )
        };
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(orders);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} · {msg} · {per_sec} · ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_owned());
            let b = bar.clone();
            let task = runtime.spawn(async move {
                loop {
                    b.set_position(tally.done.load(Ordering::Relaxed));
                    b.set_message(counts(&tally));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            return Progress {
                task: Some(task),
                bar: Some(bar),
            };
        }
        let name = name.to_owned();
        let task = runtime.spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = tally.done.load(Ordering::Relaxed);
                let requests = tally.requests.load(Ordering::Relaxed);
                eprintln!(
                    "{name}: {done}/{orders} done ({}), {:.0} requests/s",
                    counts(&tally),
                    requests as f64 / started.elapsed().as_secs_f64().max(0.001)
                );
            }
        });
        Progress {
            task: Some(task),
            bar: None,
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Prints what became of a batch's rows (and orders), and the engine's
/// notes, unless `-q`.
pub fn print_finished(name: &str, done: &Finished, console: Console) {
    if console.quiet {
        return;
    }
    for note in &done.notes {
        eprintln!("{name}: {note}");
    }
    let f = &done.facts;
    let (c, s) = (f.counts, f.sent.unwrap_or_default());
    let mut line = format!(
        "{name}: {} rows: {} accepted, {} skipped (done before), {} rejected, {} failed, {} conflict, {} invalid",
        c.rows, s.accepted, s.skipped, s.rejected, s.failed, s.conflict, c.invalid
    );
    if let (Some(ready), Some(o)) = (c.orders, s.orders) {
        line += &format!(
            ", {} held; orders: {} accepted, {} skipped, {} rejected, {} failed, {} conflict, {} held",
            c.held,
            o.orders_accepted,
            o.orders_skipped,
            o.orders_rejected,
            o.orders_failed,
            o.orders_conflict,
            ready.orders_held
        );
    }
    if let Some(api) = &f.api {
        line += &format!("; {} requests", api.requests);
    }
    if let Some(r) = &f.report {
        line += &format!("; report: {}", r.path);
    }
    eprintln!("{line}");
}
