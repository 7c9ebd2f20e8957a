//! Command line: clap options (first stage) become a checked run
//! configuration (second stage: files named, rules loaded, report format
//! known) before any row is read. One file per subcommand's glue.

mod api;
mod destination;
mod docs;
mod doctor;
mod ledger;
mod log;
mod news;
mod notify;
mod ops;
mod profile;
mod progress;
mod resolve;
mod runs;
mod sandbox;
mod serve;
mod show;
mod status;
mod submit;
mod template;
mod users;
mod validate;
mod verify;
mod watch;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pipeline::CheckOpts;
use crate::read::{ReadOpts, TextEncoding, TextOpts};
use crate::rules::Rules;

/// Turn branch order spreadsheets into DCMS debit-card kit orders.
///
/// Every input row ends up in the report exactly once, with its status.
#[derive(Debug, Parser)]
#[command(
    name = "dcms-bulk",
    version = crate::VERSION,
    propagate_version = true,
    max_term_width = 100,
    after_help = crate::exit::help_text()
)]
pub struct Cli {
    /// Say more: what was detected (encoding, delimiter, sheet, header row),
    /// and every problem rather than the first 50; -vv adds the HTTP
    /// stack's own debug lines (connections, TLS, proxies).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log lines on stderr: text (off a terminal, each after its RFC 3339
    /// time) or json (one object a line: time, level, event, message,
    /// fields)
    #[arg(long, global = true, value_enum, value_name = "FORMAT", env = "DCMS_LOG_FORMAT", default_value_t = log::LogFormat::Text, hide_env_values = true)]
    pub log_format: log::LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, check and group an order sheet (or check a cancel or upgrade
    /// sheet); send nothing.
    #[command(
        after_help = "Examples:\n  dcms-bulk validate orders.xlsx\n  dcms-bulk validate orders.csv --report orders.check.xlsx\n  dcms-bulk validate orders.csv --rules bank-rules.toml -v\n  dcms-bulk validate orders.xlsx --print-orders | head -1"
    )]
    Validate(Box<validate::ValidateArgs>),
    /// Check a sheet and send its ready orders to the DCMS API, exactly once.
    #[command(
        after_help = "Examples:\n  dcms-bulk submit orders.xlsx --sandbox\n  dcms-bulk submit orders.xlsx --profile uat\n  dcms-bulk submit /srv/drop --profile uat --done-dir /srv/done --failed-dir /srv/failed\n  dcms-bulk submit orders.csv --base-url https://uat.example.com/v1 --tenant ACME\n  dcms-bulk submit orders.xlsx --profile uat --dry-run | head -1"
    )]
    Submit(Box<submit::SubmitArgs>),
    /// Watch drop folders: submit each sheet as it settles, file it in the
    /// done or failed folder, and keep going until Ctrl-C or SIGTERM.
    #[command(
        after_help = "Examples:\n  dcms-bulk watch /srv/drop --profile uat --done-dir /srv/done --failed-dir /srv/failed\n  dcms-bulk watch /mnt/share/drop --poll-only --poll 30s --profile uat --log-format json"
    )]
    Watch(Box<watch::WatchArgs>),
    /// Ask the API where every order of an earlier submit stands; write the
    /// report again with order_status.
    #[command(
        after_help = "Examples:\n  dcms-bulk status orders.report.csv --profile uat\n  dcms-bulk status orders.report.csv --profile uat --wait --wait-timeout 2h"
    )]
    Status(Box<status::StatusArgs>),
    /// Cancel orders listed in a sheet (order_id, branch_id), one call per row.
    #[command(
        after_help = "Examples:\n  dcms-bulk template cancel --out cancels.xlsx\n  dcms-bulk cancel cancels.xlsx --profile uat"
    )]
    Cancel(Box<ops::OpArgs>),
    /// Upgrade cards listed in a sheet (entity_id, kit_no, ...), one call per row.
    #[command(
        after_help = "Examples:\n  dcms-bulk template upgrade --out upgrades.xlsx\n  dcms-bulk upgrade upgrades.xlsx --profile uat"
    )]
    Upgrade(Box<ops::OpArgs>),
    /// List every run the ledger of an API and tenant recorded: when, which
    /// file (and its SHA-256), its counts and where its report is.
    #[command(
        after_help = "Examples:\n  dcms-bulk runs --profile uat\n  dcms-bulk runs --profile uat --json | jq '.runs[-1]' "
    )]
    Runs(Box<runs::RunsArgs>),
    /// Manage the desk's users and their roles (maker, checker, auditor,
    /// admin), kept in the access database beside the ledgers.
    #[command(
        after_help = "Examples:\n  dcms-bulk users add asha --roles maker\n  dcms-bulk users add ravi --roles checker,auditor\n  printf '%s\\n' \"$PASSWORD\" | dcms-bulk users passwd asha --password-stdin\n  dcms-bulk users disable asha\n  dcms-bulk users list"
    )]
    Users(Box<users::UsersArgs>),
    /// List the audit trail (who did what, when, from where, why) and
    /// check its chain; exit 1 if a record was changed or removed.
    #[command(
        after_help = "Examples:\n  dcms-bulk audit\n  dcms-bulk audit --last 20\n  dcms-bulk audit --json | jq '.records[] | select(.action == \"approved\")'"
    )]
    Audit(Box<users::AuditArgs>),
    /// Approve a sheet filed for approval (four eyes), as a signed-in
    /// checker who neither made nor changed it.
    #[command(
        after_help = "Examples:\n  dcms-bulk approve 7 --user ravi\n  printf '%s\\n' \"$PASSWORD\" | dcms-bulk approve 7 --user ravi --password-stdin --profile prod"
    )]
    Approve(Box<users::DecideArgs>),
    /// Reject a sheet filed for approval, with a reason the maker reads.
    #[command(after_help = "Examples:\n  dcms-bulk reject 7 --user ravi --reason \"duplicate\"")]
    Reject(Box<users::DecideArgs>),
    /// Show what the ledger holds of one order: the runs that sent and
    /// accepted it, its rows, every request and the last answer.
    #[command(
        after_help = "Examples:\n  dcms-bulk show DCB-a8738225cd6973ff5946 --profile uat\n  dcms-bulk show 5000012345 --kind upgrade --profile uat --json"
    )]
    Show(Box<show::ShowArgs>),
    /// Record a person's decision on orders whose outcome is unknown
    /// (FAILED OUTCOME_UNKNOWN): sent (reported ACCEPTED_BY_DECISION, never
    /// sent again) or not sent (the next run sends it).
    #[command(after_help = "Examples:
  dcms-bulk resolve DCB-a8738225cd6973ff5946 --sent --reason \"DCMS support: order is in their system (ticket 4411)\" --profile uat
  dcms-bulk resolve DCB-a8738225cd6973ff5946 DCB-0c1d2e3f4a5b6c7d8e9f --not-sent --reason \"not in DCMS portal, checked by R. Rao\" --profile uat")]
    Resolve(Box<resolve::ResolveArgs>),
    /// Keep the ledgers: bring them to the newest version, or copy an
    /// SQLite ledger into a PostgreSQL database that hosts share.
    #[command(after_help = "Examples:
  dcms-bulk ledger migrate
  DCMS_LEDGER_PASSWORD=... dcms-bulk ledger migrate --ledger postgres://dcms@db.bank/dcms
  DCMS_LEDGER_PASSWORD=... dcms-bulk ledger copy --from ~/.local/state/dcms-bulk/journals/ledger-0a1b2c.sqlite --to postgres://dcms@db.bank/dcms")]
    Ledger(Box<ledger::LedgerArgs>),
    /// Check a report for an audit: its SHA-256 and its input's against the
    /// run facts, every row once, the counts, and the ledger's accepted
    /// orders.
    #[command(
        after_help = "Examples:\n  dcms-bulk verify orders.report.csv\n  dcms-bulk verify done/orders.run-41.report.xlsx --json\n  dcms-bulk verify orders.report.csv --ledger /backup/ledger-1f2e3d.sqlite"
    )]
    Verify(Box<verify::VerifyArgs>),
    /// Write an empty order, cancel or upgrade sheet (.xlsx or .csv) with
    /// the right headers and an example row.
    #[command(
        after_help = "Examples:\n  dcms-bulk template order --out orders.xlsx\n  dcms-bulk template cancel --out cancels.csv"
    )]
    Template(template::TemplateArgs),
    /// Start the desk: a web page on this machine where an order sheet is
    /// dropped, checked, fixed in place, and sent.
    #[command(
        after_help = "Examples:\n  dcms-bulk serve --sandbox\n  dcms-bulk serve --profile uat\n  dcms-bulk serve --listen 127.0.0.1:9000"
    )]
    Serve(Box<serve::ServeArgs>),
    /// Run the local DCMS simulator (loopback by default) until Ctrl-C.
    #[command(
        after_help = "Examples:\n  dcms-bulk sandbox\n  dcms-bulk sandbox --listen 127.0.0.1:8080 --error-503 0.1 --latency 50ms..500ms\n  dcms-bulk sandbox --login backoffice:password.txt --token-ttl 5m"
    )]
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Check an API configuration end to end (settings, DNS, TCP, TLS,
    /// login, tenant, one harmless call) before the first night.
    #[command(
        after_help = "Examples:\n  dcms-bulk doctor --profile uat\n  dcms-bulk doctor --base-url https://uat.example.com/dcms/v1 --tenant ACME_BANK --ca-file bank-ca.pem"
    )]
    Doctor(Box<doctor::DoctorArgs>),
    /// Print shell completions (bash, zsh, fish, powershell, elvish).
    #[command(
        after_help = "Examples:\n  dcms-bulk completions bash > ~/.local/share/bash-completion/completions/dcms-bulk\n  dcms-bulk completions zsh > ~/.zfunc/_dcms-bulk\n  dcms-bulk completions fish > ~/.config/fish/completions/dcms-bulk.fish"
    )]
    Completions(docs::CompletionsArgs),
    /// Print the manual page, or write one for each command into a folder.
    #[command(
        after_help = "Examples:\n  dcms-bulk man | man -l -\n  dcms-bulk man --dir /usr/local/share/man/man1"
    )]
    Man(docs::ManArgs),
    /// (Internal) read a legacy workbook once, in a child process with a
    /// memory cap, before it is read for real.
    #[command(name = "__check-workbook", hide = true)]
    CheckWorkbook { file: PathBuf },
}

