//! The write actor of one storage shard: a plain thread that owns every write.
//!
//! It blocks for the first request, drains whatever else is queued (up to
//! [`BATCH_OPS_MAX`]), wakes the submitters parked for room in the queue
//! (`backpressure.rs`), applies all of the requests to one `WriteBatch`,
//! persists the batch once, and only then completes the callers' futures.
//! A request may carry a second key's write (a companion): both are applied
//! in the same batch or neither is, with one outcome. Between batches, and
//! at least every [`EXPIRY_SWEEP_INTERVAL_MS`], it purges expired records
//! through the time-ordered expiry index.
//!
//! In fast mode a batch is acknowledged once its journal append reached
//! the operating system, not the disk. So that a power loss cannot take
//! more than about [`FAST_SYNC_INTERVAL_MS`] of acknowledged writes, the
//! actor syncs the journal (`SyncData`) between batches once that long has
//! passed since the first write the last sync did not cover. The sync never
//! runs inside a batch and no batch waits for its interval; a batch that
//! arrives during one waits for that one fsync, as it would behind fjall's
//! journal lock if the sync ran on another thread. A failed sync poisons
//! the store like a failed commit.
//!
//! A batch that fails to commit, or panics while being applied or committed
//! (write closures come from verbs, and fjall asserts on its inputs),
//! poisons the store: its waiters get the error, later writes are refused,
//! and the fatal sink hears once. If the thread ends any other way, the
//! `ActorLife` guard on it poisons the store, and waiters of the lost
//! requests see their completion abandoned ("writer stopped").

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use fjall::{Database, OwnedWriteBatch, PersistMode};

use super::activity::Activity;
use super::backpressure::{ChargedBytes, Parking, TenantQueue, TenantQueues};
use super::commit_log::{self, CommitLog, LogChange, StoredCommit};
use super::completion::{self, Completer};
use super::error::{Operation, RecordAt, StoreError, WithSources, WriteError};
use super::failpoints::{Failpoints, Site};
use super::layout;
use super::notifications::{self, NotificationWrite};
use super::poison::{ActorLife, Poison};
use super::recent::Recent;
use super::record::{self, CommitEntry, CommitOp, RecordCommit, StoredRecord};
use super::{Durability, Keyspaces};
use crate::error::AtError;
use crate::limits::FAST_SYNC_INTERVAL_MS;
pub use crate::limits::{
    BATCH_OPS_MAX, EXPIRY_SWEEP_INTERVAL_MS, EXPIRY_SWEEP_KEYS_MAX, FJALL_KEY_BYTES_MAX,
    LAYOUT_KEY_BYTES_MAX, NOTIFICATION_SWEEP_LEN_MAX, WRITE_QUEUE_LEN_MAX,
};
use crate::protocol::atkey;

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
pub(super) enum ActorMessage {
    /// A write, and the room it holds in its atSign's queue budget (given
    /// back as the actor takes the write into a batch).
    Write(QueuedWrite, ChargedBytes),
    /// Persist everything and flush the memtables (a clean stop), then
    /// answer on the channel.
    Flush(std::sync::mpsc::Sender<Result<(), StoreError>>),
}

pub type MutateFn = Box<dyn FnOnce(Option<StoredRecord>) -> Result<Mutation, AtError> + Send>;

/// One key's part of a write: the actor runs `mutate` on the key's current
/// record; `commit` says what it does to the commit log (an appended entry
/// is what issues a commit id).
pub struct KeyWrite {
    pub key: String,
    pub commit: CommitLog,
    pub mutate: MutateFn,
}

impl KeyWrite {
    /// `commit`: a [`CommitLog`], or `true`/`false` for append/skip.
    pub fn new(key: String, commit: impl Into<CommitLog>, mutate: MutateFn) -> KeyWrite {
        KeyWrite {
            key,
            commit: commit.into(),
            mutate,
        }
    }
}

/// What one request asks the actor to do.
pub(super) enum Work {
    /// A key's write, and optionally a companion write applied in the same
    /// batch as `write`, after it, or not at all.
    Key {
        write: KeyWrite,
        companion: Option<KeyWrite>,
    },
    /// A notification's write (`notifications.rs`).
    Notification(NotificationWrite),
}

