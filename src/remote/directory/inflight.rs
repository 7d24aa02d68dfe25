//! One directory request per atSign at a time on a shard: the first task
//! that needs an answer asks (the leader); tasks that need the same answer
//! meanwhile wait for the leader's outcome instead of asking again.
//!
//! Single-threaded (`Rc`, `RefCell`): each shard has its own table, and
//! nothing here suspends while a borrow is held. A leader whose task is
//! dropped before it finishes (its caller's deadline, a closed connection)
//! marks its request abandoned and wakes the waiters, one of which then
//! asks in its place, so no waiter is ever left without a leader.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::DirectoryError;
use super::answer::Answer;

/// The outcome a leader shares.
pub(super) type Outcome = Result<Answer, DirectoryError>;

#[derive(Debug)]
enum State {
    Asking,
    Done(Outcome),
    /// The leader went away without an outcome.
    Abandoned,
}

/// One request in progress and the tasks waiting for it.
#[derive(Debug)]
struct Request {
    state: RefCell<State>,
    /// A waker per waiting task, by the index the task was given.
    waiters: RefCell<Vec<Option<Waker>>>,
}

impl Request {
    fn finish(&self, state: State) {
        *self.state.borrow_mut() = state;
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters.into_iter().flatten() {
            waker.wake();
        }
    }
}

type Table = Rc<RefCell<HashMap<String, Rc<Request>>>>;

/// The requests in progress on one shard, by normalised atSign.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    requests: Table,
}

/// What a task that needs an answer does.
pub(super) enum Role {
    /// Ask the directory, then [`Leader::finish`].
    Leader(Leader),
    /// Wait for the leader's outcome.
    Waiter(Waiter),
}

impl InFlight {
    /// Joins the request in progress for `atsign`, or starts one.
    pub(super) fn join(&self, atsign: &str) -> Role {
        let mut requests = self.requests.borrow_mut();
        if let Some(request) = requests.get(atsign) {
            return Role::Waiter(Waiter {
                request: request.clone(),
                index: None,
            });
        }
        let request = Rc::new(Request {
            state: RefCell::new(State::Asking),
            waiters: RefCell::new(Vec::new()),
        });
        requests.insert(atsign.to_string(), request.clone());
        Role::Leader(Leader {
            requests: self.requests.clone(),
            atsign: atsign.to_string(),
            request,
            finished: false,
        })
    }

    /// Requests in progress now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.requests.borrow().len()
    }
}

/// The task that asks; it must hand its outcome to the waiters.
pub(super) struct Leader {
    requests: Table,
    atsign: String,
    request: Rc<Request>,
    finished: bool,
}

impl Leader {
    /// Shares `outcome` with every waiter and ends the request.
    pub(super) fn finish(mut self, outcome: Outcome) {
        self.end(State::Done(outcome));
    }

    fn end(&mut self, state: State) {
        self.finished = true;
        let mut requests = self.requests.borrow_mut();
        if requests
            .get(&self.atsign)
            .is_some_and(|r| Rc::ptr_eq(r, &self.request))
        {
            requests.remove(&self.atsign);
        }
        drop(requests);
        self.request.finish(state);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.finished {
            self.end(State::Abandoned);
        }
    }
}

/// Resolves to the leader's outcome, or `None` when the leader went away
/// without one (then the caller asks itself).
pub(super) struct Waiter {
    request: Rc<Request>,
    /// This task's place in the request's waker list, once it has one.
    index: Option<usize>,
}

impl Future for Waiter {
    type Output = Option<Outcome>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &*self.request.state.borrow() {
            State::Done(outcome) => return Poll::Ready(Some(outcome.clone())),
            State::Abandoned => return Poll::Ready(None),
            State::Asking => {}
        }
        let mut waiters = self.request.waiters.borrow_mut();
        let index = match self.index {
            Some(index) if index < waiters.len() => index,
            _ => {
                waiters.push(None);
                waiters.len() - 1
            }
        };
        if let Some(slot) = waiters.get_mut(index) {
            *slot = Some(cx.waker().clone());
        }
        drop(waiters);
        self.index = Some(index);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(future).poll(&mut cx)
    }

    #[test]
    fn waiters_get_the_leaders_outcome_and_the_request_ends() {
        let table = InFlight::default();
        let Role::Leader(leader) = table.join("@alice") else {
            panic!("the first task leads");
        };
        let Role::Waiter(mut waiter) = table.join("@alice") else {
            panic!("the second task waits");
        };
        assert!(matches!(table.join("@bob"), Role::Leader(_)));
        assert!(poll_once(&mut waiter).is_pending());
        assert!(poll_once(&mut waiter).is_pending(), "polled again");
        leader.finish(Ok(Answer::NotFound));
        assert_eq!(table.len(), 0);
        assert_eq!(
            poll_once(&mut waiter),
            Poll::Ready(Some(Ok(Answer::NotFound)))
        );
        assert!(matches!(table.join("@alice"), Role::Leader(_)));
    }

    #[test]
    fn a_dropped_leader_releases_its_waiters() {
        let table = InFlight::default();
        let leader = table.join("@alice");
        let Role::Waiter(mut waiter) = table.join("@alice") else {
            panic!("the second task waits");
        };
        drop(leader);
        assert_eq!(poll_once(&mut waiter), Poll::Ready(None));
        assert!(matches!(table.join("@alice"), Role::Leader(_)));
    }
}
