//! `dcms-bulk submit FILE...`: check each file as `validate` does, send its
//! ready orders (see `submit`), write its report and run facts, and print a
//! summary. Each file is a batch of its own, with its own journal; a folder
//! stands for the order sheets in it.
//!
//! Where the API is: flags, then the environment (`DCMS_BASE_URL`,
//! `DCMS_TENANT`, `DCMS_TOKEN`, `DCMS_TOKEN_FILE`), then a profile of the
//! config file. `--sandbox` runs the simulator inside the process instead.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use super::{CheckArgs, Console, print_problems, print_stdout};
use crate::dcms::{Client, ClientOpts, Secret, check_base_url};
use crate::error::{Error, Result};
use crate::exit;
use crate::pipeline::{self, Checked};
use crate::report::{self, ApiFacts, RunFacts, SentCounts};
use crate::sandbox::{Sandbox, SandboxOpts};
use crate::submit::{
    self, BatchKey, CreateOrders, Journal, Record, RetryPolicy, SendStatus, Sent, Stop, Stopper,
    SubmitOpts, Tally,
};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Order sheets (.csv .tsv .txt .xlsx .xlsm .xlsb .xls .ods), or folders
    /// holding them; each file is a batch with its own report
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Write the report here (one input file only): .csv, .jsonl or .xlsx
    /// [default: FILE's folder, as NAME.report.csv]
    #[arg(long, value_name = "PATH", help_heading = "Report")]
    pub report: Option<PathBuf>,

    /// Folder for the reports [default: beside each input file]
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Report",
        conflicts_with = "report"
    )]
    pub report_dir: Option<PathBuf>,

    /// Report format when no --report path gives it
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv, help_heading = "Report")]
    pub report_format: ReportFormat,

    /// Print the summary as JSON on stdout
    #[arg(long, help_heading = "Report")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Xlsx,
    Jsonl,
}

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

    /// File holding the bearer token (DCMS_TOKEN in the environment is
    /// used first); the token is never printed or written anywhere
    #[arg(
        long,
        env = "DCMS_TOKEN_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
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

    /// Folder for the journals that make re-runs safe [default:
    /// ~/.local/state/dcms-bulk/journals; with --sandbox a temporary one]
    #[arg(
        long,
        env = "DCMS_JOURNAL_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub journal_dir: Option<PathBuf>,
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
}

/// The API settings after flags, environment and profile.
struct Api {
    base_url: String,
    tenant: String,
    token: Option<Secret>,
    /// Keeps the in-process sandbox running.
    _sandbox: Option<Sandbox>,
    /// Keeps the sandbox's temporary journals until the end.
    _journal_tmp: Option<tempfile::TempDir>,
    journal_dir: PathBuf,
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

impl SubmitArgs {
    /// Second stage for the API part: where, who, which token.
    fn api(&self, console: Console) -> Result<Api> {
        let journal_dir = self.send.journal_dir.clone();
        if self.api.sandbox {
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
            let tenant = self.api.tenant.clone().unwrap_or_else(|| "SANDBOX".into());
            return Ok(Api {
                base_url,
                tenant,
                token: None,
                _sandbox: Some(sandbox),
                _journal_tmp: tmp,
                journal_dir,
            });
        }
        let profile = read_profile(&self.api)?;
        let base_url = self.api.base_url.clone().or(profile.base_url).ok_or_else(|| {
            Error::Usage(
                "no API to send to: give --base-url, set DCMS_BASE_URL, use a config profile, or try --sandbox"
                    .into(),
            )
        })?;
        let url = check_base_url(&base_url, self.api.allow_insecure_http).map_err(Error::Usage)?;
        let tenant = self.api.tenant.clone().or(profile.tenant).ok_or_else(|| {
            Error::Usage(
                "no tenant: give --tenant, set DCMS_TENANT, or use a config profile".into(),
            )
        })?;
        let token = match std::env::var("DCMS_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
            _ => match self.api.token_file.clone().or(profile.token_file) {
                Some(p) => Some(read_token_file(&p)?),
                None => None,
            },
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
        })
    }

    fn send_opts(&self) -> Result<SubmitOpts> {
        if self.send.concurrency == 0 || self.send.concurrency > 256 {
            return Err(Error::Usage("--concurrency must be 1 to 256".into()));
        }
        if let Some(r) = self.send.rate
            && !(r > 0.0 && r.is_finite())
        {
            return Err(Error::Usage("--rate must be above 0".into()));
        }
        if self.send.retries > 20 {
            return Err(Error::Usage("--retries must be 20 or fewer".into()));
        }
        Ok(SubmitOpts {
            concurrency: self.send.concurrency,
            rate: self.send.rate,
            retry: RetryPolicy {
                retries: self.send.retries,
                ..RetryPolicy::default()
            },
            max_failures: self.send.max_failures,
            drain: Duration::from_secs(10),
        })
    }

