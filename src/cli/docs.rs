//! `dcms-bulk completions SHELL` and `dcms-bulk man`: the shell
//! completions (clap_complete) and the manual pages (clap_mangen), made
//! from the same command-line definition as `--help`.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write dcms-bulk.1 and a page for each command (dcms-bulk-submit.1,
    /// ...) into this folder, instead of the main page on stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "dcms-bulk", &mut out);
    print_stdout(&String::from_utf8_lossy(&out)).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

pub fn man(args: &ManArgs) -> Result<Exit> {
    let cmd = Cli::command();
    let Some(dir) = &args.dir else {
        let page = render(cmd)?;
        print_stdout(&String::from_utf8_lossy(&page)).map_err(Error::Stdout)?;
        return Ok(Exit::Ok);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
    let mut pages = vec![("dcms-bulk".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("dcms-bulk-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        crate::files::write_atomic(&path, &render(page)?).map_err(|e| Error::report(&path, e))?;
    }
    Ok(Exit::Ok)
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let main = cmd.get_name() == "dcms-bulk";
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(Error::Stdout)?;
    out.extend(sections(main).into_bytes());
    Ok(out)
}

/// Every environment variable the tool reads, and what for. The man
/// page's ENVIRONMENT and the manual say the same (a test holds them, and
/// the source, to it).
pub const ENVIRONMENT: [(&str, &str); 18] = [
    ("DCMS_BASE_URL", "the API's base URL (--base-url)"),
    ("DCMS_TENANT", "the tenant (--tenant)"),
    (
        "DCMS_TOKEN",
        "the bearer token itself (there is no flag for it)",
    ),
    ("DCMS_TOKEN_FILE", "a file holding the token (--token-file)"),
    (
        "DCMS_USERNAME",
        "the user of the gateway's login (--username)",
    ),
    (
        "DCMS_PASSWORD",
        "the login's password itself (there is no flag for it)",
    ),
    (
        "DCMS_PASSWORD_FILE",
        "a file holding the login's password (--password-file)",
    ),
    ("DCMS_PROFILE", "the profile of the config file (--profile)"),
    ("DCMS_CONFIG", "the config file (--config)"),
    (
        "DCMS_JOURNAL_DIR",
        "the folder of the ledgers and the access database (--journal-dir)",
    ),
    (
        "DCMS_LEDGER_URL",
        "the ledger database hosts share, a PostgreSQL URL (--ledger)",
    ),
    (
        "DCMS_LEDGER_PASSWORD",
        "the ledger database's password (or ledger_password_file)",
    ),
    (
        "DCMS_HOST_ID",
        "the name this host's runs and leases are recorded under (--host-id)",
    ),
    (
        "DCMS_LOG_FORMAT",
        "text or json log lines on stderr (--log-format)",
    ),
    (
        "DCMS_USER",
        "the desk user deciding an approval from the command line (--user)",
    ),
    (
        "DCMS_SMTP_PASSWORD",
        "the mail server's password for notifications (or smtp_password_file)",
    ),
    (
        "DCMS_WEBHOOK_URL",
        "the webhook notifications go to (or webhook_url_file), when it holds a secret",
    ),
    (
        "DCMS_BULK_TIMING",
        "set: print how long each stage took (for benchmarks)",
    ),
];

/// The files the tool reads and writes, and what they hold.
pub const FILES: [(&str, &str); 7] = [
    (
        "~/.config/dcms-bulk/config.toml",
        "the profiles: the API, tenant, secrets' files, limits, approval, notifications (--config)",
    ),
    (
        "~/.local/state/dcms-bulk/journals/",
        "the ledgers, one SQLite database per tenant and base URL, that make a re-run safe (--journal-dir)",
    ),
    (
        "~/.local/state/dcms-bulk/journals/access.sqlite",
        "the desk's users, approvals and audit trail",
    ),
    (
        "~/.local/state/dcms-bulk/journals/LEDGER.history/",
        "the reports of a watch's tries to be repeated, until their file is filed",
    ),
    (
        "NAME.report.csv (.xlsx, .jsonl)",
        "beside the input (or in --report-dir): a status for every row",
    ),
    (
        "NAME.report.csv.run.json",
        "the run facts beside each report: input and report hashes, counts, the ledger's run",
    ),
    (
        "NAME.to-fix.csv (.xlsx)",
        "beside the report: the rows the branch must fix, in its layout, with what to fix",
    ),
];

/// The man page's EXIT STATUS (every page), ENVIRONMENT and FILES (the
/// main page), in roff.
fn sections(main: bool) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (exit, name, meaning) in crate::exit::CODES {
        roff += &format!(".TP\n\\fB{}\\fR ({name})\n{}\n", exit.code(), esc(meaning));
    }
    if main {
        roff += ".SH ENVIRONMENT\n";
        for (name, meaning) in ENVIRONMENT {
            roff += &format!(".TP\n\\fB{name}\\fR\n{}\n", esc(meaning));
        }
        roff += ".SH FILES\n";
        for (path, meaning) in FILES {
            roff += &format!(".TP\n\\fI{}\\fR\n{}\n", esc(path), esc(meaning));
        }
    }
    roff += &format!(".SH \"SEE ALSO\"\n{}\n", esc(SEE_ALSO));
    roff
}

/// Where the manual is: each man page's SEE ALSO.
const SEE_ALSO: &str = "The manual, with a guide for the clerk, the operator and the auditor: \
/usr/share/doc/dcms-bulk/manual/index.html where the package is installed, \
docs/src in the source.";
