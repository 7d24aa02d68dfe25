//! Timers as a trait, so that connection logic never names the runtime.
//!
//! Sessions, verbs and the client need to sleep (`noop:<ms>`, throttling)
//! and to put a deadline on every network await. They are generic over a
//! [`Clock`]; `shard` provides the glommio one, and [`InstantClock`] drives
//! transcripts and fuzzing without real time passing.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

/// Why an operation under a deadline did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A source of timers for the task that holds it.
pub trait Clock: Clone + 'static {
    /// Resolves once the duration has passed.
    type Sleep: Future<Output = ()>;

    fn sleep(&self, duration: Duration) -> Self::Sleep;

    /// The current time, for ages and expiries (a cache's TTL). Real clocks
    /// read the monotonic clock; a test clock may move it by hand.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Gives the thread's other tasks a turn *and* lets the runtime look
    /// for new I/O before this task runs again. A plain `yield_now` does
    /// only the first: a task that always has input (its socket reads never
    /// wait) would keep the run queue full, and the runtime polls its rings
    /// only when the queue empties or its preempt timer expires.
    fn yield_to_io(&self) -> impl Future<Output = ()> {
        futures_lite::future::yield_now()
    }

    /// Runs `future` but gives up after `limit`.
    fn deadline<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, DeadlineExceeded>> {
        let timer = self.sleep(limit);
        async { Ok(future.await) }.or(async {
            timer.await;
            Err(DeadlineExceeded)
        })
    }
}

/// A clock for in-process transcripts and fuzzing: every sleep ends at once
/// and no deadline ever fires, so the replies of a transcript depend only on
/// its requests, never on how fast the machine runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstantClock;

impl Clock for InstantClock {
    type Sleep = std::future::Ready<()>;

    fn sleep(&self, _duration: Duration) -> Self::Sleep {
        std::future::ready(())
    }

    async fn deadline<F: Future>(
        &self,
        _limit: Duration,
        future: F,
    ) -> Result<F::Output, DeadlineExceeded> {
        Ok(future.await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instant_clock_sleeps_at_once_and_never_times_out() {
        let clock = InstantClock;
        futures_lite::future::block_on(clock.sleep(Duration::from_secs(3600)));
        let slow = async {
            clock.sleep(Duration::from_secs(10)).await;
            7
        };
        let result = futures_lite::future::block_on(clock.deadline(Duration::ZERO, slow));
        assert_eq!(result, Ok(7));
    }
}

thread_local! {
    /// When a connection task of this thread last made progress on an
    /// event from outside (a read, a durable write, a notification line),
    /// not on a timer of its own. The shard's reactor tick reads it to tell
    /// whether it found work that no wake-up had started.
    static LAST_PROGRESS: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Records that a task of this thread made progress on an outside event at
/// `now` (one thread-local store; the connection loop calls it per turn).
pub fn mark_progress(now: Instant) {
    LAST_PROGRESS.with(|last| last.set(Some(now)));
}

/// When a task of this thread last made progress on an outside event.
pub fn last_progress() -> Option<Instant> {
    LAST_PROGRESS.with(std::cell::Cell::get)
}
