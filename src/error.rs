//! The library's typed errors: what went wrong at file level, with the
//! context a user needs to fix it. Row-level problems are not errors; they
//! are data (see `validate::Problem`).

use std::path::PathBuf;

use crate::exit::Exit;

/// An error that stops a run before or while reading its input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or configuration does not make sense.
    #[error("{0}")]
    Usage(String),

    /// The rules file cannot be used.
    #[error("rules file `{path}`: {message}")]
    Rules { path: PathBuf, message: String },

    /// The input file cannot be read as an order sheet.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// The input file could not be opened or read from disk.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The sandbox could not start (address taken, kits file unusable).
    #[error("sandbox: {0}")]
    Sandbox(String),

    /// A part of this program failed (a worker thread ended early): not
    /// the user's doing; the run stops and a re-run resumes it.
    #[error("internal failure: {0}")]
    Internal(String),

    /// The report cannot be written: its path (a missing folder, a folder
    /// or device standing there), or the disk while it is written.
    #[error("cannot write report `{}`: {source}", path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The ledger cannot be opened, read or written, or is not this
    /// destination's.
    #[error(transparent)]
    Ledger(#[from] LedgerError),

    /// An order's request body cannot be built (the profile's
    /// `[create_fields]` names clash).
    #[error("the request body: {0}")]
    Body(#[source] serde_json::Error),

    /// Standard output cannot be written (a closed pipe is not this).
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),

    /// The access database (users, approvals, the audit trail) cannot be
    /// used, or refuses what was asked.
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),

    /// Not done: the run was stopped first (Ctrl-C, the ledger failed).
    #[error("not sent: {why}")]
    Stopped { why: String, exit: Exit },
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The report at `path` cannot be written, because of `cause` (an I/O
    /// error keeps its kind; any other cause is an I/O error of its own).
    pub fn report(
        path: impl Into<PathBuf>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = match cause.into().downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        };
        Error::Report {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error ends a run with: the one place
    /// errors meet the documented codes.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) | Error::Rules { .. } | Error::Sandbox(_) | Error::Body(_) => {
                Exit::Usage
            }
            Error::Input { .. } | Error::Io { .. } => Exit::InputUnreadable,
            Error::Report { source, .. } | Error::Ledger(LedgerError::Io { source, .. }) => {
                path_or_disk(source.kind())
            }
            Error::Ledger(LedgerError::Locked { .. } | LedgerError::Mismatch { .. }) => Exit::Usage,
            // The database itself failed: a damaged file, a full disk.
            Error::Ledger(LedgerError::Sql { .. }) | Error::Stdout(_) | Error::Internal(_) => {
                Exit::LocalFailure
            }
            Error::Stopped { exit, .. } => *exit,
            Error::Access(crate::access::AccessError::Refused(_)) => Exit::Usage,
            Error::Access(_) => Exit::LocalFailure,
        }
    }
}

/// A path the user can fix by pointing elsewhere (a missing folder, a file
/// where a folder should be) is like a bad option; a disk that fails while
/// it is written is not.
fn path_or_disk(kind: std::io::ErrorKind) -> Exit {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::NotFound
        | ErrorKind::InvalidInput
        | ErrorKind::PermissionDenied
        | ErrorKind::AlreadyExists
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::ReadOnlyFilesystem => Exit::Usage,
        _ => Exit::LocalFailure,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        #[source]
        source: crate::db::DbError,
    },
    #[error(
        "another dcms-bulk run is sending to this API and tenant now (lock {}); wait for it to end",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "ledger {} belongs to another destination ({found}); it was copied or renamed by hand",
        path.display()
    )]
    Mismatch { path: PathBuf, found: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn each_error_has_its_exit_code() {
        let report = |kind| Error::report("r.csv", IoError::from(kind)).exit();
        assert_eq!(report(ErrorKind::NotFound), Exit::Usage);
        assert_eq!(report(ErrorKind::IsADirectory), Exit::Usage);
        assert_eq!(report(ErrorKind::StorageFull), Exit::LocalFailure);
        assert_eq!(
            Error::report("r.csv", "the report writer stopped").exit(),
            Exit::LocalFailure
        );
        let ledger = LedgerError::Io {
            path: "l.sqlite".into(),
            source: IoError::from(ErrorKind::StorageFull),
        };
        assert_eq!(Error::from(ledger).exit(), Exit::LocalFailure);
        let ledger = LedgerError::Mismatch {
            path: "l.sqlite".into(),
            found: "http://x/v1 T".into(),
        };
        assert_eq!(Error::from(ledger).exit(), Exit::Usage);
        assert_eq!(Error::input("f.csv", "bad").exit(), Exit::InputUnreadable);
        // The cause stays reachable, with its kind.
        let e = Error::report("r.csv", IoError::from(ErrorKind::StorageFull));
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<IoError>());
        assert_eq!(source.map(IoError::kind), Some(ErrorKind::StorageFull));
    }
}
