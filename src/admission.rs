//! Who gets a connection, and how long it may stay silent: the bookkeeping
//! behind the connection limits of one server (an atServer or a directory),
//! shared by all its shards.
//!
//! Everything here is lock-free atomics touched at accept, at the end of a
//! handshake, at authentication, on reads that grow a connection's buffer
//! and at close — never per request. The rules, each with its limit in
//! [`SessionLimits`]:
//! - connections are counted **at accept**, before the TLS handshake;
//! - TLS handshakes in progress are bounded;
//! - connections that have not authenticated (handshaking or not) have a
//!   quota of their own; when it is full, the one unauthenticated the
//!   longest is **evicted** to make room, so a newcomer — an owner about to
//!   log in — always gets in while silent or half-open sockets hold the rest;
//! - each source address (an IPv4 address, an IPv6 /64) may hold only a few
//!   unauthenticated connections;
//! - the idle deadline shrinks as the pool fills (the reference's rule);
//! - buffered input is bounded per process, with a smaller share for
//!   unauthenticated connections.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::limits::{
    ADMISSION_EVICTION_SLACK, CONNECTIONS_PER_SOURCE_MAX, IDLE_AUTH_MIN_MS, IDLE_AUTH_MS,
    IDLE_UNAUTH_MIN_MS, IDLE_UNAUTH_MS, INBOUND_CONNECTIONS_MAX, INPUT_BUDGET_BYTES_MAX,
    REFUSAL_HANDSHAKES_MAX, SOURCE_BUCKETS, TLS_HANDSHAKE_MIN_MS, TLS_HANDSHAKE_MS,
    TLS_HANDSHAKES_MAX, UNAUTH_CONNECTIONS_MAX, UNAUTH_INPUT_BUDGET_BYTES_MAX,
};

/// The connection limits of one server; the defaults are in
/// [`crate::limits`].
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Connections per process, counted at accept; beyond it AT0012.
    pub inbound_connections_max: usize,
    /// Connections that have not authenticated yet (handshaking included);
    /// beyond it the oldest of them is evicted.
    pub unauth_connections_max: usize,
    /// Unauthenticated connections one source address may hold.
    pub connections_per_source_max: u32,
    /// TLS handshakes in progress at once.
    pub handshakes_max: usize,
    /// Idle time before an unauthenticated connection is closed, when the
    /// pool is at most half full.
    pub idle_unauth_ms: u64,
    /// Idle time before an authenticated connection is closed, when the
    /// pool is at most half full.
    pub idle_auth_ms: u64,
    /// Input bytes all connections together may hold buffered.
    pub input_budget_bytes: usize,
    /// The part of it unauthenticated connections may hold.
    pub unauth_input_budget_bytes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            inbound_connections_max: INBOUND_CONNECTIONS_MAX,
            unauth_connections_max: UNAUTH_CONNECTIONS_MAX,
            connections_per_source_max: CONNECTIONS_PER_SOURCE_MAX,
            handshakes_max: TLS_HANDSHAKES_MAX,
            idle_unauth_ms: IDLE_UNAUTH_MS,
            idle_auth_ms: IDLE_AUTH_MS,
            input_budget_bytes: INPUT_BUDGET_BYTES_MAX,
            unauth_input_budget_bytes: UNAUTH_INPUT_BUDGET_BYTES_MAX,
        }
    }
}

/// Why a connection was not admitted; the text is what the client is told
/// (after `error:AT0012-`), so it names the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every connection slot is taken.
    Full { max: usize },
    /// The source address holds its share of unauthenticated connections.
    Source { max: u32 },
    /// Unauthenticated connections are at their quota and none could be
    /// evicted yet.
    Unauthenticated { max: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full { max } => write!(
                f,
                "Inbound connection limit exceeded: at most {max} connections"
            ),
            Refusal::Source { max } => write!(
                f,
                "Inbound connection limit exceeded: at most {max} unauthenticated connections from one address"
            ),
            Refusal::Unauthenticated { max } => write!(
                f,
                "Inbound connection limit exceeded: at most {max} unauthenticated connections"
            ),
        }
    }
}

