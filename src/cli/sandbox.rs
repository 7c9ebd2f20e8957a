//! `dcms-bulk sandbox`: run the local DCMS simulator in the foreground
//! until Ctrl-C or SIGTERM. The base URL is the first line on stdout, so a
//! script can start it on port 0 and read where it listens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Console, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::sandbox::{self, FaultApplies, FaultOpts, Latency, SandboxError, SandboxOpts};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// File holding the bearer token every call must send
    /// (Authorization: Bearer <token>) [default: no token needed]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Move each order one state on (RECEIVED, PENDING, PROCESSED, SUCCESS)
    /// after this long, e.g. 2s [default: only POST /_sandbox/advance moves
    /// orders]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub advance_after: Option<Duration>,

    /// Share of orders (0 to 1) that end FAILED instead of SUCCESS
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub failed_share: f64,

    /// Allow cancelling PENDING orders too (default: RECEIVED only)
    #[arg(long)]
    pub cancel_pending: bool,

    /// Seed for every random choice (faults, failed orders, card numbers)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Kits for upgrades: CSV with tenant,entity_id,kit_no[,card_type,status,bin]
    /// [default: every tenant gets --kits generated kits]
    #[arg(long, value_name = "FILE")]
    pub kits_file: Option<PathBuf>,

    /// Kits generated per tenant when there is no kits file: kit numbers
    /// 4240000001.., entity ids ENT000001..
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub kits: u32,

    /// Most orders kept over all tenants; creates beyond get 507
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    pub max_orders: usize,

    /// Branch ids the API does not know: their creates are refused
    /// (comma-separated)
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub unknown_branches: Vec<String>,

    /// Answer fetchStatus of an unknown order with HTTP 200 and a null
    /// result (as a real API may), not 404 order.not.found
    #[arg(long, help_heading = "Behaviours a real API may have")]
    pub unknown_as_null: bool,

    /// Accept a create with an orderId the tenant already has, as a second
    /// order (the docs do not say the API refuses it)
    #[arg(long, help_heading = "Behaviours a real API may have")]
    pub accept_duplicates: bool,

    /// Lookups return the order with other products (each quantity one
    /// higher than ordered)
    #[arg(long, help_heading = "Behaviours a real API may have")]
    pub lookup_other_products: bool,

    /// A broken fetchStatus: every order, held or not, is answered HTTP 200
    /// with a null result
    #[arg(long, help_heading = "Behaviours a real API may have")]
    pub lookup_always_null: bool,

    /// A gateway that forbids us the lookups: fetchStatus and the inventory
    /// are answered HTTP 403
    #[arg(long, help_heading = "Behaviours a real API may have")]
    pub lookups_forbidden: bool,

    #[command(flatten)]
    pub gateway: GatewayArgs,

    #[command(flatten)]
    pub faults: FaultArgs,
}

/// The sandbox as a bank's gateway in front of DCMS.
#[derive(Debug, Args)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayArgs {
    /// Require a login: POST /api/authenticate with this user and the
    /// password in PASSWORD_FILE answers {"id_token": JWT}; every call needs
    /// a live token (401 problem+json otherwise)
    #[arg(long, value_name = "USER:PASSWORD_FILE", conflicts_with = "token_file")]
    pub login: Option<String>,

    /// How long a login's token lives
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration, requires = "login")]
    pub token_ttl: Duration,

    /// Issue tokens that are not JWTs, so a client learns of their end only
    /// from a 401
    #[arg(long, requires = "login")]
    pub opaque_tokens: bool,

    /// Exception shape: a (errorCode, shortMessage, detailMessage,
    /// fieldError...) or b (errorCode, errorMessage, httpStatus "400
    /// BAD_REQUEST"), both in the docs
    #[arg(long, value_name = "SHAPE", default_value = "a", value_parser = ["a", "b"])]
    pub exception_shape: String,

    /// Send Retry-After as an HTTP date instead of seconds
    #[arg(long)]
    pub retry_after_date: bool,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates issued by this PEM CA (mutual TLS)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Read the create body's field names from this profile's
    /// [create_fields] (of --config or the usual config file)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// The config file for --profile
    #[arg(long, value_name = "FILE", requires = "profile")]
    pub config: Option<PathBuf>,
}

