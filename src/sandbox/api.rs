//! The four DCMS endpoints under `/v1`, and the checks every call passes
//! first: method, body size, bearer token, `tenant` header, rate limit,
//! content type, then the fault plan. Where the docs are silent the choices
//! made here are listed in the README ("The sandbox").

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::envelope::Reply;
use super::faults::{Fault, Faults, lock};
use super::gateway::{Gateway, Problem, same};
use super::store::{self, Order, Store, StoredProduct};
use super::{DropConnection, MAX_BODY_BYTES, SandboxOpts};

/// The endpoints, with their documented paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Create,
    Cancel,
    FetchStatus,
    Upgrade,
    FetchKits,
    Inventory,
}

impl Endpoint {
    const ALL: [Endpoint; 6] = [
        Endpoint::Create,
        Endpoint::Cancel,
        Endpoint::FetchStatus,
        Endpoint::Upgrade,
        Endpoint::FetchKits,
        Endpoint::Inventory,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Create => "/v1/card-order",
            Endpoint::Cancel => "/v1/card-order/cancel",
            Endpoint::FetchStatus => "/v1/card-order/fetchStatus",
            Endpoint::Upgrade => "/v1/kit-manager/upgradeCard",
            Endpoint::FetchKits => "/v1/kit-manager/fetchKitsByEntityId",
            Endpoint::Inventory => "/v1/inventory/fetchCardOrderDetailsFromInventory",
        }
    }
}

/// Longest `tenant` header value accepted.
const MAX_TENANT: usize = 64;
/// Longest `orderId` accepted.
const MAX_ORDER_ID: usize = 100;
/// Faults remembered for `GET /_sandbox/faults`.
const FAULT_LOG: usize = 10_000;
/// API calls remembered for `GET /_sandbox/calls`.
const CALL_LOG: usize = 200_000;

/// One API call, for the inspection API: what a support desk would find
/// by its request id.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub seq: u64,
    pub tenant: String,
    pub endpoint: &'static str,
    /// The order id or kit number the call was about, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The `X-Request-Id` the caller sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The HTTP status, or `dropped`.
    pub status: String,
}

/// A fault that happened, for the inspection API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    pub seq: u64,
    pub tenant: String,
    pub endpoint: &'static str,
    pub fault: &'static str,
    /// Whether the request was carried out (its effect stored).
    pub applied: bool,
    /// The order id or kit number the request was about, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Request and fault counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Endpoint path (or "other") → HTTP status (or "dropped") → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub faults: BTreeMap<&'static str, u64>,
    pub fault_log: VecDeque<FaultRecord>,
    fault_seq: u64,
    pub call_log: VecDeque<CallRecord>,
    call_seq: u64,
    /// Logins answered with a token.
    pub logins: u64,
}

/// State shared by every connection.
pub struct Shared {
    pub opts: SandboxOpts,
    pub faults: Faults,
    pub store: Mutex<Store>,
    pub stats: Mutex<Stats>,
    pub started_at: String,
    /// With `--login`: the login and the tokens it issues.
    pub gateway: Option<Gateway>,
    /// An outage asked for (`POST /_sandbox/outage`): how long to refuse
    /// connections, and the server's wake-up.
    pub outage: Mutex<Option<std::time::Duration>>,
    pub outage_asked: tokio::sync::Notify,
}

impl Shared {
    pub fn new(opts: SandboxOpts) -> Shared {
        Shared {
            gateway: opts
                .login
                .clone()
                .map(|user| Gateway::new(user, opts.token_ttl, opts.opaque_tokens, opts.seed)),
            faults: Faults::new(opts.faults.clone(), opts.seed),
            store: Mutex::new(Store::new(opts.kits.as_deref())),
            stats: Mutex::new(Stats::default()),
            started_at: now_text(),
            outage: Mutex::new(None),
            outage_asked: tokio::sync::Notify::new(),
            opts,
        }
    }

    /// Kits generated for a new tenant (none when a kits file is used).
    pub fn generated_kits(&self) -> Option<u32> {
        match self.opts.kits {
            Some(_) => None,
            None => Some(self.opts.generated_kits),
        }
    }
}

pub fn routes(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        let shared = shared.clone();
        router = router.route(
            endpoint.path(),
            any(move |req: Request| call(shared.clone(), endpoint, req)),
        );
    }
    let login = shared.clone();
    router = router.route(
        LOGIN_PATH,
        any(move |req: Request| log_in(login.clone(), req)),
    );
    router.fallback(move |req: Request| {
        let shared = shared.clone();
        async move {
            // Outside the API's prefix the web server in front answers, as
            // web servers do: an HTML page (a wrong base URL meets this).
            if !req.uri().path().starts_with("/v1/") {
                count(&shared, "other", "404");
                let page = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n";
                let mut response = (StatusCode::NOT_FOUND, page).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                return response;
            }
            let reply = Reply::error(
                StatusCode::NOT_FOUND,
                "not.found",
                "Not found",
                "No such endpoint",
                vec![format!(
                    "{} {} is not an endpoint",
                    req.method(),
                    req.uri().path()
                )],
            );
            count(&shared, "other", reply.status.as_str());
            reply.into_response()
        }
    })
}

