//! Every process exit code `dcms-bulk` uses, decided here and nowhere else.
//!
//! Schedulers branch on these numbers, so they are part of the interface:
//! the README documents each one and the integration tests assert on the
//! names, not the numbers.

/// Every row was done: all valid (validate) or all accepted (submit).
pub const OK: i32 = 0;
/// The run finished and the report was written, but some rows are invalid,
/// held, rejected or failed.
pub const ROWS_NOT_DONE: i32 = 1;
/// The command line or the configuration (rules file, flags) is wrong.
pub const USAGE: i32 = 2;
/// The input file cannot be read as an order sheet: missing, not a
/// spreadsheet, corrupt, password-protected, missing required columns.
pub const INPUT_UNREADABLE: i32 = 3;
/// The API cannot be reached or refuses us (authentication).
pub const API_UNAVAILABLE: i32 = 4;
/// Interrupted (Ctrl-C); the journal is flushed and a re-run resumes.
pub const INTERRUPTED: i32 = 130;
