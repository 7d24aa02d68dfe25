//! The commit log keeps one entry per key: the latest.
//!
//! A client syncing from -1 must receive every key's current state once, so
//! (as the reference does) adding an entry removes the key's previous one.
//! `commit_index` maps each key to the id of its one entry, which is how a
//! write finds the entry it supersedes without scanning the log. A batch
//! collects its commit-log changes here ([`Staged`]) and writes them into
//! its `WriteBatch` only at commit, so a key written twice in one batch
//! never has its first entry reach the keyspaces at all, and no key is
//! inserted and removed in the same batch.
//!
//! Stores written before `commit_index` existed hold every entry ever
//! made; [`build_index_once`] builds the index at open and removes the
//! superseded entries, once, before the actor starts.

use std::collections::HashMap;

use fjall::{Database, OwnedWriteBatch, PersistMode};

use super::error::{Operation, RecordAt, StoreError};
use super::layout;
use super::record::CommitEntry;
use super::{Durability, Keyspaces};

/// How a write treats the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitLog {
    /// Log the write: a new entry (and commit id) supersedes the key's old one.
    Append,
    /// Leave the log alone (keys the reference never logs: `private:`,
    /// `local:`, the server's own bookkeeping).
    Skip,
    /// `:nc`: log nothing and remove the key's existing entry, if any.
    Forget,
}

impl From<bool> for CommitLog {
    /// `true` logs the write, `false` leaves the log alone.
    fn from(commit: bool) -> CommitLog {
        if commit {
            CommitLog::Append
        } else {
            CommitLog::Skip
        }
    }
}

/// What a batch does to one key's entry.
enum Latest {
    /// The key's new entry: its commit key and encoded entry.
    Entry {
        id: u64,
        commit_key: Vec<u8>,
        encoded: Vec<u8>,
    },
    /// The key has no entry any more (`:nc`).
    Forgotten,
}

/// A batch's commit-log changes, keyed by full record key.
#[derive(Default)]
pub(super) struct Staged {
    latest: HashMap<Vec<u8>, Latest>,
    /// Commit keys of stored entries that this batch supersedes.
    superseded: Vec<Vec<u8>>,
}

impl Staged {
    /// `full_key`'s new entry `id`. `stored` is the id of its entry as the
    /// keyspaces hold it (before this batch), which the first change of the
    /// key in the batch removes.
    pub fn append(
        &mut self,
        atsign: &str,
        full_key: Vec<u8>,
        stored: Option<u64>,
        id: u64,
        entry: &CommitEntry,
    ) {
        let latest = Latest::Entry {
            id,
            commit_key: layout::commit_key(atsign, id),
            encoded: entry.encode(),
        };
        self.replace(atsign, full_key, stored, latest);
    }

    /// `full_key` keeps no entry (`:nc`); `stored` as for [`Staged::append`].
    pub fn forget(&mut self, atsign: &str, full_key: Vec<u8>, stored: Option<u64>) {
        self.replace(atsign, full_key, stored, Latest::Forgotten);
    }

    fn replace(&mut self, atsign: &str, full_key: Vec<u8>, stored: Option<u64>, latest: Latest) {
        // An earlier change of this key in the batch already superseded the
        // stored entry; the earlier change itself never reaches the store.
        if self.latest.insert(full_key, latest).is_none()
            && let Some(previous) = stored
        {
            self.superseded.push(layout::commit_key(atsign, previous));
        }
    }

    /// Writes the changes into `batch`, and returns each touched key with
    /// the id it now has, for the actor to remember once the batch commits.
    pub fn write_into(
        self,
        batch: &mut OwnedWriteBatch,
        keyspaces: &Keyspaces,
    ) -> Vec<(Vec<u8>, Option<u64>)> {
        for commit_key in self.superseded {
            batch.remove(&keyspaces.commits, commit_key);
        }
        let mut ids = Vec::with_capacity(self.latest.len());
        for (full_key, latest) in self.latest {
            match latest {
                Latest::Entry {
                    id,
                    commit_key,
                    encoded,
                } => {
                    batch.insert(&keyspaces.commits, commit_key, encoded);
                    batch.insert(
                        &keyspaces.commit_index,
                        full_key.clone(),
                        id.to_be_bytes().to_vec(),
                    );
                    ids.push((full_key, Some(id)));
                }
                Latest::Forgotten => {
                    batch.remove(&keyspaces.commit_index, full_key.clone());
                    ids.push((full_key, None));
                }
            }
        }
        ids
    }
}

