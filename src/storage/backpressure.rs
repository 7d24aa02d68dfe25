//! Back-pressure in front of the write actor, without spinning.
//!
//! Two things can make a submitter wait: the shared queue in front of the
//! actor is full ([`WRITE_QUEUE_LEN_MAX`]), or its own atSign already has
//! [`TENANT_QUEUED_WRITES_MAX`] requests or [`TENANT_QUEUED_WRITE_BYTES_MAX`]
//! bytes queued (so one atSign cannot stall the others on its shard). Both
//! clear only when the actor takes requests off the queue, so both wait the
//! same way: the submitter parks its waker in the store's [`Parking`], and
//! the actor wakes every parked submitter after it drains a batch.
//!
//! A wake-up cannot be lost between a failed attempt and the parking: the
//! submitter registers first and then tries once more, and the actor frees
//! room first and then looks for parked submitters. Each side puts a
//! `SeqCst` fence between its two steps, so at least one of them sees the
//! other's first step: either the retry finds the room, or the actor finds
//! the waker. (The room is an atomic of the channel, or the tenant counters
//! behind their mutex; both are read after the fence.)
//!
//! [`WRITE_QUEUE_LEN_MAX`]: crate::limits::WRITE_QUEUE_LEN_MAX
//! [`TENANT_QUEUED_WRITES_MAX`]: crate::limits::TENANT_QUEUED_WRITES_MAX
//! [`TENANT_QUEUED_WRITE_BYTES_MAX`]: crate::limits::TENANT_QUEUED_WRITE_BYTES_MAX

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use crate::limits::{TENANT_QUEUED_WRITE_BYTES_MAX, TENANT_QUEUED_WRITES_MAX};

/// Locks `mutex`, taking over its data after a panic elsewhere: every state
/// guarded here is a plain count or a set of wakers, whole at every step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The submitters of one store waiting for room.
#[derive(Default)]
pub struct Parking {
    /// How many wakers are parked: lets the actor skip the lock when none
    /// are, which is the case after nearly every batch.
    parked: AtomicUsize,
    wakers: Mutex<Parked>,
    /// Times a submitter parked, for tests and reports.
    parks_total: AtomicU64,
}

#[derive(Default)]
struct Parked {
    next_ticket: u64,
    /// Ticket → the waker of the submitter holding it.
    by_ticket: HashMap<u64, Waker>,
}

impl Parking {
    /// Wakes every parked submitter (each retries, and parks again if there
    /// is still no room). The actor calls this after it drained a batch,
    /// once the room it made (queue slots, tenant counters) is visible.
    pub fn wake_all(&self) {
        // Pairs with the fence in `Ticket::park`; see the module docs.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut parked = lock(&self.wakers);
            self.parked.store(0, Ordering::Relaxed);
            std::mem::take(&mut parked.by_ticket)
        };
        woken.into_values().for_each(Waker::wake);
    }

    /// Times any submitter of this store parked since it opened.
    pub fn parks_total(&self) -> u64 {
        self.parks_total.load(Ordering::Relaxed)
    }

    /// Submitters parked right now.
    #[cfg(test)]
    pub fn parked_now(&self) -> usize {
        lock(&self.wakers).by_ticket.len()
    }
}

/// One submitter's place in [`Parking`]: taken on its first park, given
/// back when the submit finishes or its future is dropped, so an abandoned
/// submit leaves no waker behind.
pub struct Ticket<'a> {
    parking: &'a Parking,
    id: Option<u64>,
}

impl<'a> Ticket<'a> {
    pub fn new(parking: &'a Parking) -> Ticket<'a> {
        Ticket { parking, id: None }
    }

    /// Parks `waker` (replacing the one parked before, if the actor has not
    /// woken it yet). The caller must try once more afterwards: room made
    /// just before the parking woke nobody.
    pub fn park(&mut self, waker: &Waker) {
        {
            let mut parked = lock(&self.parking.wakers);
            let id = *self.id.get_or_insert_with(|| {
                parked.next_ticket = parked.next_ticket.wrapping_add(1);
                parked.next_ticket
            });
            match parked.by_ticket.get_mut(&id) {
                Some(known) if known.will_wake(waker) => {}
                Some(known) => known.clone_from(waker),
                None => {
                    parked.by_ticket.insert(id, waker.clone());
                }
            }
            self.parking
                .parked
                .store(parked.by_ticket.len(), Ordering::Relaxed);
        }
        self.parking.parks_total.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `Parking::wake_all`; see the module docs.
        fence(Ordering::SeqCst);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut parked = lock(&self.parking.wakers);
            if parked.by_ticket.remove(&id).is_some() {
                self.parking
                    .parked
                    .store(parked.by_ticket.len(), Ordering::Relaxed);
            }
        }
    }
}

