//! `atserver check-store`: validates every stored value of a storage shard
//! without starting a write actor, and names each one that fails.
//!
//! The server must be stopped first: fjall locks a shard's folder while a
//! process has it open, so a running server makes [`check_shard`] fail with
//! fjall's `Locked` error instead of reading a store that is changing under
//! it. Opening the shard replays its journal as any start does; the check
//! itself writes nothing, and a keyspace that is missing is reported, not
//! created.
//!
//! What is checked, per keyspace (see `layout.rs`):
//! - `keys`: the key splits into atSign and UTF-8 key name; the record
//!   validates (bytecheck) and deserialises;
//! - `commits`: the key holds an atSign and an 8-byte id; the entry
//!   validates and deserialises;
//! - `expiry`: the index key parses into time, atSign and key name;
//! - `meta`: a last-commit value is an 8-byte id;
//! - `commit_index`: the key splits into atSign and key name, the value is
//!   an 8-byte id, the commit entry of that id exists and is that key's,
//!   and the key has no record that names its entry itself (version 2);
//!   a version-2 record's commit id names an existing entry of its key;
//!   and every commit entry is the one its key's record or index entry
//!   names (an entry nothing names is a superseded entry that was never
//!   removed: a sync would send the key twice). A store last opened by a
//!   build without the index lacks it, which is no damage: the next start
//!   builds it, so its absence is not checked;
//! - `notifications`: the key splits into atSign and a valid id; the record
//!   validates, deserialises, carries that id, and both of its index
//!   entries exist (a record missing from the index would never be listed
//!   nor purged);
//! - `notification_times` and `notification_expiry`: the index key parses,
//!   and a record with that id and that creation (or expiry) time exists.
//!
//! The notification keyspaces are older stores' only optional ones: a
//! shard last opened by a build without notifications lacks them, which is
//! no damage (the next start creates them), so a missing one counts as empty.

use std::fmt;
use std::path::Path;

use fjall::{Database, Keyspace};

use super::error::{Operation, StoreError};
use super::layout;
use super::notifications::{self, NotificationRecord};
use super::record::{self, CommitEntry, RecordCommit, StoredRecord};
use super::{JOURNAL_BYTES_MAX, keyspace_options};

/// Which entry of a keyspace failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record (or expiry index entry) of this key name.
    Key(String),
    /// A commit-log entry.
    Commit(u64),
    /// A last-commit value.
    LastCommit,
    /// A notification record, or an index entry, of this id.
    Notification(String),
    /// A key whose bytes do not even name an atSign (shown lossily).
    Raw(String),
    /// The whole keyspace is missing.
    Keyspace,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Debug quoting keeps a key with spaces or newlines on one line.
            Entry::Key(key) => write!(f, "key {key:?}"),
            Entry::Commit(id) => write!(f, "commit {id}"),
            Entry::LastCommit => f.write_str("last commit id"),
            Entry::Notification(id) => write!(f, "notification {id:?}"),
            Entry::Raw(bytes) => write!(f, "raw key {bytes:?}"),
            Entry::Keyspace => f.write_str("(keyspace)"),
        }
    }
}

/// One stored value that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub keyspace: &'static str,
    /// The atSign the entry belongs to (empty when its key names none).
    pub atsign: String,
    pub entry: Entry,
    /// What failed, in words.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let atsign = if self.atsign.is_empty() {
            "-"
        } else {
            &self.atsign
        };
        write!(
            f,
            "{} {atsign} {}: {}",
            self.keyspace, self.entry, self.problem
        )
    }
}

/// How much of a shard was checked, and how much of it failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub records: u64,
    pub commits: u64,
    pub expiry_entries: u64,
    pub meta_entries: u64,
    pub commit_index_entries: u64,
    pub notifications: u64,
    /// Entries of both notification indexes.
    pub notification_index_entries: u64,
    pub corrupt: u64,
}

impl CheckSummary {
    /// Adds another shard's counts.
    pub fn add(&mut self, other: &CheckSummary) {
        self.records += other.records;
        self.commits += other.commits;
        self.expiry_entries += other.expiry_entries;
        self.meta_entries += other.meta_entries;
        self.commit_index_entries += other.commit_index_entries;
        self.notifications += other.notifications;
        self.notification_index_entries += other.notification_index_entries;
        self.corrupt += other.corrupt;
    }
}

