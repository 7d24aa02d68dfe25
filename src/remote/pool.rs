//! Warm outbound connections of one shard, by (local atSign, remote
//! atSign), with one rule that makes reply mix-ups impossible: a connection
//! is either idle in the pool or held by exactly one request, which sends
//! one line and reads its one reply. A request that fails or times out
//! drops its connection instead of giving it back, so a late reply can never
//! reach the next request (the fault Dart 3.16.3 fixed, changes §16).
//!
//! The pool itself does no I/O: it lends and takes back values and counts
//! open connections against the shard's bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where an outbound connection goes and who it is authenticated as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// The local atSign the connection proved with `pol`, or `None` for an
    /// unauthenticated one (public lookups).
    pub local: Option<String>,
    /// The remote atSign whose server it talks to.
    pub remote: String,
}

/// Why no connection may be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull {
    pub limit: usize,
}

/// The bounds of one shard's pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub open_max: usize,
    pub idle_max: usize,
    pub idle_per_peer_max: usize,
    pub idle_for: Duration,
}

struct Idle<T> {
    connection: T,
    since: Instant,
}

/// The idle connections and the count of every open one.
pub struct Pool<T> {
    limits: PoolLimits,
    idle: HashMap<PeerKey, Vec<Idle<T>>>,
    idle_count: usize,
    /// Connections lent out or being opened.
    busy: usize,
}

/// Permission to open (or the loan of) one connection; hand it back with
/// [`Pool::give_back`] or [`Pool::forget`].
#[derive(Debug)]
#[must_use]
pub struct Slot {
    key: PeerKey,
}

impl Slot {
    pub fn key(&self) -> &PeerKey {
        &self.key
    }
}

impl<T> Pool<T> {
    pub fn new(limits: PoolLimits) -> Pool<T> {
        Pool {
            limits,
            idle: HashMap::new(),
            idle_count: 0,
            busy: 0,
        }
    }

    /// Connections open now, idle or lent.
    pub fn open(&self) -> usize {
        self.idle_count + self.busy
    }

    pub fn idle(&self) -> usize {
        self.idle_count
    }

    /// The most recently used idle connection to `key`, if one is fresh,
    /// with its slot; `None` means: open one with [`Pool::reserve`].
    pub fn take(&mut self, key: &PeerKey, now: Instant) -> Option<(T, Slot)> {
        self.expire(now);
        let list = self.idle.get_mut(key)?;
        let idle = list.pop()?;
        if list.is_empty() {
            self.idle.remove(key);
        }
        self.idle_count -= 1;
        self.busy += 1;
        Some((idle.connection, Slot { key: key.clone() }))
    }

    /// A slot to open a new connection to `key`. At the open limit, the
    /// least recently used idle connection (to anyone) is closed to make
    /// room; with none idle, the pool is full.
    pub fn reserve(&mut self, key: &PeerKey, now: Instant) -> Result<Slot, PoolFull> {
        self.expire(now);
        if self.open() >= self.limits.open_max && !self.close_least_recent() {
            return Err(PoolFull {
                limit: self.limits.open_max,
            });
        }
        self.busy += 1;
        Ok(Slot { key: key.clone() })
    }

    /// Takes back a connection whose last request completed cleanly.
    pub fn give_back(&mut self, slot: Slot, connection: T, now: Instant) {
        self.busy = self.busy.saturating_sub(1);
        let per_peer = self.idle.get(&slot.key).map_or(0, Vec::len);
        if per_peer >= self.limits.idle_per_peer_max {
            return;
        }
        if self.idle_count >= self.limits.idle_max && !self.close_least_recent() {
            return;
        }
        self.idle.entry(slot.key).or_default().push(Idle {
            connection,
            since: now,
        });
        self.idle_count += 1;
    }

    /// A lent connection that failed, timed out or was never opened: it is
    /// dropped by the caller, only its count goes.
    pub fn forget(&mut self, slot: Slot) {
        drop(slot);
        self.busy = self.busy.saturating_sub(1);
    }

    /// Closes idle connections older than the idle limit.
    pub fn expire(&mut self, now: Instant) {
        let idle_for = self.limits.idle_for;
        let mut dropped = 0;
        self.idle.retain(|_, list| {
            let before = list.len();
            list.retain(|idle| now.saturating_duration_since(idle.since) < idle_for);
            dropped += before - list.len();
            !list.is_empty()
        });
        self.idle_count -= dropped;
    }

