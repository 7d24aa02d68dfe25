//! The write actor of one storage shard: a plain thread that owns every write.
//!
//! It blocks for the first request, drains whatever else is queued (up to
//! [`BATCH_OPS_MAX`]), applies all of them to one `WriteBatch`, persists the
//! batch once, and only then completes the callers' futures. Between batches,
//! and at least every [`EXPIRY_SWEEP_INTERVAL_MS`], it purges expired records
//! through the time-ordered expiry index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use fjall::{Database, OwnedWriteBatch, PersistMode};

use super::completion::{self, Completer};
use super::error::{Operation, RecordAt, StoreError, WriteError};
use super::layout;
use super::recent::Recent;
use super::record::{CommitEntry, CommitOp, StoredRecord};
use super::{Durability, Keyspaces};
use crate::error::AtError;
use crate::protocol::atkey;

/// Requests applied in one batch at most: bounds the latency a batch adds.
pub const BATCH_OPS_MAX: usize = 512;

/// Capacity of the queue in front of the actor. When full, writers yield and
/// retry, which pushes back on the connections producing the load.
pub const WRITE_QUEUE_LEN_MAX: usize = 16_384;

/// How often expired records are looked for when the actor is otherwise idle.
pub const EXPIRY_SWEEP_INTERVAL_MS: u64 = 1_000;

/// Expired records purged per sweep, so a mass expiry cannot stall writes.
pub const EXPIRY_SWEEP_KEYS_MAX: usize = 1_024;

/// What a write does to the record it was given.
pub enum Mutation {
    Put(Box<StoredRecord>, CommitOp),
    Delete,
    /// Nothing to write (the caller still gets an outcome, without commit id).
    Unchanged,
}

/// The result of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The commit id issued, when a commit entry was asked for and written.
    pub commit_id: Option<u64>,
    /// Whether a record existed before the write.
    pub existed: bool,
}

/// What the actor receives.
pub enum ActorMessage {
    Write(WriteRequest),
    /// Persist everything and flush the memtables (a clean stop), then
    /// answer on the channel.
    Flush(std::sync::mpsc::Sender<Result<(), StoreError>>),
}

pub type MutateFn = Box<dyn FnOnce(Option<StoredRecord>) -> Result<Mutation, AtError> + Send>;

pub struct WriteRequest {
    pub atsign: Arc<str>,
    pub key: String,
    pub commit: bool,
    pub mutate: MutateFn,
    pub reply: Completer,
}

pub(super) fn spawn(
    db: Database,
    keyspaces: Keyspaces,
    durability: Durability,
    poisoned: Arc<AtomicBool>,
) -> Result<
    (
        crossbeam_channel::Sender<ActorMessage>,
        std::thread::JoinHandle<()>,
    ),
    StoreError,
> {
    let (tx, rx) = crossbeam_channel::bounded(WRITE_QUEUE_LEN_MAX);
    let mut actor = Actor {
        db,
        keyspaces,
        durability,
        poisoned,
        last_commit: HashMap::new(),
        recent: Recent::default(),
    };
    let thread = std::thread::Builder::new()
        .name("atserver-store".into())
        .spawn(move || actor.run(rx))
        .map_err(StoreError::io(Operation::StartWriter))?;
    Ok((tx, thread))
}

struct Actor {
    db: Database,
    keyspaces: Keyspaces,
    durability: Durability,
    poisoned: Arc<AtomicBool>,
    /// Last issued commit id per atSign, loaded from `meta` on first use.
    last_commit: HashMap<String, Option<u64>>,
    /// Records written recently, including those of the batch being built.
    recent: Recent,
}

/// The state of one batch while it is being built (its records are in
/// `Actor::recent`, where later requests of the batch see them).
struct Pending {
    batch: OwnedWriteBatch,
    commits_touched: HashMap<String, Option<u64>>,
}

