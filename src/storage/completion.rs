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
use crate::error::AtError;

type Outcome = Result<WriteOutcome, AtError>;

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    /// The actor dropped its side without an outcome (it stopped).
    abandoned: bool,
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
        state.waker.take()
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let waker = {
                let mut state = shared.lock();
                state.abandoned = true;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// What polling a [`Completion`] found.
pub enum Polled {
    Ready(Outcome),
    /// The actor stopped without answering.
    Abandoned,
    Pending,
}

impl Completion {
    /// Takes the outcome if it is there; otherwise remembers `cx`'s waker.
    pub fn poll_take(&self, cx: Option<&mut Context<'_>>) -> Polled {
        let mut state = self.shared.lock();
        if let Some(outcome) = state.outcome.take() {
            return Polled::Ready(outcome);
        }
        if state.abandoned {
            return Polled::Abandoned;
        }
        if let Some(cx) = cx {
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
        }
        Polled::Pending
    }

    /// Polls as a future would.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        match self.poll_take(Some(cx)) {
            Polled::Ready(outcome) => Poll::Ready(Some(outcome)),
            Polled::Abandoned => Poll::Ready(None),
            Polled::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AtCode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker that counts its wake-ups.
    fn counting_waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

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
        assert!(completion.poll(&mut cx).is_pending());
        let handed = completer.publish(outcome());
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        handed.expect("the registered waker").wake();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(
            matches!(completion.poll(&mut cx), Poll::Ready(Some(Ok(o))) if o.commit_id == Some(7))
        );
    }

    #[test]
    fn an_outcome_published_before_polling_is_found() {
        let (completer, completion) = pair();
        assert!(completer.publish(outcome()).is_none());
        assert!(matches!(completion.poll_take(None), Polled::Ready(Ok(_))));
    }

    #[test]
    fn a_dropped_completer_wakes_and_reports_abandonment() {
        let (completer, completion) = pair();
        let (counter, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(completion.poll(&mut cx).is_pending());
        drop(completer);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(matches!(completion.poll(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn errors_pass_through() {
        let (completer, completion) = pair();
        let _ = completer.publish(Err(AtError::new(AtCode::DataStore, "x")));
        assert!(matches!(completion.poll_take(None), Polled::Ready(Err(_))));
    }
}