const SLOT_FREE: u8 = 0;
const SLOT_HELD: u8 = 1;
const SLOT_EVICTED: u8 = 2;

/// One unauthenticated connection's place in the registry.
struct Slot {
    state: AtomicU8,
    /// When the connection was admitted (ms since the registry's epoch).
    since_ms: AtomicU64,
    /// Still in its TLS handshake: evicted before ones that finished it.
    handshaking: AtomicBool,
    /// The connection task to wake when it is evicted.
    waker: Mutex<Option<Waker>>,
}

/// The shared state of one server's connections.
pub struct Admission {
    limits: SessionLimits,
    epoch: Instant,
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    /// Handshakes made only to tell a refused client why.
    refusing: AtomicUsize,
    /// Unauthenticated connections: `unauth_connections_max` places plus
    /// [`ADMISSION_EVICTION_SLACK`] for newcomers while evicted ones leave.
    slots: Box<[Slot]>,
    unauthenticated: AtomicUsize,
    /// Where the next free-slot search starts.
    hint: AtomicUsize,
    /// Unauthenticated connections per source bucket.
    sources: Box<[AtomicU32]>,
    input_bytes: AtomicUsize,
    unauth_input_bytes: AtomicUsize,
}

impl Admission {
    pub fn new(limits: SessionLimits) -> Arc<Admission> {
        let places = limits
            .unauth_connections_max
            .saturating_add(ADMISSION_EVICTION_SLACK);
        let slots = (0..places)
            .map(|_| Slot {
                state: AtomicU8::new(SLOT_FREE),
                since_ms: AtomicU64::new(0),
                handshaking: AtomicBool::new(false),
                waker: Mutex::new(None),
            })
            .collect();
        let sources = (0..SOURCE_BUCKETS).map(|_| AtomicU32::new(0)).collect();
        Arc::new(Admission {
            limits,
            epoch: Instant::now(),
            connections: AtomicUsize::new(0),
            handshakes: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            slots,
            unauthenticated: AtomicUsize::new(0),
            hint: AtomicUsize::new(0),
            sources,
            input_bytes: AtomicUsize::new(0),
            unauth_input_bytes: AtomicUsize::new(0),
        })
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Open connections (`stats:1`).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections that have not authenticated yet.
    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits a connection just accepted from `source`, or says why not.
    /// The ticket is held for the connection's life and releases its
    /// places when dropped.
    pub fn admit(self: &Arc<Self>, source: Option<IpAddr>) -> Result<Ticket, Refusal> {
        let mut ticket = Ticket {
            admission: self.clone(),
            counted: false,
            source_bucket: None,
            slot: None,
            handshaking: false,
            input_reserved: 0,
        };
        let previous = self.connections.fetch_add(1, Ordering::AcqRel);
        ticket.counted = true;
        if previous >= self.limits.inbound_connections_max {
            return Err(Refusal::Full {
                max: self.limits.inbound_connections_max,
            });
        }
        if let Some(source) = source {
            let bucket = source_bucket(source);
            if let Some(count) = self.sources.get(bucket) {
                let held = count.fetch_add(1, Ordering::AcqRel);
                ticket.source_bucket = Some(bucket);
                if held >= self.limits.connections_per_source_max {
                    return Err(Refusal::Source {
                        max: self.limits.connections_per_source_max,
                    });
                }
            }
        }
        if self.unauthenticated.load(Ordering::Acquire) >= self.limits.unauth_connections_max {
            self.evict_oldest();
        }
        let Some(slot) = self.take_slot() else {
            return Err(Refusal::Unauthenticated {
                max: self.limits.unauth_connections_max,
            });
        };
        ticket.slot = Some(slot);
        ticket.handshaking = true;
        self.handshakes.fetch_add(1, Ordering::AcqRel);
        if self.handshakes.load(Ordering::Acquire) > self.limits.handshakes_max {
            self.evict_oldest_handshake();
        }
        Ok(ticket)
    }

    /// Permission to spend a handshake on telling a refused client why;
    /// `None` when [`REFUSAL_HANDSHAKES_MAX`] are under way (then close
    /// without a word).
    pub fn refusal_handshake(self: &Arc<Self>) -> Option<RefusalHandshake> {
        let previous = self.refusing.fetch_add(1, Ordering::AcqRel);
        let guard = RefusalHandshake {
            admission: self.clone(),
        };
        (previous < REFUSAL_HANDSHAKES_MAX).then_some(guard)
    }

    /// Claims a free registry place for a new unauthenticated connection.
    fn take_slot(&self) -> Option<usize> {
        let places = self.slots.len();
        if places == 0 {
            return None;
        }
        let start = self.hint.fetch_add(1, Ordering::Relaxed) % places;
        for offset in 0..places {
            let index = (start + offset) % places;
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            if slot
                .state
                .compare_exchange(SLOT_FREE, SLOT_HELD, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.since_ms.store(self.now_ms(), Ordering::Release);
                slot.handshaking.store(true, Ordering::Release);
                self.unauthenticated.fetch_add(1, Ordering::AcqRel);
                return Some(index);
            }
        }
        None
    }

    /// Evicts the connection unauthenticated the longest.
    fn evict_oldest(&self) {
        self.evict_where(|_| true);
    }

    /// Evicts the connection that has been in its handshake the longest.
    fn evict_oldest_handshake(&self) {
        self.evict_where(|slot| slot.handshaking.load(Ordering::Acquire));
    }

    fn evict_where(&self, eligible: impl Fn(&Slot) -> bool) {
        let oldest = self
            .slots
            .iter()
            .filter(|slot| slot.state.load(Ordering::Acquire) == SLOT_HELD && eligible(slot))
            .min_by_key(|slot| slot.since_ms.load(Ordering::Acquire));
        let Some(victim) = oldest else {
            return;
        };
        if victim
            .state
            .compare_exchange(SLOT_HELD, SLOT_EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // It leaves the unauthenticated count now: its place is taken
            // by the newcomer, while it closes in its own time.
            self.unauthenticated.fetch_sub(1, Ordering::AcqRel);
            if let Ok(mut waker) = victim.waker.lock()
                && let Some(waker) = waker.take()
            {
                waker.wake();
            }
        }
    }

    /// The idle deadline, shrinking linearly from the configured one to its
    /// minimum as the pool fills past half (wire.md §8).
    pub fn idle_limit(&self, authenticated: bool) -> Duration {
        let ms = if authenticated {
            shrunk(
                self.limits.idle_auth_ms,
                IDLE_AUTH_MIN_MS,
                self.connections(),
                self.limits.inbound_connections_max,
            )
        } else {
            shrunk(
                self.limits.idle_unauth_ms,
                IDLE_UNAUTH_MIN_MS,
                self.unauthenticated(),
                self.limits.unauth_connections_max,
            )
        };
        Duration::from_millis(ms)
    }

    /// The handshake deadline, shrinking the same way as handshakes pile up.
    pub fn handshake_limit(&self) -> Duration {
        Duration::from_millis(shrunk(
            TLS_HANDSHAKE_MS,
            TLS_HANDSHAKE_MIN_MS,
            self.handshakes.load(Ordering::Relaxed),
            self.limits.handshakes_max,
        ))
    }
}

/// `max` while `current` is at most half of `capacity`, then linearly down
/// to `min` at `capacity` and beyond.
fn shrunk(max: u64, min: u64, current: usize, capacity: usize) -> u64 {
    let min = min.min(max);
    let low_water = capacity / 2;
    let span = capacity.saturating_sub(low_water);
    if span == 0 {
        return min;
    }
    let over = current.saturating_sub(low_water).min(span);
    let cut = (u128::from(max - min) * over as u128) / span as u128;
    max - u64::try_from(cut).unwrap_or(max - min)
}

/// The bucket of a source address: IPv4 addresses one by one, IPv6 by /64
/// (one host usually holds a whole /64). Buckets are shared by the
/// addresses that hash alike, which only makes their cap stricter.
pub fn source_bucket(source: IpAddr) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match source {
        IpAddr::V4(v4) => eat(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => eat(&v4.octets()),
            None => eat(v6.octets().get(..8).unwrap_or_default()),
        },
    }
    (hash % SOURCE_BUCKETS as u64) as usize
}

