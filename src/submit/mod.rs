//! Submit: the one batch engine for orders, cancels and upgrades. Each
//! item is sent exactly once: before anything goes out, the ledger (every
//! item ever planned for this API and tenant, see `ledger`) and, for
//! orders, the API's own inventory decide what already exists; workers on
//! tokio, at most `concurrency` in flight and one rate limit shared by all,
//! retry only where it can help; every request is in the ledger before it
//! goes out and every answer after it comes back. An item whose earlier
//! request may have been processed (a timeout, a broken connection, a 5xx,
//! an interrupted run) is looked up before anything is sent again, and only
//! an answer that returns this very item counts as evidence.
//!
//! It knows items and the API, not sheets: the caller turns the outcomes
//! (one per item) into report rows.
//!
//! Each file one concern: `op` (the operation trait and the order create),
//! `http` (the one call path and what every HTTP status means), `verdict`
//! (a create's answer), `lookup` (after a request that may have been
//! processed), `outcome` (outcomes and tallies), `opts` (how to send), `plan` (the ledger's
//! decision, the bulk pre-check, planned records), `ctx` (what the workers
//! share), `worker` (one item), `run` (one batch), `ledger`, `status`.

pub mod absence;
mod ctx;
pub mod http;
pub mod ledger;
mod limit;
mod lookup;
mod op;
mod opts;
mod outcome;
mod plan;
mod retry;
mod run;
pub mod status;
mod stop;
mod verdict;
mod worker;

pub use http::mask_card_numbers;
pub use ledger::{Destination, Ledger, LedgerError, Past, Record, RunRef, Writer};
pub use limit::{Limiter, Tier};
pub use op::{CreateOrders, Lookup, Operation, PRECHECK_PAGE, order_status, short_hash};
pub use opts::SubmitOpts;
pub use outcome::{NOT_SUBMITTED, SendStatus, Sent, Tally};
pub use retry::{Backoff, RetryPolicy};
pub use run::send_batch;
pub use stop::{Stop, Stopper};
