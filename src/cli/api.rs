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
use crate::dcms::{
    self, Client, ClientOpts, CreateFields, Credentials, Secret, TlsOpts, check_base_url,
};
use crate::error::{Error, Result};
use crate::sandbox::{Sandbox, SandboxOpts};
use crate::submit::{Destination, Ledger, RetryPolicy, Stop, Stopper, SubmitOpts, Tally, Tier};

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

    #[command(flatten)]
    pub profile: ProfileArgs,

    /// Send to a DCMS simulator started inside this process (nothing leaves
    /// the machine); any configured base URL is not used
    #[arg(long, conflicts_with = "base_url")]
    pub sandbox: bool,

    /// Allow plain http:// to a host other than this machine
    #[arg(long)]
    pub allow_insecure_http: bool,

    /// Log in as this user (POST /api/authenticate) instead of a fixed
    /// token; the password comes from DCMS_PASSWORD or --password-file
    #[arg(
        long,
        env = "DCMS_USERNAME",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub username: Option<String>,

    /// File holding the login password [default: DCMS_PASSWORD, then
    /// DCMS_PASSWORD_FILE, then the profile's password_file]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Where to log in [default: the base URL's origin + /api/authenticate]
    #[arg(long, value_name = "URL")]
    pub login_url: Option<String>,

    /// PEM file of CA certificates to trust besides the platform's (a
    /// private CA); verification is never turned off
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// PEM client certificate, for gateways that require mutual TLS
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// Proxy for every call [default: HTTPS_PROXY / HTTP_PROXY, except
    /// hosts in NO_PROXY]
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Extra header on every call, 'Name: value' (repeatable; also the
    /// profile's [headers] table)
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

/// Which profile of which config file.
#[derive(Debug, Args)]
pub struct ProfileArgs {
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
}

impl ProfileArgs {
    /// The profile's create body field names (defaults without one).
    pub fn create_fields(&self) -> Result<CreateFields> {
        create_fields(self.config.as_deref(), self.profile.as_deref())
    }

    /// Whether the profile says `warnings = "refuse"`.
    pub fn refuses_warnings(&self) -> Result<bool> {
        let (p, _) = read_profile(self.config.as_deref(), self.profile.as_deref())?;
        Ok(p.warnings == Some(crate::rules::Warnings::Refuse))
    }
}

/// How to send.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct SendArgs {
    /// Requests in flight at most
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    /// Requests per second over all workers [default: the tier's; no limit
    /// to this machine]
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Requests at once within --rate [default: one second's worth]
    #[arg(long, value_name = "N", requires = "rate")]
    pub burst: Option<f64>,

    /// The tenant's rate tier from the API guide: standard (100/s, bursts
    /// of 200) or high (500/s, 1,000); `none` for no limit [default: the
    /// profile's tier; standard for an API on another machine]
    #[arg(long, value_name = "TIER", conflicts_with = "rate")]
    pub tier: Option<TierArg>,

    /// Start no call after this long (e.g. 2h): what is left is FAILED
    /// NOT_SUBMITTED and the run exits 4; a re-run resumes
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<Duration>,

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

/// `--tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierArg {
    Standard,
    High,
    None,
}

pub(super) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
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
    username: Option<String>,
    password_file: Option<PathBuf>,
    login_url: Option<String>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    proxy: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The tenant's rate tier.
    tier: Option<Tier>,
    /// The create body's undocumented field names.
    create_fields: Option<CreateFields>,
    /// Order statuses `status --wait` takes as final.
    final_statuses: Option<Vec<String>>,
    /// Ask the API which orders it holds before sending (default true).
    precheck: Option<bool>,
    /// `refuse`: every warning refuses its row, as `--strict` does.
    warnings: Option<crate::rules::Warnings>,
    /// The profile's name (not a setting).
    #[serde(skip)]
    name: Option<String>,
}

/// The API settings after flags, environment and profile.
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
    /// Keeps the in-process sandbox running.
    _sandbox: Option<Sandbox>,
    /// Keeps the sandbox's temporary ledgers until the end.
    _journal_tmp: Option<tempfile::TempDir>,
    /// Where the ledgers are.
    pub journal_dir: PathBuf,
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

