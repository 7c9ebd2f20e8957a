//! `dcms-bulk`: branch order sheets in, DCMS card-kit orders and a per-row
//! report out.
//!
//! A sheet flows one way through the stages, each a module:
//!
//! ```text
//! read → columns → validate → group → submit → report
//! ```
//!
//! `pipeline` runs the checking stages in order; `batch` takes a checked
//! file through the send engine (`submit`) to its report, the same way for
//! orders, cancels and upgrades; `cli` turns flags into those calls;
//! `dcms` holds the API's request and response types; `sandbox` is the
//! local DCMS simulator the tests and `--sandbox` run against.

/// `dcms-bulk --version`: the version and the commit the binary was built
/// from (`-modified` when built with changes not committed).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_COMMIT"),
    ")"
);

pub mod access;
pub mod batch;
pub mod cli;
pub mod clock;
pub mod columns;
pub mod db;
pub mod dcms;
pub mod desk;
pub mod drop;
pub mod engine;
pub mod error;
pub mod exit;
pub mod files;
pub mod group;
pub mod host;
pub mod job;
pub mod lines;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod quote;
pub mod read;
pub mod report;
pub mod rules;
pub mod sandbox;
pub mod schema;
pub mod service;
pub mod stage;
pub mod submit;
pub mod template;
pub mod validate;
