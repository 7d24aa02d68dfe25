//! What the write actor is doing, readable from any thread without a lock:
//! how long its current disk step has run (so a supervisor can report a
//! hung disk as a stalled store instead of finding connections pinned) and
//! how many background syncs it made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared by a [`Store`](super::Store) handle and its write actor.
pub struct Activity {
    /// What `busy_since_ns` counts from.
    epoch: Instant,
    /// When the current step (a batch, an expiry sweep, a sync or a flush)
    /// started, in ns since `epoch`, plus one; 0 while the actor is idle.
    busy_since_ns: AtomicU64,
    /// Background syncs of fast mode that succeeded.
    background_syncs: AtomicU64,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            busy_since_ns: AtomicU64::new(0),
            background_syncs: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Marks the start of a step; the returned guard marks its end when
    /// dropped, also when the step panics.
    pub fn busy(self: &Arc<Activity>) -> Busy {
        // Pairs with the reset in `Busy::drop`: steps do not nest.
        debug_assert_eq!(self.busy_since_ns.load(Ordering::Relaxed), 0);
        self.busy_since_ns
            .store(self.now_ns().saturating_add(1), Ordering::Release);
        Busy {
            activity: self.clone(),
        }
    }

    /// How long the current step has been running, or `None` when idle.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = self.busy_since_ns.load(Ordering::Acquire);
        let started = since.checked_sub(1)?;
        Some(Duration::from_nanos(self.now_ns().saturating_sub(started)))
    }

    pub fn count_background_sync(&self) {
        self.background_syncs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn background_syncs(&self) -> u64 {
        self.background_syncs.load(Ordering::Relaxed)
    }
}

/// A step of the actor in progress; see [`Activity::busy`].
pub struct Busy {
    activity: Arc<Activity>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.busy_since_ns.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_for_is_set_only_during_a_step() {
        let activity = Arc::new(Activity::new());
        assert_eq!(activity.busy_for(), None);
        let step = activity.busy();
        assert!(activity.busy_for().is_some());
        drop(step);
        assert_eq!(activity.busy_for(), None);
    }
}
