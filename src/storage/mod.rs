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
//!
//! What a hostile or unlucky client cannot do to a store:
//! - hand fjall a key it cannot take: every read and write checks the keys
//!   the layout would build against [`actor::FJALL_KEY_BYTES_MAX`] first and
//!   refuses that one request ([`StoreError::KeyTooLong`]), never poisons;
//! - spread a corrupt record: reading its key fails (AT0002) and logs it;
//!   scans and the commit-log readers skip it, log it and count it
//!   ([`Store::corrupt_entries_skipped`]); `atserver check-store` lists
//!   them all ([`check`]);
//! - stall the other atSigns of its storage shard: each atSign may have at
//!   most [`TENANT_QUEUED_WRITES_MAX`](crate::limits::TENANT_QUEUED_WRITES_MAX)
//!   requests and
//!   [`TENANT_QUEUED_WRITE_BYTES_MAX`](crate::limits::TENANT_QUEUED_WRITE_BYTES_MAX)
//!   bytes queued in front of the actor; past that, and while the shared
//!   queue is full, submitters park until the actor drains a batch
//!   (`backpressure.rs`), without spinning;
//! - pin connections on a hung disk: [`Store::busy_for`] tells how long the
//!   actor's current step has run, and a caller may stop waiting for a
//!   write at any time (see [`PendingWrite`]).

mod activity;
pub mod actor;
mod backpressure;
pub mod check;
mod commit_log;
pub mod completion;
pub mod error;
pub mod failpoints;
pub mod layout;
pub mod notifications;
mod poison;
mod recent;
pub mod record;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use crate::error::AtError;
use crate::health::FatalSink;
use activity::Activity;
pub use actor::{KeyWrite, Mutation, WriteOutcome};
use backpressure::{Charge, ChargedBytes, Parking, TenantQueue, TenantQueues, Ticket};
pub use commit_log::CommitLog;
pub use error::{Operation, RecordAt, StoreError, WriteError};
use failpoints::Failpoints;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
pub use notifications::{
    DeliveryStrategy, MessageType, NotificationCursor, NotificationMeta, NotificationProblem,
    NotificationRecord, NotificationStatus, NotificationType, OpType, Priority, ReportedStatus,
    Stored, clamp_notification_expiry, notification_expires_at,
};
use poison::Poison;
pub use record::{ArchivedStoredRecord, CommitEntry, CommitOp, StoredMeta, StoredRecord};

pub use crate::limits::{JOURNAL_BYTES_MAX, MEMTABLE_BYTES_MAX, VALUE_MEMTABLE_BYTES_MAX};

/// How a keyspace is opened: the keyspaces that hold values get larger
/// memtables than those of small entries (decision 0011).
pub(crate) fn keyspace_options(name: &str) -> KeyspaceCreateOptions {
    let memtable = if name == layout::KEYS || name == layout::NOTIFICATIONS {
        VALUE_MEMTABLE_BYTES_MAX
    } else {
        MEMTABLE_BYTES_MAX
    };
    KeyspaceCreateOptions::default().max_memtable_size(memtable)
}

/// When an acknowledged write is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the batch is fsynced: survives `kill -9` and power loss.
    Durable,
    /// Acknowledge after the journal append reached the OS: survives `kill -9`
    /// of the process. A power loss (or kernel crash) can lose the writes
    /// acknowledged since the journal was last synced: the actor syncs it in
    /// the background at most [`FAST_SYNC_INTERVAL_MS`] after the first
    /// write a sync has not covered, so the window is that second plus the
    /// time the sync itself and the batch ahead of it take (longer only
    /// while the disk hangs, which [`Store::busy_for`] shows). A failed
    /// background sync poisons the store like a failed commit.
    ///
    /// [`FAST_SYNC_INTERVAL_MS`]: crate::limits::FAST_SYNC_INTERVAL_MS
    Fast,
}