/// The create body's field names of a profile (defaults without one), for
/// `validate --print-orders` and the sandbox.
pub fn create_fields(config: Option<&Path>, profile: Option<&str>) -> Result<CreateFields> {
    let (p, _) = read_profile(config, profile)?;
    Ok(p.create_fields.unwrap_or_default())
}

/// The profile in use, and where it came from (for `doctor`).
fn read_profile(config: Option<&Path>, profile: Option<&str>) -> Result<(Profile, String)> {
    let (path, explicit) = match config {
        Some(p) => (p.to_path_buf(), true),
        None => match xdg("XDG_CONFIG_HOME", ".config") {
            Some(dir) => (dir.join("dcms-bulk").join("config.toml"), false),
            None => return Ok((Profile::default(), "no config file (no home folder)".into())),
        },
    };
    if !explicit && !path.exists() {
        if let Some(name) = profile {
            return Err(Error::Usage(format!(
                "--profile {name}: there is no config file ({} does not exist)",
                path.display()
            )));
        }
        return Ok((
            Profile::default(),
            format!("no config file ({} does not exist)", path.display()),
        ));
    }
    let text = crate::files::read_small(&path, 1 << 20)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let config: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let name = profile
        .map(str::to_owned)
        .or(config.default_profile.clone());
    let Some(name) = name else {
        return Ok((
            Profile::default(),
            format!("{}, no profile chosen", path.display()),
        ));
    };
    let found = config.profiles.get(&name).cloned().ok_or_else(|| {
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
    })?;
    let found = Profile {
        name: Some(name.clone()),
        ..found
    };
    Ok((found, format!("{}, profile {name}", path.display())))
}

