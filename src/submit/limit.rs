//! One rate limit shared by every worker: a token bucket (a rate and a
//! burst, as the API guide states its tiers), paused for everyone when the
//! API answers 429, slowed down by each 429 and back up, step by step, as
//! calls pass.

use std::time::Duration;

use std::sync::Mutex;

use tokio::time::Instant;

/// The API guide's rate tiers (requests per second, burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 100 requests/s, bursts of 200.
    Standard,
    /// 500 requests/s, bursts of 1,000.
    High,
}

impl Tier {
    /// The rate and burst to send at: a little under the tier's, so that
    /// the gateway's own bucket, which may count from other moments, is not
    /// met.
    pub fn limits(self) -> (f64, f64) {
        let (rate, burst) = match self {
            Tier::Standard => (100.0, 200.0),
            Tier::High => (500.0, 1000.0),
        };
        (rate * 0.97, burst / 2.0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::High => "high",
        }
    }
}

/// The shared limit.
#[derive(Debug)]
pub struct Limiter {
    /// `None`: no rate limit, only the pauses a 429 asks for.
    target: Option<f64>,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// The rate now: the target, or less after 429s.
    rate: f64,
    tokens: f64,
    at: Instant,
    /// No call starts before this (a 429's `Retry-After`).
    paused_until: Option<Instant>,
}

/// The lowest a 429 brings the rate to.
const MIN_RATE: f64 = 1.0;

impl Limiter {
    /// `rate` requests per second in bursts of up to `burst` (default: one
    /// second's worth).
    pub fn new(rate: Option<f64>, burst: Option<f64>) -> Limiter {
        let target = rate.filter(|r| *r > 0.0 && r.is_finite());
        let burst = burst
            .filter(|b| *b >= 1.0 && b.is_finite())
            .or(target)
            .unwrap_or(1.0)
            .max(1.0);
        Limiter {
            target,
            burst,
            state: Mutex::new(Bucket {
                rate: target.unwrap_or(0.0),
                tokens: burst,
                at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for a turn.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.bucket();
                let now = Instant::now();
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        b.paused_until = None;
                        if self.target.is_none() {
                            return;
                        }
                        let refill = now.duration_since(b.at).as_secs_f64() * b.rate;
                        b.tokens = (b.tokens + refill).min(self.burst);
                        b.at = now;
                        if b.tokens >= 1.0 {
                            b.tokens -= 1.0;
                            return;
                        }
                        Duration::from_secs_f64((1.0 - b.tokens) / b.rate)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A 429: every worker waits `pause`, and the rate drops by a third.
    pub fn rate_limited(&self, pause: Duration) {
        let mut b = self.bucket();
        let until = Instant::now() + pause;
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
        if self.target.is_some() {
            b.rate = (b.rate * 2.0 / 3.0).max(MIN_RATE);
            b.tokens = b.tokens.min(1.0);
        }
    }

    /// A call got through: the rate climbs back towards its target, by a
    /// fiftieth of it per call.
    pub fn passed(&self) {
        if let Some(target) = self.target {
            let mut b = self.bucket();
            if b.rate < target {
                b.rate = (b.rate + target / 50.0).min(target);
            }
        }
    }

    /// The rate now (requests per second), when limited.
    pub fn rate(&self) -> Option<f64> {
        self.target.map(|_| self.bucket().rate)
    }

    /// The bucket; never held across an await.
    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate_a_pause_for_all_and_a_slower_rate_after_429() {
        let l = Limiter::new(Some(10.0), Some(5.0));
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(1),
            "the burst is at once"
        );
        l.acquire().await;
        assert!(
            t0.elapsed() >= Duration::from_millis(99),
            "then 10 per second"
        );

        l.rate_limited(Duration::from_secs(2));
        let t1 = Instant::now();
        l.acquire().await;
        assert!(
            t1.elapsed() >= Duration::from_secs(2),
            "everyone waits the pause"
        );
        assert!((l.rate().unwrap() - 10.0 * 2.0 / 3.0).abs() < 1e-9);
        for _ in 0..100 {
            l.passed();
        }
        assert_eq!(l.rate(), Some(10.0), "back to the target");

        let open = Limiter::new(None, None);
        open.rate_limited(Duration::from_secs(1));
        let t2 = Instant::now();
        open.acquire().await;
        assert!(
            t2.elapsed() >= Duration::from_secs(1),
            "no limit, but the pause holds"
        );
        assert_eq!(open.rate(), None);
    }

    #[test]
    fn tiers_stay_under_the_guide() {
        assert_eq!(Tier::Standard.limits(), (97.0, 100.0));
        assert_eq!(Tier::High.limits(), (485.0, 500.0));
    }
}