/// The keyspaces of one storage shard.
#[derive(Clone)]
pub(crate) struct Keyspaces {
    pub keys: Keyspace,
    pub commits: Keyspace,
    pub commit_index: Keyspace,
    pub expiry: Keyspace,
    pub meta: Keyspace,
    pub notifications: Keyspace,
    pub notification_times: Keyspace,
    pub notification_expiry: Keyspace,
}

impl Keyspaces {
    /// Every keyspace, for what applies to all of them (flushes, sizes).
    pub(crate) fn all(&self) -> [&Keyspace; 8] {
        [
            &self.keys,
            &self.commits,
            &self.commit_index,
            &self.expiry,
            &self.meta,
            &self.notifications,
            &self.notification_times,
            &self.notification_expiry,
        ]
    }
}

struct StoreInner {
    keyspaces: Keyspaces,
    writer: crossbeam_channel::Sender<actor::ActorMessage>,
    /// Set by the actor after a failed or panicking batch, or when it dies:
    /// the store refuses writes from then on and reports not-ready.
    poison: Arc<Poison>,
    /// Submitters waiting for room in the queue or in their atSign's
    /// budget; the actor wakes them after every drain.
    parking: Arc<Parking>,
    /// What the actor is doing (for [`Store::busy_for`]).
    activity: Arc<Activity>,
    /// Each atSign's queue budget, shared by all its [`TenantStore`]s and
    /// the actor, which gives their room back.
    tenant_queues: Arc<TenantQueues>,
    /// Corrupt entries that scans and commit-log reads skipped.
    corrupt_skipped: AtomicU64,
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
        Store::open_armed(
            dir,
            durability,
            fatal,
            Failpoints::from_env()?,
            actor::WRITE_QUEUE_LEN_MAX,
        )
    }

    /// [`Store::open`] with a queue of `queue_len` requests in front of the
    /// actor, so tests can fill it.
    #[cfg(test)]
    pub(crate) fn open_with_queue_len(
        dir: &Path,
        durability: Durability,
        fatal: FatalSink,
        queue_len: usize,
    ) -> Result<Store, StoreError> {
        Store::open_armed(dir, durability, fatal, Failpoints::from_env()?, queue_len)
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
        Store::open_armed(
            dir,
            durability,
            fatal,
            failpoints,
            actor::WRITE_QUEUE_LEN_MAX,
        )
    }

    fn open_armed(
        dir: &Path,
        durability: Durability,
        fatal: FatalSink,
        failpoints: Failpoints,
        queue_len: usize,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(Operation::CreateFolder))?;
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .max_journaling_size(JOURNAL_BYTES_MAX)
            .open()
            .map_err(StoreError::engine(Operation::OpenDatabase))?;
        let open = |name: &'static str| {
            db.keyspace(name, || keyspace_options(name))
                .map_err(StoreError::engine(Operation::OpenKeyspace(name)))
        };
        let keyspaces = Keyspaces {
            keys: open(layout::KEYS)?,
            commits: open(layout::COMMITS)?,
            commit_index: open(layout::COMMIT_INDEX)?,
            expiry: open(layout::EXPIRY)?,
            meta: open(layout::META)?,
            notifications: open(layout::NOTIFICATIONS)?,
            notification_times: open(layout::NOTIFICATION_TIMES)?,
            notification_expiry: open(layout::NOTIFICATION_EXPIRY)?,
        };
        commit_log::build_index_once(&db, &keyspaces, durability)?;
        let poison = Arc::new(Poison::new(format!("store {}", dir.display()), fatal));
        let parking = Arc::new(Parking::default());
        let activity = Arc::new(Activity::new());
        let tenant_queues = Arc::new(TenantQueues::default());
        let shared = actor::Shared {
            poison: poison.clone(),
            parking: parking.clone(),
            activity: activity.clone(),
            tenant_queues: tenant_queues.clone(),
        };
        let (writer, thread) = actor::spawn(
            db,
            keyspaces.clone(),
            durability,
            shared,
            failpoints,
            queue_len,
        )?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                keyspaces,
                writer,
                poison,
                parking,
                activity,
                tenant_queues,
                corrupt_skipped: AtomicU64::new(0),
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

    /// The view of one atSign's data in this store. Views of one atSign
    /// share its queue budget.
    pub fn tenant(&self, atsign: &str) -> TenantStore {
        let atsign: Arc<str> = Arc::from(atsign);
        let queue = { self.inner.tenant_queues.of(&atsign) };
        TenantStore {
            store: self.clone(),
            atsign,
            queue,
        }
    }

    /// Whether the store refuses writes after a failure (not ready).
    pub fn is_poisoned(&self) -> bool {
        self.inner.poison.is_poisoned()
    }

    /// How long the write actor's current step (a batch, an expiry sweep,
    /// a sync, a flush) has been running; `None` while it waits for work.
    /// A step of seconds means a hung disk: a supervisor can report the
    /// store as stalled while the writers waiting on it time out.
    pub fn busy_for(&self) -> Option<Duration> {
        self.inner.activity.busy_for()
    }

    /// Background syncs of fast mode done since the store opened.
    pub fn background_syncs(&self) -> u64 {
        self.inner.activity.background_syncs()
    }

    /// Times a submitter parked for room since the store opened (queue
    /// full, or its atSign's budget used up).
    pub fn submits_parked(&self) -> u64 {
        self.inner.parking.parks_total()
    }

    /// Corrupt entries skipped by scans and commit-log reads since the
    /// store opened (each is also logged at `error` with its key or id).
    pub fn corrupt_entries_skipped(&self) -> u64 {
        self.inner.corrupt_skipped.load(Ordering::Relaxed)
    }
}

