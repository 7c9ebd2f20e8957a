//! The API flags of the commands that talk to DCMS (`submit`, `cancel`,
//! `upgrade`, `status`, `watch`): where the API is and how to send, and
//! the engine they open, its events shown on the console. Where the
//! settings come from is `destination` (flags, environment, profile) and
//! `profile` (the config file and secrets); progress is `progress`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Console;
use super::profile::{create_fields, read_profile};
use crate::dcms::CreateFields;
pub use crate::engine::{Api, Engine, Event, Rate, Timeouts, runtime};
use crate::error::{Error, Result};
use crate::submit::{RetryPolicy, SubmitOpts, Tier};

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

    /// How long an approval holds, if the profile requires one before any
    /// order leaves (`approval = "required"`).
    pub fn approval(&self) -> Result<Option<Duration>> {
        let (p, _) = read_profile(self.config.as_deref(), self.profile.as_deref())?;
        if p.approval != Some(super::profile::ApprovalSetting::Required) {
            return Ok(None);
        }
        let valid = match &p.approval_valid_for {
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                Error::Usage(format!(
                    "profile setting approval_valid_for = {text:?}: {e}"
                ))
            })?,
            None => Duration::from_secs(24 * 3600),
        };
        Ok(Some(valid))
    }

    /// Where notices of a run's end go (the profile's `notify`).
    pub fn notify(&self, console: super::Console) -> Result<crate::notify::Settings> {
        let (p, _) = read_profile(self.config.as_deref(), self.profile.as_deref())?;
        p.notify.unwrap_or_default().settings(console)
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
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,

    /// Retries of a call that failed in a way a retry can help (no answer,
    /// 429, 5xx)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,

    /// Time allowed for one request, answer included
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Time allowed to connect
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
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

    /// The ledger database that hosts share: a PostgreSQL URL,
    /// postgres://USER@HOST:PORT/DATABASE (its password from
    /// DCMS_LEDGER_PASSWORD or the profile's ledger_password_file; TLS
    /// required off this machine) [default: SQLite files in --journal-dir]
    #[arg(
        long,
        env = "DCMS_LEDGER_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub ledger: Option<String>,

    /// The name this host's runs are recorded under in the ledger, and
    /// its leases of shared drop folders [default: the host name]
    #[arg(
        long,
        env = "DCMS_HOST_ID",
        hide_env_values = true,
        value_name = "NAME"
    )]
    pub host_id: Option<String>,

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

/// Four eyes for files sent to `api`, if the profile requires approval:
/// the files are filed for approval by this command line's user, and sent
/// once approved.
pub fn gate(
    profile: &ProfileArgs,
    send: &SendArgs,
    api: &crate::engine::Api,
) -> Result<Option<crate::service::approval::Gate>> {
    if profile.approval()?.is_none() {
        return Ok(None);
    }
    let access = crate::access::Access::open_in(&super::profile::access_of(
        &api.store(),
        send.journal_dir.as_deref(),
    ))?;
    Ok(Some(crate::service::approval::Gate::new(
        access,
        crate::access::Actor::command_line(crate::report::user()),
        format!("{} as tenant {}", api.base_url, api.tenant),
    )))
}

/// The batch engine for `api`, sending as `send` asks, its events shown
/// on the console.
pub fn engine(api: &Api, send: &SendArgs, console: Console) -> Result<Engine> {
    Engine::open(
        api,
        send.to_opts()?,
        send.rate(),
        send.timeouts(),
        &show(console),
    )
}

/// Shows the engine's events as log lines, as `console` asks: details
/// with `-v`, nothing with `-q`.
pub fn show(console: Console) -> impl Fn(Event<'_>) {
    move |event| {
        if console.quiet || (event.is_detail() && !console.verbose) {
            return;
        }
        match event {
            Event::Destination {
                base_url,
                tenant,
                profile,
            } => tracing::info!(
                event = "destination",
                base_url,
                tenant,
                profile,
                "dcms-bulk: sending to {base_url} as tenant {tenant}{}",
                profile.map_or(String::new(), |p| format!(" (profile {p})"))
            ),
            Event::LedgerBusy {
                base_url,
                tenant,
                lock,
            } => tracing::info!(
                event = "ledger_busy",
                "dcms-bulk: another dcms-bulk run is sending to {base_url} (tenant {tenant}); waiting for it to end (lock {})",
                lock.display()
            ),
            Event::Ledger { path } => {
                tracing::info!(event = "ledger", "dcms-bulk: ledger {}", path.display())
            }
            Event::StandardTier => tracing::info!(
                event = "tier",
                "dcms-bulk: no rate given: sending at the API guide's standard tier (100 requests/s, bursts of 200); set --rate, --tier or the profile's tier to change it"
            ),
            Event::Tier { name, rate, burst } => tracing::info!(
                event = "tier",
                "dcms-bulk: {name} tier: {rate} requests/s, bursts of {burst}"
            ),
        }
    }
}

impl SendArgs {
    /// The rate asked for: `--rate`, else `--tier`, else the profile's.
    pub fn rate(&self) -> Rate {
        match (self.rate, self.tier) {
            (Some(rate), _) => Rate::Given {
                rate,
                burst: self.burst,
            },
            (None, Some(TierArg::None)) => Rate::Unlimited,
            (None, Some(TierArg::Standard)) => Rate::Tier(Tier::Standard),
            (None, Some(TierArg::High)) => Rate::Tier(Tier::High),
            (None, None) => Rate::Profile,
        }
    }

    /// How long a call may take.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            total: self.timeout,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcms::TlsOpts;

    fn api(base_url: &str, tier: Option<Tier>) -> Api {
        Api {
            base_url: base_url.into(),
            tenant: "ACME".into(),
            auth: None,
            tls: TlsOpts::default(),
            proxy: None,
            headers: Vec::new(),
            sources: Vec::new(),
            journal_dir: PathBuf::from("j"),
            ledger_db: None,
            host_id: None,
            precheck: true,
            tier,
            create_fields: CreateFields::default(),
            final_statuses: None,
            profile: None,
            sandbox: None,
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
        let quiet = show(Console {
            quiet: true,
            verbose: false,
        });
        let quiet = &quiet;
        let far = api("https://dcms.bank.example/v1", None);
        assert_eq!(
            far.limits(send(&[]).rate(), quiet),
            (Some(97.0), Some(100.0))
        );
        assert_eq!(
            far.limits(send(&["--tier", "high"]).rate(), quiet),
            (Some(485.0), Some(500.0))
        );
        assert_eq!(
            far.limits(send(&["--tier", "none"]).rate(), quiet),
            (None, None)
        );
        assert_eq!(
            far.limits(send(&["--rate", "20", "--burst", "5"]).rate(), quiet),
            (Some(20.0), Some(5.0))
        );
        let profile_high = api("https://dcms.bank.example/v1", Some(Tier::High));
        assert_eq!(
            profile_high.limits(send(&[]).rate(), quiet),
            (Some(485.0), Some(500.0))
        );
        for near in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:1/v1",
            "http://[::1]:2/v1",
        ] {
            assert_eq!(
                api(near, None).limits(send(&[]).rate(), quiet),
                (None, None),
                "{near}"
            );
        }
    }
}