/// How to read a sheet: which sheet of a workbook, and a text file's
/// delimiter and encoding, when detection is not wanted.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Workbook sheet to read, by name or 1-based position
    /// [default: the first sheet with the expected headers]
    #[arg(long, value_name = "NAME|INDEX")]
    pub sheet: Option<String>,

    /// CSV delimiter: ',', ';', tab (or 'tab'), '|' [default: detected]
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,

    /// CSV encoding: utf-8, utf-16le, utf-16be, windows-1252
    /// [default: detected from the BOM and the bytes]
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,
}

impl ReadArgs {
    /// Second stage: checked reading options.
    pub fn to_opts(&self) -> Result<ReadOpts> {
        read_opts(
            self.sheet.as_deref(),
            self.delimiter.as_deref(),
            self.encoding.as_deref(),
        )
    }
}

/// How rows are read, checked and grouped.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub read: ReadArgs,

    /// TOML rules file that tightens the default rules (catalog, limits,
    /// patterns, id widths); see samples/rules.example.toml
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Salt of the order ids, which come from each order's content
    /// [default: none, so the same orders get the same ids whichever file
    /// they come in]; pass a new one only to order the same orders again
    #[arg(long, value_name = "ID")]
    pub batch_id: Option<String>,

    /// Send the valid rows of an order even if another of its rows is
    /// invalid (default: hold the whole order back)
    #[arg(long)]
    pub allow_partial_orders: bool,

    /// Refuse every row with a warning, as an error would (as `warnings =
    /// "refuse"` in the rules file or the profile)
    #[arg(long)]
    pub strict: bool,

    /// Worker threads for checking rows [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Most cells a workbook sheet's used area may span (rows × columns);
    /// a sheet beyond is refused before it is read into memory
    #[arg(long, value_name = "N", default_value_t = crate::read::Limits::default().max_cells)]
    pub max_cells: u64,

    /// Most text (MiB) a workbook sheet's cells may hold in all
    #[arg(long, value_name = "MIB", default_value_t = crate::read::Limits::default().max_text_bytes >> 20)]
    pub max_text_mib: u64,
}