impl fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records, {} commit entries, {} expiry index entries, {} meta entries, \
             {} commit index entries, {} notifications, {} notification index entries: \
             {} corrupt",
            self.records,
            self.commits,
            self.expiry_entries,
            self.meta_entries,
            self.commit_index_entries,
            self.notifications,
            self.notification_index_entries,
            self.corrupt
        )
    }
}

/// Validates every entry of the storage shard in `dir`, calling `on_corrupt`
/// for each one that fails (as it is found: a badly damaged shard is not
/// collected in memory). Fails only when the shard cannot be opened or
/// read at all, e.g. while a server holds it.
pub fn check_shard(
    dir: &Path,
    mut on_corrupt: impl FnMut(&Finding),
) -> Result<CheckSummary, StoreError> {
    let db = Database::builder(dir)
        .manual_journal_persist(true)
        .max_journaling_size(JOURNAL_BYTES_MAX)
        .open()
        .map_err(StoreError::engine(Operation::OpenDatabase))?;
    let mut summary = CheckSummary::default();
    let mut found = |summary: &mut CheckSummary, finding: Finding| {
        summary.corrupt += 1;
        on_corrupt(&finding);
    };
    for name in [layout::KEYS, layout::COMMITS, layout::EXPIRY, layout::META] {
        if !db.keyspace_exists(name) {
            found(
                &mut summary,
                Finding {
                    keyspace: name,
                    atsign: String::new(),
                    entry: Entry::Keyspace,
                    problem: "the keyspace is missing".into(),
                },
            );
            continue;
        }
        let keyspace = db
            .keyspace(name, || keyspace_options(name))
            .map_err(StoreError::engine(Operation::OpenKeyspace(name)))?;
        check_keyspace(name, &keyspace, &mut summary, &mut found)?;
    }
    let cross_checked = [layout::COMMIT_INDEX, layout::COMMITS, layout::KEYS];
    if cross_checked.iter().all(|name| db.keyspace_exists(name)) {
        let open = |name: &'static str| {
            db.keyspace(name, || keyspace_options(name))
                .map_err(StoreError::engine(Operation::OpenKeyspace(name)))
        };
        let log = CommitKeyspaces {
            index: open(layout::COMMIT_INDEX)?,
            commits: open(layout::COMMITS)?,
            keys: open(layout::KEYS)?,
        };
        check_commit_index(&log, &mut summary, &mut found)?;
    }
    let notification_keyspace = |name: &'static str| -> Result<Option<Keyspace>, StoreError> {
        if !db.keyspace_exists(name) {
            return Ok(None);
        }
        db.keyspace(name, || keyspace_options(name))
            .map(Some)
            .map_err(StoreError::engine(Operation::OpenKeyspace(name)))
    };
    let notifications = NotificationKeyspaces {
        records: notification_keyspace(layout::NOTIFICATIONS)?,
        times: notification_keyspace(layout::NOTIFICATION_TIMES)?,
        expiry: notification_keyspace(layout::NOTIFICATION_EXPIRY)?,
    };
    check_notifications(&notifications, &mut summary, &mut found)?;
    Ok(summary)
}

/// The notification keyspaces a shard has (older shards have none).
struct NotificationKeyspaces {
    records: Option<Keyspace>,
    times: Option<Keyspace>,
    expiry: Option<Keyspace>,
}

impl NotificationKeyspaces {
    /// Whether `keyspace` (absent: empty) holds `key`.
    fn holds(
        keyspace: &Option<Keyspace>,
        name: &'static str,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        match keyspace {
            None => Ok(false),
            Some(keyspace) => keyspace
                .contains_key(key)
                .map_err(StoreError::engine(Operation::Read(name))),
        }
    }

    /// The record of `atsign`'s notification `id`, if one decodes.
    fn record(&self, atsign: &str, id: &str) -> Result<Option<NotificationRecord>, StoreError> {
        let Some(records) = &self.records else {
            return Ok(None);
        };
        let found = records
            .get(layout::notification_key(atsign, id))
            .map_err(StoreError::engine(Operation::Read(layout::NOTIFICATIONS)))?;
        Ok(found.and_then(|bytes| NotificationRecord::decode(&bytes).ok()))
    }
}