/// The gateway's login, at the origin (not under `/v1`).
pub const LOGIN_PATH: &str = "/api/authenticate";

/// `POST /api/authenticate`: a token for the `--login` user.
async fn log_in(shared: Arc<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let response = match (&shared.gateway, parts.method == Method::POST) {
        (None, _) => super::gateway::problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "this sandbox has no login (start it with --login)",
        ),
        (Some(_), false) => super::gateway::problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "log in with POST",
        ),
        (Some(gateway), true) => match read_body(&parts.headers, body).await {
            Err(reply) => reply.into_response(),
            Ok(body) => match gateway.log_in(&body) {
                Ok(token) => {
                    lock(&shared.stats).logins += 1;
                    axum::Json(json!({ "id_token": token })).into_response()
                }
                Err(refused) => refused.into_response(),
            },
        },
    };
    count(&shared, LOGIN_PATH, response.status().as_str());
    response
}

/// What goes back on the connection.
enum Answer {
    Reply(Reply),
    /// A gateway's refusal, not in the DCMS envelope.
    Problem(Problem),
    Drop,
}

/// Runs one API call through the checks, the faults and the endpoint, and
/// counts it.
async fn call(shared: Arc<Shared>, endpoint: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let tenant = tenant_of(&parts.headers).unwrap_or_default();
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut subject = None;
    let answer = answer(
        &shared,
        endpoint,
        &parts.method,
        &parts.headers,
        body,
        &mut subject,
    )
    .await;
    let status = match &answer {
        Answer::Reply(r) => r.status.as_str().to_owned(),
        Answer::Problem(p) => p.status.as_str().to_owned(),
        Answer::Drop => "dropped".to_owned(),
    };
    count(&shared, endpoint.path(), &status);
    {
        let mut stats = lock(&shared.stats);
        stats.call_seq += 1;
        if stats.call_log.len() == CALL_LOG {
            stats.call_log.pop_front();
        }
        let seq = stats.call_seq;
        stats.call_log.push_back(CallRecord {
            seq,
            tenant: tenant.clone(),
            endpoint: endpoint.path(),
            subject,
            request_id: request_id.clone(),
            status: status.clone(),
        });
    }
    if shared.opts.verbose {
        tracing::info!(
            event = "call",
            "sandbox: {} {} tenant={} -> {} in {} ms",
            parts.method,
            endpoint.path(),
            if tenant.is_empty() { "-" } else { &tenant },
            status,
            started.elapsed().as_millis()
        );
    }
    let mut response = match answer {
        Answer::Reply(mut reply) => {
            reply.shape_b = shared.opts.exception_shape_b;
            reply.retry_after_date = shared.opts.retry_after_date;
            reply.into_response()
        }
        Answer::Problem(p) => p.into_response(),
        Answer::Drop => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            response
        }
    };
    // Gateways echo the caller's request id (or make one): support finds
    // the call by it.
    if let Some(id) = request_id.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

fn count(shared: &Shared, endpoint: &str, status: &str) {
    let mut stats = lock(&shared.stats);
    *stats
        .requests
        .entry(endpoint.to_owned())
        .or_default()
        .entry(status.to_owned())
        .or_default() += 1;
}

