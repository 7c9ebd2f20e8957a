//! `dcms-bulk users`: the desk's users and their roles, kept in the access
//! database beside the ledgers; and `dcms-bulk audit`: the trail of who
//! did what. Passwords come from a prompt or standard input, never an
//! argument.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Console, print_json, print_stdout};
use crate::access::{Access, Actor, MIN_PASSWORD, Role};
use crate::error::{Error, Result};
use crate::exit::Exit;

/// Where the access database is: the ledgers' folder.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Folder of the ledgers, where the access database (users,
    /// approvals, audit trail) is kept [default:
    /// ~/.local/state/dcms-bulk/journals]
    #[arg(
        long,
        env = "DCMS_JOURNAL_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub journal_dir: Option<PathBuf>,

    /// The ledger database hosts share (a PostgreSQL URL; its password
    /// from DCMS_LEDGER_PASSWORD): the access database is in it
    #[arg(
        long,
        global = true,
        env = "DCMS_LEDGER_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub ledger: Option<String>,
}

impl AccessArgs {
    pub fn open(&self) -> Result<Access> {
        let store = match &self.ledger {
            Some(url) => crate::submit::ledger::Store::Server(
                crate::db::PgTarget::parse_with_env(url).map_err(Error::Usage)?,
            ),
            None => crate::submit::ledger::Store::Dir(super::profile::access_dir(
                self.journal_dir.as_deref(),
            )),
        };
        Ok(Access::open_in(&store)?)
    }
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub action: UsersAction,

    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Add a user with roles; the password is asked for (or read from
    /// standard input with --password-stdin)
    Add {
        name: String,
        /// Roles, comma-separated: maker, checker, auditor, admin
        #[arg(long, value_name = "ROLES", required = true)]
        roles: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users, their roles, and whether they are disabled
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: they cannot sign in, and their sessions end at once
    Disable { name: String },
    /// Enable a disabled user again
    Enable { name: String },
    /// Set a user's password (asked for, or --password-stdin)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's roles (comma-separated), replacing the ones they had
    Roles { name: String, roles: String },
}

pub fn run(args: &UsersArgs, console: Console) -> Result<Exit> {
    let access = args.access.open()?;
    let by = Actor::command_line(crate::report::user());
    let said = match &args.action {
        UsersAction::Add {
            name,
            roles,
            password_stdin,
        } => {
            let roles = roles_of(roles)?;
            let password = password(name, *password_stdin)?;
            access.add_user(name, &password, &roles, &by)?;
            format!("user {name} added ({})", names(&roles))
        }
        UsersAction::List { json } => {
            let users = access.users()?;
            if *json {
                print_json(&serde_json::json!({ "users": users }))?;
                return Ok(Exit::Ok);
            }
            let mut text = String::new();
            for u in &users {
                let state = if u.disabled { " (disabled)" } else { "" };
                text.push_str(&format!("{}\t{}{state}\n", u.name, names(&u.roles)));
            }
            print_stdout(&text).map_err(Error::Stdout)?;
            return Ok(Exit::Ok);
        }
        UsersAction::Disable { name } => {
            access.set_disabled(name, true, &by)?;
            format!("user {name} disabled; their sessions end at once")
        }
        UsersAction::Enable { name } => {
            access.set_disabled(name, false, &by)?;
            format!("user {name} enabled")
        }
        UsersAction::Passwd {
            name,
            password_stdin,
        } => {
            if access.user(name)?.is_none() {
                return Err(Error::Usage(format!("no user `{name}`")));
            }
            let password = password(name, *password_stdin)?;
            access.set_password(name, &password, &by)?;
            format!("password of {name} set")
        }
        UsersAction::Roles { name, roles } => {
            let roles = roles_of(roles)?;
            access.set_roles(name, &roles, &by)?;
            format!("roles of {name}: {}", names(&roles))
        }
    };
    if !console.quiet {
        tracing::info!(event = "users", "dcms-bulk: {said}");
    }
    Ok(Exit::Ok)
}

fn roles_of(text: &str) -> Result<Vec<Role>> {
    let roles = Role::list(text).map_err(Error::Usage)?;
    if roles.is_empty() {
        return Err(Error::Usage("give at least one role".into()));
    }
    Ok(roles)
}

fn names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A new password for `name`: from standard input's first line, or asked
/// for twice at the terminal (not shown as it is typed).
fn password(name: &str, from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("standard input", e))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| {
            Error::Usage(format!(
                "no terminal to ask the password at ({e}): use --password-stdin"
            ))
        })
    };
    let first = ask(&format!(
        "New password for {name} (at least {MIN_PASSWORD} characters): "
    ))?;
    let again = ask("The same again: ")?;
    if first != again {
        return Err(Error::Usage("the two passwords differ".into()));
    }
    Ok(first)
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub access: AccessArgs,

    /// Print the records as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// Only the last N records
    #[arg(long, value_name = "N")]
    pub last: Option<u64>,
}