/// A key whose layout keys fjall could not take: refused before fjall
/// sees it. `key_bytes` counts the keys a write builds.
fn too_long(atsign: &str, key: &str, layout_bytes: usize) -> StoreError {
    StoreError::KeyTooLong {
        atsign: atsign.to_string(),
        key_bytes: key.len(),
        layout_bytes,
    }
}

/// Refuses a write of `key` whose longest layout key is over fjall's limit.
fn check_write_key(atsign: &str, key: &str) -> Result<(), StoreError> {
    let layout_bytes = layout::write_key_bytes(atsign, key);
    if layout_bytes > actor::FJALL_KEY_BYTES_MAX {
        return Err(too_long(atsign, key, layout_bytes));
    }
    Ok(())
}

/// Refuses a read of `key` whose record key is over fjall's limit.
fn check_read_key(atsign: &str, key: &str) -> Result<(), StoreError> {
    let layout_bytes = layout::record_key_bytes(atsign, key);
    if layout_bytes > actor::FJALL_KEY_BYTES_MAX {
        return Err(too_long(atsign, key, layout_bytes));
    }
    Ok(())
}

/// Refuses a scan or commit-log read for an atSign whose own keys (commit
/// keys, last-commit key) are over fjall's limit.
fn check_tenant_keys(atsign: &str) -> Result<(), StoreError> {
    let layout_bytes = layout::tenant_key_bytes(atsign);
    if layout_bytes > actor::FJALL_KEY_BYTES_MAX {
        return Err(too_long(atsign, "", layout_bytes));
    }
    Ok(())
}

/// Refuses a notification write or read for an atSign and id whose
/// notification keys (see `layout::notification_key_bytes`) are over
/// fjall's limit.
fn check_notification_keys(atsign: &str, id: &str) -> Result<(), StoreError> {
    let layout_bytes = layout::notification_key_bytes(atsign, id);
    if layout_bytes > actor::FJALL_KEY_BYTES_MAX {
        return Err(too_long(atsign, id, layout_bytes));
    }
    Ok(())
}

