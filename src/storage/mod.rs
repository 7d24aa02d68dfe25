//! Storage: fjall keyspaces, rkyv records, the commit log and expiry.
//!
//! One [`Store`] per storage shard (`data/shard-K`). Reads run inline on the
//! caller's thread (fjall reads are thread-safe and a cache hit costs a few
//! microseconds). Writes never do: fjall can block a thread for tens of
//! milliseconds (journal rotation, write stalls, fsync), so every write is a
//! message to the shard's [`actor`], which applies a batch of them in one
//! `WriteBatch`, persists it once (group commit) and then completes each
//! caller's future. The actor is the single writer of its keyspaces, which
//! makes read-modify-write merges atomic and commit ids gap-free without locks.
//!
//! Failures are typed ([`StoreError`]; a write can also be refused by its own
//! closure, see [`WriteError`]) and become AT0002 in one place. A batch that
//! cannot be made durable, or that panics, poisons the store (`poison.rs`):
//! every later write is refused, reads go on, and the [`FatalSink`] given to
//! [`Store::open`] hears about it once, so the process can stop and restart.

pub mod actor;
pub mod completion;
pub mod error;
pub mod failpoints;
pub mod layout;
mod poison;
mod recent;
pub mod record;

use std::path::Path;
use std::sync::Arc;

use crate::error::AtError;
use crate::health::FatalSink;
pub use actor::{Mutation, WriteOutcome};
pub use error::{Operation, RecordAt, StoreError, WriteError};
use failpoints::Failpoints;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use poison::Poison;
pub use record::{ArchivedStoredRecord, CommitEntry, CommitOp, StoredMeta, StoredRecord};

/// Journals kept before memtables are forced to disk. Start-up replays the
/// journals, so this bounds start-up time however large the store grows
/// (64 MiB is fjall's minimum; its default of 512 MiB took seconds to replay).
pub const JOURNAL_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Memtable size per keyspace before it is sealed and flushed. fjall's
/// default (64 MiB per keyspace) let a write burst grow the server by
/// ~170 MiB; 16 MiB keeps memory flat with little effect on write cost.
pub const MEMTABLE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// When an acknowledged write is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the batch is fsynced: survives `kill -9` and power loss.
    Durable,
    /// Acknowledge after the journal append reached the OS: survives `kill -9`
    /// of the process, not a power loss.
    Fast,
}

/// The keyspaces of one storage shard.
#[derive(Clone)]
pub(crate) struct Keyspaces {
    pub keys: Keyspace,
    pub commits: Keyspace,
    pub expiry: Keyspace,
    pub meta: Keyspace,
}