impl GatewayArgs {
    fn login(&self) -> Result<Option<sandbox::LoginUser>> {
        let Some(spec) = &self.login else {
            return Ok(None);
        };
        let Some((user, file)) = spec
            .split_once(':')
            .filter(|(u, f)| !u.is_empty() && !f.is_empty())
        else {
            return Err(Error::Usage(format!(
                "--login `{spec}`: expected USER:PASSWORD_FILE"
            )));
        };
        let text = crate::files::read_small(std::path::Path::new(file), 64 * 1024)
            .map_err(|e| Error::Usage(format!("--login password file {file}: {e}")))?;
        let password = text.trim().to_owned();
        if password.is_empty() {
            return Err(Error::Usage(format!(
                "--login password file {file}: the file is empty"
            )));
        }
        Ok(Some(sandbox::LoginUser {
            username: user.to_owned(),
            password,
        }))
    }
}

/// Faults on demand. Shares are fractions of API calls (0 to 1), exclusive of
/// one another.
#[derive(Debug, Args)]
#[command(next_help_heading = "Faults")]
pub struct FaultArgs {
    /// Added latency per call: fixed (200ms) or a range (50ms..2s)
    #[arg(long, value_name = "TIME", value_parser = Latency::parse)]
    pub latency: Option<Latency>,

    /// Share of calls answered 500
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub error_500: f64,

    /// Share of calls answered 503
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub error_503: f64,

    /// Share of calls answered 429 with Retry-After: 1 (never carried out)
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub error_429: f64,

    /// Share of calls whose connection is closed with no answer
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub drop: f64,

    /// Share of calls that hang for --hang-for before any answer
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub hang: f64,

    /// How long a hanging call waits
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub hang_for: Duration,

    /// Share of good calls refused with a business error sent with HTTP 200
    /// (never carried out)
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub business_errors: f64,

    /// Send every business error (validation, duplicate, not found, ...)
    /// with HTTP 200 and `exception` set, instead of its 4xx
    #[arg(long)]
    pub errors_as_200: bool,

    /// Answer the first N API calls 503
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fail_first: u64,

    /// Whether a faulted call (500, 503, drop, hang, fail-first) is still
    /// carried out: never (nothing stored; a hang ends in 504), always (stored,
    /// then the answer is lost), or random per call
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = FaultApplies::Never)]
    pub fault_applies: FaultApplies,

    /// Calls per second per tenant; more get 429 with Retry-After
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<f64>,

    /// Bucket size of the rate limit [default: one second's worth]
    #[arg(long, value_name = "N", requires = "rate_limit")]
    pub burst: Option<f64>,
}

impl FaultArgs {
    fn to_opts(&self) -> Result<FaultOpts> {
        let opts = FaultOpts {
            latency: self.latency.unwrap_or_default(),
            error_500: self.error_500,
            error_503: self.error_503,
            error_429: self.error_429,
            drop: self.drop,
            hang: self.hang,
            hang_for: self.hang_for,
            business_200: self.business_errors,
            errors_as_200: self.errors_as_200,
            fail_first: self.fail_first,
            applies: self.fault_applies,
            rate_limit: self.rate_limit,
            burst: self.burst,
        };
        opts.check().map_err(Error::Usage)?;
        Ok(opts)
    }
}

