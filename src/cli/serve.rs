//! `dcms-bulk serve`: the desk, a web page on this machine where a sheet
//! is dropped, checked, fixed in place and sent (see [`crate::desk`]);
//! with `--watch`, the watch of drop folders runs inside it, and sends the
//! desk's sheets in turn with the folders' files. Prints its URL on
//! stdout; Ctrl-C or SIGTERM stops it (a watch's file being sent is
//! finished first).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::news::News;
use super::submit::OutArgs;
use super::watch::FolderArgs;
use super::{CheckArgs, Console, print_stdout};
use crate::desk::folders::Folders;
use crate::desk::send::Sending;
use crate::desk::{self, DeskOpts};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::service::watch::{WatchEnd, WatchOpts, watch};
use crate::service::{Event, Output, Service};
use crate::stage;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the desk listens: an address of this machine and a port (0
    /// takes a free one)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where the desk keeps the sheets dropped on it, as they came, and the
    /// reports of their runs [default: ~/.local/state/dcms-bulk/desk]
    #[arg(long, value_name = "DIR")]
    pub keep_dir: Option<std::path::PathBuf>,

    /// The largest sheet the desk takes, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    pub max_upload_mib: usize,

    /// Serve over TLS with this certificate chain (PEM); needed, with
    /// users, to listen beyond this machine
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Users"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The TLS certificate's private key (PEM)
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Users"
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// Another name the desk answers to, as its users reach it (its host
    /// name in their browsers); a request for any other name is refused
    #[arg(long = "host", value_name = "NAME", help_heading = "Users")]
    pub names: Vec<String>,

    /// A session ends after this long without a request
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration, help_heading = "Users")]
    pub session_idle: std::time::Duration,

    /// A session ends this long after its sign-in, whatever it does
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = humantime::parse_duration, help_heading = "Users")]
    pub session_max: std::time::Duration,

    /// Addresses of reverse proxies whose --user-header is believed (single
    /// sign-on); the header from any other address is ignored
    #[arg(long, value_name = "ADDR", num_args = 1.., requires = "user_header", help_heading = "Users")]
    pub trusted_proxy: Vec<std::net::IpAddr>,

    /// The header in which a --trusted-proxy names the signed-in user (a
    /// user of the desk, by name)
    #[arg(
        long,
        value_name = "NAME",
        requires = "trusted_proxy",
        help_heading = "Users"
    )]
    pub user_header: Option<String>,

    #[command(flatten)]
    pub check: CheckArgs,

    /// Where the desk sends (--sandbox, --profile, --base-url...); without
    /// one it checks only
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Drop folders to watch, as `watch` does: each sheet copied there is
    /// checked and sent once it settles, in turn with the sheets sent from
    /// the page, and the page lists them (needs an API to send to)
    #[arg(long = "watch", value_name = "DIR", num_args = 1.., help_heading = "Folders", value_parser = super::no_stdin)]
    pub watch: Vec<std::path::PathBuf>,

    #[command(flatten)]
    pub folders: FolderArgs,

    #[command(flatten)]
    pub out: OutArgs,
}

/// Where the desk sends, if an API is given at all.
fn sending(args: &ServeArgs, console: Console) -> Result<Option<Sending>> {
    let api = &args.api;
    if !api.sandbox && api.base_url.is_none() && api.profile.profile.is_none() {
        return Ok(None);
    }
    Ok(Some(Sending {
        api: api.resolve(&args.send, console)?,
        submit: args.send.to_opts()?,
        rate: args.send.rate(),
        timeouts: args.send.timeouts(),
    }))
}

/// The watch inside the desk: its engine, settings and output.
struct Watching {
    engine: Engine,
    gate: Option<crate::service::approval::Gate>,
    opts: WatchOpts,
    out: Output,
}

/// The watch `--watch` asks for, with its engine open (waiting, and
/// saying so, while another run holds the ledger).
fn watching(
    args: &ServeArgs,
    sending: Option<&Sending>,
    console: Console,
) -> Result<Option<Watching>> {
    let out = &args.out;
    if args.watch.is_empty() {
        let given = out.report_dir.is_some()
            || out.done_dir.is_some()
            || out.attention_dir.is_some()
            || out.failed_dir.is_some()
            || out.report.is_some();
        if given {
            return Err(Error::Usage(
                "--report-dir, --done-dir, --attention-dir and --failed-dir are for the drop folders of --watch"
                    .into(),
            ));
        }
        return Ok(None);
    }
    let Some(sending) = sending else {
        return Err(Error::Usage(
            "--watch sends what settles in the folders: give --sandbox, --profile or --base-url"
                .into(),
        ));
    };
    if out.report.is_some() {
        return Err(Error::Usage(
            "--report names one file; a watch writes many: use --report-dir".into(),
        ));
    }
    let opts = args.folders.to_opts(&args.watch)?;
    let out = out.output()?;
    let engine = super::api::engine(&sending.api, &args.send, console)?;
    let gate = super::api::gate(&args.api.profile, &args.send, &sending.api)?;
    Ok(Some(Watching {
        engine,
        gate,
        opts,
        out,
    }))
}

