//! The four DCMS endpoints under `/v1`, and the checks every call passes
//! first: method, body size, bearer token, `tenant` header, rate limit,
//! content type, then the fault plan. Where the docs are silent the choices
//! made here are listed in the manual (docs/src/reference/sandbox.md).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::envelope::Reply;
use super::faults::{Fault, lock};
use super::gateway::{Problem, same};
use super::kits::{fetch_kits, upgrade};
use super::orders::{cancel, create, fetch_status, inventory};
use super::shared::{CALL_LOG, CallRecord, Endpoint, FAULT_LOG, FaultRecord, MAX_TENANT, Shared};
use super::{DropConnection, MAX_BODY_BYTES};

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
    let counted = super::shared::InFlight::new(&shared);
    let answer = answer(
        &shared,
        endpoint,
        &parts.method,
        &parts.headers,
        body,
        &mut subject,
    )
    .await;
    drop(counted);
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
        return Answer::Reply(too_many(seconds));
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
        shared.delays.sleep(plan.latency).await;
    }
    let Some(fault) = plan.fault else {
        return Answer::Reply(business(shared, handle(shared, endpoint, &tenant, &body)));
    };
    let outcome = plan
        .applies
        .then(|| handle(shared, endpoint, &tenant, &body));
    note_fault(shared, &tenant, endpoint, fault, outcome.is_some(), &body);
    faulted(shared, fault, outcome).await
}

/// A 429 that says when to come back.
fn too_many(retry_after: u64) -> Reply {
    let mut reply = Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too.many.requests",
        "Rate limit exceeded",
        "Too many requests for this tenant; retry after the time in Retry-After",
        vec![],
    );
    reply.retry_after = Some(retry_after);
    reply
}

/// The answer a fault gives; `outcome` is what the request did, if the
/// fault let it be done.
async fn faulted(shared: &Shared, fault: Fault, outcome: Option<Reply>) -> Answer {
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
        Fault::Error429 => too_many(1),
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
