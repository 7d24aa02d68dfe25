//! The store's poison: once a write could not be made durable, or the write
//! actor panicked or died, the store refuses every later write instead of
//! limping on, and the process is told so once (after fjall's `poison.rs`).
//!
//! Why refuse rather than retry: after a failed fsync the kernel may have
//! dropped the dirty pages, so a retry that "succeeds" can still have lost
//! data (Rebello et al., ATC '20); after a panic, the actor's view of the
//! last commit ids and of recent records can no longer be trusted. Reads
//! keep working: what was acknowledged before is still on disk. The
//! supervisor behind the [`FatalSink`] stops the process so that a fresh
//! start recovers from the journal.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::health::FatalSink;

/// Shared by a [`Store`](super::Store) handle and its write actor.
pub struct Poison {
    /// Set once, never cleared while the process lives.
    poisoned: AtomicBool,
    /// Where the one report goes.
    fatal: FatalSink,
    /// Names the store in logs and reports, e.g. `store data/shard-0`.
    component: String,
}

impl Poison {
    pub fn new(component: String, fatal: FatalSink) -> Poison {
        Poison {
            poisoned: AtomicBool::new(false),
            fatal,
            component,
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Poisons the store. The first call logs `reason` at `error` and reports
    /// it to the fatal sink; later calls change nothing (one report per
    /// store, however many waiters or failures follow).
    pub fn poison(&self, reason: &dyn std::fmt::Display) {
        if self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::warn!(component = %self.component, %reason, "failure after the store was poisoned");
            return;
        }
        tracing::error!(component = %self.component, %reason, "poisoning the store: it refuses writes from now on");
        self.fatal
            .report(self.component.clone(), reason.to_string());
    }
}

/// Lives on the write actor's thread for as long as the actor runs. If the
/// thread ends without [`ActorLife::finished`] (a panic outside the batch
/// guard, or any other early end), dropping it poisons the store, which
/// reports fatal. Waiters of the requests lost with the thread see their
/// completion abandoned, i.e. "writer stopped".
pub struct ActorLife<'a> {
    poison: &'a Poison,
    finished: bool,
}

impl<'a> ActorLife<'a> {
    pub fn begin(poison: &'a Poison) -> ActorLife<'a> {
        ActorLife {
            poison,
            finished: false,
        }
    }

    /// The actor stopped as it should: every sender is gone.
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for ActorLife<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let how = if std::thread::panicking() {
            "the write actor died in a panic"
        } else {
            "the write actor stopped while writers remained"
        };
        self.poison.poison(&how);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn counted() -> (Arc<AtomicUsize>, Poison) {
        let reports = Arc::new(AtomicUsize::new(0));
        let counter = reports.clone();
        let sink = FatalSink::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (reports, Poison::new("store test".into(), sink))
    }

    #[test]
    fn poisoning_reports_once_however_often_it_happens() {
        let (reports, poison) = counted();
        assert!(!poison.is_poisoned());
        poison.poison(&"commit failed");
        poison.poison(&"and then the actor died");
        assert!(poison.is_poisoned());
        assert_eq!(reports.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_actor_that_ends_early_poisons_and_one_that_finishes_does_not() {
        let (reports, poison) = counted();
        ActorLife::begin(&poison).finished();
        assert!(!poison.is_poisoned());
        drop(ActorLife::begin(&poison));
        assert!(poison.is_poisoned());
        assert_eq!(reports.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_actor_that_panics_poisons() {
        let (reports, poison) = counted();
        let poison = Arc::new(poison);
        let on_thread = poison.clone();
        let died = std::thread::spawn(move || {
            let _life = ActorLife::begin(&on_thread);
            std::panic::panic_any("a bug in the actor");
        })
        .join();
        assert!(died.is_err());
        assert!(poison.is_poisoned());
        assert_eq!(reports.load(Ordering::SeqCst), 1);
    }
}