/// A write as it waits in the actor's queue.
pub(super) struct QueuedWrite {
    pub atsign: Arc<str>,
    pub work: Work,
    pub reply: Completer,
}

/// A queued write without its completer: what a batch applies. The
/// completers stay outside the panic guard, so a panic cannot take the way
/// to answer with it.
struct WriteOp {
    atsign: Arc<str>,
    work: Work,
}

/// What one key's write makes of its record, worked out before anything of
/// its request is staged, so that a request with a companion is staged
/// whole or not at all.
struct Planned {
    key: String,
    full_key: Vec<u8>,
    commit: CommitLog,
    /// The key's commit entry as the keyspaces hold it (unless the batch
    /// already changed the key: then the batch knows it).
    stored_commit: StoredCommit,
    /// Whether a record existed before the write.
    existed: bool,
    old_expiry: Option<i64>,
    /// `None` when the closure left the record unchanged.
    change: Option<Change>,
}

struct Change {
    op: CommitOp,
    /// The new record, `None` for a delete.
    record: Option<StoredRecord>,
}

impl Planned {
    /// The record this write leaves at `full_key`, if it writes that key:
    /// what a companion of the same key must start from.
    fn record_after(&self, full_key: &[u8]) -> Option<Option<StoredRecord>> {
        if self.full_key != full_key {
            return None;
        }
        self.change.as_ref().map(|change| change.record.clone())
    }

    fn needs_commit_id(&self) -> bool {
        self.commit == CommitLog::Append && self.change.is_some()
    }
}

/// What the store's handles and its actor share.
pub(super) struct Shared {
    pub poison: Arc<Poison>,
    pub parking: Arc<Parking>,
    pub activity: Arc<Activity>,
    pub tenant_queues: Arc<TenantQueues>,
}

/// What each write of a batch gets: its outcome, or why it did not happen.
type Outcome = Result<WriteOutcome, WriteError>;

/// Starts the actor with a queue of `queue_len` requests.
pub(super) fn spawn(
    db: Database,
    keyspaces: Keyspaces,
    durability: Durability,
    shared: Shared,
    failpoints: Failpoints,
    queue_len: usize,
) -> Result<
    (
        crossbeam_channel::Sender<ActorMessage>,
        std::thread::JoinHandle<()>,
    ),
    StoreError,
> {
    let (tx, rx) = crossbeam_channel::bounded(queue_len);
    let Shared {
        poison,
        parking,
        activity,
        tenant_queues,
    } = shared;
    let mut actor = Actor {
        db,
        keyspaces,
        durability,
        poison,
        parking,
        activity,
        tenant_queues,
        queue_of: HashMap::new(),
        failpoints,
        last_commit: HashMap::new(),
        recent: Recent::default(),
        unsynced_since: None,
    };
    let thread = std::thread::Builder::new()
        .name("atserver-store".into())
        .spawn(move || {
            // Declared first, so dropped last: once the thread ends, however
            // it ends, parked submitters retry and find the store poisoned
            // or the queue disconnected instead of waiting forever.
            let _wake_on_exit = WakeParkedOnExit(actor.parking.clone());
            let poison = actor.poison.clone();
            let life = ActorLife::begin(&poison);
            actor.run(rx);
            life.finished();
        })
        .map_err(StoreError::io(Operation::StartWriter))?;
    Ok((tx, thread))
}

/// The budget room of the requests one drain took, per atSign: given back
/// once per atSign and drain, not once per request.
#[derive(Default)]
struct Taken {
    /// (atSign, requests, bytes); a drain holds few atSigns, so a list.
    by_atsign: Vec<(Arc<str>, usize, usize)>,
}

impl Taken {
    fn add(&mut self, atsign: &Arc<str>, charged: ChargedBytes) {
        match self.by_atsign.iter_mut().find(|(a, _, _)| a == atsign) {
            Some((_, writes, bytes)) => {
                *writes += 1;
                *bytes = bytes.saturating_add(charged.0);
            }
            None => self.by_atsign.push((atsign.clone(), 1, charged.0)),
        }
    }
}

