//! The library's typed errors: what went wrong at file level, with the
//! context a user needs to fix it. Row-level problems are not errors; they
//! are data (see `validate::Problem`).

use std::path::PathBuf;

use crate::exit;

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
    Sandbox(#[from] crate::sandbox::SandboxError),

    /// Writing the report failed.
    #[error("cannot write report `{}`: {message}", path.display())]
    Report { path: PathBuf, message: String },
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

    /// The input differs between two passes over it.
    pub fn file_changed(path: impl Into<PathBuf>) -> Self {
        Error::Input {
            path: path.into(),
            message: "the file changed while it was being read; run again".into(),
        }
    }

    pub fn report(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Error::Report {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The process exit code this error ends a run with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Rules { .. } | Error::Sandbox(_) => exit::USAGE,
            Error::Input { .. } | Error::Io { .. } => exit::INPUT_UNREADABLE,
            // A report we cannot write is an environment problem the user
            // fixes by pointing elsewhere: treat it like a bad option.
            Error::Report { .. } => exit::USAGE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
