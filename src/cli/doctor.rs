//! `dcms-bulk doctor`: checks an API configuration end to end, step by
//! step, and says what it found: where each setting came from (never a
//! secret), DNS, TCP, TLS (the certificate and which roots trust it), the
//! login, and one harmless call (`fetchStatus` of a made-up order id)
//! answered in the DCMS envelope with the tenant accepted. Exit 0 when all
//! is well, 4 otherwise. What a bank runs before its first night.

use clap::Args;
use serde_json::json;

use super::Console;
use super::api::{Api, ApiArgs, SendArgs};
use crate::dcms::{FailureKind, probe};
use crate::error::Result;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Print the steps as one JSON object on stdout (`steps`: each with
    /// `step`, `verdict` ok, fail or skipped, and `detail`; `ready`;
    /// `exit_code`) instead of lines
    #[arg(long)]
    pub json: bool,
}

/// Each step's verdict, printed as it is found (or kept for `--json`).
struct Steps {
    failed: bool,
    json: bool,
    found: Vec<serde_json::Value>,
}

impl Steps {
    fn say(&mut self, verdict: &str, mark: &str, step: &str, detail: String) {
        if self.json {
            self.found
                .push(json!({"step": step, "verdict": verdict, "detail": detail}));
        } else {
            println!("  {mark:<5} {step:<14} {detail}");
        }
    }

    fn ok(&mut self, step: &str, what: impl std::fmt::Display) {
        self.say("ok", "ok", step, what.to_string());
    }

    fn fail(&mut self, step: &str, what: impl std::fmt::Display) {
        self.failed = true;
        self.say("fail", "FAIL", step, what.to_string());
    }

    fn skip(&mut self, step: &str, why: &str) {
        self.say("skipped", "-", step, why.to_string());
    }
}

pub fn run(args: &DoctorArgs, console: Console) -> Result<Exit> {
    let mut steps = Steps {
        failed: false,
        json: args.json,
        found: Vec::new(),
    };
    if !args.json {
        println!("dcms-bulk doctor");
    }
    let api = match args.api.resolve(&args.send, console) {
        Ok(api) => api,
        Err(e) => {
            steps.fail("configuration", e);
            return verdict(steps);
        }
    };
    let sources: Vec<String> = api
        .sources
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    steps.ok("configuration", sources.join("; "));
    ledger_step(&api, &mut steps);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::io("tokio runtime", e))?;
    runtime.block_on(check(&api, args, &mut steps));
    verdict(steps)
}

/// The ledger of the API and tenant: whether it can be read (a shared
/// database reached, its login taken), and how many runs it holds.
fn ledger_step(api: &Api, steps: &mut Steps) {
    let store = api.store();
    let dest = crate::submit::ledger::Destination::new(&api.tenant, &api.base_url);
    let place = store.place_of(&dest);
    match crate::submit::ledger::runs(&store, &dest) {
        Ok(runs) if runs.is_empty() => steps.ok(
            "ledger",
            format!("{}: no runs yet (the first run makes it)", place.display()),
        ),
        Ok(runs) => steps.ok(
            "ledger",
            format!(
                "{}: {}",
                place.display(),
                super::count(runs.len() as u64, "run")
            ),
        ),
        Err(e) => steps.fail("ledger", e),
    }
}

fn verdict(steps: Steps) -> Result<Exit> {
    let exit = if steps.failed {
        Exit::ApiUnavailable
    } else {
        Exit::Ok
    };
    if steps.json {
        super::print_json(&json!({
            "steps": steps.found,
            "ready": !steps.failed,
            "exit_code": exit,
        }))?;
    } else if steps.failed {
        println!("not ready: fix the step marked FAIL, then run doctor again");
    } else {
        println!("all is well");
    }
    Ok(exit)
}

async fn check(api: &Api, args: &DoctorArgs, steps: &mut Steps) {
    let Ok(url) = url::Url::parse(&api.base_url) else {
        return steps.fail("base URL", &api.base_url);
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let proxied = api.proxy.is_some()
        || ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()));
    if proxied {
        steps.skip(
            "dns, tcp, tls",
            "through a proxy: checked by the calls below, not one by one",
        );
    } else if network(&host, port, url.scheme() == "https", api, args, steps)
        .await
        .is_err()
    {
        return;
    }
    let client = match api.client(args.send.timeouts()) {
        Ok(c) => c,
        Err(e) => return steps.fail("client", e),
    };
    match client.log_in().await {
        Ok(false) => steps.skip("login", "none configured (a fixed token or none)"),
        Ok(true) => {
            let life = client.token_lifetime().await.map_or(
                "its lifetime is not readable (not a JWT): renewed on a 401".to_string(),
                |l| format!("the token lives {}", humantime::format_duration(rounded(l))),
            );
            steps.ok("login", format!("logged in; {life}"));
        }
        Err(f) => return steps.fail("login", f.message),
    }
    api_call(api, &client, steps).await;
}