/// Checks every notification record and both indexes, each against the
/// others.
fn check_notifications(
    keyspaces: &NotificationKeyspaces,
    summary: &mut CheckSummary,
    found: &mut impl FnMut(&mut CheckSummary, Finding),
) -> Result<(), StoreError> {
    let mut report = |summary: &mut CheckSummary, keyspace, problem: Problem| {
        if let Some((atsign, entry, problem)) = problem {
            found(
                summary,
                Finding {
                    keyspace,
                    atsign,
                    entry,
                    problem,
                },
            );
        }
    };
    if let Some(records) = &keyspaces.records {
        for item in records.iter() {
            let (key, value) = item
                .into_inner()
                .map_err(StoreError::engine(Operation::Scan(layout::NOTIFICATIONS)))?;
            summary.notifications += 1;
            let problem = check_notification(keyspaces, &key, &value)?;
            report(summary, layout::NOTIFICATIONS, problem);
        }
    }
    for (name, index) in [
        (layout::NOTIFICATION_TIMES, &keyspaces.times),
        (layout::NOTIFICATION_EXPIRY, &keyspaces.expiry),
    ] {
        let Some(index) = index else {
            continue;
        };
        for item in index.iter() {
            let key = item
                .key()
                .map_err(StoreError::engine(Operation::Scan(name)))?;
            summary.notification_index_entries += 1;
            let problem = check_notification_index(keyspaces, name, &key)?;
            report(summary, name, problem);
        }
    }
    Ok(())
}

fn notification_problem(atsign: &str, id: &str, problem: impl Into<String>) -> Problem {
    Some((
        atsign.into(),
        Entry::Notification(id.into()),
        problem.into(),
    ))
}

fn check_notification(
    keyspaces: &NotificationKeyspaces,
    key: &[u8],
    value: &[u8],
) -> Result<Problem, StoreError> {
    let Some((atsign, id)) = split_tenant(key) else {
        return Ok(raw(key, "the key names no atSign"));
    };
    let Some(id) = std::str::from_utf8(id)
        .ok()
        .filter(|id| notifications::check_id(id).is_ok())
    else {
        let lossy = String::from_utf8_lossy(id).into_owned();
        return Ok(notification_problem(
            atsign,
            &lossy,
            "the key holds no valid notification id",
        ));
    };
    let record = match NotificationRecord::decode(value) {
        Ok(record) => record,
        Err(problem) => return Ok(notification_problem(atsign, id, problem.to_string())),
    };
    if record.id != id {
        return Ok(notification_problem(
            atsign,
            id,
            format!("the record carries id {:?}", record.id),
        ));
    }
    let time_key = layout::notification_time_key(atsign, record.notification_date_time, id);
    if !NotificationKeyspaces::holds(&keyspaces.times, layout::NOTIFICATION_TIMES, &time_key)? {
        return Ok(notification_problem(
            atsign,
            id,
            "the record has no creation-time index entry",
        ));
    }
    let expiry_key = layout::notification_expiry_key(record.expires_at, atsign, id);
    if !NotificationKeyspaces::holds(&keyspaces.expiry, layout::NOTIFICATION_EXPIRY, &expiry_key)? {
        return Ok(notification_problem(
            atsign,
            id,
            "the record has no expiry index entry",
        ));
    }
    Ok(None)
}

fn check_notification_index(
    keyspaces: &NotificationKeyspaces,
    name: &'static str,
    key: &[u8],
) -> Result<Problem, StoreError> {
    let parsed = if name == layout::NOTIFICATION_TIMES {
        layout::parse_notification_time_key(key)
    } else {
        layout::parse_expiry_key(key).map(|(at, atsign, id)| (atsign, at, id))
    };
    let Some((atsign, at, id)) = parsed.filter(|(_, _, id)| notifications::check_id(id).is_ok())
    else {
        return Ok(raw(
            key,
            "the index key is not atSign, time and notification id",
        ));
    };
    let matches = keyspaces.record(atsign, id)?.is_some_and(|record| {
        if name == layout::NOTIFICATION_TIMES {
            record.notification_date_time == at
        } else {
            record.expires_at == at
        }
    });
    if matches {
        return Ok(None);
    }
    Ok(notification_problem(
        atsign,
        id,
        "the index entry has no record of that time",
    ))
}

