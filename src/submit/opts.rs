//! How to send: the engine's settings for one run.

use std::time::Duration;

use super::retry::RetryPolicy;

/// How to send.
#[derive(Debug, Clone)]
pub struct SubmitOpts {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests per second over all workers; `None`: no limit.
    pub rate: Option<f64>,
    /// Requests at once within the rate [default: one second's worth].
    pub burst: Option<f64>,
    /// No call starts after this long; what is left is not sent (resumable).
    pub deadline: Option<Duration>,
    pub retry: RetryPolicy,
    /// Stop after this many failed calls in a row (no answer, or 5xx).
    pub max_failures: u32,
    /// On an interrupt, how long answers in flight are waited for.
    pub drain: Duration,
    /// Ask the API which orders it already holds before sending
    /// (`fetchCardOrderDetailsFromInventory`).
    pub precheck: bool,
}

impl Default for SubmitOpts {
    fn default() -> Self {
        SubmitOpts {
            concurrency: 8,
            rate: None,
            burst: None,
            deadline: None,
            retry: RetryPolicy::default(),
            max_failures: 10,
            drain: Duration::from_secs(10),
            precheck: true,
        }
    }
}
