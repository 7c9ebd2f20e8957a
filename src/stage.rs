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

/// Byte buffers handed back once used, to be filled again by a stage or
/// another thread: memory already faulted in and grown to size, instead of
/// fresh memory for each chunk of a file or each part of a report.
#[derive(Debug, Default)]
pub struct Spare {
    kept: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Buffers a [`Spare`] keeps at most: as many as are in hand at once on a
/// machine of a few cores; beyond, a buffer is freed.
const SPARE_KEPT: usize = 16;

impl Spare {
    /// An empty buffer: one handed back, or a new one.
    pub fn take(&self) -> Vec<u8> {
        let kept = self.kept.lock().ok().and_then(|mut k| k.pop());
        kept.unwrap_or_default()
    }

    /// Frees the buffers kept (a pass is over: the next may be long off).
    pub fn clear(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Vec::new();
        }
    }

    /// Keeps `buffer`, emptied, for a later [`take`](Self::take).
    pub fn give(&self, mut buffer: Vec<u8>) {
        if let Ok(mut kept) = self.kept.lock()
            && kept.len() < SPARE_KEPT
        {
            buffer.clear();
            kept.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_buffer_comes_back_empty_with_its_room() {
        let spare = Spare::default();
        assert_eq!(spare.take().capacity(), 0);
        let mut b = spare.take();
        b.extend_from_slice(&[7; 1000]);
        let room = b.capacity();
        spare.give(b);
        let again = spare.take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        // No more than SPARE_KEPT are kept.
        for _ in 0..SPARE_KEPT + 5 {
            spare.give(vec![1; 10]);
        }
        let kept: Vec<Vec<u8>> = (0..SPARE_KEPT + 5).map(|_| spare.take()).collect();
        assert_eq!(kept.iter().filter(|b| b.capacity() > 0).count(), SPARE_KEPT);
        // Cleared, it keeps none.
        spare.give(vec![1; 10]);
        spare.clear();
        assert_eq!(spare.take().capacity(), 0);
    }
}
