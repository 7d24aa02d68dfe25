//! The process-wide cache of atDirectory answers.
//!
//! One cache serves every shard (an `Arc` behind a `Mutex`): an answer one
//! shard fetched spares the others a request. The lock is held only to read
//! or write one entry (and, when the cache is full, for one sweep), never
//! across an await. Time is passed in, so the policy is tested without
//! waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::answer::{Answer, ServerAddress};
use crate::limits::{
    DIRECTORY_CACHE_ENTRIES_MAX, DIRECTORY_CACHE_TTL_MS, DIRECTORY_NEGATIVE_TTL_MS,
    DIRECTORY_STALE_MS,
};

/// How long answers are kept and used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// An address is used without asking again for this long.
    pub ttl: Duration,
    /// A `null` is believed for this long.
    pub negative_ttl: Duration,
    /// Past its TTL, an address may still be used for this long when asking
    /// again fails (the directory is down).
    pub stale: Duration,
    /// Entries held at most.
    pub entries_max: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: Duration::from_millis(DIRECTORY_CACHE_TTL_MS),
            negative_ttl: Duration::from_millis(DIRECTORY_NEGATIVE_TTL_MS),
            stale: Duration::from_millis(DIRECTORY_STALE_MS),
            entries_max: DIRECTORY_CACHE_ENTRIES_MAX,
        }
    }
}

/// What the cache knows about one atSign now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// Within its TTL: use it without asking.
    Fresh(Answer),
    /// Past its TTL but within the stale window: ask again, and use this
    /// only if asking fails.
    Stale(ServerAddress),
    /// Nothing usable.
    Missing,
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    stored: Instant,
}

/// Directory answers by normalised atSign (`@alice`).
#[derive(Debug)]
pub struct DirectoryCache {
    policy: CachePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for DirectoryCache {
    fn default() -> Self {
        DirectoryCache::new(CachePolicy::default())
    }
}

impl DirectoryCache {
    pub fn new(policy: CachePolicy) -> DirectoryCache {
        DirectoryCache {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> CachePolicy {
        self.policy
    }

    /// The map, even after a panic elsewhere while it was held: every
    /// update is one insert or remove, so it is never left half-changed.
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How `entry` may be used at `now`.
    fn judge(&self, entry: &Entry, now: Instant) -> Cached {
        let age = now.saturating_duration_since(entry.stored);
        match &entry.answer {
            Answer::Found(address) if age < self.policy.ttl => {
                Cached::Fresh(Answer::Found(address.clone()))
            }
            Answer::Found(address) if age < self.policy.ttl + self.policy.stale => {
                Cached::Stale(address.clone())
            }
            Answer::NotFound if age < self.policy.negative_ttl => Cached::Fresh(Answer::NotFound),
            _ => Cached::Missing,
        }
    }

    /// What is known about `atsign` at `now`; an entry past every use is
    /// dropped.
    pub fn get(&self, atsign: &str, now: Instant) -> Cached {
        let mut entries = self.entries();
        let Some(entry) = entries.get(atsign) else {
            return Cached::Missing;
        };
        let cached = self.judge(entry, now);
        if cached == Cached::Missing {
            entries.remove(atsign);
        }
        cached
    }

    /// Remembers what the directory answered at `now`. A `null` replaces
    /// an older address: the directory has said the atSign is gone.
    pub fn put(&self, atsign: &str, answer: Answer, now: Instant) {
        let mut entries = self.entries();
        if !entries.contains_key(atsign) && entries.len() >= self.policy.entries_max {
            self.make_room(&mut entries, now);
        }
        entries.insert(
            atsign.to_string(),
            Entry {
                answer,
                stored: now,
            },
        );
    }

    /// Frees at least one place: first every entry past its TTL, then, if
    /// all are fresh, the oldest one.
    fn make_room(&self, entries: &mut HashMap<String, Entry>, now: Instant) {
        entries.retain(|_, entry| matches!(self.judge(entry, now), Cached::Fresh(_)));
        if entries.len() < self.policy.entries_max {
            return;
        }
        let oldest = entries
            .iter()
            .min_by_key(|(_, entry)| entry.stored)
            .map(|(atsign, _)| atsign.clone());
        if let Some(atsign) = oldest {
            entries.remove(&atsign);
        }
    }

    /// Entries held now (fresh or not).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::directory::parse_address;

    fn found(text: &str) -> Answer {
        Answer::Found(parse_address(text).expect("address"))
    }

    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            stale: Duration::from_secs(600),
            entries_max: 3,
        }
    }

    #[test]
    fn an_address_is_fresh_then_stale_then_gone() {
        let cache = DirectoryCache::new(policy());
        let t0 = Instant::now();
        cache.put("@alice", found("host:1"), t0);
        assert_eq!(cache.get("@alice", t0), Cached::Fresh(found("host:1")));
        let stale = cache.get("@alice", t0 + Duration::from_secs(60));
        assert_eq!(stale, Cached::Stale(parse_address("host:1").expect("a")));
        assert_eq!(
            cache.get("@alice", t0 + Duration::from_secs(660)),
            Cached::Missing
        );
        assert!(cache.is_empty(), "a useless entry is dropped");
    }

    #[test]
    fn a_null_is_believed_briefly_and_replaces_an_address() {
        let cache = DirectoryCache::new(policy());
        let t0 = Instant::now();
        cache.put("@bob", found("host:1"), t0);
        cache.put("@bob", Answer::NotFound, t0);
        assert_eq!(cache.get("@bob", t0), Cached::Fresh(Answer::NotFound));
        assert_eq!(
            cache.get("@bob", t0 + Duration::from_secs(5)),
            Cached::Missing
        );
    }

    #[test]
    fn a_full_cache_drops_expired_answers_first_then_the_oldest() {
        let cache = DirectoryCache::new(policy());
        let t0 = Instant::now();
        cache.put("@a", Answer::NotFound, t0);
        cache.put("@b", found("b:1"), t0 + Duration::from_secs(1));
        cache.put("@c", found("c:1"), t0 + Duration::from_secs(2));
        // @a's null has expired: it goes, the fresh ones stay.
        let t1 = t0 + Duration::from_secs(10);
        cache.put("@d", found("d:1"), t1);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("@a", t1), Cached::Missing);
        // All fresh: the oldest (@b) makes room.
        cache.put("@e", found("e:1"), t1);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("@b", t1), Cached::Missing);
        assert_eq!(cache.get("@c", t1), Cached::Fresh(found("c:1")));
    }
}