/// The id of `full_key`'s entry as `commit_index` holds it.
pub(super) fn indexed_id(
    keyspaces: &Keyspaces,
    full_key: &[u8],
) -> Result<Option<u64>, StoreError> {
    let found = keyspaces.commit_index.get(full_key);
    let found = found.map_err(StoreError::engine(Operation::Read(layout::COMMIT_INDEX)))?;
    Ok(found.and_then(|bytes| layout::decode_u64(&bytes)))
}

/// Operations per batch while building the index: bounds the memory of one
/// batch on a store with millions of entries.
const BUILD_BATCH_OPS_MAX: usize = 50_000;

/// Builds `commit_index` for a store written before it existed, removing
/// every entry a later entry of the same key superseded, unless `meta`
/// says this was done. Runs before the actor starts (nothing else writes).
/// Interrupted, it starts over at the next open: every step is idempotent
/// and the marker is written last.
pub(super) fn build_index_once(
    db: &Database,
    keyspaces: &Keyspaces,
    durability: Durability,
) -> Result<(), StoreError> {
    let marker = keyspaces.meta.get(layout::COMMIT_INDEX_BUILT_KEY);
    if marker
        .map_err(StoreError::engine(Operation::Read(layout::META)))?
        .is_some()
    {
        return Ok(());
    }
    // Full record key → (commit key, id) of its newest entry so far.
    let mut newest: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
    let mut superseded: Vec<Vec<u8>> = Vec::new();
    for item in keyspaces.commits.iter() {
        let (commit_key, value) = item
            .into_inner()
            .map_err(StoreError::engine(Operation::Scan(layout::COMMITS)))?;
        let Some((atsign, id)) = layout::parse_commit_key(&commit_key) else {
            tracing::error!(key = ?commit_key, "commit key without an atSign and id left in place");
            continue;
        };
        let entry = match CommitEntry::decode(&value) {
            Ok(entry) => entry,
            Err(problem) => {
                // Left in place: readers skip and count it, `check-store`
                // names it.
                tracing::error!(record = %RecordAt::commit(atsign, id), %problem, "corrupt commit entry left out of the index");
                continue;
            }
        };
        let full_key = layout::record_key(atsign, &entry.key);
        // Keys are in id order per atSign, so a later entry of a key is
        // newer: the one already seen is superseded.
        if let Some((older, _)) = newest.insert(full_key, (commit_key.to_vec(), id)) {
            superseded.push(older);
        }
    }
    let mode = match durability {
        Durability::Durable => PersistMode::SyncData,
        Durability::Fast => PersistMode::Buffer,
    };
    let new_batch = || db.batch().durability(Some(mode));
    let commit = |batch: OwnedWriteBatch| {
        batch
            .commit()
            .map_err(StoreError::engine(Operation::CommitBatch))
    };
    let (indexed, removed) = (newest.len(), superseded.len());
    let mut batch = new_batch();
    let mut ops = 0usize;
    let removals = superseded
        .into_iter()
        .map(|commit_key| (commit_key, None::<u64>));
    let insertions = newest
        .into_iter()
        .map(|(full_key, (_, id))| (full_key, Some(id)));
    for (key, id) in removals.chain(insertions) {
        match id {
            None => batch.remove(&keyspaces.commits, key),
            Some(id) => batch.insert(&keyspaces.commit_index, key, id.to_be_bytes().to_vec()),
        }
        ops += 1;
        if ops == BUILD_BATCH_OPS_MAX {
            commit(std::mem::replace(&mut batch, new_batch()))?;
            ops = 0;
        }
    }
    batch.insert(
        &keyspaces.meta,
        layout::COMMIT_INDEX_BUILT_KEY.to_vec(),
        Vec::new(),
    );
    commit(batch)?;
    db.persist(PersistMode::SyncData)
        .map_err(StoreError::engine(Operation::CommitBatch))?;
    if indexed > 0 || removed > 0 {
        tracing::info!(
            indexed,
            removed,
            "commit log indexed: only the latest entry of each key is kept"
        );
    }
    Ok(())
}