/// A `fetchStatus` of a made-up order id: the API, the tenant and the
/// token, all at once.
async fn api_call(api: &Api, client: &crate::dcms::Client, steps: &mut Steps) {
    let made_up = format!("DCMS-BULK-DOCTOR-{}", uuid::Uuid::new_v4().simple());
    let path = "/card-order/fetchStatus";
    let answer = client.post(path, &json!({ "cardOrderId": made_up })).await;
    let what = format!(
        "POST {}{path} ({made_up})",
        api.base_url.trim_end_matches('/')
    );
    let reached = matches!(&answer, Ok(a) if a.envelope.is_some() && a.status < 500 && !matches!(a.status, 401 | 403));
    match &answer {
        Err(f) if f.kind == FailureKind::Refused => steps.fail("login", &f.message),
        Err(f) => steps.fail("api call", format!("{what}: {}", f.message)),
        Ok(a) => {
            let rid = a
                .answer_request_id
                .as_deref()
                .unwrap_or(&a.request_id)
                .to_owned();
            let code = a
                .envelope
                .as_ref()
                .and_then(|e| e.exception.as_ref())
                .and_then(|e| e.error_code.clone());
            match (&a.envelope, a.status, code.as_deref()) {
                (_, 401 | 403, c) => steps.fail(
                    "tenant, token",
                    format!(
                        "{what}: HTTP {} {}: the gateway refuses us",
                        a.status,
                        c.or(a.other_body.as_deref()).unwrap_or("")
                    ),
                ),
                (None, status, _) => steps.fail(
                    "api call",
                    format!(
                        "{what}: HTTP {status}, not a DCMS answer ({}); check the base URL",
                        a.other_body.as_deref().unwrap_or("")
                    ),
                ),
                (Some(_), _, Some(c)) if c.starts_with("tenant.") => {
                    steps.fail("tenant", format!("{what}: {c}: tenant {} refused", api.tenant))
                }
                (Some(_), status, code) if status < 500 => steps.ok(
                    "api call",
                    format!(
                        "{what}: HTTP {status}{} in the DCMS envelope; tenant {} accepted (request id {rid})",
                        code.map(|c| format!(" {c}")).unwrap_or_default(),
                        api.tenant
                    ),
                ),
                (Some(_), status, code) => steps.fail(
                    "api call",
                    format!("{what}: HTTP {status} {}: the API is failing", code.unwrap_or("")),
                ),
            }
        }
    }
    if let (Ok(a), true) = (&answer, reached) {
        absence(api, client, a, &made_up, steps).await;
    }
}

/// The absence controls a run asks when a lookup's answer proves nothing
/// alone: the made-up id's answer against an order the ledger knows the
/// API holds. Said, never a failure: a lookup that cannot tell them apart
/// leaves orders in doubt to `dcms-bulk resolve`.
async fn absence(
    api: &Api,
    client: &crate::dcms::Client,
    made_up: &crate::dcms::Answer,
    made_up_id: &str,
    steps: &mut Steps,
) {
    use crate::submit::absence::{Controls, Shape, Verdict};
    const STEP: &str = "lookup";
    let dest = crate::submit::ledger::Destination::new(&api.tenant, &api.base_url);
    let known = match crate::submit::ledger::known_item_in(&api.store(), &dest, "order") {
        Ok(k) => k,
        Err(e) => return steps.skip(STEP, &format!("the ledger cannot be read: {e}")),
    };
    let Some(known) = known else {
        return steps.skip(
            STEP,
            &format!(
                "a made-up id is answered {}; no order of ours is known yet to compare it with (a run will)",
                Shape::of(made_up)
            ),
        );
    };
    let path = "/card-order/fetchStatus";
    let answered = client
        .post(path, &json!({ "cardOrderId": known }))
        .await
        .map(|a| {
            let held = matches!(crate::submit::order_status(&a), Ok(Some(_)));
            (Shape::of(&a), held)
        })
        .map_err(|f| f.message);
    let controls = Controls {
        made_up: made_up_id.to_owned(),
        made_up_shape: Ok(Shape::of(made_up)),
        known: Some((known, answered)),
    };
    match controls.verdict() {
        Verdict::Calibrated(shape) => steps.ok(
            STEP,
            format!(
                "{}: an order answered {shape} is not held",
                controls.describe()
            ),
        ),
        Verdict::Unproven(why) => steps.skip(
            STEP,
            &format!(
                "{}: {why}; orders whose outcome is unknown stay so until `dcms-bulk resolve`",
                controls.describe()
            ),
        ),
    }
}

/// DNS, TCP and TLS, each a step; `Err` when one fails (the rest would too).
async fn network(
    host: &str,
    port: u16,
    https: bool,
    api: &Api,
    args: &DoctorArgs,
    steps: &mut Steps,
) -> std::result::Result<(), ()> {
    let addrs = match probe::resolve(host, port).await {
        Ok(a) => a,
        Err(e) => {
            steps.fail("dns", e);
            return Err(());
        }
    };
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    steps.ok("dns", format!("{host} → {}", shown.join(", ")));
    let (stream, addr, took) = match probe::connect(&addrs, args.send.connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            steps.fail("tcp", e);
            return Err(());
        }
    };
    steps.ok(
        "tcp",
        format!("connected to {addr} in {} ms", took.as_millis()),
    );
    if !https {
        steps.skip("tls", "plain http (this machine only)");
        return Ok(());
    }
    let found = probe::tls(stream, host, &api.tls).await;
    let cert = found.peer.as_ref().map_or(String::new(), |p| {
        format!(
            "certificate {} issued by {}, expires {} ({}); ",
            p.subject,
            p.issuer,
            p.not_after,
            if p.days_left < 0 {
                "expired".to_string()
            } else {
                format!("in {} days", p.days_left)
            }
        )
    });
    match found.trusted {
        Ok(by) if found.peer.as_ref().is_some_and(|p| p.days_left < 30) => {
            steps.ok("tls", format!("{cert}trusted by {by}; renew it soon"))
        }
        Ok(by) => steps.ok("tls", format!("{cert}trusted by {by}")),
        Err(e) => {
            steps.fail(
                "tls",
                format!("{cert}not trusted: {e}; a private CA is trusted with --ca-file or the profile's ca_file"),
            );
            return Err(());
        }
    }
    Ok(())
}

/// A lifetime to the second, as `1h` rather than `59m 59s 998ms`.
fn rounded(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs_f64().round() as u64)
}
