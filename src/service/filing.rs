//! What became of a file, in three words an operator cannot misread, and
//! the one line that says why: **done** (every row accepted, or done
//! before), **needs attention** (its orders were all handled, but rows
//! need a person: invalid, held, rejected, conflict), **failed** (it could
//! not be processed, or not all the way: unreadable, the API away, orders
//! left unsettled, this machine failed). A file not sent yet (it waits for
//! approval, or the run stopped) is **left** where it is.

use std::path::Path;

use crate::exit::Exit;
use crate::report::RunFacts;

/// What became of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filing {
    /// Every row done: accepted, or done before.
    Done,
    /// Its orders were all handled; rows need a person (invalid, held,
    /// rejected, conflict).
    NeedsAttention,
    /// Not processed, or not all the way.
    Failed,
    /// Not sent yet: it waits for approval, or the run stopped before or
    /// while it was sent (a re-run resumes it). It stays where it is.
    Left,
}

impl Filing {
    /// What a file's end means: its exit, its rows the API left
    /// unsettled, whether it waits for approval.
    pub fn of(exit: Exit, unsettled: u64, awaiting_approval: bool) -> Filing {
        match exit {
            _ if awaiting_approval => Filing::Left,
            Exit::Ok => Filing::Done,
            Exit::Interrupted => Filing::Left,
            Exit::RowsNotDone if unsettled == 0 => Filing::NeedsAttention,
            _ => Filing::Failed,
        }
    }

    /// As `--json` and the JSON logs name it.
    pub fn key(self) -> &'static str {
        match self {
            Filing::Done => "done",
            Filing::NeedsAttention => "needs-attention",
            Filing::Failed => "failed",
            Filing::Left => "left",
        }
    }

    /// As a log line names it.
    pub fn name(self) -> &'static str {
        match self {
            Filing::Done => "done",
            Filing::NeedsAttention => "needs attention",
            Filing::Failed => "failed",
            Filing::Left => "left",
        }
    }
}

/// Why a sent file ended as it did, in one line: its counts that matter.
pub fn reason(filing: Filing, facts: &RunFacts, to_fix: Option<&Path>) -> String {
    let c = &facts.counts;
    let s = facts.sent.unwrap_or_default();
    let rows = |n: u64| crate::quote::count(n, "row");
    match filing {
        Filing::Done => {
            let mut line = format!("{}: {} accepted", rows(c.rows), s.accepted);
            if s.skipped > 0 {
                line += &format!(", {} done before", s.skipped);
            }
            if s.decided > 0 {
                line += &format!(", {} accepted by a person's decision", s.decided);
            }
            line
        }
        Filing::NeedsAttention => {
            let mut parts = Vec::new();
            for (n, what) in [
                (c.invalid, "invalid"),
                (c.held, "held"),
                (s.rejected, "rejected by the API"),
                (s.conflict, "in conflict with an earlier order"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            let mut line = format!(
                "{} of {} need a person: {}",
                rows_need(c, &s),
                rows(c.rows),
                parts.join(", ")
            );
            if let Some(p) = to_fix {
                line += &format!("; the rows to fix are in {}", p.display());
            }
            line
        }
        Filing::Failed | Filing::Left => {
            let unsettled = s.failed;
            if unsettled > 0 {
                format!(
                    "{} sent without an answer that settles them (the API failed or did not answer); a re-run looks them up and sends none twice",
                    rows(unsettled)
                )
            } else {
                match &facts.api.as_ref().and_then(|a| a.stopped.clone()) {
                    Some(why) => format!("stopped: {why}"),
                    None => "not every row was done".into(),
                }
            }
        }
    }
}

/// How many rows need a person.
fn rows_need(c: &crate::report::FactCounts, s: &crate::report::SentCounts) -> u64 {
    c.invalid + c.held + s.rejected + s.conflict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_outcomes_and_a_file_left() {
        assert_eq!(Filing::of(Exit::Ok, 0, false), Filing::Done);
        assert_eq!(
            Filing::of(Exit::RowsNotDone, 0, false),
            Filing::NeedsAttention
        );
        assert_eq!(Filing::of(Exit::RowsNotDone, 2, false), Filing::Failed);
        assert_eq!(Filing::of(Exit::RowsNotDone, 0, true), Filing::Left);
        for exit in [
            Exit::InputUnreadable,
            Exit::ApiUnavailable,
            Exit::LocalFailure,
        ] {
            assert_eq!(Filing::of(exit, 0, false), Filing::Failed);
        }
        assert_eq!(Filing::of(Exit::Interrupted, 0, false), Filing::Left);
    }
}