/// Checks every entry of one keyspace.
fn check_keyspace(
    name: &'static str,
    keyspace: &Keyspace,
    summary: &mut CheckSummary,
    found: &mut impl FnMut(&mut CheckSummary, Finding),
) -> Result<(), StoreError> {
    for item in keyspace.iter() {
        let (key, value) = item
            .into_inner()
            .map_err(StoreError::engine(Operation::Scan(name)))?;
        let problem = match name {
            layout::KEYS => {
                summary.records += 1;
                check_record(&key, &value)
            }
            layout::COMMITS => {
                summary.commits += 1;
                check_commit(&key, &value)
            }
            layout::EXPIRY => {
                summary.expiry_entries += 1;
                check_expiry(&key)
            }
            _ => {
                summary.meta_entries += 1;
                check_meta(&key, &value)
            }
        };
        if let Some((atsign, entry, problem)) = problem {
            found(
                summary,
                Finding {
                    keyspace: name,
                    atsign,
                    entry,
                    problem,
                },
            );
        }
    }
    Ok(())
}

/// The keyspaces that together say which entry is each key's.
struct CommitKeyspaces {
    index: Keyspace,
    commits: Keyspace,
    keys: Keyspace,
}

impl CommitKeyspaces {
    /// What the record of `full_key` says of its entry: `None` without a
    /// record, or with one that does not say (version 1, or unreadable:
    /// the records check names that).
    fn record_names(&self, full_key: &[u8]) -> Result<Option<Option<u64>>, StoreError> {
        let found = self
            .keys
            .get(full_key)
            .map_err(StoreError::engine(Operation::Read(layout::KEYS)))?;
        Ok(match found.map(|bytes| validated_commit(&bytes)) {
            Some(Ok(RecordCommit::Known(id))) => Some(id),
            _ => None,
        })
    }

    /// The id of `full_key`'s entry as its record or else the index names it.
    fn named_id(&self, full_key: &[u8]) -> Result<Option<u64>, StoreError> {
        if let Some(named) = self.record_names(full_key)? {
            return Ok(named);
        }
        Ok(self
            .index
            .get(full_key)
            .map_err(StoreError::engine(Operation::Read(layout::COMMIT_INDEX)))?
            .and_then(|bytes| layout::decode_u64(&bytes)))
    }

    /// What is wrong with naming `atsign`'s commit `id` as `name`'s entry.
    fn names_wrongly(
        &self,
        atsign: &str,
        name: &str,
        id: u64,
    ) -> Result<Option<String>, StoreError> {
        let stored = self
            .commits
            .get(layout::commit_key(atsign, id))
            .map_err(StoreError::engine(Operation::Read(layout::COMMITS)))?;
        Ok(match stored.map(|bytes| CommitEntry::decode(&bytes)) {
            None => Some(format!("names commit {id}, which does not exist")),
            Some(Ok(entry)) if entry.key != name => {
                Some(format!("names commit {id}, which is {:?}'s", entry.key))
            }
            // A corrupt entry is the commits check's finding.
            Some(_) => None,
        })
    }
}

/// What a record that validates says of its commit entry (an unreadable
/// one is the records check's finding, and says nothing).
fn validated_commit(bytes: &[u8]) -> Result<RecordCommit, record::RecordError> {
    record::with_archived(bytes, |_| ())?;
    record::commit_of(bytes)
}