impl CheckArgs {
    /// Second stage: checks every option and loads the rules file.
    pub fn to_opts(&self) -> Result<CheckOpts> {
        let mut read = self.read.to_opts()?;
        if self.max_cells == 0 {
            return Err(Error::Usage("--max-cells must be at least 1".into()));
        }
        if self.max_text_mib == 0 {
            return Err(Error::Usage("--max-text-mib must be at least 1".into()));
        }
        read.limits.max_cells = self.max_cells;
        read.limits.max_text_bytes = self.max_text_mib << 20;
        check_batch_id(self.batch_id.as_deref())?;
        let mut rules = match &self.rules {
            Some(p) => Rules::load(p)?,
            None => Rules::default(),
        };
        rules.strict |= self.strict;
        if let Some(n) = self.threads {
            if n == 0 {
                return Err(Error::Usage("--threads must be at least 1".into()));
            }
            // Only the first call can set the global pool; later calls in
            // the same process (tests) keep the first size.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
        Ok(CheckOpts {
            read,
            rules,
            batch_id: self.batch_id.clone(),
            allow_partial: self.allow_partial_orders,
        })
    }

    /// The options as recorded in the run facts.
    pub fn facts(&self) -> serde_json::Value {
        serde_json::json!({
            "sheet": self.read.sheet,
            "delimiter": self.read.delimiter,
            "encoding": self.read.encoding,
            "rules": self.rules.as_ref().map(|p| p.display().to_string()),
            "rules_sha256": self.rules.as_ref().and_then(|p| std::fs::read(p).ok()).map(|bytes| {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(bytes))
            }),
            "batch_id": self.batch_id,
            "allow_partial_orders": self.allow_partial_orders,
            "strict": self.strict,
            "max_cells": self.max_cells,
            "max_text_mib": self.max_text_mib,
        })
    }
}