async fn answer(
    shared: &Shared,
    endpoint: Endpoint,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    subject: &mut Option<String>,
) -> Answer {
    if let Err(answer) = admit(shared, method, headers) {
        return answer;
    }
    let body = match read_body(headers, body).await {
        Ok(b) => b,
        Err(reply) => return Answer::Reply(reply),
    };
    *subject = subject_of(&body);
    // `admit` made sure the header is there.
    let tenant = tenant_of(headers).unwrap_or_default();
    if let Err(seconds) = shared.faults.admit(&tenant, Instant::now()) {
        let mut reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests",
            "Rate limit exceeded",
            "Too many requests for this tenant; retry after the time in Retry-After",
            vec![],
        );
        reply.retry_after = Some(seconds);
        return Answer::Reply(reply);
    }
    if !is_json(headers) {
        return Answer::Reply(Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported.media.type",
            "Unsupported media type",
            "Send the body as JSON with Content-Type: application/json",
            vec![],
        ));
    }

    let key = request_key(&tenant, endpoint, &body);
    let plan = shared.faults.plan(key);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let Some(fault) = plan.fault else {
        return Answer::Reply(business(shared, handle(shared, endpoint, &tenant, &body)));
    };
    let outcome = plan
        .applies
        .then(|| handle(shared, endpoint, &tenant, &body));
    note_fault(shared, &tenant, endpoint, fault, outcome.is_some(), &body);
    let hang_for = shared.faults.opts().hang_for;
    Answer::Reply(match fault {
        Fault::Error500 => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal.server.error",
            "Internal server error",
            "The server failed to complete the request",
            vec![],
        ),
        Fault::Error503 | Fault::FailFirst => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service.unavailable",
            "Service unavailable",
            "The service is temporarily unavailable; retry later",
            vec![],
        ),
        Fault::Error429 => {
            let mut reply = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                "Rate limit exceeded",
                "Too many requests for this tenant; retry after the time in Retry-After",
                vec![],
            );
            reply.retry_after = Some(1);
            reply
        }
        Fault::Drop => return Answer::Drop,
        Fault::Hang => {
            tokio::time::sleep(hang_for).await;
            match outcome {
                Some(reply) => business(shared, reply),
                None => Reply::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway.timeout",
                    "Gateway timeout",
                    "The service did not answer in time",
                    vec![],
                ),
            }
        }
        Fault::Business200 => Reply::error(
            StatusCode::BAD_REQUEST,
            "sandbox.business.error",
            "Request refused",
            "A business error injected by the sandbox (--business-errors)",
            vec!["The request was refused by the business rules".into()],
        )
        .with_http_200(),
    })
}

/// With `--errors-as-200`, a business refusal goes out with HTTP 200.
fn business(shared: &Shared, reply: Reply) -> Reply {
    if shared.faults.opts().errors_as_200 && reply.status.is_client_error() {
        reply.with_http_200()
    } else {
        reply
    }
}

fn note_fault(
    shared: &Shared,
    tenant: &str,
    endpoint: Endpoint,
    fault: Fault,
    applied: bool,
    body: &[u8],
) {
    let subject = subject_of(body);
    let mut stats = lock(&shared.stats);
    *stats.faults.entry(fault.name()).or_default() += 1;
    stats.fault_seq += 1;
    let record = FaultRecord {
        seq: stats.fault_seq,
        tenant: tenant.to_owned(),
        endpoint: endpoint.path(),
        fault: fault.name(),
        applied,
        subject,
    };
    if stats.fault_log.len() == FAULT_LOG {
        stats.fault_log.pop_front();
    }
    stats.fault_log.push_back(record);
}

/// The order id or kit number a request is about, when readable.
fn subject_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["orderId", "cardOrderId", "kitNo"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
    })
}

/// Method, bearer token and tenant header.
fn admit(shared: &Shared, method: &Method, headers: &HeaderMap) -> Result<(), Answer> {
    if let Some(gateway) = &shared.gateway {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        gateway.check(authorization).map_err(Answer::Problem)?;
    }
    admit_call(shared, method, headers).map_err(Answer::Reply)
}

fn admit_call(shared: &Shared, method: &Method, headers: &HeaderMap) -> Result<(), Reply> {
    if method != Method::POST {
        return Err(Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method.not.allowed",
            "Method not allowed",
            "Every DCMS endpoint takes POST",
            vec![format!("{method} is not allowed here")],
        ));
    }
    if let Some(token) = &shared.opts.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return Err(Reply::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "A valid bearer token is required (Authorization: Bearer <token>)",
                vec![],
            ));
        }
    }
    if tenant_of(headers).is_none() {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "tenant.header.missing",
            "Tenant header missing",
            "The tenant header is missing or invalid",
            vec![format!(
                "tenant must be 1 to {MAX_TENANT} printable ASCII characters"
            )],
        ));
    }
    Ok(())
}

/// The `tenant` header (names are case-insensitive), when usable.
fn tenant_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("tenant")?.to_str().ok()?.trim();
    let ok = !value.is_empty()
        && value.len() <= MAX_TENANT
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    ok.then(|| value.to_owned())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large() -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload.too.large",
        "Payload too large",
        "The request body is larger than 1 MiB",
        vec![],
    )
}

