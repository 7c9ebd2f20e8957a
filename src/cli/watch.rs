//! `dcms-bulk watch DIR...`: `submit` for drop folders, kept running (see
//! [`crate::service::watch`]). Ctrl-C or SIGTERM stops it: the calls in
//! flight are finished and the report written; files not begun stay where
//! they are.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::news::News;
use super::submit::OutArgs;
use super::{CheckArgs, Console};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::service::watch::{WatchOpts, watch};
use crate::service::{Event, Service};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Drop folders to watch for order sheets
    #[arg(required = true, value_name = "DIR", value_parser = super::no_stdin)]
    pub dirs: Vec<PathBuf>,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub out: OutArgs,

    #[command(flatten)]
    pub folders: FolderArgs,
}

/// How a watch looks at its drop folders (`watch`, and `serve --watch`).
#[derive(Debug, Args)]
pub struct FolderArgs {
    /// Files read and checked at once; their orders are still sent one
    /// file at a time
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Folders")]
    pub parallel_files: usize,

    /// How often the folders are looked at, besides the file system's
    /// events (a network share may send none)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, help_heading = "Folders")]
    pub poll: Duration,

    /// Ignore the file system's events and only look every --poll (a
    /// network share whose events come from this machine alone)
    #[arg(long, help_heading = "Folders")]
    pub poll_only: bool,

    /// How often a log line says the watch is alive and what it did
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration, help_heading = "Folders")]
    pub heartbeat: Duration,

    /// Tries for a file that cannot be read (or whose report cannot be
    /// written) before it goes to --failed-dir
    #[arg(long, value_name = "N", default_value_t = 3, help_heading = "Folders")]
    pub read_tries: u32,

    /// With a ledger database shared by hosts (--ledger): how long a file
    /// stays this watch's without its heartbeat; another host's watch
    /// takes it over after that
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration, help_heading = "Folders")]
    pub lease: Duration,
}

impl FolderArgs {
    /// The watch's settings for `dirs`, checked.
    pub(super) fn to_opts(&self, dirs: &[PathBuf]) -> Result<WatchOpts> {
        for dir in dirs {
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "{}: not a folder; a watch takes drop folders (submit takes files)",
                    dir.display()
                )));
            }
        }
        if self.parallel_files == 0 || self.parallel_files > 64 {
            return Err(Error::Usage("--parallel-files must be 1 to 64".into()));
        }
        if self.read_tries == 0 {
            return Err(Error::Usage("--read-tries must be at least 1".into()));
        }
        if self.poll.is_zero() || self.heartbeat.is_zero() {
            return Err(Error::Usage(
                "--poll and --heartbeat must be above 0".into(),
            ));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(Error::Usage("--lease must be at least 1s".into()));
        }
        Ok(WatchOpts {
            dirs: dirs.to_vec(),
            parallel_files: self.parallel_files,
            poll: self.poll,
            poll_only: self.poll_only,
            heartbeat: self.heartbeat,
            read_tries: self.read_tries,
            lease: self.lease,
        })
    }
}

pub fn run(args: &WatchArgs, console: Console) -> Result<Exit> {
    let watching = args.folders.to_opts(&args.dirs)?;
    if args.out.report.is_some() {
        return Err(Error::Usage(
            "--report names one file; a watch writes many: use --report-dir".into(),
        ));
    }
    let out = args.out.output()?;
    let mut opts = args.check.to_opts()?;
    opts.rules.strict |= args.api.profile.refuses_warnings()?;

    let api = args.api.resolve(&args.send, console)?;
    let engine = super::api::engine(&api, &args.send, console)?;
    let gate = super::api::gate(&args.api.profile, &args.send, &api)?;
    let notices = super::notify::notifier(args.api.profile.notify(console)?);
    let news = News::new(console, args.out.json).notifying(notices);
    let on = |e: Event<'_>| news.tell(e);
    let service = Service {
        engine: &engine,
        out: &out,
        command: "submit",
        options: args.check.facts(),
        on: &on,
        gate: gate.as_ref(),
    };
    let end = watch(&service, &watching, &opts, crate::stage::never());
    engine.runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(end.exit)
}