/// Where the desk's users and approvals are: beside the ledgers, in the
/// shared database when the desk sends through one.
fn access_store(args: &ServeArgs, sending: Option<&Sending>) -> crate::submit::ledger::Store {
    let journal = args.send.journal_dir.as_deref();
    match sending {
        Some(s) => super::profile::access_of(&s.api.store(), journal),
        None => crate::submit::ledger::Store::Dir(super::profile::access_dir(journal)),
    }
}

pub fn run(args: &ServeArgs, console: Console) -> Result<Exit> {
    if args.max_upload_mib == 0 || args.max_upload_mib > 4096 {
        return Err(Error::Usage("--max-upload-mib must be 1 to 4096".into()));
    }
    let mut check = args.check.to_opts()?;
    check.rules.strict |= args.api.profile.refuses_warnings()?;
    let sending = sending(args, console)?.map(Arc::new);
    let watching = watching(args, sending.as_deref(), console)?;
    let access = access_store(args, sending.as_deref());
    let mut opts = DeskOpts {
        listen: args.listen,
        check: check.clone(),
        max_upload: args.max_upload_mib << 20,
        sending,
        keep: args.keep_dir.clone().unwrap_or_else(|| {
            super::profile::xdg("XDG_STATE_HOME", ".local/state").map_or_else(
                || std::path::PathBuf::from(".dcms-bulk/desk"),
                |d| d.join("dcms-bulk").join("desk"),
            )
        }),
        folders: None,
        handed: None,
        access,
        auth: crate::desk::auth::AuthOpts {
            idle: args.session_idle,
            longest: args.session_max,
            tls: args.tls_cert.is_some(),
            trusted_proxies: args.trusted_proxy.clone(),
            user_header: args.user_header.clone(),
        },
        approval: args.api.profile.approval()?,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        names: args.names.clone(),
    };
    std::fs::create_dir_all(&opts.keep).map_err(|e| Error::io(&opts.keep, e))?;
    let Some(w) = watching else {
        serve(opts, console)?;
        return Ok(Exit::Ok);
    };
    let folders = Arc::new(Folders::new(w.opts.dirs.clone()));
    let (handed, to_watch) = stage::unbounded();
    (opts.folders, opts.handed) = (Some(folders.clone()), Some(handed));
    let stopper = w.engine.stopper.clone();
    let notices = super::notify::notifier(args.api.profile.notify(console)?);
    std::thread::scope(|scope| {
        let watch = stage::beside(scope, "watch", move || {
            let news = News::new(console, args.out.json).notifying(notices);
            let on = |e: Event<'_>| {
                folders.tell(&e);
                news.tell(e);
            };
            let service = Service {
                engine: &w.engine,
                out: &w.out,
                command: "submit",
                options: args.check.facts(),
                on: &on,
                gate: w.gate.as_ref(),
            };
            let end = watch(&service, &w.opts, &check, to_watch);
            w.engine
                .runtime
                .shutdown_timeout(std::time::Duration::from_secs(1));
            end
        })
        .map_err(|e| Error::io("the watch's thread", e))?;
        let served = serve(opts, console);
        // The desk is closed: so is its watch (the file in hand is
        // finished first).
        stopper.stop(crate::submit::Stop::Interrupted);
        let end: Option<WatchEnd> = stage::joined(watch);
        served?;
        Ok(end.map_or(Exit::LocalFailure, |e| e.exit))
    })
}

/// Serves the desk until Ctrl-C or SIGTERM.
fn serve(opts: DeskOpts, console: Console) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dcms-desk")
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    let mut said = Ok(());
    let told = |url: &str| {
        // First line on stdout: where to open it.
        said = print_stdout(&format!("{url}\n"))
            .map(|_| ())
            .map_err(Error::Stdout);
        if !console.quiet {
            tracing::info!(
                event = "listening",
                "dcms-bulk: the desk is at {url} (open it in a browser); Ctrl-C stops"
            );
        }
    };
    runtime.block_on(desk::serve(opts, told, crate::engine::stop_signal()))?;
    said
}
