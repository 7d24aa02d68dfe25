//! Back-pressure and stalls: submitters park on a full queue or a used-up
//! atSign budget and are woken, not polled in a loop; one atSign's backlog
//! leaves the others' writes alone; a hung step shows in `busy_for`; and a
//! caller may stop waiting for a write at any point.
//!
//! The actor is held inside a batch by a write whose closure blocks until
//! the test releases it, so every "while the actor is busy" below is a
//! state the test waits for, not a race it hopes to win.

use super::test_waker::notifying_waker;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future::block_on;

use super::*;
use crate::limits::{TENANT_QUEUED_WRITE_BYTES_MAX, TENANT_QUEUED_WRITES_MAX};

/// How long a test waits for a state it expects before failing (a bound on
/// a hang, not a timing assertion).
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Polls until `done` holds, failing after [`WAIT_LIMIT`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn putting(value: &str) -> actor::MutateFn {
    let record = StoredRecord::written_by(Some(value.to_string()), "@test", 1);
    Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::Update)))
}

/// Holds the actor inside a batch until dropped or released.
struct Gate {
    release: Option<mpsc::Sender<()>>,
    pending: Option<PendingWrite>,
}

impl Gate {
    /// Submits a write whose closure blocks the actor, and waits until the
    /// actor runs it (so the queue in front of it is empty and stays so).
    fn close(tenant: &TenantStore) -> Gate {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let mutate: actor::MutateFn = Box::new(move |_| {
            let _ = entered_tx.send(());
            let _ = release_rx.recv();
            Ok(Mutation::Unchanged)
        });
        let pending =
            block_on(tenant.submit("gate.test@gate".into(), false, mutate)).expect("gate");
        entered_rx
            .recv_timeout(WAIT_LIMIT)
            .expect("the actor runs the gate");
        Gate {
            release: Some(release_tx),
            pending: Some(pending),
        }
    }

    /// Lets the actor go on and waits for the gate's own batch.
    fn open(mut self) {
        self.release.take();
        if let Some(pending) = self.pending.take() {
            block_on(pending.outcome()).expect("the gate's write");
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // Never leave the actor blocked when a test fails.
        self.release.take();
    }
}

fn store_with_queue(dir: &tempfile::TempDir, queue_len: usize) -> Store {
    Store::open_with_queue_len(
        dir.path(),
        Durability::Fast,
        FatalSink::log_only(),
        queue_len,
    )
    .expect("open")
}

#[test]
fn a_submitter_parked_on_a_full_queue_is_woken_by_the_drain_not_polled_in_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 2);
    let alice = store.tenant("@alice");
    let gate = Gate::close(&store.tenant("@gate"));
    let queued: Vec<PendingWrite> = (0..2)
        .map(|i| block_on(alice.submit(format!("q{i}@alice"), true, putting("v"))).expect("room"))
        .collect();
    let (counter, waker, woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    let mut parked = Box::pin(alice.submit("parked@alice".into(), true, putting("p")));
    let mut polls = 1;
    assert!(
        parked.as_mut().poll(&mut cx).is_pending(),
        "the queue is full"
    );
    assert_eq!(store.inner.parking.parked_now(), 1);
    // A spinning submitter would have woken itself to be polled again.
    assert_eq!(counter.wakes(), 0, "parked, not spinning");
    gate.open();
    woken
        .recv_timeout(WAIT_LIMIT)
        .expect("the drain wakes the parked submitter");
    polls += 1;
    let Poll::Ready(submitted) = parked.as_mut().poll(&mut cx) else {
        panic!("woken after a drain, the submit finds room");
    };
    assert_eq!(polls, 2, "one poll to park, one after the wake-up");
    let pending = submitted.expect("queued");
    for write in queued {
        block_on(write.outcome()).expect("written");
    }
    block_on(pending.outcome()).expect("written");
    assert_eq!(
        alice
            .get("parked@alice")
            .expect("get")
            .and_then(|r| r.value),
        Some("p".into())
    );
    assert_eq!(store.inner.parking.parked_now(), 0);
}