/// Past this many bytes an oversized body is no longer read: the connection
/// is closed after the 413 (the client may then miss the answer).
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// Reads the body, refusing more than [`MAX_BODY_BYTES`]. An oversized body
/// is still read (and dropped) up to [`DRAIN_CAP`], so that the client, still
/// sending, gets the 413 instead of a reset connection.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, Reply> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(too_large());
    }
    let mut kept = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "invalid.input.request",
                "Invalid request",
                "The request body could not be read",
                vec![],
            ));
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= MAX_BODY_BYTES as u64 {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_CAP {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    Ok(kept)
}

/// Identifies a request for the fault plan: the same tenant, endpoint and
/// body give the same key.
fn request_key(tenant: &str, endpoint: Endpoint, body: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(tenant.as_bytes());
    h.update(&[0]);
    h.update(endpoint.path().as_bytes());
    h.update(&[0]);
    h.update(body);
    h.digest()
}

/// Carries out one call on the store.
fn handle(shared: &Shared, endpoint: Endpoint, tenant: &str, body: &[u8]) -> Reply {
    let (code, short, detail) = match endpoint {
        Endpoint::Create => (
            "ORD001",
            "Invalid order request",
            "The card order request contains invalid or missing fields",
        ),
        _ => (
            "invalid.input.request",
            "Invalid request",
            "The request contains invalid or missing fields",
        ),
    };
    let refuse =
        |errors: Vec<String>| Reply::error(StatusCode::BAD_REQUEST, code, short, detail, errors);
    let Ok(text) = std::str::from_utf8(body) else {
        return refuse(vec!["The body is not UTF-8 text".into()]);
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return refuse(vec![format!("The body is not valid JSON: {e}")]),
    };
    let Some(object) = value.as_object() else {
        return refuse(vec!["The body must be a JSON object".into()]);
    };
    if shared.opts.quirks.lookups_forbidden
        && matches!(endpoint, Endpoint::FetchStatus | Endpoint::Inventory)
    {
        return Reply::error(
            StatusCode::FORBIDDEN,
            "access.denied",
            "Forbidden",
            "This client may not call this endpoint",
            Vec::new(),
        );
    }
    match endpoint {
        Endpoint::Create => create(shared, tenant, object, &value).unwrap_or_else(refuse),
        Endpoint::Cancel => cancel(shared, tenant, object).unwrap_or_else(refuse),
        Endpoint::FetchStatus => fetch_status(shared, tenant, object).unwrap_or_else(refuse),
        Endpoint::Upgrade => upgrade(shared, tenant, object).unwrap_or_else(refuse),
        Endpoint::FetchKits => fetch_kits(shared, tenant, object).unwrap_or_else(refuse),
        Endpoint::Inventory => inventory(shared, tenant, object).unwrap_or_else(refuse),
    }
}

/// `POST /card-order`. `Err` holds the ORD001 field errors.
fn create(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
    whole: &Value,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(
        body,
        "",
        &[
            "orderId",
            "branchInfo",
            "address",
            "pinCode",
            "orderingPartyInfo",
            "metaValues",
            "processStartTime",
            "validity",
            "products",
        ],
    );
    let order_id = c.text(body, "orderId", "orderId", true);
    if let Some(id) = order_id
        && (id.chars().count() > MAX_ORDER_ID || id.chars().any(char::is_control))
    {
        c.fail(format!(
            "orderId must be at most {MAX_ORDER_ID} printable characters"
        ));
    }
    let mut branch = (None, None);
    if let Some(info) = c.object(body, "branchInfo", "branchInfo", true) {
        c.known(info, "branchInfo.", &["branchId", "branchName"]);
        branch = (
            c.text(info, "branchId", "branchInfo.branchId", true),
            c.text(info, "branchName", "branchInfo.branchName", true),
        );
        if let Some(id) = branch.0
            && shared.opts.unknown_branches.iter().any(|b| b == id)
        {
            c.fail(format!(
                "branchInfo.branchId {id} is not a branch of this tenant"
            ));
        }
    }
    if let Some(address) = c.text(body, "address", "address", true)
        && address.chars().count() > 500
    {
        c.fail("address must be at most 500 characters".into());
    }
    if let Some(pin) = c.text(body, "pinCode", "pinCode", true)
        && (pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()))
    {
        c.fail("pinCode must be 6 digits".into());
    }
    if let Some(party) = c.object(body, "orderingPartyInfo", "orderingPartyInfo", true) {
        c.known(
            party,
            "orderingPartyInfo.",
            &["orderingPartyId", "orderingPartyType"],
        );
        c.text(
            party,
            "orderingPartyId",
            "orderingPartyInfo.orderingPartyId",
            true,
        );
        c.text(
            party,
            "orderingPartyType",
            "orderingPartyInfo.orderingPartyType",
            false,
        );
    }
    if let Some(meta) = c.object(body, "metaValues", "metaValues", false) {
        for (key, value) in meta {
            if !value.is_string() {
                c.fail(format!("metaValues.{key} must be text"));
            }
        }
    }
    if let Some(start) = c.text(body, "processStartTime", "processStartTime", true) {
        let exact = start.len() == 19
            && chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").is_ok();
        if !exact {
            c.fail("processStartTime must be in the format YYYY-MM-DD HH:mm:ss".into());
        }
    }
    c.whole(body, "validity", "validity", true, 1, 3650);
    let products = match body.get("products") {
        None | Some(Value::Null) => {
            c.fail("At least one product is required".into());
            vec![]
        }
        Some(Value::Array(items)) if items.is_empty() => {
            c.fail("At least one product is required".into());
            vec![]
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| product(&mut c, i, item, &shared.opts.create_fields))
            .collect(),
        Some(_) => {
            c.fail("products must be a list".into());
            vec![]
        }
    };
    let (Some(order_id), Some(branch_id), Some(branch_name)) = (order_id, branch.0, branch.1)
    else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }

    let now = Instant::now();
    let mut store = lock(&shared.store);
    if store.orders >= shared.opts.max_orders {
        return Ok(store_full());
    }
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return Ok(store_full());
    };
    if let Some(existing) = t.orders.get_mut(order_id) {
        if shared.opts.quirks.accept_duplicates {
            existing.creates += 1;
            t.extra_orders += 1;
            return Ok(Reply::ok("success"));
        }
        existing.duplicate_creates += 1;
        t.duplicate_creates += 1;
        return Ok(Reply::error(
            StatusCode::CONFLICT,
            "order.already.exists",
            "Duplicate order",
            "An order with this orderId already exists for this tenant",
            vec![format!("orderId {order_id} already exists")],
        ));
    }
    let seq = t.orders.len() as u64 + 1;
    let order = Order {
        branch_id: branch_id.to_owned(),
        branch_name: branch_name.to_owned(),
        products,
        // Compact: whitespace dropped, so stored requests stay small.
        request: whole.to_string().into_boxed_str(),
        created: now,
        created_at: now_text(),
        seq,
        pushed: 0,
        fails: store::order_fails(shared.opts.seed, tenant, order_id, shared.opts.failed_share),
        cancelled_at: None,
        duplicate_creates: 0,
        creates: 1,
    };
    t.orders.insert(order_id.to_owned(), order);
    store.orders += 1;
    Ok(Reply::ok("success"))
}

