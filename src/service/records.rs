//! What a watch's tries of a file wrote (reports, run facts, records of
//! why it could not be read): put away with the run history while the
//! file waits for its next try, and filed with the file in the end.

use std::path::{Path, PathBuf};

use super::{Event, Service};
use crate::drop;
use crate::report;

/// What an earlier try of a file wrote (its report and run facts, or the
/// record of why it could not be read), kept under a name of its own.
pub(super) struct Kept {
    /// The ledger's run of that try.
    pub(super) run: Option<i64>,
    pub(super) report: PathBuf,
}

/// Moves the report, run facts and rows to fix at `path`'s report (an
/// earlier try's, or an earlier watch's) to the run history beside the
/// ledger, so that the drop folder holds only sheets; the ledger's list
/// of runs says where the report is now.
pub(super) fn put_away(service: &Service<'_>, path: &Path) -> Option<Kept> {
    let history = history_dir(service);
    let kept = service
        .out
        .target(path)
        .and_then(|t| report::keep_earlier_in(&t.path, Some(&history)));
    match kept {
        Ok(Some(kept)) => {
            // A file that could not be read has its record of why as its
            // report.
            let facts = report::facts_path(&kept.report);
            let now = if kept.report.exists() {
                &kept.report
            } else {
                &facts
            };
            if let Some(run) = kept.run
                && let Err(e) = service.engine.ledger.report_moved(run, now)
            {
                service.trouble(
                    Some(path),
                    format!("the ledger cannot record where the report went: {e}"),
                );
            }
            Some(Kept {
                run: kept.run,
                report: kept.report,
            })
        }
        Ok(None) => None,
        Err(e) => {
            (service.on)(Event::Failed {
                file: path,
                error: &e,
            });
            None
        }
    }
}

/// Where the watch keeps the records of tries to be repeated: beside the
/// ledger, in a folder named after it.
pub fn history_dir(service: &Service<'_>) -> PathBuf {
    service.engine.history.clone()
}

/// Moves what the earlier tries of a file wrote to where the file went;
/// the ledger's list of runs says where their reports are now.
pub(super) fn file_records(service: &Service<'_>, dir: &Path, records: &[Kept], tag: &str) {
    for kept in records {
        let facts = report::facts_path(&kept.report);
        let to_fix = report::to_fix_path(&kept.report);
        let moved = drop::file_away(dir, &[&kept.report, &facts, &to_fix], tag).and_then(|moved| {
            match (kept.run, moved[0].as_ref().or(moved[1].as_ref())) {
                (Some(run), Some(report)) => service
                    .engine
                    .ledger
                    .report_moved(run, report)
                    .map_err(std::io::Error::other),
                _ => Ok(()),
            }
        });
        if let Err(e) = moved {
            service.trouble(
                None,
                format!(
                    "could not move {} to {}: {e}",
                    kept.report.display(),
                    dir.display()
                ),
            );
        }
    }
}