/// The error for a stored value at `at` that did not validate, logged at
/// `error` with its key or commit id: corruption must reach an operator,
/// not only the one client that met it.
fn unreadable_logged(at: RecordAt, source: record::RecordError) -> StoreError {
    tracing::error!(record = %at, problem = %source, "a stored value failed validation");
    StoreError::unreadable(at, source)
}

/// One atSign's keys inside a [`Store`]. `atsign` includes the `@`.
#[derive(Clone)]
pub struct TenantStore {
    store: Store,
    atsign: Arc<str>,
    /// What this atSign has queued in front of the actor.
    queue: Arc<TenantQueue>,
}

/// Where a page of a scan ([`TenantStore::for_each_page`]) ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The last key name visited when the page was full: pass it as `after`
    /// for the next page. `None` when the scan reached its end.
    pub resume_after: Option<String>,
    /// The visitor asked to stop.
    pub stopped: bool,
    pub summary: ScanSummary,
}

/// What a scan ([`TenantStore::for_each`]) met besides the records it
/// visited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Records that failed validation and were skipped (each logged).
    pub corrupt_skipped: usize,
}

/// A write handed to the actor as one request: `write`, and optionally a
/// `companion` write of another key (or the same) that the actor applies in
/// the same batch, after `write`: both land or neither does, with one
/// outcome (the `write`'s). `request_bytes` is what the request counts
/// against its atSign's queue budget: the size of its key, value and
/// metadata, e.g. the request line that carried them.
pub struct WriteRequest {
    pub write: KeyWrite,
    pub companion: Option<KeyWrite>,
    pub request_bytes: usize,
}

impl WriteRequest {
    /// A request of one key's write, counted at its key's size.
    pub fn new(write: KeyWrite) -> WriteRequest {
        WriteRequest {
            request_bytes: write.key.len(),
            write,
            companion: None,
        }
    }
}