/// Checks one product line, its fields named as `names` says (the
/// profile's `[create_fields]`, when the sandbox is given one); `None` when
/// it has errors (already noted).
fn product(
    c: &mut Fields,
    i: usize,
    item: &Value,
    names: &crate::dcms::CreateFields,
) -> Option<StoredProduct> {
    let path = format!("products[{i}]");
    let Some(item) = item.as_object() else {
        c.fail(format!("{path} must be an object"));
        return None;
    };
    let before = c.errors.len();
    c.known(
        item,
        &format!("{path}."),
        &[
            "productId",
            "bin",
            &names.card_type,
            "quantity",
            &names.plastic_code,
            &names.pan_length,
            &names.pin_generation,
        ],
    );
    let product_id = c.text(item, "productId", &format!("{path}.productId"), true);
    let bin = c.text(item, "bin", &format!("{path}.bin"), true);
    if let Some(b) = bin
        && (!(b.len() == 6 || b.len() == 8) || !b.bytes().all(|d| d.is_ascii_digit()))
    {
        c.fail(format!("{path}.bin must be 6 or 8 digits"));
    }
    let ct = &names.card_type;
    let card_type = c.text(item, ct, &format!("{path}.{ct}"), false);
    if let Some(t) = card_type
        && !matches!(t, "PHYSICAL" | "VIRTUAL")
    {
        c.fail(format!("{path}.{ct} must be PHYSICAL or VIRTUAL"));
    }
    let quantity = c.whole(
        item,
        "quantity",
        &format!("{path}.quantity"),
        true,
        1,
        10_000,
    );
    let pc = &names.plastic_code;
    c.text(item, pc, &format!("{path}.{pc}"), true);
    let pl = &names.pan_length;
    if let Some(n) = c.whole(item, pl, &format!("{path}.{pl}"), false, 12, 19)
        && n != 16
        && n != 19
    {
        c.fail(format!("{path}.{pl} must be 16 or 19"));
    }
    let pg = &names.pin_generation;
    match names.pin_generation_format {
        crate::dcms::PinFormat::YesNo => {
            if let Some(p) = c.text(item, pg, &format!("{path}.{pg}"), false)
                && !matches!(p, "Y" | "N")
            {
                c.fail(format!("{path}.{pg} must be Y or N"));
            }
        }
        crate::dcms::PinFormat::Boolean => {
            if item.get(pg.as_str()).is_some_and(|v| !v.is_boolean()) {
                c.fail(format!("{path}.{pg} must be true or false"));
            }
        }
    }
    if c.errors.len() > before {
        return None;
    }
    Some(StoredProduct {
        product_id: product_id?.to_owned(),
        bin: bin?.to_owned(),
        card_type: card_type.unwrap_or("PHYSICAL").to_owned(),
        quantity: u32::try_from(quantity?).ok()?,
    })
}

