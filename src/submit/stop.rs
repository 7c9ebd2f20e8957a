//! Stopping a run: why it stopped (each reason with its exit code), and
//! the signal every worker watches, the first reason winning.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Why a run stopped before sending everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Too many failed calls in a row.
    ApiUnavailable(String),
    /// 401 or 403: the token or tenant is refused.
    Refused(String),
    /// The base URL answers, but not as the DCMS API does (an HTML 404,
    /// JSON of another shape).
    NotTheApi(String),
    /// `--deadline` passed.
    Deadline,
    /// Ctrl-C (or SIGTERM).
    Interrupted,
    /// The ledger cannot be written: nothing may be sent.
    Ledger(String),
}

impl Stop {
    /// The exit code of a run stopped for this reason.
    pub fn exit(&self) -> crate::exit::Exit {
        match self {
            Stop::Interrupted => crate::exit::Exit::Interrupted,
            Stop::ApiUnavailable(_) | Stop::Refused(_) | Stop::NotTheApi(_) | Stop::Deadline => {
                crate::exit::Exit::ApiUnavailable
            }
            Stop::Ledger(_) => crate::exit::Exit::LocalFailure,
        }
    }
}

impl Stop {
    /// What is safe to do next, in words (never to turn a check off).
    pub fn advice(&self) -> &'static str {
        match self {
            Stop::ApiUnavailable(_) | Stop::Deadline => {
                "wait until the API answers again, then re-run the same command: nothing is sent twice; `dcms-bulk doctor` checks the connection and the profile"
            }
            Stop::Refused(_) => {
                "check the token and the tenant with `dcms-bulk doctor`, then re-run the same command: nothing is sent twice"
            }
            Stop::NotTheApi(_) => {
                "check the base URL with `dcms-bulk doctor`, then re-run the same command"
            }
            Stop::Interrupted => "re-run the same command to resume",
            Stop::Ledger(_) => {
                "fix the disk or the ledger's folder, then re-run the same command to resume"
            }
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::ApiUnavailable(why) => write!(f, "the API is unavailable ({why})"),
            Stop::Refused(why) => write!(f, "the API refuses us ({why})"),
            Stop::NotTheApi(why) => write!(
                f,
                "the base URL answers, but not as the DCMS API does ({why}); check the base URL: the endpoint paths (/card-order ...) are added to it"
            ),
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Deadline => f.write_str("the run's --deadline passed"),
            Stop::Ledger(why) => write!(f, "the ledger cannot be written ({why})"),
        }
    }
}

/// Tells every worker to stop; the first reason given wins.
#[derive(Debug)]
pub struct Stopper {
    reason: Mutex<Option<Stop>>,
    /// An interrupt was asked for, whatever reason came first.
    interrupted: AtomicBool,
    tx: watch::Sender<bool>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper {
            reason: Mutex::new(None),
            interrupted: AtomicBool::new(false),
            tx: watch::channel(false).0,
        }
    }
}

impl Stopper {
    pub fn stop(&self, why: Stop) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if why == Stop::Interrupted {
            self.interrupted.store(true, Ordering::SeqCst);
        }
        if reason.is_none() {
            *reason = Some(why);
        }
        drop(reason);
        self.tx.send_replace(true);
    }

    pub fn reason(&self) -> Option<Stop> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    /// Whether Ctrl-C or SIGTERM asked to stop (even after another stop).
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Lets the next batch try again after one that stopped for the API
    /// (unavailable, refusing, not answering as the API does, a deadline):
    /// a watch goes on after an outage. An interrupt or a ledger failure
    /// stays. Whether the stop was cleared.
    pub fn clear(&self) -> bool {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if self.interrupted.load(Ordering::SeqCst) {
            *reason = Some(Stop::Interrupted);
            return false;
        }
        if matches!(*reason, Some(Stop::Ledger(_))) {
            return false;
        }
        *reason = None;
        self.tx.send_replace(false);
        true
    }

    /// Completes when a stop is asked for.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Completes when the run is interrupted (Ctrl-C, SIGTERM).
    pub async fn interrupted(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx
            .wait_for(|_| matches!(self.reason(), Some(Stop::Interrupted)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_reason_wins() {
        let s = Stopper::default();
        assert!(!s.is_stopped());
        s.stop(Stop::Interrupted);
        s.stop(Stop::ApiUnavailable("x".into()));
        assert!(s.is_stopped());
        assert_eq!(s.reason(), Some(Stop::Interrupted));
    }
}
