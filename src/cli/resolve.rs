//! `dcms-bulk resolve ORDER_ID... --sent | --not-sent --reason TEXT`: a
//! person's decision on orders whose outcome the tool cannot learn (the
//! API's lookup proves nothing, the create's answer was lost). The ledger
//! records who decided, on which machine, when and why; `--sent` makes the
//! order ACCEPTED_BY_DECISION (done, never sent again, never plain
//! ACCEPTED), `--not-sent` lets the next run send it.

use clap::{ArgGroup, Args};

use super::Console;
use super::api::{ApiArgs, SendArgs};
use super::show::Kind;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::submit::ledger::{Ledger, Who};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["sent", "not_sent"])))]
pub struct ResolveArgs {
    /// The order ids (as the report's order_id column gives them)
    #[arg(value_name = "ORDER_ID", required = true)]
    pub ids: Vec<String>,

    /// The order is at the API (DCMS support or its portal says so): it is
    /// reported ACCEPTED_BY_DECISION and never sent again
    #[arg(long)]
    pub sent: bool,

    /// The order is not at the API: the next run sends it
    #[arg(long)]
    pub not_sent: bool,

    /// Why: who confirmed it, where (a ticket, a phone call); kept in the
    /// ledger with your user name, this machine and the time
    #[arg(long, value_name = "TEXT", required = true)]
    pub reason: String,

    /// What the ids name
    #[arg(long, value_enum, default_value_t = Kind::Order)]
    pub kind: Kind,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Print what was recorded as JSON on stdout (`resolved`: each id with
    /// what the ledger now says; `not_resolved`: each id with why;
    /// `exit_code`)
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when every decision is recorded; 1 when an id is unknown or not
/// in doubt (the others are recorded); 5 when the ledger cannot be written.
pub fn run(args: &ResolveArgs, console: Console) -> Result<Exit> {
    let reason = args.reason.trim();
    if reason.chars().count() < 3 {
        return Err(Error::Usage(
            "--reason must say why (who confirmed it, where): at least 3 characters".into(),
        ));
    }
    let (store, dest) = super::runs::ledger_of(&args.api, &args.send, console, "resolve")?;
    let mut ledger = Ledger::open_in(&store, &dest, false, |_| {}).map_err(Error::Ledger)?;
    let user = crate::report::user().unwrap_or_else(|| "unknown user".into());
    let host = crate::report::host().unwrap_or_else(|| "unknown host".into());
    let at = crate::clock::now();
    let who = Who {
        user: &user,
        host: &host,
        at: &at,
        reason,
    };
    let kind = args.kind.ledger_kind();
    // The audit trail too: who decided, where, what and why.
    let access = crate::access::Access::open_in(&super::profile::access_of(
        &store,
        args.send.journal_dir.as_deref(),
    ))?;
    let actor = crate::access::Actor::command_line(crate::report::user());
    let mut code = Exit::Ok;
    let (mut resolved, mut not_resolved) = (Vec::new(), Vec::new());
    for id in &args.ids {
        match ledger
            .resolve(kind, id, args.sent, &who)
            .map_err(Error::Ledger)?
        {
            Ok(said) => {
                let what = serde_json::json!({
                    "id": id, "kind": format!("{kind:?}"), "sent": args.sent, "host": host,
                    "destination": format!("{} as tenant {}", dest.base_url, dest.tenant),
                });
                access.record(&actor, "resolved", what, reason)?;
                tracing::info!(event = "resolved", id = %id, "{said}");
                resolved.push(serde_json::json!({"id": id, "said": said}));
            }
            Err(why) => {
                tracing::error!(event = "not_resolved", id = %id, "dcms-bulk: {why}");
                not_resolved.push(serde_json::json!({"id": id, "why": why.to_string()}));
                code = Exit::RowsNotDone;
            }
        }
    }
    if args.json {
        super::print_json(&serde_json::json!({
            "resolved": resolved,
            "not_resolved": not_resolved,
            "exit_code": code,
        }))?;
    }
    Ok(code)
}
