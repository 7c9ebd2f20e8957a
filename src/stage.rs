//! Work beside the caller: the one way the code runs a thread of its own
//! and hands it work. CPU work across the cores goes through rayon, and
//! network calls through tokio; a stage is for what runs between them
//! (the CSV reader ahead of the checks, the report writer behind them,
//! the ledger's writer, the watch's checkers and watcher, a progress
//! ticker). A stage is a named thread, in a scope where it borrows (the
//! scope's end waits for it), fed over a crossbeam channel, which more
//! than one stage may take from; it ends when its senders are gone, and
//! its panic is an error where it is joined.

use std::thread::{Scope, ScopedJoinHandle};

pub use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, never, unbounded};

/// Starts `work` on a thread named `name` in `scope`.
pub fn beside<'s, R: Send + 's>(
    scope: &'s Scope<'s, '_>,
    name: &str,
    work: impl FnOnce() -> R + Send + 's,
) -> std::io::Result<ScopedJoinHandle<'s, R>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn_scoped(scope, work)
}

/// Starts `work` on a thread named `name` that outlives the caller (the
/// ledger's writer, owned by the ledger and joined when it is dropped).
pub fn apart<R: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> R + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<R>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
}

/// What a stage returned, or `None` if it panicked.
pub fn joined<R>(stage: ScopedJoinHandle<'_, R>) -> Option<R> {
    stage.join().ok()
}
