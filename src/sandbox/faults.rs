//! Misbehaviour on demand: latency, 500/503 answers, dropped connections,
//! hangs, business errors with HTTP 200, "fail the first N requests", and a
//! per-tenant rate limit.
//!
//! Random choices are reproducible with the seed *and* independent of the
//! order requests arrive in: each draw hashes the seed, the request (tenant,
//! path, body) and how many times that same request was seen before. So a
//! given request's third attempt meets the same fate in every run, however
//! many workers the client has.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store::uniform;

/// Added latency: fixed, or uniform in a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
}

impl Latency {
    /// `250ms` or `100ms..2s`.
    pub fn parse(text: &str) -> Result<Latency, String> {
        let one = |t: &str| humantime::parse_duration(t.trim()).map_err(|e| format!("`{t}`: {e}"));
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (one(a)?, one(b)?),
            None => {
                let d = one(text)?;
                (d, d)
            }
        };
        if min > max {
            return Err(format!("`{text}`: the range runs backwards"));
        }
        Ok(Latency { min, max })
    }

    /// The latency for a uniform draw `u` in `[0, 1)`.
    fn pick(&self, u: f64) -> Duration {
        self.min + (self.max - self.min).mul_f64(u)
    }
}

/// Whether a faulted request's effect is stored. Both happen in real life:
/// the server failed before doing the work, or did it and then failed to
/// answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultApplies {
    /// The request changes nothing (a hung one is answered 504).
    #[default]
    Never,
    /// The request is carried out, then its answer is replaced by the fault.
    Always,
    /// Either, decided per request by the seed.
    Random,
}

/// Which faults, how often. Shares are fractions of API requests, 0..=1;
/// they are exclusive (one request meets at most one of them), so they must
/// add up to at most 1.
#[derive(Debug, Clone, Default)]
pub struct FaultOpts {
    pub latency: Latency,
    pub error_500: f64,
    pub error_503: f64,
    /// Share answered 429 with `Retry-After: 1`, like a rate limit that
    /// strikes at random (never carried out).
    pub error_429: f64,
    pub drop: f64,
    pub hang: f64,
    /// How long a hung request waits before it is answered.
    pub hang_for: Duration,
    /// Share of otherwise good requests refused with a business error in an
    /// HTTP 200 answer. Such a request is never carried out.
    pub business_200: f64,
    /// Send every business error (validation, duplicate, not found...) with
    /// HTTP 200 instead of its 4xx.
    pub errors_as_200: bool,
    /// The first N API requests are answered 503.
    pub fail_first: u64,
    pub applies: FaultApplies,
    /// Requests per second per tenant; `None`: unlimited.
    pub rate_limit: Option<f64>,
    /// Bucket size of the rate limit [default: one second's worth].
    pub burst: Option<f64>,
}