fn store_full() -> Reply {
    Reply::error(
        StatusCode::INSUFFICIENT_STORAGE,
        "sandbox.store.full",
        "Sandbox full",
        "The sandbox holds as many orders or tenants as it may (--max-orders)",
        vec![],
    )
}

fn order_not_found(order_id: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "order.not.found",
        "Order not found",
        "No order with this orderId exists for this tenant",
        vec![format!("orderId {order_id} not found")],
    )
}

/// `POST /card-order/cancel`.
fn cancel(shared: &Shared, tenant: &str, body: &Map<String, Value>) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["orderId", "branchId"]);
    let order_id = c.text(body, "orderId", "orderId", true);
    let branch_id = c.text(body, "branchId", "branchId", true);
    let (Some(order_id), Some(branch_id)) = (order_id, branch_id) else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let now = Instant::now();
    let mut store = lock(&shared.store);
    let order = store
        .tenants
        .get_mut(tenant)
        .and_then(|t| t.orders.get_mut(order_id));
    let Some(order) = order else {
        return Ok(order_not_found(order_id));
    };
    if order.branch_id != branch_id {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "order.branch.mismatch",
            "Branch mismatch",
            "The branchId does not match the branch that placed the order",
            vec![format!(
                "branchId {branch_id} did not place order {order_id}"
            )],
        ));
    }
    let status = order.status(shared.opts.advance_after, now);
    let cancellable = status == "RECEIVED" || (status == "PENDING" && shared.opts.cancel_pending);
    if !cancellable {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "ORD003",
            "Order cannot be cancelled",
            "The order is not in a cancellable state",
            vec![format!("Order status is {status} and cannot be cancelled")],
        ));
    }
    order.cancelled_at = Some(now_text());
    Ok(Reply::ok("Order cancelled successfully"))
}

/// `POST /card-order/fetchStatus`.
fn fetch_status(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["cardOrderId"]);
    let id = c.text(body, "cardOrderId", "cardOrderId", true);
    let Some(id) = id.filter(|_| c.errors.is_empty()) else {
        return Err(c.into_errors());
    };
    if shared.opts.quirks.lookup_always_null {
        return Ok(Reply::ok(Value::Null));
    }
    let now = Instant::now();
    let store = lock(&shared.store);
    let Some(order) = store.tenants.get(tenant).and_then(|t| t.orders.get(id)) else {
        if shared.opts.quirks.unknown_as_null {
            return Ok(Reply::ok(Value::Null));
        }
        return Ok(order_not_found(id));
    };
    let status = order.status(shared.opts.advance_after, now);
    let skew = u32::from(shared.opts.quirks.lookup_other_products);
    let products: Vec<Value> = order
        .products
        .iter()
        .map(|p| {
            json!({
                "binNumber": p.bin.parse::<u64>().unwrap_or(0),
                "cardType": p.card_type,
                "corporateName": order.branch_name,
                "noOfCard": p.quantity + skew,
                "productId": p.product_id,
                "status": status,
            })
        })
        .collect();
    Ok(Reply::ok(json!({
        "cardOrderName": id,
        "status": status,
        "tenantName": tenant,
        "productDetails": products,
    })))
}

