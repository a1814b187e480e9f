//! The queue between the recorder and the screen, bounded. The recorder passes every event on to
//! the screen after the log file and the store have it; a screen slower than the jobs' output
//! (plain lines into a slow pipe, a terminal) would otherwise hold the whole log in memory. So
//! the recorder waits while the screen is [`SCREEN_LINES`] output lines behind, and with it the
//! jobs' output (see [`crate::backend::Backlog`]). Plain and JSON lines show every line; the
//! terminal view leaves lines out while it lags instead of holding the run back (see
//! `progress`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// At most about this many output lines wait for the screen (a few MB).
pub const SCREEN_LINES: usize = 16 * 1024;

/// The output lines passed on to a screen and not yet shown. Nothing is counted until a screen
/// that counts what it shows says so ([`ScreenQueue::count`]): a consumer that does not (a git
/// hook's verdict) never makes the recorder wait.
#[derive(Default, Debug)]
pub struct ScreenQueue {
    counted: AtomicBool,
    queued: AtomicUsize,
    lock: Mutex<()>,
    caught_up: Condvar,
}

impl ScreenQueue {
    /// Called by the screen before the first event, so that none is counted but not shown.
    pub(super) fn count(&self) {
        self.counted.store(true, Ordering::Release);
    }

    /// Counts a line passed on to the screen; first waits while the screen is too far behind,
    /// until it has shown half of what waits, or `gone` says it will show nothing more.
    pub(super) fn queue(&self, gone: impl Fn() -> bool) {
        if !self.counted.load(Ordering::Acquire) {
            return;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= SCREEN_LINES {
            let mut guard = self.lock.lock().expect("not poisoned");
            while self.queued.load(Ordering::Acquire) > SCREEN_LINES / 2 && !gone() {
                // The timeout only notices a screen that went away (a panic) without a word.
                guard = self
                    .caught_up
                    .wait_timeout(guard, Duration::from_millis(200))
                    .expect("not poisoned")
                    .0;
            }
        }
    }

    /// Counts a line shown (or left out) by the screen.
    pub(super) fn shown(&self) {
        if !self.counted.load(Ordering::Acquire) {
            return;
        }
        // Wakes the recorder once half the queue is gone, not at every line. Under the lock,
        // so a recorder between its look and its wait does not miss it.
        if self.queued.fetch_sub(1, Ordering::AcqRel) == SCREEN_LINES / 2 + 1 {
            let _guard = self.lock.lock().expect("not poisoned");
            self.caught_up.notify_all();
        }
    }

    /// How many output lines wait to be shown.
    pub(super) fn behind(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_queue_nobody_counts_never_waits() {
        let queue = ScreenQueue::default();
        for _ in 0..SCREEN_LINES * 2 {
            queue.queue(|| false);
        }
        assert_eq!(queue.behind(), 0);
    }

    #[test]
    fn a_full_queue_holds_the_recorder_until_half_of_it_is_shown() {
        let queue = Arc::new(ScreenQueue::default());
        queue.count();
        for _ in 0..SCREEN_LINES {
            queue.queue(|| false);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let recorder = std::thread::spawn({
            let queue = queue.clone();
            move || {
                queue.queue(|| false);
                tx.send(()).unwrap();
            }
        });
        while queue.behind() <= SCREEN_LINES {
            std::thread::yield_now();
        }
        // Shown one by one; the recorder may go on only once half the queue is gone.
        for shown in 1..=SCREEN_LINES / 2 + 1 {
            assert!(rx.try_recv().is_err(), "went on after {shown} lines shown");
            queue.shown();
        }
        rx.recv().unwrap();
        recorder.join().unwrap();
    }

    #[test]
    fn a_screen_gone_lets_the_recorder_go_on() {
        let queue = ScreenQueue::default();
        queue.count();
        for _ in 0..=SCREEN_LINES {
            queue.queue(|| true);
        }
        assert_eq!(queue.behind(), SCREEN_LINES + 1);
    }
}