/// `--sheet`, `--delimiter` and `--encoding`, checked.
pub(crate) fn read_opts(
    sheet: Option<&str>,
    delimiter: Option<&str>,
    encoding: Option<&str>,
) -> Result<ReadOpts> {
    let delimiter = match delimiter {
        None => None,
        Some("tab" | "TAB" | "\\t" | "\t") => Some(b'\t'),
        Some(d) if d.len() == 1 && [",", ";", "|"].contains(&d) => Some(d.as_bytes()[0]),
        Some(d) => {
            return Err(Error::Usage(format!(
                "--delimiter `{d}`: use one of , ; | tab"
            )));
        }
    };
    let encoding = match encoding {
        None => None,
        Some(e) => Some(TextEncoding::parse(e).ok_or_else(|| {
            Error::Usage(format!(
                "--encoding `{e}`: use utf-8, utf-16le, utf-16be or windows-1252"
            ))
        })?),
    };
    Ok(ReadOpts {
        sheet: sheet.map(str::to_owned),
        text: TextOpts {
            delimiter,
            encoding,
        },
        limits: crate::read::Limits::default(),
        // Legacy workbooks are read once in a child of this program first.
        isolate: std::env::current_exe().ok(),
    })
}

/// A file or folder argument of a command that does not read standard
/// input: `-` is refused, saying why (a run's report and run facts go
/// beside its input, and a folder's sheets are filed away).
pub(crate) fn no_stdin(arg: &str) -> std::result::Result<PathBuf, String> {
    if arg == "-" {
        return Err(
            "standard input (-) is not read here: the report and run facts go beside the input, so save the sheet as a file first (`validate -` checks a CSV from standard input)"
                .into(),
        );
    }
    Ok(PathBuf::from(arg))
}