/// Wakes the parked submitters when the actor's thread ends.
struct WakeParkedOnExit(Arc<Parking>);

impl Drop for WakeParkedOnExit {
    fn drop(&mut self) {
        self.0.wake_all();
    }
}

struct Actor {
    db: Database,
    keyspaces: Keyspaces,
    durability: Durability,
    /// Shared with the store's handles, which refuse writes once it is set.
    poison: Arc<Poison>,
    /// Submitters waiting for room, woken after every drain.
    parking: Arc<Parking>,
    /// How long the current step runs, and the background-sync count.
    activity: Arc<Activity>,
    /// Every atSign's queue budget, whose room the actor gives back.
    tenant_queues: Arc<TenantQueues>,
    /// The budgets looked up so far, by atSign (the lookup takes a lock).
    queue_of: HashMap<Arc<str>, Arc<TenantQueue>>,
    /// Failures on purpose (an empty type unless built with `failpoints`).
    failpoints: Failpoints,
    /// Last issued commit id per atSign, loaded from `meta` on first use.
    last_commit: HashMap<String, Option<u64>>,
    /// Records written recently, including those of the batch being built.
    recent: Recent,
    /// Fast mode: when the first batch the journal's last sync did not
    /// cover was committed; `None` when everything committed is synced.
    unsynced_since: Option<Instant>,
}

/// The state of one batch while it is being built (its records are in
/// `Actor::recent`, where later requests of the batch see them).
struct Pending {
    batch: OwnedWriteBatch,
    commits_touched: HashMap<String, Option<u64>>,
    /// The commit-log entries this batch adds and supersedes.
    commit_log: commit_log::Staged,
    /// The notification records this batch wrote, for its later requests.
    notifications: notifications::Staged,
}

impl Actor {
    /// Gives back the budget room of the requests a drain took.
    fn give_back(&mut self, taken: Taken) {
        for (atsign, writes, bytes) in taken.by_atsign {
            let queue = match self.queue_of.get(&atsign) {
                Some(queue) => queue,
                None => {
                    let queue = self.tenant_queues.of(&atsign);
                    self.queue_of.entry(atsign).or_insert(queue)
                }
            };
            queue.release(writes, bytes);
        }
    }

