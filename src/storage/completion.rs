//! The hand-off of one write's outcome from the write actor to the
//! connection awaiting it.
//!
//! A oneshot channel wakes its receiver the moment a value is sent. Waking a
//! glommio shard that sleeps costs an `eventfd` write, and the kernel then
//! tends to run the woken shard at once on a 2-core box, preempting the actor
//! in the middle of completing its batch. So the actor first publishes every
//! outcome of a batch ([`Completer::publish`] returns the waker instead of
//! using it) and only then wakes the connections: the shard that runs first
//! finds all of its outcomes ready.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::actor::WriteOutcome;
use super::error::WriteError;

type Outcome = Result<WriteOutcome, WriteError>;

#[derive(Default)]
struct State {
    /// The published outcome, until the connection takes it.
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    /// The actor's side is done: it published, or it was dropped without
    /// an answer (the actor stopped).
    finished: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The actor's side: publishes the outcome once.
pub struct Completer {
    shared: Option<Arc<Shared>>,
}

/// The connection's side: polls for the outcome.
pub struct Completion {
    shared: Arc<Shared>,
}

/// A connected pair.
pub fn pair() -> (Completer, Completion) {
    let shared = Arc::new(Shared::default());
    (
        Completer {
            shared: Some(shared.clone()),
        },
        Completion { shared },
    )
}

impl Completer {
    /// Stores the outcome and returns the waker to call once the whole batch
    /// is published.
    #[must_use = "the returned waker must be woken"]
    pub fn publish(mut self, outcome: Outcome) -> Option<Waker> {
        let shared = self.shared.take()?;
        let mut state = shared.lock();
        state.outcome = Some(outcome);
        state.finished = true;
        state.waker.take()
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let waker = {
                let mut state = shared.lock();
                state.finished = true;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// What [`Completion::take`] found.
pub enum Polled {
    Ready(Outcome),
    /// No outcome will come: the actor stopped without answering (or the
    /// outcome was taken already).
    Abandoned,
    Pending,
}

impl Completion {
    /// Ready once the actor's side is done; otherwise remembers `cx`'s
    /// waker. Takes nothing.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if state.finished {
            return Poll::Ready(());
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes the outcome if it is there.
    pub fn take(&self) -> Polled {
        let mut state = self.shared.lock();
        match state.outcome.take() {
            Some(outcome) => Polled::Ready(outcome),
            None if state.finished => Polled::Abandoned,
            None => Polled::Pending,
        }
    }
}

/// Publishes every outcome of a batch, then wakes the connections waiting
/// for them, so the first one woken cannot preempt the rest of the telling.
pub fn publish_all(outcomes: impl IntoIterator<Item = (Completer, Outcome)>) {
    let wakers: Vec<Waker> = outcomes
        .into_iter()
        .filter_map(|(completer, outcome)| completer.publish(outcome))
        .collect();
    wakers.into_iter().for_each(Waker::wake);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreError;
    use crate::storage::test_waker::counting_waker;

    fn outcome() -> Outcome {
        Ok(WriteOutcome {
            commit_id: Some(7),
            existed: false,
        })
    }

    #[test]
    fn publishing_hands_back_the_waker_instead_of_waking() {
        let (completer, completion) = pair();
        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(completion.poll_ready(&mut cx).is_pending());
        let handed = completer.publish(outcome());
        assert_eq!(counter.wakes(), 0);
        handed.expect("the registered waker").wake();
        assert_eq!(counter.wakes(), 1);
        assert!(completion.poll_ready(&mut cx).is_ready());
        assert!(matches!(completion.take(), Polled::Ready(Ok(o)) if o.commit_id == Some(7)));
    }

    #[test]
    fn an_outcome_published_before_polling_is_found() {
        let (completer, completion) = pair();
        assert!(completer.publish(outcome()).is_none());
        assert!(matches!(completion.take(), Polled::Ready(Ok(_))));
    }

    #[test]
    fn a_dropped_completer_wakes_and_reports_abandonment() {
        let (completer, completion) = pair();
        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(completion.poll_ready(&mut cx).is_pending());
        drop(completer);
        assert_eq!(counter.wakes(), 1);
        assert!(completion.poll_ready(&mut cx).is_ready());
        assert!(matches!(completion.take(), Polled::Abandoned));
    }

    #[test]
    fn errors_pass_through() {
        let (completer, completion) = pair();
        let _ = completer.publish(Err(StoreError::Poisoned.into()));
        assert!(matches!(completion.take(), Polled::Ready(Err(_))));
    }
}