/// `--batch-id`: 1 to 128 printable characters.
pub(crate) fn check_batch_id(id: Option<&str>) -> Result<()> {
    match id {
        Some(b) if b.is_empty() || b.len() > 128 || b.chars().any(|c| c.is_control()) => Err(
            Error::Usage("--batch-id must be 1 to 128 printable characters".into()),
        ),
        _ => Ok(()),
    }
}

/// Says that a folder's file was passed over, and why.
pub(crate) fn say_passed(p: &crate::drop::Passed) {
    tracing::info!(
        event = "passed_over",
        file = %p.path.display(),
        "dcms-bulk: passed over {}: {}",
        p.path.display(),
        p.why
    );
}

pub(crate) use crate::quote::count;

/// What every command may print.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub verbose: bool,
    pub quiet: bool,
}

/// `__check-workbook FILE`, in the child: the reader's answer alone, on
/// stdout as one line of JSON (`{"message": ...}`), for the parent to
/// quote; never a log line of its own.
fn check_workbook(file: &std::path::Path) -> i32 {
    match crate::read::check_workbook(file) {
        Ok(()) => Exit::Ok.code(),
        Err(e) => {
            let message = match &e {
                Error::Input { message, .. } => message.clone(),
                e => e.to_string(),
            };
            let _ = print_stdout(&format!("{}\n", serde_json::json!({ "message": message })));
            e.exit().code()
        }
    }
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code.code();
        }
    };
    log::init(cli.log_format, cli.verbose >= 2);
    let console = Console {
        verbose: cli.verbose >= 1,
        quiet: cli.quiet,
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args, console),
        Command::Sandbox(args) => sandbox::run(&args, console),
        Command::Serve(args) => serve::run(&args, console),
        Command::Doctor(args) => doctor::run(&args, console),
        Command::Runs(args) => runs::run(&args, console),
        Command::Users(args) => users::run(&args, console),
        Command::Audit(args) => users::audit(&args, console),
        Command::Approve(args) => users::decide(&args, true, console),
        Command::Reject(args) => users::decide(&args, false, console),
        Command::Show(args) => show::run(&args, console),
        Command::Resolve(args) => resolve::run(&args, console),
        Command::Ledger(args) => ledger::run(&args, console),
        Command::Verify(args) => verify::run(&args, console),
        Command::CheckWorkbook { file } => return check_workbook(&file),
        Command::Submit(args) => submit::run(&args, console),
        Command::Watch(args) => watch::run(&args, console),
        Command::Template(args) => template::run(&args, console),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Cancel(args) => ops::cancel(&args, console),
        Command::Status(args) => status::run(&args, console),
        Command::Upgrade(args) => ops::upgrade(&args, console),
    };
    match result {
        Ok(end) => end.code(),
        Err(e) => {
            tracing::error!(
                event = "error",
                code = e.exit().code(),
                "{}",
                error_message(&e)
            );
            e.exit().code()
        }
    }
}

