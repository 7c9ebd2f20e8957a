//! `dcms-bulk serve`: the desk, a web page on this machine where a sheet
//! is dropped, checked, and fixed in place (see [`crate::desk`]). Prints
//! its URL on stdout; Ctrl-C or SIGTERM stops it.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use super::api::{ApiArgs, SendArgs};
use super::{CheckArgs, Console, print_stdout};
use crate::desk::send::Sending;
use crate::desk::{self, DeskOpts};
use crate::error::{Error, Result};
use crate::exit::Exit;

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

    #[command(flatten)]
    pub check: CheckArgs,

    /// Where the desk sends (--sandbox, --profile, --base-url...); without
    /// one it checks only
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,
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

pub fn run(args: &ServeArgs, console: Console) -> Result<Exit> {
    if args.max_upload_mib == 0 || args.max_upload_mib > 4096 {
        return Err(Error::Usage("--max-upload-mib must be 1 to 4096".into()));
    }
    let mut check = args.check.to_opts()?;
    check.rules.strict |= args.api.profile.refuses_warnings()?;
    let opts = DeskOpts {
        listen: args.listen,
        check,
        max_upload: args.max_upload_mib << 20,
        sending: sending(args, console)?.map(Arc::new),
        keep: args.keep_dir.clone().unwrap_or_else(|| {
            super::profile::xdg("XDG_STATE_HOME", ".local/state").map_or_else(
                || std::path::PathBuf::from(".dcms-bulk/desk"),
                |d| d.join("dcms-bulk").join("desk"),
            )
        }),
    };
    std::fs::create_dir_all(&opts.keep).map_err(|e| Error::io(&opts.keep, e))?;
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
    said?;
    Ok(Exit::Ok)
}
