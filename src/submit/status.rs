//! Order status tracking: `fetchStatus` for many orders, with the same
//! limits as sending (concurrency, one rate limit, retries with backoff),
//! and optionally again and again until every order is final. Read-only:
//! nothing is journaled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{RetryPolicy, Stopper};
use crate::dcms::{Client, FetchStatusRequest};

/// Order statuses after which nothing changes.
pub const FINAL: [&str; 3] = ["SUCCESS", "FAILED", "CANCELLED"];

/// What the API says of one order.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// Its status, and its products' (`productId` → status).
    Status {
        status: String,
        products: Vec<Value>,
    },
    /// The API does not know the order.
    NotFound,
    /// No answer after retries.
    Unknown(String),
}

impl Known {
    /// The `order_status` column's text.
    pub fn text(&self) -> String {
        match self {
            Known::Status { status, .. } => status.clone(),
            Known::NotFound => "NOT_FOUND".into(),
            Known::Unknown(_) => "UNKNOWN".into(),
        }
    }

    /// Whether the order is in one of `finals` (or not found: it will not
    /// change).
    pub fn is_final(&self, finals: &[String]) -> bool {
        match self {
            Known::Status { status, .. } => finals.iter().any(|f| f == status),
            Known::NotFound => true,
            Known::Unknown(_) => false,
        }
    }
}

/// How to poll.
#[derive(Debug, Clone)]
pub struct PollOpts {
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub burst: Option<f64>,
    pub retry: RetryPolicy,
    /// Poll until every order is final (or `timeout` passes).
    pub wait: bool,
    /// The order statuses that are final [default: [`FINAL`]].
    pub finals: Vec<String>,
    /// The first pause between rounds; it grows by half each round, up to a
    /// minute.
    pub interval: Duration,
    pub timeout: Duration,
}

/// Asks for every order's status (rounds until all are final, with `wait`).
/// `on_round` hears after each round how many are final.
pub async fn poll(
    client: &Client,
    ids: &[String],
    opts: &PollOpts,
    stopper: &Arc<Stopper>,
    on_round: &(dyn Fn(usize, usize) + Sync),
) -> BTreeMap<String, Known> {
    let started = Instant::now();
    let limiter = super::Limiter::new(opts.rate, opts.burst);
    let limiter = Arc::new(limiter);
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut interval = opts.interval;
    loop {
        let pending: Vec<String> = ids
            .iter()
            .filter(|id| !known.get(*id).is_some_and(|k| k.is_final(&opts.finals)))
            .cloned()
            .collect();
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let mut set = JoinSet::new();
        for id in pending {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            if stopper.is_stopped() {
                break;
            }
            let (client, limiter, stopper, retry) =
                (client.clone(), limiter.clone(), stopper.clone(), opts.retry);
            set.spawn(async move {
                let k = fetch(&client, &limiter, &stopper, retry, &id).await;
                drop(permit);
                (id, k)
            });
        }
        while let Some(done) = set.join_next().await {
            if let Ok((id, k)) = done {
                known.insert(id, k);
            }
        }
        let finals = ids
            .iter()
            .filter(|id| known.get(*id).is_some_and(|k| k.is_final(&opts.finals)))
            .count();
        on_round(finals, ids.len());
        if !opts.wait || finals == ids.len() || stopper.is_stopped() {
            break;
        }
        let left = opts.timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(interval.min(left)) => {}
            () = stopper.stopped() => break,
        }
        interval = (interval.mul_f64(1.5)).min(Duration::from_secs(60));
    }
    known
}

/// What status polling needs to call: no counts of its own.
struct Poller<'a> {
    client: &'a Client,
    limiter: &'a super::Limiter,
    stopper: &'a Stopper,
    retry: RetryPolicy,
}

impl super::http::Caller for Poller<'_> {
    fn client(&self) -> &Client {
        self.client
    }

    fn limiter(&self) -> &super::Limiter {
        self.limiter
    }

    fn stopper(&self) -> &Stopper {
        self.stopper
    }

    fn retry(&self) -> RetryPolicy {
        self.retry
    }
}

/// One order's status, asked through the one retry loop every read goes
/// through (see `super::http`): a 401 or 403 stops the polling.
async fn fetch(
    client: &Client,
    limiter: &super::Limiter,
    stopper: &Stopper,
    retry: RetryPolicy,
    id: &str,
) -> Known {
    let body = serde_json::to_value(FetchStatusRequest {
        card_order_id: id.to_owned(),
    })
    .unwrap_or_default();
    let poller = Poller {
        client,
        limiter,
        stopper,
        retry,
    };
    let seed = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
    let answer =
        match super::http::read(&poller, "/card-order/fetchStatus", &body, seed, &mut |_| {}).await
        {
            Ok(a) => a,
            Err(why) => return Known::Unknown(why),
        };
    match super::order_status(&answer) {
        Ok(Some(status)) => {
            let products = answer
                .envelope
                .as_ref()
                .and_then(|e| e.result.as_ref())
                .and_then(|r| r.get("productDetails"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Known::Status { status, products }
        }
        Ok(None) => Known::NotFound,
        Err(e) => Known::Unknown(e),
    }
}
