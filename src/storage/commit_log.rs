//! The commit log keeps one entry per key: the latest.
//!
//! A client syncing from -1 must receive every key's current state once, so
//! (as the reference does) adding an entry removes the key's previous one.
//! A write finds the entry it supersedes without scanning the log: a live
//! key's record carries the id of its entry (record version 2), and
//! `commit_index` names the entry of every key that has one but no such
//! record: deleted keys (their entry is the delete) and records written
//! before records carried the id. A batch collects its commit-log changes
//! here ([`Staged`]) and writes them into its `WriteBatch` only at commit,
//! so a key written twice in one batch never has its first entry reach the
//! keyspaces at all, and no key is inserted and removed in the same batch.
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

/// A key's commit entry as the keyspaces hold it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredCommit {
    /// The id of the key's one entry, if it has one.
    pub id: Option<u64>,
    /// Whether `commit_index` names it (rather than the key's record).
    pub indexed: bool,
}

impl StoredCommit {
    /// What `commit_index` says of a key: it names `id`, or nothing.
    pub fn from_index(id: Option<u64>) -> StoredCommit {
        StoredCommit {
            id,
            indexed: id.is_some(),
        }
    }

    /// What a key's record says: its entry is `id` (or it has none).
    pub fn in_record(id: Option<u64>) -> StoredCommit {
        StoredCommit { id, indexed: false }
    }
}

/// What one write does to its key's entry.
pub(super) enum LogChange<'a> {
    /// A new entry `id` supersedes the key's entry.
    Append { id: u64, entry: &'a CommitEntry },
    /// The key keeps no entry (`:nc`).
    Forget,
    /// The key's entry stays as it is (the log is skipped).
    Keep,
}

/// What a batch does to one key's entry.
struct KeyLog {
    /// The key's entry as the keyspaces held it before the batch.
    before: StoredCommit,
    /// Its commit key, when it has one: removed if superseded.
    before_commit_key: Option<Vec<u8>>,
    /// The id of the key's entry after the batch's changes so far.
    id: Option<u64>,
    /// The batch's new entry, commit key and encoding, if the key's latest
    /// change appended one that is still its entry.
    entry: Option<(Vec<u8>, Vec<u8>)>,
    /// Whether the key has a record after the batch's changes so far.
    live: bool,
}

/// A batch's commit-log changes, keyed by full record key.
#[derive(Default)]
pub(super) struct Staged {
    keys: HashMap<Vec<u8>, KeyLog>,
}

impl Staged {
    /// Whether the batch already changed `full_key` (whose state before
    /// the batch it then knows).
    pub fn has(&self, full_key: &[u8]) -> bool {
        self.keys.contains_key(full_key)
    }

    /// Records one write of `full_key`, which leaves the key with a record
    /// (`live`) or without. `before` is the key's entry as the keyspaces
    /// hold it before this batch; only the key's first change in the batch
    /// uses it. Returns the id of the key's entry after the write: what
    /// its record carries.
    pub fn change(
        &mut self,
        atsign: &str,
        full_key: &[u8],
        before: StoredCommit,
        change: LogChange<'_>,
        live: bool,
    ) -> Option<u64> {
        let log = match self.keys.get_mut(full_key) {
            Some(log) => log,
            None => self.keys.entry(full_key.to_vec()).or_insert(KeyLog {
                before,
                before_commit_key: before.id.map(|id| layout::commit_key(atsign, id)),
                id: before.id,
                entry: None,
                live,
            }),
        };
        match change {
            LogChange::Append { id, entry } => {
                log.id = Some(id);
                log.entry = Some((layout::commit_key(atsign, id), entry.encode()));
            }
            LogChange::Forget => {
                log.id = None;
                log.entry = None;
            }
            LogChange::Keep => {}
        }
        log.live = live;
        log.id
    }

    /// Writes the changes into `batch`, and returns each touched key with
    /// its entry as the keyspaces will hold it, for the actor to remember
    /// once the batch commits.
    pub fn write_into(
        self,
        batch: &mut OwnedWriteBatch,
        keyspaces: &Keyspaces,
    ) -> Vec<(Vec<u8>, StoredCommit)> {
        let mut after = Vec::with_capacity(self.keys.len());
        for (full_key, log) in self.keys {
            if let Some(commit_key) = log.before_commit_key
                && log.id != log.before.id
            {
                batch.remove(&keyspaces.commits, commit_key);
            }
            if let Some((commit_key, encoded)) = log.entry {
                batch.insert(&keyspaces.commits, commit_key, encoded);
            }
            // A record names its key's entry itself; the index names the
            // entry of a key without one.
            let wanted = if log.live { None } else { log.id };
            let had = if log.before.indexed {
                log.before.id
            } else {
                None
            };
            if wanted != had {
                match wanted {
                    Some(id) => batch.insert(
                        &keyspaces.commit_index,
                        full_key.clone(),
                        id.to_be_bytes().to_vec(),
                    ),
                    None => batch.remove(&keyspaces.commit_index, full_key.clone()),
                }
            }
            let stored = StoredCommit {
                id: log.id,
                indexed: wanted.is_some(),
            };
            after.push((full_key, stored));
        }
        after
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