    fn report_path(&self, input: &Path) -> PathBuf {
        if let Some(p) = &self.report {
            return p.clone();
        }
        let ext = match self.report_format {
            ReportFormat::Csv => "csv",
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Jsonl => "jsonl",
        };
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "orders".into());
        let dir = match &self.report_dir {
            Some(d) => d.clone(),
            None => input.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        dir.join(format!("{stem}.report.{ext}"))
    }
}

/// The order sheets named: files as given, folders by their sheets (sorted;
/// hidden files, Excel's `~$` lock files and our own reports left out).
fn input_files(named: &[PathBuf]) -> Result<Vec<PathBuf>> {
    const SHEETS: [&str; 8] = ["csv", "tsv", "txt", "xlsx", "xlsm", "xlsb", "xls", "ods"];
    let mut files = Vec::new();
    for path in named {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                !name.starts_with('.')
                    && !name.starts_with("~$")
                    && !name.contains(".report.")
                    && SHEETS.contains(&ext.as_str())
            })
            .collect();
        found.sort();
        if found.is_empty() && !files.is_empty() {
            continue;
        }
        files.extend(found);
    }
    if files.is_empty() {
        return Err(Error::Usage(
            "no order sheets found in the folder(s) given".into(),
        ));
    }
    Ok(files)
}

/// One file's result, for the combined summary.
#[derive(Debug, serde::Serialize)]
struct FileSummary {
    input: String,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<serde_json::Value>,
}

pub fn run(args: &SubmitArgs, console: Console) -> Result<i32> {
    let opts = args.check.to_opts()?;
    let send = args.send_opts()?;
    let files = input_files(&args.files)?;
    if args.report.is_some() && files.len() > 1 {
        return Err(Error::Usage(
            "--report names one file; with several inputs use --report-dir".into(),
        ));
    }
    if let Some(r) = &args.report {
        report::Format::from_path(r)?;
    }
    if let Some(dir) = &args.report_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
    }
    let api = args.api(console)?;
    let client = Client::new(&ClientOpts {
        base_url: check_base_url(&api.base_url, true).map_err(Error::Usage)?,
        tenant: api.tenant.clone(),
        token: api.token.clone(),
        connect_timeout: args.send.connect_timeout,
        timeout: args.send.timeout,
    })
    .map_err(Error::Usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dcms-submit")
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let stopper = Arc::new(Stopper::default());
    {
        let stopper = stopper.clone();
        runtime.spawn(async move {
            interrupted().await;
            stopper.stop(Stop::Interrupted);
        });
    }

    let mut summaries = Vec::new();
    for (n, file) in files.iter().enumerate() {
        if let Some(why) = stopper.reason() {
            for rest in &files[n..] {
                summaries.push(FileSummary {
                    input: rest.display().to_string(),
                    exit_code: stop_code(&why),
                    error: Some(format!("not processed: {why}")),
                    report: None,
                    batch_id: None,
                    counts: None,
                });
            }
            break;
        }
        let summary = match submit_file(
            args, &opts, &send, &api, &client, &runtime, &stopper, file, console,
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dcms-bulk: error: {e}");
                FileSummary {
                    input: file.display().to_string(),
                    exit_code: e.exit_code(),
                    error: Some(e.to_string()),
                    report: None,
                    batch_id: None,
                    counts: None,
                }
            }
        };
        summaries.push(summary);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let code = exit::most_serious(summaries.iter().map(|s| s.exit_code));
    if let Some(why) = stopper.reason()
        && (!console.quiet || why != Stop::Interrupted)
    {
        eprintln!("dcms-bulk: stopped: {why}; re-run the same command to resume");
    }
    if files.len() > 1 && !console.quiet {
        let ok = summaries.iter().filter(|s| s.exit_code == exit::OK).count();
        eprintln!(
            "dcms-bulk: {} files: {ok} fully done, {} with rows not done or errors",
            summaries.len(),
            summaries.len() - ok
        );
    }
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "tenant": api.tenant,
            "base_url": api.base_url,
            "files": summaries,
            "stopped": stopper.reason().map(|r| r.to_string()),
            "exit_code": code,
        }))
        .map_err(|e| Error::Usage(e.to_string()))?
            + "\n";
        print_stdout(&text).map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(code)
}