/// One refusal handshake under way.
pub struct RefusalHandshake {
    admission: Arc<Admission>,
}

impl Drop for RefusalHandshake {
    fn drop(&mut self) {
        self.admission.refusing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's places, released when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    /// Counted in `connections`.
    counted: bool,
    /// Counted in this source bucket (while unauthenticated).
    source_bucket: Option<usize>,
    /// Its registry place (while unauthenticated).
    slot: Option<usize>,
    /// Counted in `handshakes`.
    handshaking: bool,
    /// Input bytes reserved from the budget.
    input_reserved: usize,
}

impl Ticket {
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    fn slot(&self) -> Option<&Slot> {
        self.slot.and_then(|index| self.admission.slots.get(index))
    }

    /// The TLS handshake finished (or failed).
    pub fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.admission.handshakes.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(slot) = self.slot() {
            slot.handshaking.store(false, Ordering::Release);
        }
    }

    /// The connection proved who it is: it leaves the unauthenticated quota,
    /// its source's share and the unauthenticated input budget.
    pub fn authenticated(&mut self) {
        if !self.is_unauthenticated() {
            return;
        }
        self.release_unauthenticated();
        let moved = self.input_reserved;
        self.admission
            .unauth_input_bytes
            .fetch_sub(moved, Ordering::AcqRel);
    }