/// Checks records, `commit_index` and `commits` against each other: what
/// names an entry names an existing one of its key, and every entry is
/// named by its key.
fn check_commit_index(
    log: &CommitKeyspaces,
    summary: &mut CheckSummary,
    found: &mut impl FnMut(&mut CheckSummary, Finding),
) -> Result<(), StoreError> {
    let mut report = |summary: &mut CheckSummary, keyspace, problem: Problem| {
        if let Some((atsign, entry, problem)) = problem {
            let finding = Finding {
                keyspace,
                atsign,
                entry,
                problem,
            };
            found(summary, finding);
        }
    };
    for item in log.keys.iter() {
        let (key, value) = item
            .into_inner()
            .map_err(StoreError::engine(Operation::Scan(layout::KEYS)))?;
        let Ok(RecordCommit::Known(Some(id))) = validated_commit(&value) else {
            continue;
        };
        // A key that does not parse is the records check's finding.
        let Some((atsign, name)) = layout::parse_record_key(&key) else {
            continue;
        };
        let problem = log
            .names_wrongly(atsign, name, id)?
            .map(|problem| (atsign.to_string(), Entry::Key(name.to_string()), problem));
        report(summary, layout::KEYS, problem);
    }
    for item in log.index.iter() {
        let (key, value) = item
            .into_inner()
            .map_err(StoreError::engine(Operation::Scan(layout::COMMIT_INDEX)))?;
        summary.commit_index_entries += 1;
        let problem = check_index_entry(log, &key, &value)?;
        report(summary, layout::COMMIT_INDEX, problem);
    }
    for item in log.commits.iter() {
        let (key, value) = item
            .into_inner()
            .map_err(StoreError::engine(Operation::Scan(layout::COMMITS)))?;
        let Some((atsign, id)) = layout::parse_commit_key(&key) else {
            continue;
        };
        let Ok(entry) = CommitEntry::decode(&value) else {
            continue;
        };
        let named = log.named_id(&layout::record_key(atsign, &entry.key))?;
        if named != Some(id) {
            let problem = match named {
                Some(newer) => format!("superseded by commit {newer} but still stored"),
                None => "neither its key's record nor the index names it".to_string(),
            };
            report(
                summary,
                layout::COMMITS,
                Some((atsign.into(), Entry::Commit(id), problem)),
            );
        }
    }
    Ok(())
}

fn check_index_entry(
    log: &CommitKeyspaces,
    key: &[u8],
    value: &[u8],
) -> Result<Problem, StoreError> {
    let Some((atsign, name)) = layout::parse_record_key(key) else {
        return Ok(raw(key, "the key is not atSign and UTF-8 key name"));
    };
    let at = |problem: String| Some((atsign.to_string(), Entry::Key(name.to_string()), problem));
    let Some(id) = layout::decode_u64(value).filter(|_| value.len() == 8) else {
        return Ok(at(format!(
            "the value has {} bytes, not an 8-byte id",
            value.len()
        )));
    };
    if log.record_names(key)?.is_some() {
        return Ok(at(format!(
            "names commit {id}, but the key's record names its entry itself"
        )));
    }
    Ok(log.names_wrongly(atsign, name, id)?.and_then(at))
}

type Problem = Option<(String, Entry, String)>;

/// Splits `atsign \0 rest` (the layout of `keys` and `commits`).
fn split_tenant(key: &[u8]) -> Option<(&str, &[u8])> {
    let at = key.iter().position(|&b| b == 0)?;
    let atsign = std::str::from_utf8(key.get(..at)?).ok()?;
    Some((atsign, key.get(at + 1..)?))
}

fn raw(key: &[u8], problem: &str) -> Problem {
    Some((
        String::new(),
        Entry::Raw(String::from_utf8_lossy(key).into_owned()),
        problem.into(),
    ))
}

fn check_record(key: &[u8], value: &[u8]) -> Problem {
    let Some((atsign, name)) = split_tenant(key) else {
        return raw(key, "the key names no atSign");
    };
    let Ok(name) = std::str::from_utf8(name) else {
        let lossy = String::from_utf8_lossy(name).into_owned();
        return Some((
            atsign.into(),
            Entry::Key(lossy),
            "the key is not UTF-8".into(),
        ));
    };
    let problem = StoredRecord::decode(value).err()?;
    Some((atsign.into(), Entry::Key(name.into()), problem.to_string()))
}

fn check_commit(key: &[u8], value: &[u8]) -> Problem {
    let Some((atsign, id)) = split_tenant(key) else {
        return raw(key, "the key names no atSign");
    };
    let Some(id) = layout::decode_u64(id).filter(|_| id.len() == 8) else {
        return Some((
            atsign.into(),
            Entry::Raw(String::from_utf8_lossy(key).into_owned()),
            "the key holds no 8-byte commit id".into(),
        ));
    };
    let problem = CommitEntry::decode(value).err()?;
    Some((atsign.into(), Entry::Commit(id), problem.to_string()))
}

fn check_expiry(key: &[u8]) -> Problem {
    match layout::parse_expiry_key(key) {
        Some(_) => None,
        None => raw(key, "the index key is not time, atSign and key name"),
    }
}