/// Why one attempt to hand a request to the actor did not send it.
enum HandOver {
    Sent,
    /// No room in the queue or in the atSign's budget: park and retry.
    NoRoom,
    Failed(StoreError),
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
        check_read_key(&self.atsign, key)?;
        let found =
            layout::with_record_key(&self.atsign, key, |full| self.keyspaces().keys.get(full));
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(None),
            Some(bytes) => record::with_archived(&bytes, f)
                .map(Some)
                .map_err(|e| unreadable_logged(RecordAt::key(&self.atsign, key), e)),
        }
    }

    /// The whole record of `key`, deserialised.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        check_read_key(&self.atsign, key)?;
        let full = layout::record_key(&self.atsign, key);
        let found = self.keyspaces().keys.get(&full);
        match found.map_err(StoreError::engine(Operation::Read(layout::KEYS)))? {
            None => Ok(None),
            Some(bytes) => StoredRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| unreadable_logged(RecordAt::key(&self.atsign, key), e)),
        }
    }

    /// Calls `visit` for every key of this atSign, in key order, with its
    /// archived record. Stops early when `visit` returns false. A record
    /// that cannot be read is skipped, logged at `error` with its key and
    /// counted: one corrupt record does not hide the others.
    pub fn for_each(
        &self,
        visit: impl FnMut(&str, &ArchivedStoredRecord) -> bool,
    ) -> Result<ScanSummary, StoreError> {
        self.for_each_page("", None, usize::MAX, visit)
            .map(|page| page.summary)
    }

    /// One page of a scan: the keys of this atSign whose name starts with
    /// `name_prefix`, in key order, strictly after `after` (where the
    /// previous page ended), at most `page_keys` of them. A scan of the
    /// public keys (`public:`) thus costs what it returns, not what the
    /// store holds. Corrupt records are skipped as by [`Self::for_each`].
    pub fn for_each_page(
        &self,
        name_prefix: &str,
        after: Option<&str>,
        page_keys: usize,
        mut visit: impl FnMut(&str, &ArchivedStoredRecord) -> bool,
    ) -> Result<ScanPage, StoreError> {
        check_tenant_keys(&self.atsign)?;
        let mut page = ScanPage::default();
        let prefix = layout::tenant_prefix(&self.atsign);
        // No stored key is longer than fjall takes, so a bound that long
        // has nothing after it (and must not reach fjall).
        let too_long =
            |name: &str| layout::record_key_bytes(&self.atsign, name) > actor::FJALL_KEY_BYTES_MAX;
        if too_long(name_prefix) || after.is_some_and(too_long) {
            return Ok(page);
        }
        let mut start = prefix.clone();
        start.extend_from_slice(name_prefix.as_bytes());
        let lower = match after {
            Some(after) => {
                let mut key = prefix.clone();
                key.extend_from_slice(after.as_bytes());
                std::ops::Bound::Excluded(key)
            }
            None => std::ops::Bound::Included(start.clone()),
        };
        let mut visited = 0usize;
        let range = self
            .keyspaces()
            .keys
            .range::<Vec<u8>, _>((lower, std::ops::Bound::Unbounded));
        for item in range {
            let (k, v) = item
                .into_inner()
                .map_err(StoreError::engine(Operation::Scan(layout::KEYS)))?;
            if !k.starts_with(&start) {
                break;
            }
            let Some(name) = k
                .get(prefix.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
            else {
                // Only damage makes a key name that is not UTF-8.
                let name = String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default());
                self.skip_corrupt(RecordAt::key(&self.atsign, &name), &"the key is not UTF-8");
                page.summary.corrupt_skipped += 1;
                continue;
            };
            visited += 1;
            match record::with_archived(&v, |archived| visit(name, archived)) {
                Ok(true) => {}
                Ok(false) => {
                    page.stopped = true;
                    break;
                }
                Err(problem) => {
                    self.skip_corrupt(RecordAt::key(&self.atsign, name), &problem);
                    page.summary.corrupt_skipped += 1;
                }
            }
            if visited >= page_keys {
                page.resume_after = Some(name.to_string());
                break;
            }
        }
        Ok(page)
    }

    /// Logs a corrupt entry a read skips, and counts it for the store.
    fn skip_corrupt(&self, at: RecordAt, problem: &dyn std::fmt::Display) {
        tracing::error!(record = %at, %problem, "a stored value failed validation and was skipped");
        self.store
            .inner
            .corrupt_skipped
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The last commit id issued for this atSign, or `None` on an empty log.
    /// Never goes down, even when the newest entry is purged.
    pub fn last_commit_id(&self) -> Result<Option<u64>, StoreError> {
        check_tenant_keys(&self.atsign)?;
        let key = layout::last_commit_key(&self.atsign);
        let found = self.keyspaces().meta.get(&key);
        match found.map_err(StoreError::engine(Operation::Read(layout::META)))? {
            None => Ok(None),
            Some(bytes) => Ok(layout::decode_u64(&bytes)),
        }
    }

    /// This atSign's commit log from id `from` on, oldest first (reversible),
    /// each entry decoded and paired with its id: one entry per key, the
    /// latest (older ones are removed as they are superseded). An entry that
    /// cannot be decoded is skipped, logged at `error` with its id and
    /// counted ([`Store::corrupt_entries_skipped`]): a client syncing the
    /// log gets every other entry instead of an error at the same place
    /// each time.
    pub fn commit_log(
        &self,
        from: u64,
    ) -> Result<
        impl DoubleEndedIterator<Item = Result<(u64, CommitEntry), StoreError>> + '_,
        StoreError,
    > {
        check_tenant_keys(&self.atsign)?;
        let start = layout::commit_key(&self.atsign, from);
        let end = layout::commit_key(&self.atsign, u64::MAX);
        Ok(self
            .keyspaces()
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
                match CommitEntry::decode(&v) {
                    Ok(entry) => Some(Ok((id, entry))),
                    Err(problem) => {
                        self.skip_corrupt(RecordAt::commit(&self.atsign, id), &problem);
                        None
                    }
                }
            }))
    }

    /// The id of the newest entry the commit log holds (which may be below
    /// [`TenantStore::last_commit_id`] once that entry was superseded or
    /// forgotten).
    pub fn newest_commit_entry_id(&self) -> Result<Option<u64>, StoreError> {
        match self.commit_log(0)?.next_back() {
            Some(item) => item.map(|(id, _)| Some(id)),
            None => Ok(None),
        }
    }

    /// Commit-log entries with id ≥ `from`, oldest first, at most `limit`
    /// (corrupt entries skipped, see `commit_log`).
    pub fn commits_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, CommitEntry)>, StoreError> {
        self.commit_log(from)?.take(limit).collect()
    }

    /// The newest commit id whose key satisfies `pred` (`stats:3:<regex>`),
    /// corrupt entries skipped.
    pub fn latest_commit_where(
        &self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<Option<u64>, StoreError> {
        for item in self.commit_log(0)?.rev() {
            let (id, entry) = item?;
            if pred(&entry.key) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The commit entry of every key whose name satisfies `pred`
    /// (`stats:15`), in id order; the log holds only each key's latest.
    /// Corrupt entries skipped.
    pub fn latest_commit_per_key(
        &self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, u64, CommitOp)>, StoreError> {
        let mut latest = Vec::new();
        for item in self.commit_log(0)? {
            let (id, entry) = item?;
            if pred(&entry.key) {
                latest.push((entry.key, id, entry.op));
            }
        }
        Ok(latest)
    }

    /// Bytes on disk of the storage shard holding this atSign.
    pub fn disk_bytes(&self) -> u64 {
        self.keyspaces()
            .all()
            .iter()
            .map(|keyspace| keyspace.disk_space())
            .sum()
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

    /// [`TenantStore::submit_request`] of one key's write.
    pub async fn submit(
        &self,
        key: String,
        commit: bool,
        mutate: actor::MutateFn,
    ) -> Result<PendingWrite, StoreError> {
        self.submit_request(WriteRequest::new(KeyWrite::new(key, commit, mutate)))
            .await
    }

    /// Hands a request to the actor and returns as soon as it is queued.
    /// Requests submitted in order are applied in order, so a connection
    /// can keep several in flight and still answer in order.
    ///
    /// Refused at once: any request by a poisoned store
    /// ([`StoreError::Poisoned`]), and a request with a key whose layout
    /// keys fjall could not take ([`StoreError::KeyTooLong`], the store
    /// stays fine). Waits, parked without polling, while the actor's queue
    /// is full or this atSign has its budget of queued requests or bytes
    /// in front of the actor; the actor wakes parked submitters after each
    /// drain. Dropping the future while it waits withdraws the request.
    pub async fn submit_request(&self, request: WriteRequest) -> Result<PendingWrite, StoreError> {
        if self.store.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let WriteRequest {
            write,
            companion,
            request_bytes,
        } = request;
        check_write_key(&self.atsign, &write.key)?;
        if let Some(companion) = &companion {
            check_write_key(&self.atsign, &companion.key)?;
        }
        self.submit_work(actor::Work::Key { write, companion }, request_bytes)
            .await
    }

    /// Hands `work`, counted at `request_bytes` against this atSign's
    /// budget, to the actor: the queueing of [`Self::submit_request`],
    /// for every kind of write. The caller has checked its keys.
    async fn submit_work(
        &self,
        work: actor::Work,
        request_bytes: usize,
    ) -> Result<PendingWrite, StoreError> {
        if self.store.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let (reply, done) = completion::pair();
        let mut unsent = Some(actor::QueuedWrite {
            atsign: self.atsign.clone(),
            work,
            reply,
        });
        let mut charge = None;
        let mut ticket = Ticket::new(&self.store.inner.parking);
        std::future::poll_fn(|cx| {
            match self.hand_over(&mut unsent, &mut charge, request_bytes) {
                HandOver::Sent => return Poll::Ready(Ok(())),
                HandOver::Failed(error) => return Poll::Ready(Err(error)),
                HandOver::NoRoom => {}
            }
            ticket.park(cx.waker());
            // Once more after parking: room made since the attempt above
            // woke nobody (see `backpressure.rs`).
            match self.hand_over(&mut unsent, &mut charge, request_bytes) {
                HandOver::Sent => Poll::Ready(Ok(())),
                HandOver::Failed(error) => Poll::Ready(Err(error)),
                HandOver::NoRoom => Poll::Pending,
            }
        })
        .await?;
        Ok(PendingWrite { done })
    }

    /// One attempt to queue `unsent`: first its room in this atSign's
    /// budget (kept across attempts once taken), then a slot in the queue.
    fn hand_over<'s>(
        &'s self,
        unsent: &mut Option<actor::QueuedWrite>,
        charge: &mut Option<Charge<'s>>,
        request_bytes: usize,
    ) -> HandOver {
        if self.store.is_poisoned() {
            return HandOver::Failed(StoreError::Poisoned);
        }
        let Some(held) = charge
            .take()
            .or_else(|| self.queue.try_charge(request_bytes))
        else {
            return HandOver::NoRoom;
        };
        let Some(write) = unsent.take() else {
            // Sent by an earlier attempt; a finished submit is not polled.
            return HandOver::Sent;
        };
        use crossbeam_channel::TrySendError;
        let charged = ChargedBytes(request_bytes);
        match self
            .store
            .inner
            .writer
            .try_send(actor::ActorMessage::Write(write, charged))
        {
            Ok(()) => {
                // The actor gives the room back as it takes the request.
                let _ = held.sent();
                HandOver::Sent
            }
            Err(TrySendError::Full(actor::ActorMessage::Write(write, _))) => {
                *unsent = Some(write);
                *charge = Some(held);
                HandOver::NoRoom
            }
            // A full queue hands back the message it was given, so only a
            // write comes back; and a stopped actor takes nothing.
            Err(TrySendError::Full(actor::ActorMessage::Flush(_)))
            | Err(TrySendError::Disconnected(_)) => HandOver::Failed(StoreError::WriterStopped),
        }
    }

    /// Requests and bytes this atSign has queued in front of the actor.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> (usize, usize) {
        self.queue.queued()
    }

    /// Puts `bytes` at commit `id` of this atSign behind the actor's back
    /// (a damaged entry, for readers' tests).
    #[cfg(test)]
    pub(crate) fn plant_commit_entry(&self, id: u64, bytes: &[u8]) {
        let key = layout::commit_key(&self.atsign, id);
        let planted = self.keyspaces().commits.insert(key, bytes);
        assert!(planted.is_ok(), "a raw insert");
    }
}

/// A write the actor has accepted; resolves when its batch is durable.
///
/// Waiting is cancel-safe, so a caller may wait under a deadline (the
/// pipeline wraps its waits in `Clock::deadline`) and give up on a hung
/// disk: dropping a [`PendingWrite::ready`] future keeps the `PendingWrite`
/// usable, and dropping the `PendingWrite` itself, mid-wait or not, only
/// drops the outcome. The write is not withdrawn: the actor applies it, and
/// it is as durable as its batch, whether anybody waits for it or not (a
/// caller that gave up must not assume it was lost, nor that it landed).
pub struct PendingWrite {
    done: completion::Completion,
}

impl PendingWrite {
    pub async fn outcome(mut self) -> Result<WriteOutcome, WriteError> {
        self.ready().await;
        self.try_outcome()
            .unwrap_or(Err(WriteError::Store(StoreError::WriterStopped)))
    }

    /// Resolves once the outcome is known, without taking it. Cancel-safe:
    /// dropping this future loses nothing.
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
mod backpressure_tests;
#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod notification_tests;
#[cfg(test)]
mod request_proptests;
#[cfg(test)]
mod test_waker;
#[cfg(test)]
mod tests;