fn stop_code(why: &Stop) -> i32 {
    match why {
        Stop::Interrupted => exit::INTERRUPTED,
        Stop::ApiUnavailable(_) | Stop::Refused(_) => exit::API_UNAVAILABLE,
        Stop::Journal(_) => exit::USAGE,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, passed once per file"
)]
fn submit_file(
    args: &SubmitArgs,
    opts: &pipeline::CheckOpts,
    send: &SubmitOpts,
    api: &Api,
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    stopper: &Arc<Stopper>,
    file: &Path,
    console: Console,
) -> Result<FileSummary> {
    let started = report::now();
    let report_path = args.report_path(file);
    let checked = pipeline::check(file, opts)?;
    let name = file.display().to_string();
    print_problems(&checked, &name, console);
    let (groups, orders): (Vec<u32>, Vec<_>) = checked.orders_by_group()?.into_iter().unzip();

    let key = BatchKey {
        batch_id: checked.batch_id.clone(),
        tenant: api.tenant.clone(),
        base_url: api.base_url.clone(),
    };
    let first = Record::Batch {
        v: 1,
        batch_id: key.batch_id.clone(),
        tenant: key.tenant.clone(),
        base_url: key.base_url.clone(),
        input: name.clone(),
        input_sha256: checked.input_sha256.clone(),
        at: started.clone(),
    };
    let (journal, past) =
        Journal::open(&api.journal_dir, &key, first).map_err(|e| Error::Usage(e.to_string()))?;
    let journal = Arc::new(journal);
    if console.verbose {
        eprintln!("{name}: journal {}", journal.path().display());
    }
    let resumed = past.len();
    if resumed > 0 && !console.quiet {
        eprintln!(
            "{name}: resuming batch {}: {resumed} orders have a record from an earlier run",
            short(&checked.batch_id)
        );
    }

    let tally = Arc::new(Tally::default());
    let progress = Progress::start(runtime, &name, tally.clone(), orders.len() as u64, console);
    let outcomes = runtime.block_on(submit::run(
        Arc::new(CreateOrders),
        client.clone(),
        journal.clone(),
        past,
        orders,
        send,
        tally.clone(),
        stopper.clone(),
    ));
    progress.finish();
    drop(journal);

    let mut by_group: Vec<Option<Sent>> = vec![None; checked.grouping.groups().len()];
    for (g, sent) in groups.iter().zip(outcomes) {
        by_group[*g as usize] = Some(sent);
    }
    let mut facts = RunFacts::new("submit", &checked, args.check.facts(), started);
    let counts = sent_counts(&checked, &by_group);
    facts.sent = Some(counts);
    facts.api = Some(ApiFacts {
        tenant: api.tenant.clone(),
        base_url: api.base_url.clone(),
        journal: api.journal_dir.join(key.file_name()).display().to_string(),
        requests: tally.requests.load(Ordering::Relaxed),
        stopped: stopper.reason().map(|r| r.to_string()),
    });
    report::write_with(&checked, &report_path, &mut facts, Some(&by_group))?;

    let c = facts.counts;
    let rows_done = c.invalid + c.held + counts.rejected + counts.failed == 0;
    let code = match stopper.reason() {
        Some(why) => stop_code(&why),
        None if rows_done => exit::OK,
        None => exit::ROWS_NOT_DONE,
    };
    if !console.quiet {
        eprintln!(
            "{name}: {} rows: {} accepted, {} skipped (sent before), {} rejected, {} failed, {} invalid, {} held; orders: {} accepted, {} skipped, {} rejected, {} failed, {} held; {} requests; report: {}",
            c.rows,
            counts.accepted,
            counts.skipped,
            counts.rejected,
            counts.failed,
            c.invalid,
            c.held,
            counts.orders_accepted,
            counts.orders_skipped,
            counts.orders_rejected,
            counts.orders_failed,
            c.orders_held,
            tally.requests.load(Ordering::Relaxed),
            report_path.display()
        );
    }
    let mut json_counts = serde_json::to_value(c).unwrap_or_default();
    if let (Some(obj), Ok(serde_json::Value::Object(sent))) =
        (json_counts.as_object_mut(), serde_json::to_value(counts))
    {
        obj.extend(sent);
    }
    Ok(FileSummary {
        input: name,
        exit_code: code,
        error: None,
        report: Some(report_path.display().to_string()),
        batch_id: Some(checked.batch_id.clone()),
        counts: Some(json_counts),
    })
}

/// Rows and orders by outcome. A sent order's valid rows take its outcome.
fn sent_counts(checked: &Checked, by_group: &[Option<Sent>]) -> SentCounts {
    let mut c = SentCounts::default();
    for (group, sent) in checked.grouping.groups().iter().zip(by_group) {
        let Some(sent) = sent else { continue };
        let rows = u64::from(group.rows - group.invalid);
        let (row_count, order_count) = match sent.status {
            SendStatus::Accepted => (&mut c.accepted, &mut c.orders_accepted),
            SendStatus::Rejected => (&mut c.rejected, &mut c.orders_rejected),
            SendStatus::Failed => (&mut c.failed, &mut c.orders_failed),
            SendStatus::Skipped => (&mut c.skipped, &mut c.orders_skipped),
        };
        *row_count += rows;
        *order_count += 1;
    }
    debug_assert_eq!(
        c.accepted + c.rejected + c.failed + c.skipped,
        checked.grouping.counts.valid,
        "every valid row belongs to a sent order"
    );
    c
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
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
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn start(
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
                    "{prefix} [{bar:30}] {pos}/{len} orders · {msg} · {per_sec} · ETA {eta}",
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
                    "{name}: {done}/{orders} orders done ({}), {:.0} requests/s",
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

    fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
