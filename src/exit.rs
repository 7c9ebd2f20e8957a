//! Every process exit code `dcms-bulk` uses, decided here and nowhere else.
//!
//! Every command ends in an [`Exit`], made from typed results (an
//! [`Error`](crate::error::Error), a [`Stop`](crate::submit::Stop), a
//! batch's counts); only here does an `Exit` become a number. Schedulers
//! branch on those numbers, so they are part of the interface: the manual
//! documents each one and the integration tests assert on the names (the
//! constants below), not the numbers.

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Every row was done: all valid (validate) or all accepted (submit).
    Ok,
    /// The run finished and the report was written, but some rows are
    /// invalid, held, rejected or failed.
    RowsNotDone,
    /// The command line or the configuration (rules file, flags) is wrong.
    Usage,
    /// The input file cannot be read as an order sheet: missing, not a
    /// spreadsheet, corrupt, password-protected, missing required columns.
    InputUnreadable,
    /// The API cannot be reached or refuses us (authentication).
    ApiUnavailable,
    /// This machine failed the run: the ledger or the report cannot be
    /// read or written (disk full, an I/O error, a damaged ledger), or
    /// standard output. What was sent is in the ledger as far as it could
    /// be written; re-run once the disk is fixed.
    LocalFailure,
    /// `status --wait` gave up: orders still open when `--wait-timeout`
    /// passed (none failed, none unknown).
    StillOpen,
    /// Interrupted (Ctrl-C, SIGTERM); the journal is flushed and a re-run
    /// resumes.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::RowsNotDone => 1,
            Exit::Usage => 2,
            Exit::InputUnreadable => 3,
            Exit::ApiUnavailable => 4,
            Exit::LocalFailure => 5,
            Exit::StillOpen => 6,
            Exit::Interrupted => 130,
        }
    }

    /// All rows done, or some not.
    pub fn rows(all_done: bool) -> Exit {
        if all_done {
            Exit::Ok
        } else {
            Exit::RowsNotDone
        }
    }

    /// The end of a run made of several parts (files): the most serious
    /// one. An interrupt outranks an unreachable API, which outranks a
    /// failing disk, a usage problem, an unreadable file, and rows not
    /// done.
    pub fn most_serious(ends: impl IntoIterator<Item = Exit>) -> Exit {
        const RANK: [Exit; 8] = [
            Exit::Interrupted,
            Exit::ApiUnavailable,
            Exit::LocalFailure,
            Exit::Usage,
            Exit::InputUnreadable,
            Exit::RowsNotDone,
            Exit::StillOpen,
            Exit::Ok,
        ];
        let rank = |e: Exit| RANK.iter().position(|r| *r == e).unwrap_or(0);
        ends.into_iter()
            .min_by_key(|e| rank(*e))
            .unwrap_or(Exit::Ok)
    }

    /// The more serious of two.
    pub fn and(self, other: Exit) -> Exit {
        Exit::most_serious([self, other])
    }
}

/// In JSON (summaries, run facts): the number.
impl serde::Serialize for Exit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

/// Every exit code: its number, its name, and what it means in one line.
/// The help, the man page's EXIT STATUS and the manual's table say the
/// same (a test holds them to this).
pub const CODES: [(Exit, &str, &str); 8] = [
    (
        Exit::Ok,
        "OK",
        "every row done (valid, or accepted or done before)",
    ),
    (
        Exit::RowsNotDone,
        "ROWS_NOT_DONE",
        "finished, report written, but some rows are invalid, held, rejected, failed or in conflict",
    ),
    (
        Exit::Usage,
        "USAGE",
        "the command line, configuration or rules are wrong",
    ),
    (
        Exit::InputUnreadable,
        "INPUT_UNREADABLE",
        "an input cannot be read as a sheet (missing, damaged, not a spreadsheet, columns missing)",
    ),
    (
        Exit::ApiUnavailable,
        "API_UNAVAILABLE",
        "the API cannot be reached or refuses us; re-run to resume",
    ),
    (
        Exit::LocalFailure,
        "LOCAL_FAILURE",
        "this machine failed: the ledger or a report cannot be read or written; re-run once fixed",
    ),
    (
        Exit::StillOpen,
        "STILL_OPEN",
        "status --wait gave up: orders still open when --wait-timeout passed",
    ),
    (
        Exit::Interrupted,
        "INTERRUPTED",
        "interrupted (Ctrl-C, SIGTERM); re-run to resume",
    ),
];

/// The exit codes as the help lists them: `  0  every row done ...`.
pub fn help_text() -> String {
    let mut text = String::from("Exit codes:\n");
    for (exit, _, meaning) in CODES {
        text += &format!("  {:>3}  {meaning}\n", exit.code());
    }
    text
}

/// The numbers, by name, for scripts and tests.
pub const OK: i32 = Exit::Ok.code();
pub const ROWS_NOT_DONE: i32 = Exit::RowsNotDone.code();
pub const USAGE: i32 = Exit::Usage.code();
pub const INPUT_UNREADABLE: i32 = Exit::InputUnreadable.code();
pub const API_UNAVAILABLE: i32 = Exit::ApiUnavailable.code();
pub const LOCAL_FAILURE: i32 = Exit::LocalFailure.code();
pub const STILL_OPEN: i32 = Exit::StillOpen.code();
pub const INTERRUPTED: i32 = Exit::Interrupted.code();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_end_wins() {
        use Exit::*;
        assert_eq!(Exit::most_serious([]), Ok);
        assert_eq!(Exit::most_serious([Ok, RowsNotDone, Ok]), RowsNotDone);
        assert_eq!(
            Exit::most_serious([RowsNotDone, InputUnreadable]),
            InputUnreadable
        );
        assert_eq!(
            Exit::most_serious([InputUnreadable, ApiUnavailable, Ok]),
            ApiUnavailable
        );
        assert_eq!(
            Exit::most_serious([ApiUnavailable, Interrupted]),
            Interrupted
        );
        assert_eq!(LocalFailure.and(Usage), LocalFailure);
    }

    #[test]
    fn the_numbers_are_the_documented_ones() {
        let codes: Vec<i32> = [
            Exit::Ok,
            Exit::RowsNotDone,
            Exit::Usage,
            Exit::InputUnreadable,
            Exit::ApiUnavailable,
            Exit::LocalFailure,
            Exit::Interrupted,
        ]
        .map(Exit::code)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 130]);
        assert_eq!(serde_json::to_string(&Exit::Interrupted).unwrap(), "130");
    }
}