/// `POST /kit-manager/upgradeCard`.
fn upgrade(shared: &Shared, tenant: &str, body: &Map<String, Value>) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(
        body,
        "",
        &["entityId", "kitNo", "deliveryAddress", "kitInfo"],
    );
    let entity_id = c.text(body, "entityId", "entityId", true);
    let kit_no = c.text(body, "kitNo", "kitNo", true);
    if let Some(d) = c.text(body, "deliveryAddress", "deliveryAddress", false)
        && !matches!(d, "PERMANENT" | "COMMUNICATION")
    {
        c.fail("deliveryAddress must be PERMANENT or COMMUNICATION".into());
    }
    let mut wanted: Option<&Map<String, Value>> = None;
    match body.get("kitInfo") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= 1 => {
            if let Some(item) = items.first() {
                match item.as_object() {
                    Some(o) => wanted = Some(o),
                    None => c.fail("kitInfo[0] must be an object".into()),
                }
            }
        }
        Some(Value::Array(_)) => c.fail("kitInfo may describe one card only".into()),
        Some(_) => c.fail("kitInfo must be a list".into()),
    }
    let mut info = [None; 4];
    if let Some(w) = wanted {
        c.known(
            w,
            "kitInfo[0].",
            &["aliasName", "cardType", "plasticCode", "tierType"],
        );
        for (slot, key) in info
            .iter_mut()
            .zip(["aliasName", "cardType", "plasticCode", "tierType"])
        {
            *slot = c.text(w, key, &format!("kitInfo[0].{key}"), false);
        }
        if info[0].is_some_and(|a| a.chars().count() > 30) {
            c.fail("kitInfo[0].aliasName must be at most 30 characters".into());
        }
        if info[1].is_some_and(|t| !matches!(t, "PHYSICAL" | "VIRTUAL")) {
            c.fail("kitInfo[0].cardType must be PHYSICAL or VIRTUAL".into());
        }
    }
    let [alias, card_type, plastic, tier] = info;
    let (Some(entity_id), Some(kit_no)) = (entity_id, kit_no) else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }

    let mut store = lock(&shared.store);
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return Ok(store_full());
    };
    let old = match t.kits.get(kit_no) {
        Some(k) if k.entity_id == entity_id => k.clone(),
        _ => {
            return Ok(Reply::error(
                StatusCode::BAD_REQUEST,
                "MCC007",
                "valid kit not found",
                "No valid kit found for this kitNo and entityId",
                vec!["Invalid Kit No".into()],
            ));
        }
    };
    if !matches!(old.status.as_str(), "ASSIGNED" | "ACTIVE" | "INACTIVE") {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid.kit.info",
            "Invalid kit",
            "The kit cannot be upgraded in its current status",
            vec![format!(
                "Kit {kit_no} is {} and cannot be upgraded",
                old.status
            )],
        ));
    }
    let new_no = t.next_kit_no();
    let (masked, encrypted) = store::card_numbers(shared.opts.seed, tenant, &new_no, &old.bin);
    let card_type = card_type.unwrap_or(&old.card_type).to_owned();
    let plastic = plastic
        .map(str::to_owned)
        .or_else(|| old.plastic_code.clone());
    let new_kit = store::Kit {
        kit_no: new_no.clone(),
        entity_id: entity_id.to_owned(),
        status: "ASSIGNED".into(),
        card_type: card_type.clone(),
        bin: old.bin.clone(),
        plastic_code: plastic.clone(),
        tier_type: tier.map(str::to_owned),
        alias_name: alias.map(str::to_owned),
        replaced_by: None,
        replaces: Some(kit_no.to_owned()),
    };
    if let Some(k) = t.kits.get_mut(kit_no) {
        k.status = "REPLACED".into();
        k.replaced_by = Some(new_no.clone());
    }
    t.kits.insert(new_no.clone(), new_kit);
    t.upgrades += 1;
    let product = format!("{}_{card_type}", plastic.as_deref().unwrap_or("2003"));
    let account_no = u64::from_str_radix(&encrypted[..8], 16).unwrap_or(0) % 10_000_000 + 1_000_000;
    Ok(Reply::ok(json!({
        "entityId": entity_id,
        "kitInfo": [{
            "accountNo": account_no,
            "bin": old.bin,
            "cardCategory": "DEBIT",
            "cardNumber": masked,
            "cardStatus": "ASSIGNED",
            "cardType": card_type,
            "encryptedCardNumber": encrypted,
            "entityId": entity_id,
            "expDate": expiry_text(),
            "kitNo": new_no,
            "networkType": "RUPAY",
            "productId": product,
            "productName": product,
        }],
    })))
}

/// `POST /kit-manager/fetchKitsByEntityId` (§3.3): the customer's kits.
fn fetch_kits(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["entityId"]);
    let entity = c.text(body, "entityId", "entityId", true);
    let Some(entity) = entity.filter(|_| c.errors.is_empty()) else {
        return Err(c.into_errors());
    };
    let mut store = lock(&shared.store);
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return Ok(store_full());
    };
    let kits: Vec<Value> = t
        .kits
        .values()
        .filter(|k| k.entity_id == entity)
        .map(|k| {
            let (masked, _) = store::card_numbers(shared.opts.seed, tenant, &k.kit_no, &k.bin);
            json!({
                "kitNo": k.kit_no,
                "entityId": k.entity_id,
                "cardStatus": k.status,
                "cardType": k.card_type,
                "cardNumber": masked,
                "bin": k.bin,
                "tierType": k.tier_type,
            })
        })
        .collect();
    if kits.is_empty() {
        return Ok(Reply::error(
            StatusCode::NOT_FOUND,
            "entity.not.found",
            "Entity not found",
            "No customer with this entityId has kits for this tenant",
            vec![format!("entityId {entity} not found")],
        ));
    }
    Ok(Reply::ok(Value::Array(kits)))
}

/// Largest `pageSize` the inventory answers with.
const MAX_PAGE_SIZE: i64 = 500;

