//! Delays kept to a fraction of a millisecond. Tokio's timer wakes on
//! whole milliseconds, so its 20 ms sleep lasts 20 to 21 ms: `--latency
//! 20ms` would mean about 20.5 ms, and a benchmark's latency-bound ideal
//! would be out by as much. One thread keeps the deadlines and sleeps on a
//! condition variable until the nearest (the kernel's own precision,
//! tens of microseconds); it starts with the first delay asked for and
//! ends with the sandbox.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The sandbox's delays.
#[derive(Default)]
pub struct Delays {
    keeper: OnceLock<Option<Arc<Keeper>>>,
}

/// The deadlines waited for, nearest first, and whether the sandbox is gone.
#[derive(Default)]
struct Keeper {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: std::collections::HashMap<u64, oneshot::Sender<()>>,
    next: u64,
    closed: bool,
}

impl Delays {
    /// Waits `delay` from now.
    pub async fn sleep(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        let keeper = self.keeper.get_or_init(start);
        let Some(keeper) = keeper else {
            // No thread to keep time: tokio's timer, a millisecond coarse.
            return tokio::time::sleep(delay).await;
        };
        let (wake, woken) = oneshot::channel();
        {
            let mut state = lock(&keeper.state);
            let id = state.next;
            state.next += 1;
            state.wakers.insert(id, wake);
            state.due.push(Reverse((deadline, id)));
        }
        keeper.changed.notify_one();
        // The keeper never drops a waker before its deadline but when the
        // sandbox is gone, and then nobody waits for the answer.
        let _ = woken.await;
    }
}

impl Drop for Delays {
    fn drop(&mut self) {
        if let Some(Some(keeper)) = self.keeper.get() {
            lock(&keeper.state).closed = true;
            keeper.changed.notify_one();
        }
    }
}

fn start() -> Option<Arc<Keeper>> {
    let keeper = Arc::new(Keeper::default());
    let kept = keeper.clone();
    crate::stage::apart("sandbox delays", move || keep(&kept))
        .ok()
        .map(|_| keeper)
}

/// Wakes each waiter at its deadline, until the sandbox is gone.
fn keep(keeper: &Keeper) {
    let mut state = lock(&keeper.state);
    while !state.closed {
        let now = Instant::now();
        match state.due.peek().copied() {
            Some(Reverse((deadline, id))) if deadline <= now => {
                state.due.pop();
                if let Some(wake) = state.wakers.remove(&id) {
                    let _ = wake.send(());
                }
            }
            Some(Reverse((deadline, _))) => {
                state = keeper
                    .changed
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                state = keeper
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_end_at_their_deadline_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let delays = Delays::default();
        let started = Instant::now();
        let lasted = runtime.block_on(async {
            let one = |ms| {
                let delays = &delays;
                async move {
                    delays.sleep(Duration::from_millis(ms)).await;
                    (ms, started.elapsed())
                }
            };
            let (a, b, c) = tokio::join!(one(30), one(10), one(20));
            [a, b, c]
        });
        for (ms, took) in lasted {
            let want = Duration::from_millis(ms);
            assert!(took >= want, "{ms} ms lasted {took:?}");
            // Far under a millisecond on an idle machine; a loaded CI
            // runner is given room.
            assert!(
                took < want + Duration::from_millis(15),
                "{ms} ms lasted {took:?}"
            );
        }
    }
}