/// An error as the console says it: the error, each cause once (most
/// messages name theirs already, a library's "Error code 26: file is not a
/// database" too), and for a file the system would not give, a hint.
pub(crate) fn error_message(e: &Error) -> String {
    let mut shown = e.to_string();
    let mut message = format!("dcms-bulk: error: {shown}");
    let mut source = std::error::Error::source(e);
    let mut io_kind = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        let cause = s.to_string();
        let gist = cause.rsplit(": ").next().unwrap_or(&cause);
        if !shown.contains(gist) {
            message += &format!("\n  caused by: {cause}");
            shown.push_str(&cause);
        }
        source = s.source();
    }
    let hint = match io_kind {
        Some(std::io::ErrorKind::NotFound) => Some(match std::env::current_dir() {
            Ok(here) => format!(
                "check the path; a relative one starts in {}",
                here.display()
            ),
            Err(_) => "check the path".to_string(),
        }),
        Some(std::io::ErrorKind::PermissionDenied) => {
            Some("this user may not read or write it: check its permissions (ls -l)".into())
        }
        Some(std::io::ErrorKind::IsADirectory) => {
            Some("that is a folder: `submit` and `watch` take folders of sheets".into())
        }
        _ => None,
    };
    if let Some(hint) = hint {
        message += &format!("\n  hint: {hint}");
    }
    message
}

/// How many problems are listed on stderr without `-v`.
const PROBLEMS_SHOWN: usize = 50;

/// What was detected (with `-v`) and the rows' problems, on stderr: the
/// first 50, or all with `-v`; the report has every one.
pub(crate) fn print_problems(checked: &crate::pipeline::Checked, file: &str, console: Console) {
    if console.verbose {
        for note in checked.sheet.notes() {
            tracing::info!(event = "detected", file, "{file}: {note}");
        }
    }
    if console.quiet {
        return;
    }
    let mut shown = 0usize;
    let mut total = 0usize;
    let problems = checked.grouping.problems().map(|(n, p)| (n, p, ""));
    let warnings = checked
        .grouping
        .warnings()
        .map(|(n, p)| (n, p, "warning: "));
    for (number, p, severity) in problems.chain(warnings) {
        total += 1;
        if console.verbose || shown < PROBLEMS_SHOWN {
            shown += 1;
            let at = match p.col {
                Some(c) => format!("{}!{}", checked.sheet.name(), checked.cell_ref(c, number)),
                None => format!("{} row {number}", checked.sheet.name()),
            };
            if severity.is_empty() {
                tracing::warn!(
                    event = "problem",
                    file,
                    sheet = checked.sheet.name(),
                    row = number,
                    column = %p.field,
                    "{file}: {at} {}: {}",
                    p.field,
                    p.message
                );
            } else {
                tracing::warn!(
                    event = "warning",
                    file,
                    sheet = checked.sheet.name(),
                    row = number,
                    column = %p.field,
                    "{file}: {at} {}: {severity}{}",
                    p.field,
                    p.message
                );
            }
        }
    }
    if total > shown {
        tracing::info!(
            event = "problems",
            file,
            problems = total,
            "{file}: … and {} more problems and warnings; the report lists every one",
            total - shown
        );
    }
}

/// Writes to stdout; a closed pipe (`| head`) is a normal end, not an error.
pub(crate) fn print_stdout(text: &str) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Prints `value` as pretty JSON on stdout (a `--json` summary).
pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Usage(e.to_string()))? + "\n";
    print_stdout(&text).map_err(Error::Stdout)?;
    Ok(())
}

pub(crate) use crate::engine::stop_signal;

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own checks of every subcommand (unique names, valid defaults).
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Every command's help has examples, and every example parses.
    #[test]
    fn every_example_in_the_help_parses() {
        use clap::CommandFactory;
        let cli = Cli::command();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let examples: Vec<&str> = help
                .lines()
                .filter_map(|l| l.trim().split_once("dcms-bulk ").map(|(_, rest)| rest))
                .collect();
            assert!(!examples.is_empty(), "{} has no examples", sub.get_name());
            for example in examples {
                // Up to a pipe or a redirection; no quoting in examples.
                let line = example.split(['|', '>']).next().unwrap();
                let args = std::iter::once("dcms-bulk").chain(line.split_whitespace());
                if let Err(e) = Cli::try_parse_from(args) {
                    panic!("`dcms-bulk {line}`: {e}");
                }
            }
        }
    }
}
