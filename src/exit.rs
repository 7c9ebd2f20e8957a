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
/// This machine failed the run: the ledger or the report cannot be read
/// or written (disk full, an I/O error, a damaged ledger), or standard
/// output. What was sent is in the ledger as far as it could be written;
/// re-run once the disk is fixed.
pub const LOCAL_FAILURE: i32 = 5;
/// Interrupted (Ctrl-C); the journal is flushed and a re-run resumes.
pub const INTERRUPTED: i32 = 130;

/// The code of a run made of several parts (files): the most serious one.
/// An interrupt outranks an unreachable API, which outranks a failing
/// disk, a usage problem, an unreadable file, and rows not done.
pub fn most_serious(codes: impl IntoIterator<Item = i32>) -> i32 {
    const RANK: [i32; 7] = [
        INTERRUPTED,
        API_UNAVAILABLE,
        LOCAL_FAILURE,
        USAGE,
        INPUT_UNREADABLE,
        ROWS_NOT_DONE,
        OK,
    ];
    let rank = |c: i32| RANK.iter().position(|r| *r == c).unwrap_or(0);
    codes.into_iter().min_by_key(|c| rank(*c)).unwrap_or(OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_code_wins() {
        assert_eq!(most_serious([]), OK);
        assert_eq!(most_serious([OK, ROWS_NOT_DONE, OK]), ROWS_NOT_DONE);
        assert_eq!(
            most_serious([ROWS_NOT_DONE, INPUT_UNREADABLE]),
            INPUT_UNREADABLE
        );
        assert_eq!(
            most_serious([INPUT_UNREADABLE, API_UNAVAILABLE, OK]),
            API_UNAVAILABLE
        );
        assert_eq!(most_serious([API_UNAVAILABLE, INTERRUPTED]), INTERRUPTED);
    }
}
