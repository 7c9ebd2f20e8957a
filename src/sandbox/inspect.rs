//! The inspection API under `/_sandbox`, for tests and rehearsals: counters,
//! a tenant's orders and kits, the fault log, and "advance the clock". It
//! answers plain JSON (not the DCMS envelope), needs no tenant header or
//! token, and is never faulted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::lock;
use super::shared::Shared;
use super::store::Order;

pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/faults", get(faults))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/advance", post(advance))
        .route("/_sandbox/outage", post(outage))
        .route("/_sandbox/tenants/{tenant}/orders", get(orders))
        .route("/_sandbox/tenants/{tenant}/orders/{order_id}", get(order))
        .route("/_sandbox/tenants/{tenant}/kits", get(kits))
        .with_state(shared)
}

/// Requests per endpoint and status; per tenant, orders per state and
/// refused duplicate creates; faults by kind.
async fn stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let now = Instant::now();
    let tenants: BTreeMap<String, Value> = {
        let store = lock(&shared.store);
        store
            .tenants
            .iter()
            .map(|(name, t)| {
                let mut states: BTreeMap<&str, u64> = BTreeMap::new();
                for order in t.orders.values() {
                    *states
                        .entry(order.status(shared.opts.advance_after, now))
                        .or_default() += 1;
                }
                let summary = json!({
                    "orders": t.orders.len(),
                    "ordersByStatus": states,
                    "duplicateCreates": t.duplicate_creates,
                    "extraOrders": t.extra_orders,
                    "upgrades": t.upgrades,
                    "kits": t.kits.len(),
                });
                (name.clone(), summary)
            })
            .collect()
    };
    let stats = lock(&shared.stats);
    Json(json!({
        "startedAt": shared.started_at,
        "requests": stats.requests,
        "faults": stats.faults,
        "logins": stats.logins,
        "peakInFlight": shared.peak_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        "tenants": tenants,
    }))
}

/// The most recent API calls (up to 200,000), oldest first: endpoint,
/// tenant, order or kit, the caller's `X-Request-Id`, the status.
async fn calls(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let stats = lock(&shared.stats);
    Json(json!(stats.call_log))
}

/// The most recent faults (up to 10,000), oldest first.
async fn faults(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let stats = lock(&shared.stats);
    Json(json!(stats.fault_log))
}

fn describe(id: &str, order: &Order, shared: &Shared, now: Instant) -> Value {
    json!({
        "orderId": id,
        "seq": order.seq,
        "status": order.status(shared.opts.advance_after, now),
        "branchId": order.branch_id,
        "products": order.products,
        "createdAt": order.created_at,
        "cancelledAt": order.cancelled_at,
        "duplicateCreates": order.duplicate_creates,
        "creates": order.creates,
        "request": serde_json::from_str::<Value>(&order.request).unwrap_or(Value::Null),
    })
}

/// A tenant's orders in the order they were created.
async fn orders(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Json<Value> {
    let now = Instant::now();
    let store = lock(&shared.store);
    let mut list: Vec<(&String, &Order)> = store
        .tenants
        .get(&tenant)
        .map(|t| t.orders.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|(_, o)| o.seq);
    Json(Value::Array(
        list.into_iter()
            .map(|(id, o)| describe(id, o, &shared, now))
            .collect(),
    ))
}

async fn order(
    State(shared): State<Arc<Shared>>,
    Path((tenant, order_id)): Path<(String, String)>,
) -> Response {
    let now = Instant::now();
    let store = lock(&shared.store);
    match store
        .tenants
        .get(&tenant)
        .and_then(|t| t.orders.get(&order_id))
    {
        Some(o) => Json(describe(&order_id, o, &shared, now)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("tenant {tenant} has no order {order_id}")})),
        )
            .into_response(),
    }
}

/// A tenant's kits, by kit number. A tenant not seen yet shows the kits it
/// will start with.
async fn kits(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Json<Value> {
    let mut store = lock(&shared.store);
    let generated = shared.generated_kits();
    match store.tenant(&tenant, generated) {
        Some(t) => Json(json!(t.kits.values().collect::<Vec<_>>())),
        None => Json(json!([])),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    /// Steps to move every order on [default: 1].
    steps: Option<u32>,
    /// Only this tenant's orders [default: all].
    tenant: Option<String>,
}

/// Moves every (or one tenant's) unfinished order `steps` states on.
/// `POST /_sandbox/outage` with `{"seconds": N}` (at most an hour): once
/// this answer is sent, the sandbox closes its connections and refuses new
/// ones for N seconds (nothing listens on its port), then listens again
/// with its orders as they were: an API that went away for a while.
async fn outage(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Ask {
        seconds: f64,
    }
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("body: {e}; expected {{\"seconds\": N}}")})),
            )
                .into_response();
        }
    };
    if !(ask.seconds > 0.0 && ask.seconds <= 3600.0) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "seconds must be above 0 and at most 3600"})),
        )
            .into_response();
    }
    *lock(&shared.outage) = Some(std::time::Duration::from_secs_f64(ask.seconds));
    shared.outage_asked.notify_one();
    (
        StatusCode::ACCEPTED,
        Json(json!({"refusing_for_seconds": ask.seconds})),
    )
        .into_response()
}

async fn advance(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let ask: Advance = if body.iter().all(u8::is_ascii_whitespace) {
        Advance::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": format!("body: {e}; expected {{\"steps\": N, \"tenant\": NAME}}")})),
                )
                    .into_response();
            }
        }
    };
    let steps = ask.steps.unwrap_or(1);
    let now = Instant::now();
    let mut store = lock(&shared.store);
    let mut moved = 0u64;
    for (name, t) in store.tenants.iter_mut() {
        if ask.tenant.as_ref().is_some_and(|only| only != name) {
            continue;
        }
        for order in t.orders.values_mut() {
            if !order.is_final(shared.opts.advance_after, now) {
                order.pushed = order.pushed.saturating_add(steps);
                moved += 1;
            }
        }
    }
    Json(json!({"moved": moved, "steps": steps})).into_response()
}
