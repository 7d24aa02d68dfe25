//! The write actor's memory of records it wrote recently.
//!
//! Every write reads the current record first (merges need it). For keys
//! written over and over, that read searched a memtable holding many
//! versions of the key, and under load it cost the actor about a third of
//! its time. The actor is the only writer of its keyspaces, so what it wrote
//! last *is* the current record: it keeps those here and reads the keyspace
//! only on a miss.
//!
//! Entries also serve as the overlay of the batch being built (a later write
//! in a batch must see an earlier one). If a batch fails to commit, the
//! whole memory is dropped along with it (the store is poisoned then anyway).

use std::collections::HashMap;

use super::commit_log::StoredCommit;
use super::record::StoredRecord;

pub use crate::limits::RECENT_BYTES_MAX;

/// Bookkeeping bytes counted per entry on top of key and value.
const ENTRY_OVERHEAD_BYTES: usize = 160;

/// Full record key → its current record (`None`: known to be absent).
///
/// Beside it, each written key's commit entry and where it is named, which
/// every write needs to supersede the old entry or carry it on. Unlike
/// records, these are only remembered once their batch committed.
#[derive(Default)]
pub struct Recent {
    entries: HashMap<Vec<u8>, Option<StoredRecord>>,
    commit_ids: HashMap<Vec<u8>, StoredCommit>,
    bytes: usize,
}

fn entry_bytes(key_len: usize, record: &Option<StoredRecord>) -> usize {
    let value = record
        .as_ref()
        .and_then(|r| r.value.as_ref())
        .map_or(0, String::len);
    key_len + value + ENTRY_OVERHEAD_BYTES
}

impl Recent {
    /// The remembered state of `key`: `None` when not remembered,
    /// `Some(None)` when remembered as absent.
    pub fn get(&self, key: &[u8]) -> Option<&Option<StoredRecord>> {
        self.entries.get(key)
    }

    /// Remembers what a write made of `key`.
    pub fn remember(&mut self, key: Vec<u8>, record: Option<StoredRecord>) {
        let key_len = key.len();
        self.bytes = self.bytes.saturating_add(entry_bytes(key_len, &record));
        if let Some(old) = self.entries.insert(key, record) {
            self.bytes = self.bytes.saturating_sub(entry_bytes(key_len, &old));
        }
    }

    /// The remembered commit entry of `key`, if remembered.
    pub fn commit(&self, key: &[u8]) -> Option<StoredCommit> {
        self.commit_ids.get(key).copied()
    }

    /// Remembers `key`'s commit entry after its batch committed.
    pub fn remember_commit(&mut self, key: Vec<u8>, id: StoredCommit) {
        let added = key.len() + ENTRY_OVERHEAD_BYTES;
        if self.commit_ids.insert(key, id).is_none() {
            self.bytes = self.bytes.saturating_add(added);
        }
    }

    /// Forgets everything (a failed batch, or the byte bound reached).
    pub fn clear(&mut self) {
        self.entries = HashMap::new();
        self.commit_ids = HashMap::new();
        self.bytes = 0;
    }

    /// Forgets everything if the byte bound is exceeded. Called between
    /// batches, never while one is being built.
    pub fn trim(&mut self) {
        if self.bytes > RECENT_BYTES_MAX {
            self.clear();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::StoredMeta;

    fn record(value_len: usize) -> Option<StoredRecord> {
        Some(StoredRecord {
            value: Some("v".repeat(value_len)),
            meta: StoredMeta::default(),
        })
    }

    #[test]
    fn replacing_a_key_counts_it_once() {
        let mut recent = Recent::default();
        recent.remember(b"k".to_vec(), record(100));
        recent.remember(b"k".to_vec(), record(10));
        assert_eq!(recent.bytes(), 1 + 10 + ENTRY_OVERHEAD_BYTES);
        recent.remember(b"k".to_vec(), None);
        assert_eq!(recent.bytes(), 1 + ENTRY_OVERHEAD_BYTES);
        assert!(matches!(recent.get(b"k"), Some(None)));
        assert!(recent.get(b"other").is_none());
    }

    #[test]
    fn trimming_forgets_only_past_the_bound() {
        let mut recent = Recent::default();
        recent.remember(b"a".to_vec(), record(10));
        recent.trim();
        assert!(recent.get(b"a").is_some());
        recent.remember(b"big".to_vec(), record(RECENT_BYTES_MAX));
        recent.trim();
        assert!(recent.get(b"a").is_none());
        assert_eq!(recent.bytes(), 0);
    }
}
