//! Failed logins slow down the next failures: counted per atSign and per
//! source address (not only per connection, which an attacker can replace),
//! forgotten after a quiet window, and turned into a delay before the
//! failure is answered.
//!
//! Only failures wait: an owner with the right key or secret is answered
//! at once however many strangers are failing at the same time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::limits::{LOGIN_DELAY_BASE_MS, LOGIN_DELAY_MAX_MS, LOGIN_FAILURE_WINDOW_MS};

/// Recent failed logins of one party (an atSign, or a source bucket).
#[derive(Debug, Default)]
pub struct FailureCounter {
    failures: AtomicU32,
    /// When the last failure happened, in epoch ms.
    last_ms: AtomicU64,
}

impl FailureCounter {
    /// Counts one failure at `now_ms` and returns the failures in the
    /// current window, this one included.
    pub fn record(&self, now_ms: u64) -> u32 {
        let last = self.last_ms.swap(now_ms, Ordering::AcqRel);
        if now_ms.saturating_sub(last) > LOGIN_FAILURE_WINDOW_MS {
            self.failures.store(1, Ordering::Release);
            return 1;
        }
        self.failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1)
    }

    /// A successful login of this party forgets its failures.
    pub fn clear(&self) {
        self.failures.store(0, Ordering::Release);
    }
}

/// How long to wait before answering the `failures`-th recent failure of a
/// party allowed `free` failures: nothing for those, then doubling up to a
/// cap.
pub fn delay_for(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let doublings = (failures - free - 1).min(16);
    let ms = LOGIN_DELAY_BASE_MS
        .saturating_mul(1 << doublings)
        .min(LOGIN_DELAY_MAX_MS);
    Duration::from_millis(ms)
}

/// Failure counters for source addresses, hashed into a fixed table (the
/// same buckets as the connection admission's per-source cap).
pub struct SourceFailures {
    buckets: Box<[FailureCounter]>,
}

impl SourceFailures {
    pub fn new(buckets: usize) -> SourceFailures {
        SourceFailures {
            buckets: (0..buckets.max(1))
                .map(|_| FailureCounter::default())
                .collect(),
        }
    }

    /// The counter of `bucket` (wrapped into the table).
    pub fn bucket(&self, bucket: usize) -> Option<&FailureCounter> {
        self.buckets.get(bucket % self.buckets.len().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free_then_the_delay_doubles_to_a_cap() {
        for n in 0..=3 {
            assert_eq!(delay_for(n, 3), Duration::ZERO);
        }
        let first = delay_for(4, 3);
        assert_eq!(first, Duration::from_millis(LOGIN_DELAY_BASE_MS));
        assert_eq!(delay_for(5, 3), first * 2);
        assert_eq!(
            delay_for(u32::MAX, 3),
            Duration::from_millis(LOGIN_DELAY_MAX_MS)
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_window_or_a_success() {
        let counter = FailureCounter::default();
        let start = 10 * LOGIN_FAILURE_WINDOW_MS;
        assert_eq!(counter.record(start), 1);
        assert_eq!(counter.record(start + 1), 2);
        assert_eq!(counter.record(start + 2 + LOGIN_FAILURE_WINDOW_MS), 1);
        counter.clear();
        assert_eq!(counter.record(start + 3 + LOGIN_FAILURE_WINDOW_MS), 1);
    }
}
