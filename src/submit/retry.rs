//! Retry policy as plain data, and its backoff as an iterator of waits that
//! can be tested without a network.

use std::time::Duration;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How often and how patiently to retry one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the API guide says at most 3).
    pub retries: u32,
    /// The first wait, before jitter.
    pub base: Duration,
    /// No wait is longer than this, `Retry-After` included.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The waits before each retry, jittered from `seed` (the order id's
    /// hash, so concurrent orders do not retry in step).
    pub fn backoff(&self, seed: u64) -> Backoff {
        Backoff {
            policy: *self,
            seed,
            n: 0,
        }
    }

    /// The wait before a retry: the backoff's, or longer if the server
    /// asked for it, never above `max`.
    pub fn wait(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        backoff.max(retry_after.unwrap_or_default()).min(self.max)
    }
}

/// Exponential backoff with "equal jitter": the n-th wait is half of
/// `base * 2^n` plus a random part of the other half, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    seed: u64,
    n: u32,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.n >= self.policy.retries {
            return None;
        }
        let full = self
            .policy
            .base
            .saturating_mul(1u32 << self.n.min(20))
            .min(self.policy.max);
        let u = (xxh3_64_with_seed(&self.n.to_le_bytes(), self.seed) >> 11) as f64
            / (1u64 << 53) as f64;
        self.n += 1;
        Some(full / 2 + (full / 2).mul_f64(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_are_jittered_and_stop_after_the_retries() {
        let p = RetryPolicy {
            retries: 4,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let waits: Vec<_> = p.backoff(1).collect();
        assert_eq!(waits.len(), 4);
        for (n, w) in waits.iter().enumerate() {
            let full = (Duration::from_millis(100) * (1 << n)).min(Duration::from_secs(1));
            assert!(*w >= full / 2 && *w <= full, "wait {n}: {w:?}");
        }
        assert_ne!(
            waits,
            p.backoff(2).collect::<Vec<_>>(),
            "other seed, other jitter"
        );
        assert_eq!(
            waits,
            p.backoff(1).collect::<Vec<_>>(),
            "same seed, same waits"
        );
        assert_eq!(RetryPolicy::default().backoff(0).count(), 3);
    }

    #[test]
    fn retry_after_wins_but_never_past_the_cap() {
        let p = RetryPolicy::default();
        let b = Duration::from_millis(300);
        assert_eq!(p.wait(b, None), b);
        assert_eq!(
            p.wait(b, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(p.wait(b, Some(Duration::from_secs(3600))), p.max);
    }
}
