//! `dcms-bulk`: branch order sheets in, DCMS card-kit orders and a per-row
//! report out.
//!
//! A sheet flows one way through the stages, each a module:
//!
//! ```text
//! read → columns → validate → group → report
//! ```
//!
//! `pipeline` runs them in order; `cli` turns flags into a checked run; `dcms`
//! holds the API's request and response types; `sandbox` is the local DCMS
//! simulator the tests and `--sandbox` run against.

pub mod cli;
pub mod clock;
pub mod columns;
pub mod dcms;
pub mod error;
pub mod exit;
pub mod group;
pub mod ops;
pub mod pipeline;
pub mod read;
pub mod report;
pub mod rules;
pub mod sandbox;
pub mod submit;
pub mod template;
pub mod validate;