/// What one atSign has queued in front of its store's actor: two atomic
/// counters, charged by the submitter and given back by the actor once per
/// batch and atSign (not once per request), so the accounting adds no lock
/// and little cache traffic to the write path.
#[derive(Default)]
pub struct TenantQueue {
    writes: AtomicUsize,
    bytes: AtomicUsize,
}

impl TenantQueue {
    /// Takes room for one request of `bytes` if the atSign's budget has it
    /// (or if nothing of the atSign is queued: a request larger than the
    /// whole byte budget must not wait forever). The room is given back by
    /// [`TenantQueue::release`] when the actor takes the request into a
    /// batch, or by the returned charge if the request is never sent.
    pub fn try_charge(&self, bytes: usize) -> Option<Charge<'_>> {
        let writes = self.writes.fetch_add(1, Ordering::AcqRel);
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let fits = writes == 0
            || (writes < TENANT_QUEUED_WRITES_MAX
                && before.saturating_add(bytes) <= TENANT_QUEUED_WRITE_BYTES_MAX);
        let charge = Charge {
            queue: self,
            bytes,
            armed: true,
        };
        // A refused charge gives its room straight back (on drop).
        fits.then_some(charge)
    }

    /// Gives back the room of `writes` requests of `bytes` in all, as the
    /// actor takes them into a batch.
    pub fn release(&self, writes: usize, bytes: usize) {
        debug_assert!(self.writes.load(Ordering::Acquire) >= writes);
        self.writes.fetch_sub(writes, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Requests and bytes queued right now.
    #[cfg(test)]
    pub fn queued(&self) -> (usize, usize) {
        (
            self.writes.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }
}

/// The room one request holds in its atSign's budget while its submitter
/// still has it: given back on drop (a submit abandoned before its request
/// was sent), or handed over to the actor with [`Charge::sent`].
pub struct Charge<'a> {
    queue: &'a TenantQueue,
    bytes: usize,
    armed: bool,
}

impl Charge<'_> {
    /// The request is in the actor's queue: the actor gives the room back.
    pub fn sent(mut self) -> ChargedBytes {
        self.armed = false;
        ChargedBytes(self.bytes)
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.queue.release(1, self.bytes);
        }
    }
}

/// The bytes a queued request counts in its atSign's budget, for the actor
/// to give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargedBytes(pub usize);

/// Every atSign's queue budget of one store, shared by its handles and its
/// actor (which looks the budgets up by atSign to give their room back).
#[derive(Default)]
pub struct TenantQueues {
    by_atsign: Mutex<HashMap<Arc<str>, Arc<TenantQueue>>>,
}

impl TenantQueues {
    /// The budget of `atsign`, made on first use.
    pub fn of(&self, atsign: &Arc<str>) -> Arc<TenantQueue> {
        lock(&self.by_atsign)
            .entry(atsign.clone())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_waker::counting_waker;

    #[test]
    fn parked_wakers_are_woken_once_and_forgotten() {
        let parking = Parking::default();
        let (counter, waker) = counting_waker();
        let mut ticket = Ticket::new(&parking);
        ticket.park(&waker);
        ticket.park(&waker);
        assert_eq!(parking.parked_now(), 1, "one place per submitter");
        parking.wake_all();
        assert_eq!(counter.wakes(), 1);
        parking.wake_all();
        assert_eq!(counter.wakes(), 1, "woken once");
        assert_eq!(parking.parks_total(), 2);
    }

    #[test]
    fn a_dropped_ticket_leaves_no_waker_behind() {
        let parking = Parking::default();
        let (counter, waker) = counting_waker();
        let mut ticket = Ticket::new(&parking);
        ticket.park(&waker);
        drop(ticket);
        assert_eq!(parking.parked_now(), 0);
        parking.wake_all();
        assert_eq!(counter.wakes(), 0);
    }

    #[test]
    fn a_sent_charge_is_given_back_by_the_actor_not_on_drop() {
        let queue = TenantQueue::default();
        let charged = queue.try_charge(10).expect("room").sent();
        assert_eq!(queue.queued(), (1, 10), "still queued once sent");
        queue.release(1, charged.0);
        assert_eq!(queue.queued(), (0, 0));
    }

    #[test]
    fn a_tenant_budget_refuses_past_its_count_and_bytes_and_frees_on_drop() {
        let queue = Arc::new(TenantQueue::default());
        let charges: Vec<Charge> = (0..TENANT_QUEUED_WRITES_MAX)
            .map(|_| queue.try_charge(1).expect("room"))
            .collect();
        assert!(queue.try_charge(1).is_none(), "count exhausted");
        drop(charges);
        assert_eq!(queue.queued(), (0, 0));
        let big = queue
            .try_charge(TENANT_QUEUED_WRITE_BYTES_MAX)
            .expect("fits");
        assert!(queue.try_charge(1).is_none(), "bytes exhausted");
        drop(big);
        let oversized = queue.try_charge(TENANT_QUEUED_WRITE_BYTES_MAX * 2);
        assert!(oversized.is_some(), "an empty queue takes any one request");
    }
}