/// `POST /inventory/fetchCardOrderDetailsFromInventory`: the stored create
/// requests ("the original order request data") of the orders that match,
/// a page at a time (`pageNo` from 1, `pageSize` default 10), with
/// `pagination: {pageNo, pageSize, totalElements, totalPages}`. Filters:
/// `orderIds[]`, `branchId`, `orderingPartyId` (at least one of them);
/// `refType`, `fromDate`, `toDate` are accepted and ignored. An order
/// created twice (duplicates accepted) is listed once per create.
fn inventory(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(
        body,
        "",
        &[
            "refType",
            "orderIds",
            "branchId",
            "orderingPartyId",
            "fromDate",
            "toDate",
            "pageNo",
            "pageSize",
        ],
    );
    let ids: Option<Vec<&str>> = match body.get("orderIds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if texts.len() != items.len() {
                c.fail("orderIds must be a list of text".into());
            }
            Some(texts)
        }
        Some(_) => {
            c.fail("orderIds must be a list of text".into());
            None
        }
    };
    let branch = c.text(body, "branchId", "branchId", false);
    let party = c.text(body, "orderingPartyId", "orderingPartyId", false);
    for key in ["refType", "fromDate", "toDate"] {
        c.text(body, key, key, false);
    }
    let page_no = c
        .whole(body, "pageNo", "pageNo", false, 1, i64::MAX)
        .unwrap_or(1);
    let page_size = c
        .whole(body, "pageSize", "pageSize", false, 1, MAX_PAGE_SIZE)
        .unwrap_or(10);
    if ids.is_none() && branch.is_none() && party.is_none() {
        c.fail("At least one of orderIds, branchId or orderingPartyId is required".into());
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let skew = i64::from(shared.opts.quirks.lookup_other_products);
    let store = lock(&shared.store);
    let mut found: Vec<(u64, Value)> = Vec::new();
    if let Some(t) = store.tenants.get(tenant) {
        let matches = |o: &Order, request: &Value| {
            branch.is_none_or(|b| o.branch_id == b)
                && party.is_none_or(|p| {
                    request["orderingPartyInfo"]["orderingPartyId"].as_str() == Some(p)
                })
        };
        let mut push = |o: &Order| {
            let mut request: Value = serde_json::from_str(&o.request).unwrap_or(Value::Null);
            if !matches(o, &request) {
                return;
            }
            if skew != 0
                && let Some(products) = request["products"].as_array_mut()
            {
                for p in products {
                    let q = p["quantity"].as_i64().unwrap_or(0);
                    p["quantity"] = Value::from(q + skew);
                }
            }
            for _ in 0..o.creates {
                found.push((o.seq, request.clone()));
            }
        };
        match &ids {
            Some(ids) => {
                let mut seen = std::collections::HashSet::new();
                for id in ids {
                    if seen.insert(*id)
                        && let Some(o) = t.orders.get(*id)
                    {
                        push(o);
                    }
                }
            }
            None => t.orders.values().for_each(&mut push),
        }
    }
    found.sort_by_key(|(seq, _)| *seq);
    let total = found.len() as i64;
    let pages = (total + page_size - 1) / page_size;
    let start = usize::try_from((page_no - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let page: Vec<Value> = found
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .map(|(_, v)| v)
        .collect();
    let mut reply = Reply::ok(Value::Array(page));
    reply.body.pagination = Some(json!({
        "pageNo": page_no,
        "pageSize": page_size,
        "totalElements": total,
        "totalPages": pages,
    }));
    Ok(reply)
}

/// Field checks that collect every problem of a body.
#[derive(Default)]
struct Fields {
    errors: Vec<String>,
}

impl Fields {
    fn fail(&mut self, message: String) {
        self.errors.push(message);
    }

    /// The errors, or a generic one if a required value was missing without
    /// a message (cannot happen, but never answer 400 with no reason).
    fn into_errors(self) -> Vec<String> {
        if self.errors.is_empty() {
            vec!["The request is incomplete".into()]
        } else {
            self.errors
        }
    }

    fn known(&mut self, obj: &Map<String, Value>, prefix: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(format!("Unknown field {prefix}{key}"));
            }
        }
    }

    fn text<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.fail(format!("{path} must be text"));
                None
            }
        }
    }

    fn whole(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| (min..=max).contains(&n)) => {
                n.as_i64()
            }
            Some(_) => {
                self.fail(format!("{path} must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    fn object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.fail(format!("{path} must be an object"));
                None
            }
        }
    }
}

/// Wall-clock time for records, RFC 3339 in UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new card's expiry: the last day of the month five years on, in the
/// docs' `2029-07-31T00:00:00.000+00:00` form.
fn expiry_text() -> String {
    use chrono::{Datelike, NaiveDate};
    let today = chrono::Utc::now().date_naive();
    let (year, month) = (today.year() + 5, today.month());
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt())
        .map(|d| format!("{}T00:00:00.000+00:00", d.format("%Y-%m-%d")))
        .unwrap_or_default()
}