fn check_meta(key: &[u8], value: &[u8]) -> Problem {
    if key == layout::COMMIT_INDEX_BUILT_KEY {
        return None;
    }
    let atsign = key.strip_prefix(layout::LAST_COMMIT_PREFIX)?;
    if value.len() == 8 {
        return None;
    }
    Some((
        String::from_utf8_lossy(atsign).into_owned(),
        Entry::LastCommit,
        format!("the value has {} bytes, not an 8-byte id", value.len()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::FatalSink;
    use crate::storage::fixture_tests::{COMMIT_VERSION_2, RECORD_FULL_FLIPPED};
    use crate::storage::{CommitOp, Durability, Mutation, Store};
    use futures_lite::future::block_on;

    /// A closed store with two good records (and their commit entries).
    fn good_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        for key in ["a@alice", "b@alice"] {
            let record = StoredRecord::written_by(Some("v".into()), "@alice", 1);
            block_on(alice.write(key.into(), true, move |_| {
                Ok(Mutation::Put(Box::new(record), CommitOp::Update))
            }))
            .expect("write");
        }
        (dir, store)
    }

    fn check(dir: &Path) -> (CheckSummary, Vec<Finding>) {
        let mut findings = Vec::new();
        let summary = check_shard(dir, |f| findings.push(f.clone())).expect("check");
        (summary, findings)
    }

    #[test]
    fn a_clean_shard_has_no_findings() {
        let (dir, store) = good_store();
        assert!(store.close().is_ok());
        let (summary, findings) = check(dir.path());
        assert_eq!(findings, []);
        assert_eq!(summary.records, 2);
        assert_eq!(summary.commits, 2);
        // Both records name their entries themselves.
        assert_eq!(summary.commit_index_entries, 0);
        // The last commit id and the index's marker.
        assert_eq!(summary.meta_entries, 2);
        assert_eq!(summary.corrupt, 0);
    }

    #[test]
    fn every_corrupt_record_and_commit_entry_is_named() {
        let (dir, store) = good_store();
        let keyspaces = &store.inner.keyspaces;
        keyspaces
            .keys
            .insert(
                layout::record_key("@alice", "bad@alice"),
                RECORD_FULL_FLIPPED,
            )
            .expect("raw insert");
        keyspaces
            .commits
            .insert(layout::commit_key("@alice", 1), COMMIT_VERSION_2)
            .expect("raw insert");
        keyspaces
            .meta
            .insert(layout::last_commit_key("@bob"), b"x".to_vec())
            .expect("raw insert");
        assert!(store.close().is_ok());
        let (summary, findings) = check(dir.path());
        assert_eq!(summary.corrupt, 3, "{findings:#?}");
        assert_eq!(summary.records, 3);
        let named: Vec<(&str, &str, Entry)> = findings
            .iter()
            .map(|f| (f.keyspace, f.atsign.as_str(), f.entry.clone()))
            .collect();
        assert_eq!(
            named,
            [
                ("keys", "@alice", Entry::Key("bad@alice".into())),
                ("commits", "@alice", Entry::Commit(1)),
                ("meta", "@bob", Entry::LastCommit),
            ]
        );
        assert!(findings[0].problem.contains("failed validation"));
        assert_eq!(findings[1].problem, "unknown record format version 2");
        assert_eq!(
            findings[0].to_string(),
            format!("keys @alice key \"bad@alice\": {}", findings[0].problem)
        );
    }

    #[test]
    fn records_index_and_log_that_disagree_are_named() {
        let (dir, store) = good_store();
        let keyspaces = &store.inner.keyspaces;
        let record = StoredRecord::written_by(Some("v".into()), "@alice", 1);
        // a@alice's record names commit 0 itself: an index entry is stale.
        keyspaces
            .commit_index
            .insert(layout::record_key("@alice", "a@alice"), 0u64.to_be_bytes())
            .expect("raw insert");
        // b@alice's record names a commit that does not exist, which
        // leaves its real entry (1) named by nothing.
        keyspaces
            .keys
            .insert(
                layout::record_key("@alice", "b@alice"),
                record.encode(Some(7)),
            )
            .expect("raw insert");
        // c@alice's record names a@alice's entry.
        keyspaces
            .keys
            .insert(
                layout::record_key("@alice", "c@alice"),
                record.encode(Some(0)),
            )
            .expect("raw insert");
        assert!(store.close().is_ok());
        let (summary, findings) = check(dir.path());
        let named: Vec<(&str, Entry, &str)> = findings
            .iter()
            .map(|f| (f.keyspace, f.entry.clone(), f.problem.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "keys",
                    Entry::Key("b@alice".into()),
                    "names commit 7, which does not exist"
                ),
                (
                    "keys",
                    Entry::Key("c@alice".into()),
                    "names commit 0, which is \"a@alice\"'s"
                ),
                (
                    "commit_index",
                    Entry::Key("a@alice".into()),
                    "names commit 0, but the key's record names its entry itself"
                ),
                (
                    "commits",
                    Entry::Commit(1),
                    "superseded by commit 7 but still stored"
                ),
            ],
            "{findings:#?}"
        );
        assert_eq!(summary.corrupt, 4);
    }

    #[test]
    fn notifications_and_their_indexes_are_checked_against_each_other() {
        use crate::storage::fixture_tests::NOTIFICATION_FULL_FLIPPED;
        use crate::storage::notification_tests::{notification, t};
        let (dir, store) = good_store();
        let alice = store.tenant("@alice");
        for id in ["n1", "n2", "n3"] {
            block_on(alice.put_notification(notification(id, t(0)))).expect("put");
        }
        let ks = &store.inner.keyspaces;
        // A corrupt record (its index entries stay: they are fine).
        ks.notifications
            .insert(
                layout::notification_key("@alice", "n1"),
                NOTIFICATION_FULL_FLIPPED,
            )
            .expect("raw insert");
        // A record that lost its creation-time index entry.
        ks.notification_times
            .remove(layout::notification_time_key("@alice", t(0), "n2"))
            .expect("raw remove");
        // An expiry entry pointing at nothing, and one that does not parse.
        ks.notification_expiry
            .insert(
                layout::notification_expiry_key(5, "@alice", "gone"),
                Vec::new(),
            )
            .expect("raw insert");
        ks.notification_times
            .insert(b"@alice\0x".to_vec(), Vec::new())
            .expect("raw insert");
        drop(alice);
        assert!(store.close().is_ok());
        let (summary, findings) = check(dir.path());
        assert_eq!(summary.notifications, 3);
        let named: Vec<(&str, Entry)> = findings
            .iter()
            .map(|f| (f.keyspace, f.entry.clone()))
            .collect();
        assert_eq!(
            named,
            [
                ("notifications", Entry::Notification("n1".into())),
                ("notifications", Entry::Notification("n2".into())),
                ("notification_times", Entry::Raw("@alice\0x".into())),
                // n1's index entries name a record that no longer decodes.
                ("notification_times", Entry::Notification("n1".into())),
                ("notification_expiry", Entry::Notification("gone".into())),
                ("notification_expiry", Entry::Notification("n1".into())),
            ],
            "{findings:#?}"
        );
        assert_eq!(summary.corrupt, 6);
        assert!(findings[0].problem.contains("failed validation"));
        assert_eq!(
            findings[1].problem,
            "the record has no creation-time index entry"
        );
    }

    #[test]
    fn a_shard_without_notification_keyspaces_is_clean() {
        let (dir, store) = good_store();
        assert!(store.close().is_ok());
        let db = Database::builder(dir.path()).open().expect("open");
        for name in [
            layout::NOTIFICATIONS,
            layout::NOTIFICATION_TIMES,
            layout::NOTIFICATION_EXPIRY,
        ] {
            let keyspace = db
                .keyspace(name, || keyspace_options(name))
                .expect("keyspace");
            db.delete_keyspace(keyspace).expect("delete keyspace");
        }
        drop(db);
        let (summary, findings) = check(dir.path());
        assert_eq!(findings, []);
        assert_eq!(summary.records, 2);
    }

    #[test]
    fn a_shard_held_by_a_running_store_is_not_checked() {
        let (dir, _store) = good_store();
        let refused = check_shard(dir.path(), |_| {});
        assert!(
            refused.as_ref().is_err_and(StoreError::is_folder_locked),
            "got {refused:?}"
        );
    }
}