    /// Drops every idle connection to `key` (its server changed address or
    /// misbehaved).
    pub fn close_all(&mut self, key: &PeerKey) {
        if let Some(list) = self.idle.remove(key) {
            self.idle_count -= list.len();
        }
    }

    fn close_least_recent(&mut self) -> bool {
        let oldest = self
            .idle
            .iter()
            .filter_map(|(key, list)| list.first().map(|idle| (idle.since, key.clone())))
            .min_by_key(|(since, _)| *since);
        let Some((_, key)) = oldest else {
            return false;
        };
        if let Some(list) = self.idle.get_mut(&key) {
            if !list.is_empty() {
                list.remove(0);
                self.idle_count -= 1;
            }
            if list.is_empty() {
                self.idle.remove(&key);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PoolLimits {
        PoolLimits {
            open_max: 3,
            idle_max: 2,
            idle_per_peer_max: 1,
            idle_for: Duration::from_secs(10),
        }
    }

    fn key(remote: &str) -> PeerKey {
        PeerKey {
            local: Some("@alice".into()),
            remote: remote.into(),
        }
    }

    #[test]
    fn a_connection_given_back_is_lent_again_and_only_once() {
        let now = Instant::now();
        let mut pool = Pool::new(limits());
        assert!(pool.take(&key("@bob"), now).is_none());
        let slot = pool.reserve(&key("@bob"), now).expect("room");
        pool.give_back(slot, 7, now);
        assert_eq!((pool.open(), pool.idle()), (1, 1));
        let (conn, slot) = pool.take(&key("@bob"), now).expect("idle one");
        assert_eq!(conn, 7);
        assert!(pool.take(&key("@bob"), now).is_none(), "lent to one only");
        pool.forget(slot);
        assert_eq!(pool.open(), 0);
    }

    #[test]
    fn idle_connections_expire_and_other_keys_are_separate() {
        let now = Instant::now();
        let mut pool = Pool::new(limits());
        let slot = pool.reserve(&key("@bob"), now).expect("room");
        pool.give_back(slot, 1, now);
        assert!(pool.take(&key("@carol"), now).is_none());
        let anonymous = PeerKey {
            local: None,
            remote: "@bob".into(),
        };
        assert!(pool.take(&anonymous, now).is_none());
        assert!(
            pool.take(&key("@bob"), now + Duration::from_secs(10))
                .is_none()
        );
        assert_eq!(pool.open(), 0);
    }

    #[test]
    fn at_the_open_limit_the_least_recent_idle_one_makes_room_else_full() {
        let start = Instant::now();
        let mut pool = Pool::new(limits());
        let a = pool.reserve(&key("@a"), start).expect("room");
        let b = pool.reserve(&key("@b"), start).expect("room");
        let c = pool.reserve(&key("@c"), start).expect("room");
        assert_eq!(
            pool.reserve(&key("@d"), start).err(),
            Some(PoolFull { limit: 3 })
        );
        pool.give_back(a, 1, start);
        pool.give_back(b, 2, start + Duration::from_secs(1));
        let d = pool
            .reserve(&key("@d"), start)
            .expect("closes @a's idle one");
        assert!(pool.take(&key("@a"), start).is_none());
        assert!(
            pool.take(&key("@b"), start + Duration::from_secs(1))
                .is_some()
        );
        pool.forget(c);
        pool.forget(d);
    }

    #[test]
    fn idle_counts_per_peer_and_in_all_are_bounded() {
        let now = Instant::now();
        let mut pool = Pool::new(limits());
        let first = pool.reserve(&key("@bob"), now).expect("room");
        let second = pool.reserve(&key("@bob"), now).expect("room");
        pool.give_back(first, 1, now);
        pool.give_back(second, 2, now);
        assert_eq!(pool.idle(), 1, "one idle per peer");
        let c = pool.reserve(&key("@c"), now).expect("room");
        let d = pool.reserve(&key("@d"), now).expect("room");
        pool.give_back(c, 3, now + Duration::from_secs(1));
        pool.give_back(d, 4, now + Duration::from_secs(2));
        assert_eq!(pool.idle(), 2);
        let later = now + Duration::from_secs(2);
        assert!(pool.take(&key("@bob"), later).is_none(), "oldest closed");
        assert!(pool.take(&key("@c"), later).is_some());
    }
}