impl FaultOpts {
    /// Checks the shares; the message names the flag's meaning.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("500 share", self.error_500),
            ("503 share", self.error_503),
            ("429 share", self.error_429),
            ("drop share", self.drop),
            ("hang share", self.hang),
            ("business-error share", self.business_200),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} {share} is not between 0 and 1"));
            }
        }
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        if total > 1.0 + 1e-9 {
            return Err(format!(
                "fault shares add up to {total}, more than 1 (each request meets at most one fault)"
            ));
        }
        if let Some(rate) = self.rate_limit
            && !(rate > 0.0 && rate.is_finite())
        {
            return Err(format!("rate limit {rate} must be above 0"));
        }
        if let Some(burst) = self.burst
            && !(burst >= 1.0 && burst.is_finite())
        {
            return Err(format!("burst {burst} must be at least 1"));
        }
        Ok(())
    }

    /// One line describing what is switched on, for the startup log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.latency.max > Duration::ZERO {
            parts.push(format!(
                "latency {:?}..{:?}",
                self.latency.min, self.latency.max
            ));
        }
        for (name, share) in [
            ("500", self.error_500),
            ("503", self.error_503),
            ("429", self.error_429),
            ("drop", self.drop),
            ("hang", self.hang),
            ("business-200", self.business_200),
        ] {
            if share > 0.0 {
                parts.push(format!("{name} {:.1}%", share * 100.0));
            }
        }
        if self.fail_first > 0 {
            parts.push(format!("first {} requests 503", self.fail_first));
        }
        if let Some(rate) = self.rate_limit {
            parts.push(format!("rate limit {rate}/s per tenant"));
        }
        if self.errors_as_200 {
            parts.push("business errors with HTTP 200".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.push(format!("faulted requests applied: {:?}", self.applies).to_lowercase());
            parts.join(", ")
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Error500,
    Error503,
    Error429,
    Drop,
    Hang,
    Business200,
    /// Inside the first N requests.
    FailFirst,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Error500 => "500",
            Fault::Error503 => "503",
            Fault::Error429 => "429",
            Fault::Drop => "drop",
            Fault::Hang => "hang",
            Fault::Business200 => "business-200",
            Fault::FailFirst => "fail-first",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub latency: Duration,
    pub fault: Option<Fault>,
    /// Whether the request is carried out although it is faulted.
    pub applies: bool,
}

/// Distinct requests remembered for attempt counting; past this the
/// memory is cleared (determinism then holds per 4M requests).
const REMEMBERED: usize = 4_000_000;

/// Decides faults; shared by all connections.
pub struct Faults {
    opts: FaultOpts,
    seed: u64,
    seen: Mutex<HashMap<u64, u32>>,
    served: Mutex<u64>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Faults {
    pub fn new(opts: FaultOpts, seed: u64) -> Faults {
        Faults {
            opts,
            seed,
            seen: Mutex::new(HashMap::new()),
            served: Mutex::new(0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn opts(&self) -> &FaultOpts {
        &self.opts
    }

    /// Rate limit: `Err(seconds to wait)` when the tenant's bucket is empty.
    pub fn admit(&self, tenant: &str, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.opts.rate_limit else {
            return Ok(());
        };
        let burst = self.opts.burst.unwrap_or(rate.max(1.0));
        let mut buckets = lock(&self.buckets);
        // Any string can be a tenant header: keep the map bounded. Starting
        // every bucket full again is the harmless side of forgetting.
        if buckets.len() >= super::store::MAX_TENANTS && !buckets.contains_key(tenant) {
            buckets.clear();
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    /// Decides latency and fault for a request identified by `key` (a hash
    /// of tenant, path and body).
    pub fn plan(&self, key: u64) -> Plan {
        let attempt = {
            let mut seen = lock(&self.seen);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let served = {
            let mut served = lock(&self.served);
            *served += 1;
            *served
        };
        let o = &self.opts;
        let draw = |salt: u8| uniform(self.seed, key, attempt, salt);
        let latency = o.latency.pick(draw(1));
        let fault = if served <= o.fail_first {
            Some(Fault::FailFirst)
        } else {
            let u = draw(2);
            let mut edge = 0.0;
            [
                (Fault::Error500, o.error_500),
                (Fault::Error503, o.error_503),
                (Fault::Error429, o.error_429),
                (Fault::Drop, o.drop),
                (Fault::Hang, o.hang),
                (Fault::Business200, o.business_200),
            ]
            .into_iter()
            .find(|&(_, share)| {
                edge += share;
                u < edge
            })
            .map(|(f, _)| f)
        };
        let applies = match (fault, o.applies) {
            (None, _) => true,
            // A refusal: the request was not carried out.
            (Some(Fault::Business200 | Fault::Error429), _) => false,
            (Some(_), FaultApplies::Never) => false,
            (Some(_), FaultApplies::Always) => true,
            (Some(_), FaultApplies::Random) => draw(3) < 0.5,
        };
        Plan {
            latency,
            fault,
            applies,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Locks a mutex; a panic elsewhere never happens in the sandbox, and if it
/// did the counters are still usable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(opts: FaultOpts, seed: u64) -> Faults {
        opts.check().unwrap();
        Faults::new(opts, seed)
    }

    #[test]
    fn latency_parses_fixed_and_ranges() {
        let fixed = Latency::parse("250ms").unwrap();
        assert_eq!(
            (fixed.min, fixed.max),
            (Duration::from_millis(250), fixed.min)
        );
        let range = Latency::parse("100ms..2s").unwrap();
        assert_eq!(range.min, Duration::from_millis(100));
        assert_eq!(range.max, Duration::from_secs(2));
        assert!(Latency::parse("2s..1s").is_err());
        assert!(Latency::parse("soon").is_err());
    }

    #[test]
    fn shares_are_checked() {
        let too_much = FaultOpts {
            error_503: 0.6,
            drop: 0.6,
            ..FaultOpts::default()
        };
        assert!(too_much.check().unwrap_err().contains("more than 1"));
        let negative = FaultOpts {
            hang: -0.1,
            ..FaultOpts::default()
        };
        assert!(negative.check().is_err());
    }

    #[test]
    fn shares_come_out_about_right_and_reproducibly() {
        let opts = FaultOpts {
            error_503: 0.10,
            drop: 0.02,
            ..FaultOpts::default()
        };
        let a = faults(opts.clone(), 7);
        let plans: Vec<Plan> = (0..20_000u64).map(|k| a.plan(k)).collect();
        let share = |f| plans.iter().filter(|p| p.fault == Some(f)).count() as f64 / 20_000.0;
        assert!((share(Fault::Error503) - 0.10).abs() < 0.01);
        assert!((share(Fault::Drop) - 0.02).abs() < 0.005);
        assert_eq!(share(Fault::Hang), 0.0);
        assert!(plans.iter().all(|p| p.fault.is_some() != p.applies));

        // Same seed: same plans even when the requests come in reverse.
        let b = faults(opts.clone(), 7);
        let mut reversed: Vec<Plan> = (0..20_000u64).rev().map(|k| b.plan(k)).collect();
        reversed.reverse();
        assert_eq!(plans, reversed);
        // Another seed: other plans.
        let c = faults(opts, 8);
        let other: Vec<Plan> = (0..20_000u64).map(|k| c.plan(k)).collect();
        assert_ne!(plans, other);
    }

    #[test]
    fn a_retried_request_gets_a_fresh_draw() {
        let f = faults(
            FaultOpts {
                error_503: 0.5,
                ..FaultOpts::default()
            },
            1,
        );
        let attempts: Vec<_> = (0..64).map(|_| f.plan(42).fault).collect();
        assert!(attempts.contains(&None));
        assert!(attempts.contains(&Some(Fault::Error503)));
    }

    #[test]
    fn the_first_n_requests_fail_then_none() {
        let f = faults(
            FaultOpts {
                fail_first: 3,
                applies: FaultApplies::Always,
                ..FaultOpts::default()
            },
            0,
        );
        let plans: Vec<_> = (0..5).map(|k| f.plan(k)).collect();
        assert!(
            plans[..3]
                .iter()
                .all(|p| p.fault == Some(Fault::FailFirst) && p.applies)
        );
        assert!(plans[3..].iter().all(|p| p.fault.is_none()));
    }

    #[test]
    fn the_rate_limit_is_a_token_bucket_per_tenant() {
        let f = faults(
            FaultOpts {
                rate_limit: Some(2.0),
                burst: Some(3.0),
                ..FaultOpts::default()
            },
            0,
        );
        let t0 = Instant::now();
        assert!((0..3).all(|_| f.admit("A", t0).is_ok()));
        assert_eq!(f.admit("A", t0), Err(1));
        // Another tenant has its own bucket.
        assert!(f.admit("B", t0).is_ok());
        // Half a second later one token has come back.
        let later = t0 + Duration::from_millis(500);
        assert!(f.admit("A", later).is_ok());
        assert!(f.admit("A", later).is_err());
    }
}