    /// Whether the connection still counts as unauthenticated.
    pub fn is_unauthenticated(&self) -> bool {
        self.slot.is_some()
    }

    fn release_unauthenticated(&mut self) {
        if let Some(bucket) = self.source_bucket.take()
            && let Some(count) = self.admission.sources.get(bucket)
        {
            count.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(index) = self.slot.take()
            && let Some(slot) = self.admission.slots.get(index)
        {
            let was = slot.state.swap(SLOT_FREE, Ordering::AcqRel);
            if was == SLOT_HELD {
                self.admission
                    .unauthenticated
                    .fetch_sub(1, Ordering::AcqRel);
            }
            if let Ok(mut waker) = slot.waker.lock() {
                *waker = None;
            }
        }
    }

    /// Whether the connection was evicted to make room for a newcomer.
    pub fn is_evicted(&self) -> bool {
        self.slot()
            .is_some_and(|slot| slot.state.load(Ordering::Acquire) == SLOT_EVICTED)
    }

    /// Resolves once the connection is evicted (never, once authenticated).
    pub async fn evicted(&self) {
        std::future::poll_fn(|cx| {
            let Some(slot) = self.slot() else {
                return Poll::Pending;
            };
            if let Ok(mut waker) = slot.waker.lock() {
                *waker = Some(cx.waker().clone());
            }
            if slot.state.load(Ordering::Acquire) == SLOT_EVICTED {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Records that the connection now holds `held` bytes of input; false
    /// (and nothing reserved) when that would exceed the process budget or,
    /// before authentication, the unauthenticated share of it.
    pub fn hold_input(&mut self, held: usize) -> bool {
        let admission = &self.admission;
        let unauthenticated = self.is_unauthenticated();
        if held == self.input_reserved {
            // The common case on every read: nothing to account, and no
            // write to counters every shard shares.
            return true;
        }
        if held < self.input_reserved {
            let freed = self.input_reserved - held;
            admission.input_bytes.fetch_sub(freed, Ordering::AcqRel);
            if unauthenticated {
                admission
                    .unauth_input_bytes
                    .fetch_sub(freed, Ordering::AcqRel);
            }
            self.input_reserved = held;
            return true;
        }
        let more = held - self.input_reserved;
        let total = admission.input_bytes.fetch_add(more, Ordering::AcqRel) + more;
        if total > admission.limits.input_budget_bytes {
            admission.input_bytes.fetch_sub(more, Ordering::AcqRel);
            return false;
        }
        if unauthenticated {
            let share = admission
                .unauth_input_bytes
                .fetch_add(more, Ordering::AcqRel)
                + more;
            if share > admission.limits.unauth_input_budget_bytes {
                admission
                    .unauth_input_bytes
                    .fetch_sub(more, Ordering::AcqRel);
                admission.input_bytes.fetch_sub(more, Ordering::AcqRel);
                return false;
            }
        }
        self.input_reserved = held;
        true
    }

    /// The idle deadline that applies to this connection now.
    pub fn idle_limit(&self) -> Duration {
        self.admission.idle_limit(!self.is_unauthenticated())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.hold_input(0);
        self.handshake_done();
        self.release_unauthenticated();
        if self.counted {
            self.admission.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: usize, unauth: usize, per_source: u32) -> SessionLimits {
        SessionLimits {
            inbound_connections_max: connections,
            unauth_connections_max: unauth,
            connections_per_source_max: per_source,
            handshakes_max: 1_000,
            input_budget_bytes: 1_000,
            unauth_input_budget_bytes: 100,
            ..SessionLimits::default()
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn connections_are_counted_at_accept_and_released_on_drop() {
        let admission = Admission::new(limits(2, 10, 10));
        let a = admission.admit(ip("10.0.0.1")).expect("first");
        let _b = admission.admit(ip("10.0.0.2")).expect("second");
        assert_eq!(
            admission.admit(ip("10.0.0.3")).err(),
            Some(Refusal::Full { max: 2 })
        );
        assert_eq!(admission.connections(), 2, "a refusal releases its count");
        drop(a);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn one_source_holds_only_its_share_until_it_authenticates() {
        let admission = Admission::new(limits(100, 100, 2));
        let mut first = admission.admit(ip("10.0.0.1")).expect("1");
        let _second = admission.admit(ip("10.0.0.1")).expect("2");
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refusal::Source { max: 2 })
        );
        assert!(admission.admit(ip("10.0.0.2")).is_ok(), "another address");
        first.authenticated();
        assert!(admission.admit(ip("10.0.0.1")).is_ok(), "its place freed");
        // IPv6 addresses of one /64 share a bucket.
        let _a = admission.admit(ip("2001:db8::1")).expect("v6");
        let _b = admission.admit(ip("2001:db8::2")).expect("v6");
        assert!(admission.admit(ip("2001:db8::3")).is_err());
    }

    #[test]
    fn a_full_quota_evicts_the_connection_unauthenticated_the_longest() {
        let admission = Admission::new(limits(100, 2, 100));
        let oldest = admission.admit(ip("10.0.0.1")).expect("1");
        std::thread::sleep(Duration::from_millis(2));
        let newer = admission.admit(ip("10.0.0.2")).expect("2");
        let newcomer = admission.admit(ip("10.0.0.3")).expect("evicts one");
        assert!(oldest.is_evicted());
        assert!(!newer.is_evicted() && !newcomer.is_evicted());
        assert_eq!(admission.unauthenticated(), 2);
        futures_lite::future::block_on(oldest.evicted());
        drop(oldest);
        assert_eq!(admission.unauthenticated(), 2);
    }

    #[test]
    fn idle_deadlines_shrink_as_the_pool_fills() {
        assert_eq!(shrunk(600_000, 5_000, 0, 100), 600_000);
        assert_eq!(shrunk(600_000, 5_000, 50, 100), 600_000);
        assert_eq!(shrunk(600_000, 5_000, 75, 100), 302_500);
        assert_eq!(shrunk(600_000, 5_000, 100, 100), 5_000);
        assert_eq!(shrunk(600_000, 5_000, 1_000, 100), 5_000);
        assert_eq!(shrunk(600_000, 5_000, 0, 0), 5_000);
    }

    #[test]
    fn input_is_bounded_per_process_with_a_smaller_unauthenticated_share() {
        let admission = Admission::new(limits(10, 10, 10));
        let mut anonymous = admission.admit(ip("10.0.0.1")).expect("1");
        assert!(anonymous.hold_input(100));
        assert!(!anonymous.hold_input(101), "over the unauthenticated share");
        let mut owner = admission.admit(ip("10.0.0.2")).expect("2");
        owner.authenticated();
        assert!(owner.hold_input(900));
        assert!(!owner.hold_input(901), "over the process budget");
        assert!(anonymous.hold_input(0));
        assert!(owner.hold_input(1_000));
        drop(owner);
        assert_eq!(admission.input_bytes.load(Ordering::Relaxed), 0);
    }
}