    fn run(&mut self, rx: Receiver<ActorMessage>) {
        let sweep_every = Duration::from_millis(EXPIRY_SWEEP_INTERVAL_MS);
        let mut next_sweep = Instant::now();
        loop {
            if Instant::now() >= next_sweep {
                self.sweep_expired();
                next_sweep = Instant::now() + sweep_every;
            }
            if self.sync_due().is_some_and(|due| Instant::now() >= due) {
                self.background_sync();
            }
            let wake_at = self
                .sync_due()
                .map_or(next_sweep, |due| due.min(next_sweep));
            let wait = wake_at.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut requests = Vec::new();
            let mut flushes = Vec::new();
            let mut taken = Taken::default();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    ActorMessage::Write(request, charged) => {
                        // Taken into a batch: no longer queued for its
                        // atSign (given back below, once per atSign).
                        taken.add(&request.atsign, charged);
                        requests.push(request);
                    }
                    ActorMessage::Flush(done) => flushes.push(done),
                }
                if requests.len() < BATCH_OPS_MAX {
                    next = rx.try_recv().ok();
                }
            }
            self.give_back(taken);
            // The drain made room in the queue and in the atSigns' budgets:
            // parked submitters may refill them while this batch commits.
            self.parking.wake_all();
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
        // Every sender is gone: nobody is left to tell of a failure but the
        // log and the fatal sink, which `flush_to_disk` tells.
        let _ = self.flush_to_disk();
    }

    /// Makes what was acknowledged in fast mode durable and flushes the
    /// memtables, so the next start replays nothing. A failed fsync poisons
    /// the store: the kernel may have dropped what it could not write.
    fn flush_to_disk(&mut self) -> Result<(), StoreError> {
        let _busy = self.activity.busy();
        self.unsynced_since = None;
        if let Err(error) = self.db.persist(PersistMode::SyncAll) {
            let error = StoreError::engine(Operation::Persist)(error);
            self.poison
                .poison(&format_args!("flush failed: {}", WithSources(&error)));
            return Err(error);
        }
        for keyspace in self.keyspaces.all() {
            if let Err(error) = keyspace.rotate_memtable_and_wait() {
                tracing::warn!(%error, "flushing a memtable at close failed");
            }
        }
        Ok(())
    }

    /// When the next background sync is due (fast mode, something written
    /// since the last one).
    fn sync_due(&self) -> Option<Instant> {
        let interval = Duration::from_millis(FAST_SYNC_INTERVAL_MS);
        self.unsynced_since.map(|since| since + interval)
    }

    /// Syncs the journal in fast mode, so that acknowledged writes survive
    /// a power loss from now on. A failure (or panic) poisons the store like
    /// a failed commit: what the kernel could not write may be lost.
    fn background_sync(&mut self) {
        let _busy = self.activity.busy();
        self.unsynced_since = None;
        match self.guarded(Actor::sync_journal) {
            Ok(()) => self.activity.count_background_sync(),
            Err(error) => self.batch_failed("background sync", &error),
        }
    }

    fn sync_journal(&mut self) -> Result<(), StoreError> {
        self.failpoints
            .trip(Site::Sync)
            .map_err(StoreError::engine(Operation::BackgroundSync))?;
        self.db
            .persist(PersistMode::SyncData)
            .map_err(StoreError::engine(Operation::BackgroundSync))?;
        self.failpoints.passed(Site::Sync);
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
            commit_log: commit_log::Staged::default(),
            notifications: notifications::Staged::new(),
        }
    }

    fn apply_batch(&mut self, requests: Vec<QueuedWrite>) {
        let _busy = self.activity.busy();
        if self.poison.is_poisoned() {
            completion::publish_all(
                requests
                    .into_iter()
                    .map(|r| (r.reply, Err(StoreError::Poisoned.into()))),
            );
            return;
        }
        let mut replies = Vec::with_capacity(requests.len());
        let mut writes = Vec::with_capacity(requests.len());
        for request in requests {
            replies.push(request.reply);
            writes.push(WriteOp {
                atsign: request.atsign,
                work: request.work,
            });
        }
        let outcomes = match self.guarded(|actor| actor.apply_and_commit(writes)) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                self.batch_failed("write batch", &error);
                // Every waiter hears the batch's failure, a write its own
                // closure refused included: nothing of the batch is durable.
                vec![Err(WriteError::Store(error)); replies.len()]
            }
        };
        completion::publish_all(replies.into_iter().zip(outcomes));
    }

    /// Stages every write of a batch, then commits it once. The outcomes are
    /// only worth publishing if the commit succeeds.
    fn apply_and_commit(&mut self, writes: Vec<WriteOp>) -> Result<Vec<Outcome>, StoreError> {
        let mut pending = self.new_pending();
        let mut outcomes = Vec::with_capacity(writes.len());
        for op in writes {
            let outcome = match op.work {
                Work::Key { write, companion } => {
                    self.apply_request(&mut pending, &op.atsign, write, companion)
                }
                Work::Notification(write) => {
                    Self::notification_applier(&self.keyspaces, &mut pending)
                        .apply(&op.atsign, write)
                }
            };
            outcomes.push(outcome);
        }
        self.failpoints
            .trip(Site::Apply)
            .map_err(StoreError::engine(Operation::ApplyBatch))?;
        self.failpoints.passed(Site::Apply);
        self.commit(pending)?;
        Ok(outcomes)
    }

    /// The notification writes' view of the batch `pending` builds.
    fn notification_applier<'a>(
        keyspaces: &'a Keyspaces,
        pending: &'a mut Pending,
    ) -> notifications::Applier<'a> {
        notifications::Applier {
            keyspaces,
            batch: &mut pending.batch,
            staged: &mut pending.notifications,
        }
    }

    /// Runs one batch `step` (applying and committing it), turning a panic
    /// inside it into [`StoreError::WriterPanicked`] so that the caller can
    /// answer the batch's waiters and poison the store.
    ///
    /// Unwind safety: a panic can leave half-done only what `step` touches.
    /// The `Pending` batch it builds is its own and is dropped uncommitted
    /// on the way out, so nothing of it reaches the keyspaces unless the
    /// panic came from inside fjall's commit, where what fjall did is
    /// unknown (hence the poison: no later write builds on it). `recent` may
    /// hold records of the lost batch: [`Actor::batch_failed`] discards it.
    /// `last_commit` is only extended after a successful commit, so it never
    /// holds ids of the lost batch. The write closures are consumed, and the
    /// completers are not inside `step` at all. Once poisoned, the actor
    /// only refuses writes and answers flushes, which rely on none of that
    /// state.
    fn guarded<T>(
        &mut self,
        step: impl FnOnce(&mut Actor) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| step(self))) {
            Ok(result) => result,
            Err(payload) => Err(StoreError::WriterPanicked {
                message: panic_message(payload.as_ref()).into(),
            }),
        }
    }

    /// A batch (`what`) failed to commit or panicked: forget what it staged
    /// and poison the store, which logs the cause and reports it once.
    fn batch_failed(&mut self, what: &str, error: &StoreError) {
        self.recent.clear();
        self.poison
            .poison(&format_args!("{what} failed: {}", WithSources(error)));
    }

    /// Records each atSign's last issued commit id once per batch, commits
    /// the batch, and only then lets later batches build on those ids. On
    /// failure, the caller discards what the batch staged in `recent`.
    fn commit(&mut self, mut pending: Pending) -> Result<(), StoreError> {
        let commits = std::mem::take(&mut pending.commits_touched);
        let entry_ids =
            std::mem::take(&mut pending.commit_log).write_into(&mut pending.batch, &self.keyspaces);
        for (atsign, last) in &commits {
            if let Some(id) = last {
                // Pairs with the check in `next_commit_id`: a batch only
                // moves an atSign's last id forward.
                debug_assert!(
                    self.remembered_last_commit(atsign)
                        .is_none_or(|before| *id > before),
                    "the last commit id of {atsign} went backwards to {id}"
                );
                pending.batch.insert(
                    &self.keyspaces.meta,
                    layout::last_commit_key(atsign),
                    id.to_be_bytes().to_vec(),
                );
            }
        }
        self.failpoints
            .trip(Site::Commit)
            .map_err(StoreError::engine(Operation::CommitBatch))?;
        pending
            .batch
            .commit()
            .map_err(StoreError::engine(Operation::CommitBatch))?;
        self.failpoints.passed(Site::Commit);
        if self.durability == Durability::Fast {
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        // Pairs with the check in `next_commit_id`: what the actor is about
        // to remember is what `meta` now holds (debug builds read it back).
        debug_assert!(
            commits.iter().all(|(atsign, last)| self
                .stored_last_commit(atsign)
                .is_ok_and(|stored| stored == *last)),
            "a last commit id to remember differs from meta after the commit"
        );
        self.last_commit.extend(commits);
        for (full_key, stored) in entry_ids {
            self.recent.remember_commit(full_key, stored);
        }
        self.recent.trim();
        Ok(())
    }

    /// The current record of `full_key`, and, when it was read from the
    /// keyspace, what it says of its commit entry.
    fn current(
        &self,
        full_key: &[u8],
        atsign: &str,
        key: &str,
    ) -> Result<(Option<StoredRecord>, Option<RecordCommit>), StoreError> {
        if let Some(known) = self.recent.get(full_key) {
            return Ok((known.clone(), None));
        }
        let found = self.keyspaces.keys.get(full_key);
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok((None, Some(RecordCommit::Known(None)))),
            Some(bytes) => StoredRecord::decode_with_commit(&bytes)
                .map(|(record, commit)| (Some(record), Some(commit)))
                .map_err(|e| super::unreadable_logged(RecordAt::key(atsign, key), e)),
        }
    }

    /// `full_key`'s commit entry as the keyspaces hold it, where `read` is
    /// what its record, read from the keyspace, said of it (`Known(None)`
    /// for no record). The batch being built is [`commit_log::Staged`]'s
    /// to account for: a key it already changed needs no look-up.
    fn stored_commit(
        &self,
        staged: &commit_log::Staged,
        full_key: &[u8],
        atsign: &str,
        key: &str,
        read: Option<RecordCommit>,
    ) -> Result<StoredCommit, StoreError> {
        if staged.has(full_key) {
            return Ok(StoredCommit::default());
        }
        if let Some(known) = self.recent.commit(full_key) {
            return Ok(known);
        }
        let read = match read {
            Some(read) => read,
            // The record came from elsewhere (a companion write): read
            // what the stored one says.
            None => self.stored_record_commit(full_key, atsign, key)?,
        };
        match read {
            RecordCommit::Known(Some(id)) => Ok(StoredCommit::in_record(Some(id))),
            // No record, or one that names no entry (a version-1 record
            // names none): the index names the key's entry, if it has one.
            RecordCommit::Known(None) | RecordCommit::Unrecorded => {
                commit_log::indexed_id(&self.keyspaces, full_key).map(StoredCommit::from_index)
            }
        }
    }

    /// What the stored record of `full_key` says of its commit entry
    /// (`Known(None)` without a record).
    fn stored_record_commit(
        &self,
        full_key: &[u8],
        atsign: &str,
        key: &str,
    ) -> Result<RecordCommit, StoreError> {
        let found = self.keyspaces.keys.get(full_key);
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(RecordCommit::Known(None)),
            Some(bytes) => record::commit_of(&bytes)
                .map_err(|e| super::unreadable_logged(RecordAt::key(atsign, key), e)),
        }
    }

    /// The last commit id of `atsign` as `meta` holds it.
    fn stored_last_commit(&self, atsign: &str) -> Result<Option<u64>, StoreError> {
        let key = layout::last_commit_key(atsign);
        let stored = self.keyspaces.meta.get(&key);
        let stored = stored.map_err(StoreError::engine(Operation::Read(layout::META)))?;
        Ok(stored.and_then(|b| layout::decode_u64(&b)))
    }

    /// The last commit id of `atsign` as committed batches left it, if the
    /// actor has loaded it.
    fn remembered_last_commit(&self, atsign: &str) -> Option<u64> {
        self.last_commit.get(atsign).copied().flatten()
    }

    fn next_commit_id(&mut self, pending: &mut Pending, atsign: &str) -> Result<u64, StoreError> {
        let last = match pending.commits_touched.get(atsign) {
            Some(last) => *last,
            None => match self.last_commit.get(atsign) {
                Some(last) => {
                    // Pairs with the check after a commit: the remembered id
                    // is the one `meta` holds.
                    debug_assert!(
                        self.stored_last_commit(atsign)
                            .is_ok_and(|stored| stored == *last),
                        "the remembered last commit id of {atsign} differs from meta"
                    );
                    *last
                }
                None => {
                    let last = self.stored_last_commit(atsign)?;
                    self.last_commit.insert(atsign.to_string(), last);
                    last
                }
            },
        };
        let next = last.map_or(0, |id| id + 1);
        // Commit ids are gap-free: each is exactly one more than the last
        // one issued for its atSign (the first is 0).
        debug_assert!(
            last.map_or(next == 0, |last| next.checked_sub(1) == Some(last)),
            "commit id {next} of {atsign} does not follow {last:?}"
        );
        pending
            .commits_touched
            .insert(atsign.to_string(), Some(next));
        Ok(next)
    }

    /// Applies one request: its write and, if it has one, its companion,
    /// staged together or not at all. The outcome is the write's; a refusal
    /// or failure of either is the outcome of both.
    fn apply_request(
        &mut self,
        pending: &mut Pending,
        atsign: &str,
        write: KeyWrite,
        companion: Option<KeyWrite>,
    ) -> Outcome {
        let first = self.plan(&pending.commit_log, atsign, write, None)?;
        let second = match companion {
            Some(companion) => {
                Some(self.plan(&pending.commit_log, atsign, companion, Some(&first))?)
            }
            None => None,
        };
        let (first_id, second_id) =
            self.issue_commit_ids(pending, atsign, &first, second.as_ref())?;
        let outcome = WriteOutcome {
            commit_id: first_id,
            existed: first.existed,
        };
        self.stage(pending, atsign, first, first_id);
        if let Some(second) = second {
            self.stage(pending, atsign, second, second_id);
        }
        Ok(outcome)
    }

    /// Reads the current record of a write's key (as `earlier`, a write of
    /// the same request, leaves it) and runs the write's closure on it.
    /// Stages nothing.
    fn plan(
        &self,
        staged: &commit_log::Staged,
        atsign: &str,
        write: KeyWrite,
        earlier: Option<&Planned>,
    ) -> Result<Planned, WriteError> {
        let KeyWrite {
            key,
            commit,
            mutate,
        } = write;
        super::check_write_key(atsign, &key)?;
        let full_key = layout::record_key(atsign, &key);
        let (previous, read) = match earlier.and_then(|e| e.record_after(&full_key)) {
            Some(left) => (left, None),
            None => self.current(&full_key, atsign, &key)?,
        };
        let existed = previous.is_some();
        let old_expiry = previous.as_ref().and_then(|r| r.meta.expires_at);
        let stored_commit = self.stored_commit(staged, &full_key, atsign, &key, read)?;
        // `:nc` of a record it leaves unchanged still rewrites the record:
        // the id it carries names the entry being removed.
        let kept = match commit {
            CommitLog::Forget => previous.clone(),
            CommitLog::Append | CommitLog::Skip => None,
        };
        let change = match mutate(previous).map_err(WriteError::Refused)? {
            Mutation::Unchanged => kept.map(|record| Change {
                op: CommitOp::Update,
                record: Some(record),
            }),
            Mutation::Put(record, op) => Some(Change {
                op,
                record: Some(*record),
            }),
            Mutation::Delete => Some(Change {
                op: CommitOp::Delete,
                record: None,
            }),
        };
        Ok(Planned {
            key,
            full_key,
            commit,
            stored_commit,
            existed,
            old_expiry,
            change,
        })
    }

    /// Issues the commit ids a request needs, before anything of it is
    /// staged: if reading the last id fails, the request fails whole instead
    /// of landing without its log entries, and no id is used up.
    fn issue_commit_ids(
        &mut self,
        pending: &mut Pending,
        atsign: &str,
        first: &Planned,
        second: Option<&Planned>,
    ) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let before = pending.commits_touched.get(atsign).copied();
        let mut issue = |planned: Option<&Planned>| -> Result<Option<u64>, StoreError> {
            match planned {
                Some(planned) if planned.needs_commit_id() => {
                    self.next_commit_id(pending, atsign).map(Some)
                }
                _ => Ok(None),
            }
        };
        let issued = match issue(Some(first)) {
            Ok(first_id) => issue(second).map(|second_id| (first_id, second_id)),
            Err(error) => Err(error),
        };
        if issued.is_err() {
            // Give back an id issued for the first write: ids stay gap-free.
            match before {
                Some(last) => pending.commits_touched.insert(atsign.to_string(), last),
                None => pending.commits_touched.remove(atsign),
            };
        }
        issued
    }

    /// Stages what `planned` makes of its key: its commit-log change (an
    /// entry with `commit_id`), the record carrying the id of the key's
    /// entry, and its expiry index entries. Cannot fail.
    fn stage(
        &mut self,
        pending: &mut Pending,
        atsign: &str,
        planned: Planned,
        commit_id: Option<u64>,
    ) {
        let Planned {
            key,
            full_key,
            commit,
            stored_commit,
            old_expiry,
            change,
            ..
        } = planned;
        let Some(Change { op, record }) = change else {
            if commit == CommitLog::Forget {
                // Only a key without a record gets here (see `plan`).
                pending.commit_log.change(
                    atsign,
                    &full_key,
                    stored_commit,
                    LogChange::Forget,
                    false,
                );
            }
            return;
        };
        let new_expiry = record.as_ref().and_then(|r| r.meta.expires_at);
        if let Some(old) = old_expiry.filter(|old| Some(*old) != new_expiry) {
            pending.batch.remove(
                &self.keyspaces.expiry,
                layout::expiry_key(old, atsign, &key),
            );
        }
        if let Some(new) = new_expiry.filter(|new| Some(*new) != old_expiry) {
            pending.batch.insert(
                &self.keyspaces.expiry,
                layout::expiry_key(new, atsign, &key),
                Vec::new(),
            );
        }
        let op_time = record.as_ref().map_or_else(now_ms, |r| r.meta.updated_at);
        let live = record.is_some();
        let entry;
        let log_change = match (commit, commit_id) {
            (CommitLog::Append, Some(id)) => {
                entry = CommitEntry {
                    key,
                    op,
                    op_time_ms: op_time,
                };
                LogChange::Append { id, entry: &entry }
            }
            (CommitLog::Forget, _) => LogChange::Forget,
            (CommitLog::Append | CommitLog::Skip, _) => LogChange::Keep,
        };
        let entry_id =
            pending
                .commit_log
                .change(atsign, &full_key, stored_commit, log_change, live);
        match &record {
            Some(record) => pending.batch.insert(
                &self.keyspaces.keys,
                full_key.clone(),
                record.encode(entry_id),
            ),
            None => pending.batch.remove(&self.keyspaces.keys, full_key.clone()),
        }
        self.recent.remember(full_key, record);
    }

    /// Deletes records whose expiry has passed, through the normal write path
    /// so each gets a DELETE commit entry that clients will sync. A failed
    /// (or panicking) expiry batch poisons the store like a write batch.
    fn sweep_expired(&mut self) {
        if self.poison.is_poisoned() {
            return;
        }
        let _busy = self.activity.busy();
        match self.guarded(Actor::purge_due) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired records purged"),
            Err(error) => return self.batch_failed("expiry batch", &error),
        }
        match self.guarded(Actor::purge_due_notifications) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired notifications purged"),
            Err(error) => self.batch_failed("notification expiry batch", &error),
        }
    }

    /// Purges up to [`NOTIFICATION_SWEEP_LEN_MAX`] expired notifications,
    /// with their index entries, in one batch, and returns how many.
    fn purge_due_notifications(&mut self) -> Result<usize, StoreError> {
        let mut pending = self.new_pending();
        let purged = Self::notification_applier(&self.keyspaces, &mut pending)
            .purge_due(now_ms(), NOTIFICATION_SWEEP_LEN_MAX)?;
        if pending.notifications.is_empty() && pending.batch.is_empty() {
            return Ok(purged);
        }
        self.commit(pending)?;
        Ok(purged)
    }

    /// Purges up to [`EXPIRY_SWEEP_KEYS_MAX`] due records in one batch and
    /// returns how many it purged.
    fn purge_due(&mut self) -> Result<usize, StoreError> {
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
                    // A read, not a write: nothing is lost, the next sweep
                    // tries again.
                    tracing::warn!(%error, "expiry index read failed");
                    return Ok(0);
                }
            }
        }
        if due.is_empty() {
            return Ok(0);
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
                Ok((Some(record), _)) => record.meta.expires_at == Some(at),
                _ => false,
            };
            if !still_due {
                continue;
            }
            let commit = atkey::is_committed(key);
            let (atsign, key) = (atsign.to_string(), key.to_string());
            let delete = KeyWrite::new(key.clone(), commit, Box::new(|_| Ok(Mutation::Delete)));
            match self.apply_request(&mut pending, &atsign, delete, None) {
                Ok(_) => purged += 1,
                Err(error) => tracing::warn!(%error, key, "expiry purge failed"),
            }
        }
        self.commit(pending)?;
        Ok(purged)
    }
}

/// The text a panic was raised with (`panic!` hands over a `&str` or a
/// `String`; anything else is described, not shown).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