#[test]
fn many_submitters_park_on_a_small_queue_and_every_write_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 4);
    let alice = store.tenant("@alice");
    const THREADS: usize = 16;
    const WRITES_EACH: usize = 25;
    let gate = Gate::close(&store.tenant("@gate"));
    let polls = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let alice = alice.clone();
            let polls = polls.clone();
            scope.spawn(move || {
                for i in 0..WRITES_EACH {
                    let submit = alice.submit(format!("t{thread}.{i}@alice"), true, putting("v"));
                    let pending = block_on(counting_polls(submit, &polls)).expect("queued");
                    block_on(pending.outcome()).expect("written");
                }
            });
        }
        // Four first writes fill the queue; the other twelve threads park.
        wait_until("twelve submitters parked", || {
            store.inner.parking.parked_now() == THREADS - 4
        });
        gate.open();
    });
    let mut written = 0;
    let scanned = alice
        .for_each(|_, _| {
            written += 1;
            true
        })
        .expect("scan");
    assert_eq!(scanned.corrupt_skipped, 0);
    assert_eq!(written, THREADS * WRITES_EACH);
    assert!(store.submits_parked() >= (THREADS - 4) as u64);
    // Every poll but the last of each submit parked it once and was
    // answered by a drain: no submit was polled in a loop.
    let submits = THREADS * WRITES_EACH;
    let polled = polls.load(Ordering::SeqCst);
    assert!(
        polled as u64 <= submits as u64 + store.submits_parked(),
        "{polled} polls for {submits} submits and {} parks",
        store.submits_parked()
    );
}

/// Counts the polls of `future` into `polls`.
fn counting_polls<'a, F: Future + 'a>(
    future: F,
    polls: &'a AtomicUsize,
) -> impl Future<Output = F::Output> + 'a {
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx| {
        polls.fetch_add(1, Ordering::SeqCst);
        future.as_mut().poll(cx)
    })
}

#[test]
fn one_atsign_at_its_queue_budget_parks_while_another_atsign_writes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, actor::WRITE_QUEUE_LEN_MAX);
    let hog = store.tenant("@hog");
    let bob = store.tenant("@bob");
    let gate = Gate::close(&store.tenant("@gate"));
    let queued: Vec<PendingWrite> = (0..TENANT_QUEUED_WRITES_MAX)
        .map(|i| block_on(hog.submit(format!("k{i}@hog"), true, putting("v"))).expect("room"))
        .collect();
    assert_eq!(hog.queued().0, TENANT_QUEUED_WRITES_MAX);
    let (counter, waker, woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    let mut over = Box::pin(hog.submit("over@hog".into(), true, putting("o")));
    assert!(
        over.as_mut().poll(&mut cx).is_pending(),
        "the hog is over its budget"
    );
    assert_eq!(counter.wakes(), 0);
    // Bob, on the same store, is queued at once: the hog's backlog is its
    // own.
    let mut bobs = Box::pin(bob.submit("phone@bob".into(), true, putting("123")));
    let Poll::Ready(bobs) = bobs.as_mut().poll(&mut cx) else {
        panic!("another atSign's write must not wait for the hog's budget");
    };
    let bobs = bobs.expect("queued");
    gate.open();
    assert_eq!(
        block_on(bobs.outcome()).expect("written").commit_id,
        Some(0)
    );
    woken
        .recv_timeout(WAIT_LIMIT)
        .expect("the drain wakes the hog");
    let Poll::Ready(over) = over.as_mut().poll(&mut cx) else {
        panic!("the hog's budget has room after the drain");
    };
    block_on(over.expect("queued").outcome()).expect("written");
    for write in queued {
        block_on(write.outcome()).expect("written");
    }
    assert_eq!(hog.queued(), (0, 0));
    assert_eq!(
        bob.get("phone@bob").expect("get").and_then(|r| r.value),
        Some("123".into())
    );
}

#[test]
fn an_atsign_over_its_queued_bytes_parks_and_other_atsigns_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, actor::WRITE_QUEUE_LEN_MAX);
    let hog = store.tenant("@hog");
    let bob = store.tenant("@bob");
    let gate = Gate::close(&store.tenant("@gate"));
    let big = WriteRequest {
        request_bytes: TENANT_QUEUED_WRITE_BYTES_MAX,
        ..WriteRequest::new(KeyWrite::new("big@hog".into(), true, putting("b")))
    };
    let big = block_on(hog.submit_request(big)).expect("an empty budget takes it");
    let (_counter, waker, woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    let mut more = Box::pin(hog.submit("more@hog".into(), true, putting("m")));
    assert!(more.as_mut().poll(&mut cx).is_pending(), "bytes used up");
    let bobs = block_on(bob.submit("phone@bob".into(), true, putting("1"))).expect("queued");
    gate.open();
    block_on(bobs.outcome()).expect("written");
    block_on(big.outcome()).expect("written");
    woken.recv_timeout(WAIT_LIMIT).expect("woken");
    let Poll::Ready(more) = more.as_mut().poll(&mut cx) else {
        panic!("room after the drain");
    };
    block_on(more.expect("queued").outcome()).expect("written");
}