struct StoreInner {
    keyspaces: Keyspaces,
    writer: crossbeam_channel::Sender<actor::ActorMessage>,
    /// Set by the actor after a failed or panicking batch, or when it dies:
    /// the store refuses writes from then on and reports not-ready.
    poison: Arc<Poison>,
    /// The actor thread, joined by [`Store::close`].
    actor: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A handle to one storage shard; cheap to clone and `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl Store {
    /// Opens (or creates) the shard's database under `dir` and starts its
    /// write actor on a dedicated thread. `fatal` hears once if the store
    /// becomes poisoned or its actor dies. Built with the `failpoints`
    /// feature, the store also arms the failpoints of `ATSERVER_FAILPOINTS`.
    pub fn open(dir: &Path, durability: Durability, fatal: FatalSink) -> Result<Store, StoreError> {
        Store::open_armed(dir, durability, fatal, Failpoints::from_env()?)
    }

    /// [`Store::open`] with the given failpoints instead of those of the
    /// environment (which is shared by every test in a process).
    #[cfg(feature = "failpoints")]
    pub fn open_with_failpoints(
        dir: &Path,
        durability: Durability,
        fatal: FatalSink,
        failpoints: Failpoints,
    ) -> Result<Store, StoreError> {
        Store::open_armed(dir, durability, fatal, failpoints)
    }

    fn open_armed(
        dir: &Path,
        durability: Durability,
        fatal: FatalSink,
        failpoints: Failpoints,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(Operation::CreateFolder))?;
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .max_journaling_size(JOURNAL_BYTES_MAX)
            .open()
            .map_err(StoreError::engine(Operation::OpenDatabase))?;
        let options = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES_MAX);
        let open = |name: &'static str| {
            db.keyspace(name, options)
                .map_err(StoreError::engine(Operation::OpenKeyspace(name)))
        };
        let keyspaces = Keyspaces {
            keys: open(layout::KEYS)?,
            commits: open(layout::COMMITS)?,
            expiry: open(layout::EXPIRY)?,
            meta: open(layout::META)?,
        };
        let poison = Arc::new(Poison::new(format!("store {}", dir.display()), fatal));
        let (writer, thread) = actor::spawn(
            db,
            keyspaces.clone(),
            durability,
            poison.clone(),
            failpoints,
        )?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                keyspaces,
                writer,
                poison,
                actor: std::sync::Mutex::new(Some(thread)),
            }),
        })
    }

    /// Blocks until everything written so far is fsynced and the memtables
    /// are flushed (a clean stop: the next start replays nothing). For the
    /// main thread at shutdown, never for a shard.
    pub fn flush_blocking(&self, limit: std::time::Duration) -> Result<(), StoreError> {
        use crossbeam_channel::SendTimeoutError;
        use std::sync::mpsc::RecvTimeoutError;
        let (done, finished) = std::sync::mpsc::channel();
        match self
            .inner
            .writer
            .send_timeout(actor::ActorMessage::Flush(done), limit)
        {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => return Err(StoreError::FlushTimedOut),
            Err(SendTimeoutError::Disconnected(_)) => return Err(StoreError::WriterStopped),
        }
        match finished.recv_timeout(limit) {
            Ok(flushed) => flushed,
            Err(RecvTimeoutError::Timeout) => Err(StoreError::FlushTimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::WriterStopped),
        }
    }

    /// Stops the write actor once every write handed to it is applied and
    /// persisted, and waits for it (so the folder can be reopened at once).
    /// Only the last handle can close the store; others get it back.
    pub fn close(self) -> Result<(), Store> {
        let inner = Arc::try_unwrap(self.inner).map_err(|inner| Store { inner })?;
        let StoreInner { writer, actor, .. } = inner;
        drop(writer);
        if let Some(thread) = actor.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
        Ok(())
    }

    /// The view of one atSign's data in this store.
    pub fn tenant(&self, atsign: &str) -> TenantStore {
        TenantStore {
            store: self.clone(),
            atsign: Arc::from(atsign),
        }
    }

    /// Whether the store refuses writes after a failure (not ready).
    pub fn is_poisoned(&self) -> bool {
        self.inner.poison.is_poisoned()
    }
}

/// One atSign's keys inside a [`Store`]. `atsign` includes the `@`.
#[derive(Clone)]
pub struct TenantStore {
    store: Store,
    atsign: Arc<str>,
}

impl TenantStore {
    pub fn atsign(&self) -> &str {
        &self.atsign
    }

    fn keyspaces(&self) -> &Keyspaces {
        &self.store.inner.keyspaces
    }

    /// Runs `f` on the validated archived record of `key` without copying it.
    /// Does not block on the write path; may do a cold `pread`.
    pub fn read<R>(
        &self,
        key: &str,
        f: impl FnOnce(&ArchivedStoredRecord) -> R,
    ) -> Result<Option<R>, StoreError> {
        let found =
            layout::with_record_key(&self.atsign, key, |full| self.keyspaces().keys.get(full));
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(None),
            Some(bytes) => record::with_archived(&bytes, f)
                .map(Some)
                .map_err(|e| StoreError::unreadable(RecordAt::key(&self.atsign, key), e)),
        }
    }

    /// The whole record of `key`, deserialised.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let full = layout::record_key(&self.atsign, key);
        let found = self.keyspaces().keys.get(&full);
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(None),
            Some(bytes) => StoredRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::unreadable(RecordAt::key(&self.atsign, key), e)),
        }
    }

    /// Calls `visit` for every key of this atSign, in key order, with its
    /// archived record. Stops early when `visit` returns false, and at the
    /// first record that cannot be read (reported with its key).
    pub fn for_each(
        &self,
        mut visit: impl FnMut(&str, &ArchivedStoredRecord) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = layout::tenant_prefix(&self.atsign);
        for item in self.keyspaces().keys.prefix(&prefix) {
            let (k, v) = item
                .into_inner()
                .map_err(StoreError::engine(Operation::Scan(layout::KEYS)))?;
            let Some(name) = k
                .get(prefix.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
            else {
                continue;
            };
            let keep_going = record::with_archived(&v, |archived| visit(name, archived))
                .map_err(|e| StoreError::unreadable(RecordAt::key(&self.atsign, name), e))?;
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    /// The last commit id issued for this atSign, or `None` on an empty log.
    /// Never goes down, even when the newest entry is purged.
    pub fn last_commit_id(&self) -> Result<Option<u64>, StoreError> {
        let key = layout::last_commit_key(&self.atsign);
        let found = self.keyspaces().meta.get(&key);
        match found.map_err(StoreError::engine(Operation::Read(layout::META)))? {
            None => Ok(None),
            Some(bytes) => Ok(layout::decode_u64(&bytes)),
        }
    }

    /// This atSign's commit log from id `from` on, oldest first (reversible),
    /// each entry decoded and paired with its id.
    fn commit_log(
        &self,
        from: u64,
    ) -> impl DoubleEndedIterator<Item = Result<(u64, CommitEntry), StoreError>> + '_ {
        let start = layout::commit_key(&self.atsign, from);
        let end = layout::commit_key(&self.atsign, u64::MAX);
        self.keyspaces()
            .commits
            .range(start..=end)
            .filter_map(|item| {
                let (k, v) = match item.into_inner() {
                    Ok(kv) => kv,
                    Err(error) => {
                        return Some(Err(StoreError::engine(Operation::Scan(layout::COMMITS))(
                            error,
                        )));
                    }
                };
                let id = k
                    .get(k.len().saturating_sub(8)..)
                    .and_then(layout::decode_u64)?;
                Some(
                    CommitEntry::decode(&v)
                        .map(|entry| (id, entry))
                        .map_err(|e| StoreError::unreadable(RecordAt::commit(&self.atsign, id), e)),
                )
            })
    }

    /// Commit-log entries with id ≥ `from`, oldest first, at most `limit`.
    pub fn commits_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, CommitEntry)>, StoreError> {
        self.commit_log(from).take(limit).collect()
    }

    /// The newest commit id whose key satisfies `pred` (`stats:3:<regex>`).
    pub fn latest_commit_where(
        &self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<Option<u64>, StoreError> {
        for item in self.commit_log(0).rev() {
            let (id, entry) = item?;
            if pred(&entry.key) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The newest commit entry of every key whose name satisfies `pred`, in
    /// order of each key's first appearance in the log (`stats:15`).
    pub fn latest_commit_per_key(
        &self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, u64, CommitOp)>, StoreError> {
        let mut latest: Vec<(String, u64, CommitOp)> = Vec::new();
        let mut position: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for item in self.commit_log(0) {
            let (id, entry) = item?;
            if !pred(&entry.key) {
                continue;
            }
            match position.get(&entry.key) {
                Some(&at) => {
                    if let Some(slot) = latest.get_mut(at) {
                        slot.1 = id;
                        slot.2 = entry.op;
                    }
                }
                None => {
                    position.insert(entry.key.clone(), latest.len());
                    latest.push((entry.key, id, entry.op));
                }
            }
        }
        Ok(latest)
    }

    /// Bytes on disk of the storage shard holding this atSign.
    pub fn disk_bytes(&self) -> u64 {
        let ks = self.keyspaces();
        ks.keys.disk_space()
            + ks.commits.disk_space()
            + ks.expiry.disk_space()
            + ks.meta.disk_space()
    }

    /// Applies `mutate` to the current record of `key` on the write actor and
    /// resolves once the result is durable (per the store's [`Durability`]).
    /// `commit` asks for a commit-log entry (and thus a commit id). An error
    /// `mutate` returns comes back as [`WriteError::Refused`].
    pub async fn write(
        &self,
        key: String,
        commit: bool,
        mutate: impl FnOnce(Option<StoredRecord>) -> Result<Mutation, AtError> + Send + 'static,
    ) -> Result<WriteOutcome, WriteError> {
        self.submit(key, commit, Box::new(mutate))
            .await?
            .outcome()
            .await
    }

    /// Hands a write to the actor and returns at once (waiting only while the
    /// actor's queue is full). Writes submitted in order are applied in order,
    /// so a connection can keep several in flight and still answer in order.
    /// A poisoned store refuses at once.
    pub async fn submit(
        &self,
        key: String,
        commit: bool,
        mutate: actor::MutateFn,
    ) -> Result<PendingWrite, StoreError> {
        if self.store.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let (reply, done) = completion::pair();
        let mut message = actor::ActorMessage::Write(actor::WriteRequest {
            atsign: self.atsign.clone(),
            key,
            commit,
            mutate,
            reply,
        });
        loop {
            match self.store.inner.writer.try_send(message) {
                Ok(()) => {
                    return Ok(PendingWrite { done });
                }
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    message = back;
                    futures_lite::future::yield_now().await;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    return Err(StoreError::WriterStopped);
                }
            }
        }
    }
}

/// A write the actor has accepted; resolves when its batch is durable.
pub struct PendingWrite {
    done: completion::Completion,
}

impl PendingWrite {
    pub async fn outcome(mut self) -> Result<WriteOutcome, WriteError> {
        self.ready().await;
        self.try_outcome()
            .unwrap_or(Err(WriteError::Store(StoreError::WriterStopped)))
    }

    /// Resolves once the outcome is known, without taking it.
    pub async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.done.poll_ready(cx)).await
    }

    /// The outcome if it is known by now.
    /// An abandoned completion (the actor died holding this write) reads as
    /// [`StoreError::WriterStopped`].
    pub fn try_outcome(&mut self) -> Option<Result<WriteOutcome, WriteError>> {
        match self.done.take() {
            completion::Polled::Ready(outcome) => Some(outcome),
            completion::Polled::Pending => None,
            completion::Polled::Abandoned => Some(Err(StoreError::WriterStopped.into())),
        }
    }
}

#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod tests;