/// A token or password from a file: trimmed, not empty, bounded, a
/// regular file. Readable by other users: a warning.
fn read_secret_file(path: &Path, what: &str, console: Console) -> Result<Secret> {
    let problem = |e: std::io::Error| Error::Usage(format!("{what} file {}: {e}", path.display()));
    let meta = crate::files::regular(path).map_err(problem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !console.quiet {
            tracing::warn!(
                event = "secret_readable",
                "dcms-bulk: warning: {what} file {} can be read by other users (mode {mode:03o}); chmod 600 it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, console);
    let text = crate::files::read_small(path, 64 * 1024).map_err(problem)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "{what} file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Secret::new(secret))
}

/// The first setting given, by flag, environment or profile, with where
/// it came from.
fn first<T>(
    options: impl IntoIterator<Item = (Option<T>, &'static str)>,
) -> Option<(T, &'static str)> {
    options
        .into_iter()
        .find_map(|(v, from)| v.map(|v| (v, from)))
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.trim().is_empty())
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
}

/// `Name: value` of `--header`.
fn parse_header(text: &str) -> Result<(String, String)> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(Error::Usage(format!(
            "--header `{text}`: expected 'Name: value'"
        ))),
    }
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
        if self.sandbox {
            return self.sandbox_api(send, console);
        }
        let (profile, config) = read_profile(
            self.profile.config.as_deref(),
            self.profile.profile.as_deref(),
        )?;
        let (base_url, tenant) = self.destination(&profile, fallback)?;
        let url = check_base_url(&base_url, self.allow_insecure_http).map_err(Error::Usage)?;
        let mut sources = self.sources(config, &profile, &base_url, &tenant);
        let auth = self.credentials(&profile, &url, console, &mut sources)?;
        let tls = self.tls(&profile, &mut sources)?;
        let proxy = first([
            (self.proxy.clone(), "--proxy"),
            (profile.proxy.clone(), "profile proxy"),
        ]);
        if let Some((p, from)) = &proxy {
            sources.push(("proxy", format!("{p} ({from})")));
        }
        let headers = self.headers(&profile, &mut sources)?;
        let journal_dir = send.journal_dir.clone().unwrap_or_else(|| {
            xdg("XDG_STATE_HOME", ".local/state").map_or_else(
                || PathBuf::from(".dcms-bulk/journals"),
                |d| d.join("dcms-bulk").join("journals"),
            )
        });
        Ok(Api {
            base_url: url.to_string(),
            tenant,
            auth,
            tls,
            proxy: proxy.map(|(p, _)| p),
            headers,
            sources,
            _sandbox: None,
            _journal_tmp: None,
            journal_dir,
            precheck: !send.no_precheck && profile.precheck.unwrap_or(true),
            tier: profile.tier,
            create_fields: profile.create_fields.clone().unwrap_or_default(),
            final_statuses: profile.final_statuses.clone(),
            profile: profile.name.clone(),
        })
    }

    /// The base URL and tenant: the flags (or environment), the profile,
    /// or `fallback` (a report's run facts), in that order.
    fn destination(
        &self,
        profile: &Profile,
        fallback: Option<(&str, &str)>,
    ) -> Result<(String, String)> {
        let base_url = self
            .base_url
            .clone()
            .or(profile.base_url.clone())
            .or(fallback.map(|(url, _)| url.to_owned()))
            .ok_or_else(|| {
            Error::Usage(
                "no API to send to: give --base-url, set DCMS_BASE_URL, use a config profile, or try --sandbox"
                    .into(),
            )
        })?;
        let tenant = self
            .tenant
            .clone()
            .or(profile.tenant.clone())
            .or(fallback.map(|(_, t)| t.to_owned()))
            .ok_or_else(|| {
                Error::Usage(
                    "no tenant: give --tenant, set DCMS_TENANT, or use a config profile".into(),
                )
            })?;
        Ok((base_url, tenant))
    }

    /// Where the configuration, the base URL and the tenant came from.
    fn sources(
        &self,
        config: String,
        profile: &Profile,
        base_url: &str,
        tenant: &str,
    ) -> Vec<(&'static str, String)> {
        let from = |flag: bool, profile: bool| match (flag, profile) {
            (true, _) => "flag or environment",
            (false, true) => "profile",
            (false, false) => "the report's run facts",
        };
        let url_from = from(self.base_url.is_some(), profile.base_url.is_some());
        let tenant_from = from(self.tenant.is_some(), profile.tenant.is_some());
        vec![
            ("config", config),
            ("base_url", format!("{base_url} ({url_from})")),
            ("tenant", format!("{tenant} ({tenant_from})")),
        ]
    }

    /// `--sandbox`: the built-in simulator on a free port, its ledger in a
    /// temporary folder unless one is given.
    fn sandbox_api(&self, send: &SendArgs, console: Console) -> Result<Api> {
        let sandbox = Sandbox::start(SandboxOpts::default())?;
        let base_url = sandbox.base_url().to_owned();
        if !console.quiet {
            tracing::info!(
                event = "sandbox",
                "dcms-bulk: sending to the built-in sandbox at {base_url} (nothing leaves this machine)"
            );
        }
        let (journal_dir, tmp) = match send.journal_dir.clone() {
            Some(d) => (d, None),
            None => {
                let tmp = tempfile::tempdir().map_err(|e| Error::io("journal folder", e))?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        let tenant = self.tenant.clone().unwrap_or_else(|| "SANDBOX".into());
        Ok(Api {
            base_url,
            tenant,
            auth: None,
            tls: TlsOpts::default(),
            proxy: None,
            headers: Vec::new(),
            sources: vec![("base_url", "--sandbox".into())],
            _sandbox: Some(sandbox),
            _journal_tmp: tmp,
            journal_dir,
            precheck: !send.no_precheck,
            tier: None,
            create_fields: CreateFields::default(),
            final_statuses: None,
            profile: None,
        })
    }

    /// A token or a login, from the flags, the environment (the token
    /// itself before a file of it) or the profile, in that order; never
    /// both.
    fn credentials(
        &self,
        profile: &Profile,
        url: &url::Url,
        console: Console,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Option<Credentials>> {
        let token = first([
            (self.token_file.clone().map(Ok), "--token-file"),
            (env_text("DCMS_TOKEN").map(Err), "DCMS_TOKEN"),
            (env_path("DCMS_TOKEN_FILE").map(Ok), "DCMS_TOKEN_FILE"),
            (profile.token_file.clone().map(Ok), "profile token_file"),
        ]);
        let username = first([
            (self.username.clone(), "--username or DCMS_USERNAME"),
            (profile.username.clone(), "profile username"),
        ]);
        match (token, username) {
            (Some((_, t)), Some((_, u))) => Err(Error::Usage(format!(
                "both a token ({t}) and a login ({u}) are configured; use one"
            ))),
            (Some((given, from)), None) => {
                sources.push(("token", from.to_string()));
                Ok(Some(Credentials::Token(match given {
                    Ok(file) => read_secret_file(&file, "token", console)?,
                    Err(text) => Secret::new(text.trim()),
                })))
            }
            (None, Some((username, from))) => {
                sources.push(("username", from.to_string()));
                self.login(profile, url, username, console, sources)
                    .map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// A login as `username`: its password and where it is sent.
    fn login(
        &self,
        profile: &Profile,
        url: &url::Url,
        username: String,
        console: Console,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Credentials> {
        let password = first([
            (self.password_file.clone().map(Ok), "--password-file"),
            (env_text("DCMS_PASSWORD").map(Err), "DCMS_PASSWORD"),
            (env_path("DCMS_PASSWORD_FILE").map(Ok), "DCMS_PASSWORD_FILE"),
            (
                profile.password_file.clone().map(Ok),
                "profile password_file",
            ),
        ]);
        let Some((given, from)) = password else {
            return Err(Error::Usage(format!(
                "a login as `{username}` needs a password: set DCMS_PASSWORD, or give --password-file, DCMS_PASSWORD_FILE or the profile's password_file"
            )));
        };
        sources.push(("password", from.to_string()));
        let password = match given {
            Ok(file) => read_secret_file(&file, "password", console)?,
            Err(text) => Secret::new(text),
        };
        let (login, from) = first([
            (self.login_url.clone(), "--login-url"),
            (profile.login_url.clone(), "profile login_url"),
        ])
        .unwrap_or_else(|| (String::new(), "default: the base URL's origin"));
        let login_url = if login.is_empty() {
            url.join("/api/authenticate")
                .map_err(|e| Error::Usage(format!("login URL: {e}")))?
        } else {
            check_base_url(&login, self.allow_insecure_http).map_err(Error::Usage)?
        };
        sources.push(("login_url", format!("{login_url} ({from})")));
        Ok(Credentials::Login {
            url: login_url,
            username,
            password,
        })
    }

    /// The CA file and client certificate, from the flags or the profile.
    fn tls(&self, profile: &Profile, sources: &mut Vec<(&'static str, String)>) -> Result<TlsOpts> {
        let mut pick = |flag: &Option<PathBuf>, prof: &Option<PathBuf>, name: &'static str| {
            let found = first([(flag.clone(), "flag"), (prof.clone(), "profile")]);
            if let Some((p, from)) = &found {
                sources.push((name, format!("{} ({from})", p.display())));
            }
            found.map(|(p, _)| p)
        };
        let tls = TlsOpts {
            ca_file: pick(&self.ca_file, &profile.ca_file, "ca_file"),
            client_cert: pick(&self.client_cert, &profile.client_cert, "client_cert"),
            client_key: pick(&self.client_key, &profile.client_key, "client_key"),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(Error::Usage(
                "a client certificate needs its key, and a key its certificate (client_cert, client_key)".into(),
            ));
        }
        Ok(tls)
    }

    /// The profile's `[headers]`, then the `--header` flags.
    fn headers(
        &self,
        profile: &Profile,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Vec<(String, String)>> {
        let mut headers: Vec<(String, String)> = profile.headers.clone().into_iter().collect();
        for h in &self.headers {
            headers.push(parse_header(h)?);
        }
        if !headers.is_empty() {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            sources.push(("headers", names.join(", ")));
        }
        Ok(headers)
    }
}

impl Api {
    /// The batch engine for this API: its client, its ledger (waiting,
    /// and saying so, while another run holds it), the sending options,
    /// and a runtime with Ctrl-C / SIGTERM wired to its stop signal.
    pub fn engine(&self, send: &SendArgs, console: Console) -> Result<Engine> {
        if !console.quiet && self._sandbox.is_none() {
            tracing::info!(
                event = "destination",
                base_url = self.base_url.as_str(),
                tenant = self.tenant.as_str(),
                profile = self.profile.as_deref(),
                "dcms-bulk: sending to {} as tenant {}{}",
                self.base_url,
                self.tenant,
                self.profile
                    .as_deref()
                    .map_or(String::new(), |p| format!(" (profile {p})"))
            );
        }
        let mut opts = send.to_opts()?;
        opts.precheck = self.precheck;
        (opts.rate, opts.burst) = self.limits(send, console);
        let client = self.client(send)?;
        let dest = Destination::new(&self.tenant, &self.base_url);
        let ledger = Ledger::open(&self.journal_dir, &dest, true, |lock| {
            if !console.quiet {
                tracing::info!(
                    event = "ledger_busy",
                    "dcms-bulk: another dcms-bulk run is sending to {} (tenant {}); waiting for it to end (lock {})",
                    dest.base_url,
                    dest.tenant,
                    lock.display()
                );
            }
        })?;
        if console.verbose {
            tracing::info!(
                event = "ledger",
                "dcms-bulk: ledger {}",
                ledger.path().display()
            );
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
            profile: self.profile.clone(),
            fields: self.create_fields.clone(),
        })
    }

    /// The rate and burst to send at: `--rate`, else `--tier` or the
    /// profile's tier, else none to this machine and the standard tier to
    /// any other (said on the console).
    pub fn limits(&self, send: &SendArgs, console: Console) -> (Option<f64>, Option<f64>) {
        if send.rate.is_some() {
            return (send.rate, send.burst);
        }
        let tier = match send.tier {
            Some(TierArg::None) => return (None, None),
            Some(TierArg::Standard) => Some(Tier::Standard),
            Some(TierArg::High) => Some(Tier::High),
            None => self.tier,
        };
        let tier = match tier {
            Some(t) => t,
            None if url::Url::parse(&self.base_url).is_ok_and(|u| dcms::is_loopback(&u)) => {
                return (None, None);
            }
            None => {
                if !console.quiet {
                    tracing::info!(
                        event = "tier",
                        "dcms-bulk: no rate given: sending at the API guide's standard tier (100 requests/s, bursts of 200); set --rate, --tier or the profile's tier to change it"
                    );
                }
                Tier::Standard
            }
        };
        let (rate, burst) = tier.limits();
        if console.verbose {
            tracing::info!(
                event = "tier",
                "dcms-bulk: {} tier: {rate} requests/s, bursts of {burst}",
                tier.name()
            );
        }
        (Some(rate), Some(burst))
    }

    /// The HTTP client for this API.
    pub fn client(&self, send: &SendArgs) -> Result<Client> {
        Client::new(&ClientOpts {
            base_url: check_base_url(&self.base_url, true).map_err(Error::Usage)?,
            tenant: self.tenant.clone(),
            auth: self.auth.clone(),
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            proxy: self.proxy.clone(),
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
        if let Some(b) = self.burst
            && !(b >= 1.0 && b.is_finite())
        {
            return Err(Error::Usage("--burst must be 1 or more".into()));
        }
        Ok(SubmitOpts {
            concurrency: self.concurrency,
            rate: self.rate,
            burst: self.burst,
            deadline: self.deadline,
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
        super::stop_signal().await;
        stopper.stop(Stop::Interrupted);
    });
    Ok(runtime)
}

/// `accepted 3 · rejected 0 · failed 1 · skipped 0`.
fn tally_counts(t: &Tally) -> String {
    format!(
        "accepted {} · rejected {} · failed {} · skipped {}",
        t.accepted.load(Ordering::Relaxed),
        t.rejected.load(Ordering::Relaxed),
        t.failed.load(Ordering::Relaxed),
        t.skipped.load(Ordering::Relaxed)
    )
}

/// How long `left` orders take at `rate` a second, to the second; none
/// before the first is done.
fn eta(left: u64, rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs((left as f64 / rate).ceil() as u64))
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
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(orders);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} · {msg} · {rate} · ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                // indicatif's own {per_sec} has four decimals.
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1} orders/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_owned());
            let b = bar.clone();
            let task = runtime.spawn(async move {
                loop {
                    b.set_position(tally.done.load(Ordering::Relaxed));
                    b.set_message(tally_counts(&tally));
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
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                let eta = eta(orders.saturating_sub(done), rate);
                tracing::info!(
                    event = "progress",
                    file = name,
                    done,
                    total = orders,
                    rate = rate.round(),
                    eta_s = eta.map(|e| e.as_secs()),
                    "{name}: {done}/{orders} done ({}), {rate:.0} orders/s, ETA {}",
                    tally_counts(&tally),
                    eta.map_or("unknown".into(), |e| humantime::format_duration(e)
                        .to_string())
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
        tracing::info!(event = "note", file = name, "{name}: {note}");
    }
    let f = &done.facts;
    let (c, s) = (f.counts, f.sent.unwrap_or_default());
    let not_sent = if s.not_sent > 0 {
        format!(", {} not sent", s.not_sent)
    } else {
        String::new()
    };
    let decided = if s.decided > 0 {
        format!(", {} accepted by a person's decision", s.decided)
    } else {
        String::new()
    };
    let mut line = format!(
        "{name}: {}: {} accepted{decided}, {} skipped (done before), {} rejected, {} failed{not_sent}, {} conflict, {} invalid",
        super::count(c.rows, "row"),
        s.accepted,
        s.skipped,
        s.rejected,
        s.failed - s.not_sent,
        s.conflict,
        c.invalid
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
        line += &format!("; {}", super::count(api.requests, "request"));
    }
    if let Some(r) = &f.report {
        line += &format!("; report: {}", r.path);
    }
    tracing::info!(
        event = "finished",
        file = name,
        code = done.code,
        rows = c.rows,
        accepted = s.accepted,
        skipped = s.skipped,
        rejected = s.rejected,
        failed = s.failed - s.not_sent,
        not_sent = s.not_sent,
        conflict = s.conflict,
        invalid = c.invalid,
        held = c.held,
        requests = f.api.as_ref().map(|a| a.requests),
        report = f.report.as_ref().map(|r| r.path.as_str()),
        "{line}"
    );
    if !done.rejections.is_empty() {
        let top: Vec<String> = done
            .rejections
            .iter()
            .map(|(code, n)| format!("{code} ({n})"))
            .collect();
        tracing::info!(
            event = "rejections",
            file = name,
            top = %top.join(", "),
            "{name}: refused most often: {}; the report's errors column says why for each",
            top.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base_url: &str, tier: Option<Tier>) -> Api {
        Api {
            base_url: base_url.into(),
            tenant: "ACME".into(),
            auth: None,
            tls: TlsOpts::default(),
            proxy: None,
            headers: Vec::new(),
            sources: Vec::new(),
            _sandbox: None,
            _journal_tmp: None,
            journal_dir: PathBuf::from("j"),
            precheck: true,
            tier,
            create_fields: CreateFields::default(),
            final_statuses: None,
            profile: None,
        }
    }

    fn send(args: &[&str]) -> SendArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            send: SendArgs,
        }
        use clap::Parser;
        Cli::parse_from([&["x"], args].concat()).send
    }

    #[test]
    fn the_rate_is_the_flag_the_tier_or_standard_away_from_this_machine() {
        let quiet = Console {
            quiet: true,
            verbose: false,
        };
        let far = api("https://dcms.bank.example/v1", None);
        assert_eq!(far.limits(&send(&[]), quiet), (Some(97.0), Some(100.0)));
        assert_eq!(
            far.limits(&send(&["--tier", "high"]), quiet),
            (Some(485.0), Some(500.0))
        );
        assert_eq!(far.limits(&send(&["--tier", "none"]), quiet), (None, None));
        assert_eq!(
            far.limits(&send(&["--rate", "20", "--burst", "5"]), quiet),
            (Some(20.0), Some(5.0))
        );
        let profile_high = api("https://dcms.bank.example/v1", Some(Tier::High));
        assert_eq!(
            profile_high.limits(&send(&[]), quiet),
            (Some(485.0), Some(500.0))
        );
        for near in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:1/v1",
            "http://[::1]:2/v1",
        ] {
            assert_eq!(
                api(near, None).limits(&send(&[]), quiet),
                (None, None),
                "{near}"
            );
        }
    }
}
