//! What became of one item in a run: its status and what an auditor
//! needs of the answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::clock::Stamp;

/// What became of one order in a submit run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SendStatus {
    /// The API took it (or, looked up, already had it).
    Accepted,
    /// The API refused it with a business error; final.
    Rejected,
    /// No final answer (after retries, or not sent because the run
    /// stopped); safe to re-run.
    #[default]
    Failed,
    /// Accepted earlier (by any run or file), or already held by the API;
    /// not sent again.
    Skipped,
    /// An order with this id was already sent with other content (or the
    /// API holds it so): not sent.
    Conflict,
    /// Its outcome was unknown and a person decided it was sent
    /// (`dcms-bulk resolve --sent`): done, not sent again, and never
    /// reported as plain ACCEPTED.
    #[serde(rename = "ACCEPTED_BY_DECISION")]
    Decided,
}

impl SendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Accepted => "ACCEPTED",
            SendStatus::Rejected => "REJECTED",
            SendStatus::Failed => "FAILED",
            SendStatus::Skipped => "SKIPPED",
            SendStatus::Conflict => "CONFLICT",
            SendStatus::Decided => "ACCEPTED_BY_DECISION",
        }
    }
}

/// An order's outcome with what an auditor needs: the API's code and
/// messages, the HTTP status, how many requests, when, how long.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub status: SendStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Create requests sent for the order, over all runs of the batch.
    #[serde(default)]
    pub attempts: u32,
    /// When the last create request went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Result fields of an accepted answer (an upgrade's new kit...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub result: BTreeMap<String, String>,
    /// The `X-Request-Id` of the last call made for it (create or lookup),
    /// for a support ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<uuid::Uuid>,
}

/// A request id as [`Sent`] keeps it: the client's ids are UUIDs (one
/// that is not says nothing a support ticket could use).
pub(super) fn request_uuid(id: Option<&str>) -> Option<uuid::Uuid> {
    id.and_then(|id| uuid::Uuid::parse_str(id).ok())
}

/// Code given to orders a stopped run never sent.
pub const NOT_SUBMITTED: &str = "NOT_SUBMITTED";

/// Running counts, read by the progress display.
#[derive(Debug, Default)]
pub struct Tally {
    pub done: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    pub conflict: AtomicU64,
    pub decided: AtomicU64,
    /// HTTP requests made (creates and lookups).
    pub requests: AtomicU64,
    /// Things the user should know once (an endpoint the API lacks...).
    pub notes: Mutex<Vec<String>>,
    /// Each item's outcome as it comes (its slot: an order's group), kept
    /// until taken, when asked for (see [`Tally::with_answers`]).
    answers: Option<Mutex<Vec<(usize, SendStatus)>>>,
}

impl Tally {
    pub(super) fn note(&self, note: String) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(note);
    }

    /// A tally that also keeps each item's outcome until it is taken (a
    /// face that shows items as they are answered takes them often).
    pub fn with_answers() -> Tally {
        Tally {
            answers: Some(Mutex::new(Vec::new())),
            ..Tally::default()
        }
    }

    /// The outcomes that came since last taken: (slot, status).
    pub fn take_answers(&self) -> Vec<(usize, SendStatus)> {
        self.answers.as_ref().map_or_else(Vec::new, |a| {
            std::mem::take(&mut *a.lock().unwrap_or_else(|p| p.into_inner()))
        })
    }

    /// The notes so far, taken.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn count(&self, slot: usize, sent: &Sent) {
        if let Some(a) = &self.answers {
            a.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((slot, sent.status));
        }
        let which = match sent.status {
            SendStatus::Accepted => &self.accepted,
            SendStatus::Rejected => &self.rejected,
            SendStatus::Failed => &self.failed,
            SendStatus::Skipped => &self.skipped,
            SendStatus::Conflict => &self.conflict,
            SendStatus::Decided => &self.decided,
        };
        which.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}