impl Actor {
    fn run(&mut self, rx: Receiver<ActorMessage>) {
        let sweep_every = Duration::from_millis(EXPIRY_SWEEP_INTERVAL_MS);
        let mut next_sweep = Instant::now();
        loop {
            if Instant::now() >= next_sweep {
                self.sweep_expired();
                next_sweep = Instant::now() + sweep_every;
            }
            let wait = next_sweep.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut requests = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    ActorMessage::Write(request) => requests.push(request),
                    ActorMessage::Flush(done) => flushes.push(done),
                }
                if requests.len() < BATCH_OPS_MAX {
                    next = rx.try_recv().ok();
                }
            }
            if !requests.is_empty() {
                self.apply_batch(requests);
            }
            if !flushes.is_empty() {
                let flushed = self.flush_to_disk();
                for done in flushes {
                    let _ = done.send(flushed.clone());
                }
            }
        }
        // Every sender is gone: nobody is left to tell of a failure.
        let _ = self.flush_to_disk();
    }

    /// Makes what was acknowledged in fast mode durable and flushes the
    /// memtables, so the next start replays nothing.
    fn flush_to_disk(&self) -> Result<(), StoreError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(StoreError::engine(Operation::Persist))?;
        let keyspaces = &self.keyspaces;
        for keyspace in [
            &keyspaces.keys,
            &keyspaces.commits,
            &keyspaces.expiry,
            &keyspaces.meta,
        ] {
            if let Err(error) = keyspace.rotate_memtable_and_wait() {
                tracing::warn!(%error, "flushing a memtable at close failed");
            }
        }
        Ok(())
    }

    fn persist_mode(&self) -> PersistMode {
        match self.durability {
            Durability::Durable => PersistMode::SyncData,
            Durability::Fast => PersistMode::Buffer,
        }
    }

    fn new_pending(&self) -> Pending {
        Pending {
            batch: self.db.batch().durability(Some(self.persist_mode())),
            commits_touched: HashMap::new(),
        }
    }

    fn apply_batch(&mut self, requests: Vec<WriteRequest>) {
        if self.poisoned.load(Ordering::Acquire) {
            completion::publish_all(
                requests
                    .into_iter()
                    .map(|r| (r.reply, Err(StoreError::Poisoned.into()))),
            );
            return;
        }
        let mut pending = self.new_pending();
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests {
            let outcome = self.apply_one(
                &mut pending,
                &request.atsign,
                &request.key,
                request.commit,
                request.mutate,
            );
            replies.push((request.reply, outcome));
        }
        let committed = self.commit(pending);
        if let Err(error) = &committed {
            tracing::error!(%error, "write batch failed: poisoning the store");
            self.poisoned.store(true, Ordering::Release);
        }
        completion::publish_all(replies.into_iter().map(|(reply, outcome)| {
            let outcome = match &committed {
                Ok(()) => outcome,
                Err(error) => Err(WriteError::Store(error.clone())),
            };
            (reply, outcome)
        }));
    }

    /// Records each atSign's last issued commit id once per batch, commits
    /// the batch, and only then lets later batches build on those ids.
    fn commit(&mut self, mut pending: Pending) -> Result<(), StoreError> {
        let commits = std::mem::take(&mut pending.commits_touched);
        for (atsign, last) in &commits {
            if let Some(id) = last {
                pending.batch.insert(
                    &self.keyspaces.meta,
                    layout::last_commit_key(atsign),
                    id.to_be_bytes().to_vec(),
                );
            }
        }
        if let Err(error) = pending.batch.commit() {
            // What the failed batch staged never reached the keyspaces.
            self.recent.clear();
            return Err(StoreError::engine(Operation::CommitBatch)(error));
        }
        self.last_commit.extend(commits);
        self.recent.trim();
        Ok(())
    }

    fn current(
        &self,
        full_key: &[u8],
        atsign: &str,
        key: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        if let Some(known) = self.recent.get(full_key) {
            return Ok(known.clone());
        }
        let found = self.keyspaces.keys.get(full_key);
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(None),
            Some(bytes) => StoredRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::unreadable(RecordAt::key(atsign, key), e)),
        }
    }

    fn next_commit_id(&mut self, pending: &mut Pending, atsign: &str) -> Result<u64, StoreError> {
        let last = match pending.commits_touched.get(atsign) {
            Some(last) => *last,
            None => match self.last_commit.get(atsign) {
                Some(last) => *last,
                None => {
                    let key = layout::last_commit_key(atsign);
                    let stored = self.keyspaces.meta.get(&key);
                    let stored =
                        stored.map_err(StoreError::engine(Operation::Read(layout::META)))?;
                    let last = stored.and_then(|b| layout::decode_u64(&b));
                    self.last_commit.insert(atsign.to_string(), last);
                    last
                }
            },
        };
        let next = last.map_or(0, |id| id + 1);
        pending
            .commits_touched
            .insert(atsign.to_string(), Some(next));
        Ok(next)
    }

    fn apply_one(
        &mut self,
        pending: &mut Pending,
        atsign: &str,
        key: &str,
        commit: bool,
        mutate: MutateFn,
    ) -> Result<WriteOutcome, WriteError> {
        let full_key = layout::record_key(atsign, key);
        let previous = self.current(&full_key, atsign, key)?;
        let existed = previous.is_some();
        let old_expiry = previous.as_ref().and_then(|r| r.meta.expires_at);
        let (op, new_record) = match mutate(previous).map_err(WriteError::Refused)? {
            Mutation::Unchanged => {
                return Ok(WriteOutcome {
                    commit_id: None,
                    existed,
                });
            }
            Mutation::Put(record, op) => (op, Some(*record)),
            Mutation::Delete => (CommitOp::Delete, None),
        };
        let new_expiry = new_record.as_ref().and_then(|r| r.meta.expires_at);
        if let Some(old) = old_expiry.filter(|old| Some(*old) != new_expiry) {
            pending
                .batch
                .remove(&self.keyspaces.expiry, layout::expiry_key(old, atsign, key));
        }
        if let Some(new) = new_expiry.filter(|new| Some(*new) != old_expiry) {
            pending.batch.insert(
                &self.keyspaces.expiry,
                layout::expiry_key(new, atsign, key),
                Vec::new(),
            );
        }
        let op_time = new_record
            .as_ref()
            .map_or_else(now_ms, |r| r.meta.updated_at);
        match &new_record {
            Some(record) => {
                pending
                    .batch
                    .insert(&self.keyspaces.keys, full_key.clone(), record.encode())
            }
            None => pending.batch.remove(&self.keyspaces.keys, full_key.clone()),
        }
        self.recent.remember(full_key, new_record);
        let commit_id = if commit {
            let id = self.next_commit_id(pending, atsign)?;
            let entry = CommitEntry {
                key: key.to_string(),
                op,
                op_time_ms: op_time,
            };
            pending.batch.insert(
                &self.keyspaces.commits,
                layout::commit_key(atsign, id),
                entry.encode(),
            );
            Some(id)
        } else {
            None
        };
        Ok(WriteOutcome { commit_id, existed })
    }

    /// Deletes records whose expiry has passed, through the normal write path
    /// so each gets a DELETE commit entry that clients will sync.
    fn sweep_expired(&mut self) {
        if self.poisoned.load(Ordering::Acquire) {
            return;
        }
        let now = now_ms();
        let end = layout::encode_time(now);
        let mut due = Vec::new();
        for item in self
            .keyspaces
            .expiry
            .range(..end.to_vec())
            .take(EXPIRY_SWEEP_KEYS_MAX)
        {
            match item.key() {
                Ok(k) => due.push(k.to_vec()),
                Err(error) => {
                    tracing::warn!(%error, "expiry index read failed");
                    return;
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let mut pending = self.new_pending();
        let mut purged = 0usize;
        for index_key in &due {
            pending
                .batch
                .remove(&self.keyspaces.expiry, index_key.clone());
            let Some((at, atsign, key)) = layout::parse_expiry_key(index_key) else {
                continue;
            };
            let full_key = layout::record_key(atsign, key);
            let still_due = match self.current(&full_key, atsign, key) {
                Ok(Some(record)) => record.meta.expires_at == Some(at),
                _ => false,
            };
            if !still_due {
                continue;
            }
            let commit = atkey::is_committed(key);
            let (atsign, key) = (atsign.to_string(), key.to_string());
            match self.apply_one(
                &mut pending,
                &atsign,
                &key,
                commit,
                Box::new(|_| Ok(Mutation::Delete)),
            ) {
                Ok(_) => purged += 1,
                Err(error) => tracing::warn!(%error, key, "expiry purge failed"),
            }
        }
        match self.commit(pending) {
            Ok(()) => {
                if purged > 0 {
                    tracing::debug!(purged, "expired records purged");
                }
            }
            Err(error) => {
                tracing::error!(%error, "expiry batch failed: poisoning the store");
                self.poisoned.store(true, Ordering::Release);
            }
        }
    }
}

/// Wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