fn parse_share(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{text}` is not a share between 0 and 1 (0.1 = 10%)"
        )),
    }
}

impl SandboxArgs {
    /// Second stage: reads the token and kits files, checks the faults.
    pub fn to_opts(&self, console: Console) -> Result<SandboxOpts> {
        let token = match &self.token_file {
            None => None,
            Some(path) => {
                let text = crate::files::read_small(path, 64 * 1024)
                    .map_err(|e| Error::Usage(format!("--token-file {}: {e}", path.display())))?;
                let token = text.trim().to_owned();
                if token.is_empty() {
                    return Err(Error::Usage(format!(
                        "--token-file {}: the file is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
        };
        let kits = match &self.kits_file {
            None => None,
            Some(path) => Some(
                sandbox::read_kits(path).map_err(|message| SandboxError::Kits {
                    path: path.clone(),
                    message,
                })?,
            ),
        };
        Ok(SandboxOpts {
            listen: self.listen,
            token,
            login: self.gateway.login()?,
            token_ttl: self.gateway.token_ttl,
            opaque_tokens: self.gateway.opaque_tokens,
            exception_shape_b: self.gateway.exception_shape == "b",
            retry_after_date: self.gateway.retry_after_date,
            create_fields: match &self.gateway.profile {
                Some(name) => {
                    super::profile::create_fields(self.gateway.config.as_deref(), Some(name))?
                }
                None => crate::dcms::CreateFields::default(),
            },
            tls: match (&self.gateway.tls_cert, &self.gateway.tls_key) {
                (Some(cert), Some(key)) => Some(sandbox::TlsServer {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.gateway.tls_client_ca.clone(),
                }),
                _ => None,
            },
            advance_after: self.advance_after,
            failed_share: self.failed_share,
            cancel_pending: self.cancel_pending,
            seed: self.seed,
            faults: self.faults.to_opts()?,
            kits,
            generated_kits: self.kits,
            max_orders: self.max_orders,
            unknown_branches: self.unknown_branches.clone(),
            verbose: console.verbose,
            quirks: sandbox::Quirks {
                unknown_as_null: self.unknown_as_null,
                accept_duplicates: self.accept_duplicates,
                lookup_other_products: self.lookup_other_products,
                lookup_always_null: self.lookup_always_null,
                lookups_forbidden: self.lookups_forbidden,
            },
        })
    }
}

pub fn run(args: &SandboxArgs, console: Console) -> Result<Exit> {
    let opts = args.to_opts(console)?;
    let listener = sandbox::bind(opts.listen)?;
    let url = sandbox::base_url(&listener, opts.tls.is_some())?;
    if !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) && !console.quiet {
        tracing::warn!(
            event = "listening_beyond",
            "dcms-bulk sandbox: warning: listening beyond this machine ({url})"
        );
    }
    // First line on stdout: where to connect.
    print_stdout(&format!("{url}\n")).map_err(Error::Stdout)?;
    if !console.quiet {
        tracing::info!(
            event = "listening",
            "dcms-bulk sandbox: listening on {url} (inspection: {}/_sandbox/stats)",
            url.trim_end_matches("/v1")
        );
        tracing::info!(
            event = "settings",
            "dcms-bulk sandbox: {}, orders advance {}, faults: {}; Ctrl-C stops",
            match (&opts.token, &opts.login) {
                (Some(_), _) => "token required".to_string(),
                (None, Some(user)) => format!(
                    "login required (POST {}/api/authenticate as {}, tokens live {})",
                    url.trim_end_matches("/v1"),
                    user.username,
                    humantime::format_duration(opts.token_ttl)
                ),
                (None, None) => "no token required".to_string(),
            },
            match opts.advance_after {
                Some(d) => format!("every {}", humantime::format_duration(d)),
                None => "only via POST /_sandbox/advance".into(),
            },
            opts.faults.describe()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SandboxError::Runtime)?;
    runtime.block_on(sandbox::serve(listener, opts, super::stop_signal()))?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    if !console.quiet {
        tracing::info!(event = "stopped", "dcms-bulk sandbox: stopped");
    }
    Ok(Exit::Ok)
}