/// `dcms-bulk audit`: the trail, oldest first; the chain is checked too
/// (exit 1 where it does not hold).
pub fn audit(args: &AuditArgs, console: Console) -> Result<Exit> {
    let access = args.access.open()?;
    let records = access.records(args.last)?;
    let problems = access.check_trail()?;
    if args.json {
        print_json(&serde_json::json!({
            "database": access.path().display().to_string(),
            "chain_holds": problems.is_empty(),
            "problems": problems,
            "records": records,
        }))?;
    } else {
        let mut text = String::new();
        for r in &records {
            let why = if r.why.is_empty() {
                String::new()
            } else {
                format!(" because {}", one_line(&r.why))
            };
            text.push_str(&format!(
                "#{} {} {} ({}) {}: {}{why}\n",
                r.seq, r.at, r.who, r.origin, r.action, r.what
            ));
        }
        print_stdout(&text).map_err(Error::Stdout)?;
        if !console.quiet {
            for p in &problems {
                tracing::error!(
                    event = "trail_broken",
                    "dcms-bulk: audit record #{}: {}",
                    p.seq,
                    p.problem
                );
            }
        }
    }
    Ok(if problems.is_empty() {
        Exit::Ok
    } else {
        Exit::RowsNotDone
    })
}

/// `text` on one line: a control character (a line break in a reason)
/// shown escaped, so no record can start a line that looks like another.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `dcms-bulk approve` and `reject`: a checker decides an approval from
/// the command line, signed in with their name and password.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The approval's number (as `submit`, the desk or `audit` show it)
    pub id: i64,

    /// The checker deciding (signed in with their password)
    #[arg(long, value_name = "NAME", env = "DCMS_USER")]
    pub user: String,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,

    /// Why (required to reject; the maker reads it)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    #[command(flatten)]
    pub access: AccessArgs,

    /// The profile whose `approval_valid_for` says how long an approval
    /// holds [default: 24h]
    #[command(flatten)]
    pub profile: super::api::ProfileArgs,
}

/// Approves (`approve`) or rejects approval `args.id` as a signed-in
/// checker who neither made nor changed the sheet.
pub fn decide(args: &DecideArgs, approve: bool, console: Console) -> Result<Exit> {
    use crate::access::Decision;
    let decision = if approve {
        Decision::Approve
    } else {
        match args.reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Decision::Reject(r.to_owned()),
            _ => {
                return Err(Error::Usage(
                    "a rejection needs --reason: say what the maker is to change".into(),
                ));
            }
        }
    };
    let access = args.access.open()?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("standard input", e))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(format!("Password for {}: ", args.user)).map_err(|e| {
            Error::Usage(format!(
                "no terminal to ask the password at ({e}): use --password-stdin"
            ))
        })?
    };
    let by = Actor {
        name: args.user.clone(),
        origin: "command line".into(),
    };
    let Some(user) = access.sign_in(&args.user, &password)? else {
        access.record(&by, "sign-in failed", serde_json::json!({}), "")?;
        return Err(Error::Usage(
            "that name and password do not match a user".into(),
        ));
    };
    if !user.has(Role::Checker) {
        access.record(
            &by,
            "refused",
            serde_json::json!({ "request": format!("decide approval {}", args.id) }),
            "not one of their roles",
        )?;
        return Err(Error::Usage(format!("{} is not a checker", user.name)));
    }
    let valid_for = args
        .profile
        .approval()?
        .unwrap_or(std::time::Duration::from_secs(24 * 3600));
    let a = access.decide(args.id, &decision, &by, valid_for)?;
    if !console.quiet {
        let said = match decision {
            Decision::Approve => format!(
                "approval #{} of {}: approved until {}; the next run (or the desk's maker) sends its {} orders",
                a.id,
                a.sheet,
                a.expires_at.as_deref().unwrap_or("?"),
                a.orders
            ),
            Decision::Reject(_) => format!("approval #{} of {}: rejected", a.id, a.sheet),
        };
        tracing::info!(event = "decided", "dcms-bulk: {said}");
    }
    Ok(Exit::Ok)
}
