//! What every connection of the sandbox shares: the endpoints, the store,
//! the fault plan, the login, and the counters and logs the inspection
//! API reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use super::SandboxOpts;
use super::faults::Faults;
use super::fields::now_text;
use super::gateway::Gateway;
use super::store::Store;

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
    pub(super) const ALL: [Endpoint; 6] = [
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
pub(super) const MAX_TENANT: usize = 64;
/// Longest `orderId` accepted.
pub(super) const MAX_ORDER_ID: usize = 100;
/// Faults remembered for `GET /_sandbox/faults`.
pub(super) const FAULT_LOG: usize = 10_000;
/// API calls remembered for `GET /_sandbox/calls`.
pub(super) const CALL_LOG: usize = 200_000;

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
    pub(super) fault_seq: u64,
    pub call_log: VecDeque<CallRecord>,
    pub(super) call_seq: u64,
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
    /// API calls being answered now, and the most there were at once.
    pub in_flight: std::sync::atomic::AtomicU64,
    pub peak_in_flight: std::sync::atomic::AtomicU64,
    /// The latency asked for, kept to a fraction of a millisecond.
    pub delays: super::delay::Delays,
}

/// One API call counted among those in flight while it lives.
pub struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    pub fn new(shared: &'a Shared) -> Self {
        use std::sync::atomic::Ordering;
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
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
            in_flight: std::sync::atomic::AtomicU64::new(0),
            peak_in_flight: std::sync::atomic::AtomicU64::new(0),
            delays: Default::default(),
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