#[test]
fn a_dropped_parked_submit_withdraws_its_write_and_gives_back_its_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 1);
    let alice = store.tenant("@alice");
    let gate = Gate::close(&store.tenant("@gate"));
    let queued = block_on(alice.submit("q@alice".into(), true, putting("v"))).expect("room");
    let (_counter, waker, _woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    let mut parked = Box::pin(alice.submit("withdrawn@alice".into(), true, putting("w")));
    assert!(parked.as_mut().poll(&mut cx).is_pending());
    assert_eq!(alice.queued().0, 2, "the parked write holds its room");
    drop(parked);
    assert_eq!(store.inner.parking.parked_now(), 0, "no waker left behind");
    assert_eq!(alice.queued().0, 1, "its room is given back");
    gate.open();
    block_on(queued.outcome()).expect("written");
    assert_eq!(alice.get("withdrawn@alice").expect("get"), None);
    assert_eq!(alice.queued(), (0, 0));
}

#[test]
fn busy_for_shows_a_step_that_hangs_and_clears_once_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 16);
    let gate = Gate::close(&store.tenant("@gate"));
    let first = store.busy_for().expect("the actor is inside a batch");
    let later = store.busy_for().expect("still inside it");
    assert!(later >= first, "the time a step runs only grows");
    gate.open();
    wait_until("the actor goes idle", || store.busy_for().is_none());
}

#[test]
fn a_caller_may_stop_waiting_for_a_write_at_any_point_and_the_write_still_lands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 16);
    let alice = store.tenant("@alice");
    let gate = Gate::close(&store.tenant("@gate"));
    let mut kept = block_on(alice.submit("kept@alice".into(), true, putting("k"))).expect("room");
    let mut abandoned =
        block_on(alice.submit("abandoned@alice".into(), true, putting("a"))).expect("room");
    let (_counter, waker, _woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    {
        // A deadline fires: the wait is dropped, the PendingWrite kept.
        let mut wait = Box::pin(kept.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
    }
    {
        // A connection closes mid-wait: the PendingWrite itself is dropped.
        let mut wait = Box::pin(abandoned.ready());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
    }
    drop(abandoned);
    assert!(kept.try_outcome().is_none(), "not durable yet");
    gate.open();
    let outcome = block_on(kept.outcome()).expect("written");
    assert_eq!(outcome.commit_id, Some(0));
    // Given up on, not withdrawn: the actor applied it all the same.
    assert_eq!(
        alice
            .get("abandoned@alice")
            .expect("get")
            .and_then(|r| r.value),
        Some("a".into())
    );
    assert!(!store.is_poisoned());
}

#[test]
fn a_parked_submitter_of_a_store_that_dies_is_woken_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_queue(&dir, 1);
    let alice = store.tenant("@alice");
    // The gate panics instead of returning: the batch fails and poisons.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mutate: actor::MutateFn = Box::new(move |_| {
        let _ = entered_tx.send(());
        let _ = release_rx.recv();
        std::panic::panic_any("the disk went away")
    });
    let doomed = block_on(alice.submit("doomed@alice".into(), true, mutate)).expect("room");
    entered_rx.recv_timeout(WAIT_LIMIT).expect("entered");
    let queued = block_on(alice.submit("q@alice".into(), true, putting("v"))).expect("room");
    let (_counter, waker, woken) = notifying_waker();
    let mut cx = Context::from_waker(&waker);
    let mut parked = Box::pin(alice.submit("parked@alice".into(), true, putting("p")));
    assert!(parked.as_mut().poll(&mut cx).is_pending());
    drop(release_tx);
    assert!(block_on(doomed.outcome()).is_err());
    assert!(block_on(queued.outcome()).is_err(), "refused: poisoned");
    woken.recv_timeout(WAIT_LIMIT).expect("woken by the drain");
    let Poll::Ready(refused) = parked.as_mut().poll(&mut cx) else {
        panic!("a poisoned store answers a parked submitter at once");
    };
    assert!(matches!(refused, Err(StoreError::Poisoned)));
}
