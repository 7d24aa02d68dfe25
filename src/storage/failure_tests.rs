//! How the store fails: refusals against storage failures, panics in the
//! write actor, corrupt records on disk, and (with the `failpoints` feature)
//! failed and panicking batch commits. Each failure must reach the waiter
//! as a typed error, poison the store when writes can no longer be trusted,
//! and reach the fatal sink exactly once.

use std::sync::mpsc;

use futures_lite::future::block_on;

use super::*;
use crate::error::AtCode;
use crate::health::Fatal;

/// A sink whose reports the test can count and read.
fn recording_sink() -> (mpsc::Receiver<Fatal>, FatalSink) {
    let (tx, rx) = mpsc::channel();
    let sink = FatalSink::new(move |fatal| {
        let _ = tx.send(fatal);
    });
    (rx, sink)
}

fn value_record(value: &str) -> StoredRecord {
    StoredRecord::written_by(Some(value.to_string()), "@alice", 1_700_000_000_000)
}

fn put(tenant: &TenantStore, key: &str, value: &str) -> Result<WriteOutcome, WriteError> {
    let record = value_record(value);
    block_on(tenant.write(key.to_string(), true, move |_| {
        Ok(Mutation::Put(Box::new(record), CommitOp::Update))
    }))
}

fn value_of(tenant: &TenantStore, key: &str) -> Option<String> {
    tenant.get(key).expect("reads work").and_then(|r| r.value)
}

/// What every poisoned store must show: later writes refused at once with
/// the poisoned error, earlier writes still readable, one fatal report.
fn assert_poisoned(store: &Store, reports: &mpsc::Receiver<Fatal>, kept: (&str, &str)) {
    assert!(store.is_poisoned());
    let alice = store.tenant("@alice");
    let refused = block_on(alice.submit(
        "later@alice".into(),
        true,
        Box::new(|_| Ok(Mutation::Delete)),
    ));
    assert!(matches!(refused, Err(StoreError::Poisoned)));
    assert!(matches!(
        put(&alice, "later@alice", "x"),
        Err(WriteError::Store(StoreError::Poisoned))
    ));
    assert_eq!(value_of(&alice, kept.0).as_deref(), Some(kept.1));
    assert!(reports.try_recv().is_ok(), "the sink got a report");
    assert!(reports.try_recv().is_err(), "the sink got only one report");
}

#[test]
fn a_write_its_closure_refuses_is_not_a_storage_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reports, sink) = recording_sink();
    let store = Store::open(dir.path(), Durability::Fast, sink).expect("open");
    let alice = store.tenant("@alice");
    let refused = block_on(alice.write("fixed@alice".into(), true, |_| {
        Err(AtError::new(
            AtCode::IllegalArguments,
            "the key is immutable",
        ))
    }));
    match refused {
        Err(WriteError::Refused(error)) => assert_eq!(error.code, AtCode::IllegalArguments),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!store.is_poisoned());
    assert!(reports.try_recv().is_err());
    // The refusal issued no commit id.
    let outcome = put(&alice, "fixed@alice", "v").expect("write after a refusal");
    assert_eq!(outcome.commit_id, Some(0));
}

#[test]
fn a_panicking_write_closure_poisons_the_store_and_reports_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reports, sink) = recording_sink();
    let store = Store::open(dir.path(), Durability::Fast, sink).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "phone@alice", "123").expect("a write before the panic");
    let panicked = block_on(alice.write("bug@alice".into(), true, |_| {
        std::panic::panic_any("a verb with a bug")
    }));
    let error = panicked.expect_err("the panicking write fails");
    match &error {
        WriteError::Store(StoreError::WriterPanicked { message }) => {
            assert_eq!(&**message, "a verb with a bug")
        }
        other => panic!("expected WriterPanicked, got {other:?}"),
    }
    assert_eq!(AtError::from(error).code, AtCode::DataStore);
    assert_poisoned(&store, &reports, ("phone@alice", "123"));
    assert_eq!(value_of(&alice, "bug@alice"), None);
}

#[test]
fn a_key_too_long_for_fjall_is_refused_before_fjall_and_poisons_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reports, sink) = recording_sink();
    let store = Store::open(dir.path(), Durability::Fast, sink).expect("open");
    let alice = store.tenant("@alice");
    // Long enough for the expiry index key, not for the record key alone:
    // the write is refused on the longest key it could build.
    let long_key = "k".repeat(actor::FJALL_KEY_BYTES_MAX - "@alice".len() - 1);
    let refused = put(&alice, &long_key, "x");
    assert!(
        matches!(
            &refused,
            Err(WriteError::Store(StoreError::KeyTooLong { atsign, key_bytes, layout_bytes }))
                if atsign == "@alice"
                    && *key_bytes == long_key.len()
                    && *layout_bytes > actor::FJALL_KEY_BYTES_MAX
        ),
        "got {refused:?}"
    );
    let refused = refused.expect_err("refused");
    assert!(!refused.is_store_failure(), "the request is at fault");
    let wire = AtError::from(refused);
    assert_eq!(wire.code, AtCode::InvalidKey);
    assert!(!wire.close, "a refusal of one request keeps the connection");
    let longer = "k".repeat(actor::FJALL_KEY_BYTES_MAX + 1);
    assert!(matches!(
        alice.get(&longer),
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        alice.read(&longer, |_| ()),
        Err(StoreError::KeyTooLong { .. })
    ));
    // The record key of the first one fits: reading it is fine (and finds
    // nothing, as its write was refused).
    assert!(matches!(alice.get(&long_key), Ok(None)));
    let huge_atsign = format!("@{}", "a".repeat(actor::FJALL_KEY_BYTES_MAX));
    let huge = store.tenant(&huge_atsign);
    assert!(matches!(
        huge.for_each(|_, _| true),
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        huge.commits_from(0, 10),
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        huge.last_commit_id(),
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        put(&huge, "x", "y"),
        Err(WriteError::Store(StoreError::KeyTooLong { .. }))
    ));
    // Nothing reached fjall's assertion: the store is fine and writes on.
    assert!(!store.is_poisoned());
    assert!(reports.try_recv().is_err(), "no fatal report");
    put(&alice, "phone@alice", "123").expect("a write after the refusals");
    assert_eq!(value_of(&alice, "phone@alice").as_deref(), Some("123"));
}

/// A sink for `tracing` events that the test can read back.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> CapturedLog {
        self.clone()
    }
}

/// Runs `f` with this thread's `error` events captured; returns its result
/// and the captured log lines.
fn errors_logged_by<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::ERROR)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&log.0.lock().expect("log lock")).into_owned();
    (result, text.lines().map(str::to_string).collect())
}

#[test]
fn a_corrupt_record_fails_its_own_reads_loudly_and_scans_skip_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "a.good@alice", "fine").expect("write");
    put(&alice, "c.good@alice", "also fine").expect("write");
    let corrupt = super::fixture_tests::RECORD_FULL_FLIPPED;
    store
        .inner
        .keyspaces
        .keys
        .insert(layout::record_key("@alice", "b.bad@alice"), corrupt)
        .expect("a raw insert");
    let names_the_key = |error: &StoreError| {
        matches!(
            error,
            StoreError::CorruptRecord {
                at: RecordAt::Key { atsign, key },
                source: record::RecordError::Corrupt(_),
            } if atsign == "@alice" && key == "b.bad@alice"
        )
    };
    let (read, logged) =
        errors_logged_by(|| alice.read("b.bad@alice", |r| r.value_str().map(str::to_string)));
    assert!(read.as_ref().is_err_and(names_the_key), "read: {read:?}");
    assert!(
        logged.len() == 1 && logged[0].contains("ERROR") && logged[0].contains("b.bad@alice"),
        "read logs the key at error: {logged:#?}"
    );
    let (got, logged) = errors_logged_by(|| alice.get("b.bad@alice"));
    assert!(got.as_ref().is_err_and(names_the_key), "get: {got:?}");
    assert!(
        logged.iter().any(|l| l.contains("b.bad@alice")),
        "{logged:#?}"
    );
    assert_eq!(
        AtError::from(got.expect_err("corrupt")).message,
        format!(
            "the record of b.bad@alice (@alice) is corrupt: {}",
            record::StoredRecord::decode(corrupt).expect_err("corrupt")
        )
    );
    // A write to the corrupt key fails alone (it cannot merge into what it
    // cannot read); the store is not poisoned.
    let write = put(&alice, "b.bad@alice", "over");
    assert!(
        matches!(&write, Err(WriteError::Store(error)) if names_the_key(error)),
        "write: {write:?}"
    );
    // The scan goes past the corrupt record, logs it and counts it.
    let mut seen = Vec::new();
    let (scanned, logged) = errors_logged_by(|| {
        alice.for_each(|key, _| {
            seen.push(key.to_string());
            true
        })
    });
    assert_eq!(scanned.expect("the scan goes on").corrupt_skipped, 1);
    assert_eq!(seen, ["a.good@alice", "c.good@alice"]);
    assert!(
        logged.len() == 1 && logged[0].contains("ERROR") && logged[0].contains("b.bad@alice"),
        "the scan logs the skipped key at error: {logged:#?}"
    );
    assert_eq!(store.corrupt_entries_skipped(), 1);
    // The good records still read; a corrupt one does not poison the store.
    assert_eq!(value_of(&alice, "a.good@alice").as_deref(), Some("fine"));
    assert!(!store.is_poisoned());
    put(&alice, "d.later@alice", "x").expect("other writes go on");
}

#[test]
fn commit_log_readers_skip_a_corrupt_entry_and_name_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "phone@alice", "1").expect("write");
    put(&alice, "email@alice", "2").expect("write");
    put(&alice, "address@alice", "3").expect("write");
    store
        .inner
        .keyspaces
        .commits
        .insert(
            layout::commit_key("@alice", 2),
            super::fixture_tests::COMMIT_VERSION_2,
        )
        .expect("a raw insert");
    let (log, logged) = errors_logged_by(|| alice.commits_from(0, 10));
    let ids: Vec<u64> = log
        .expect("the log is read")
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [0, 1], "entry 2 is skipped");
    assert!(
        logged.len() == 1 && logged[0].contains("commit 2 of @alice"),
        "the skipped entry is logged with its id: {logged:#?}"
    );
    // The newest readable entry for `phone` is now id 0.
    let newest_phone = alice.latest_commit_where(|key| key == "phone@alice");
    assert_eq!(newest_phone.expect("read"), Some(0));
    let per_key = alice.latest_commit_per_key(|_| true).expect("read");
    let per_key: Vec<(&str, u64)> = per_key
        .iter()
        .map(|(key, id, _)| (key.as_str(), *id))
        .collect();
    assert_eq!(per_key, [("phone@alice", 0), ("email@alice", 1)]);
    assert_eq!(
        store.corrupt_entries_skipped(),
        3,
        "once per read that met it"
    );
    assert!(!store.is_poisoned());
}

#[cfg(feature = "failpoints")]
mod failpoints {
    //! The `failpoints` feature's failures, armed per store (the
    //! environment variable is shared by every test of the process).

    use super::*;
    use crate::storage::failpoints::Failpoints;

    fn armed(spec: &str) -> (tempfile::TempDir, Store, mpsc::Receiver<Fatal>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (reports, sink) = recording_sink();
        let failpoints = Failpoints::parse(spec).expect("a valid spec");
        let store = Store::open_with_failpoints(dir.path(), Durability::Fast, sink, failpoints)
            .expect("open");
        (dir, store, reports)
    }

    #[test]
    fn a_failed_commit_fails_its_write_and_poisons_the_store() {
        let (_dir, store, reports) = armed("store.commit=error@3");
        let alice = store.tenant("@alice");
        put(&alice, "one@alice", "1").expect("first commit");
        put(&alice, "two@alice", "2").expect("second commit");
        let failed = put(&alice, "three@alice", "3").expect_err("third commit fails");
        assert!(
            matches!(
                &failed,
                WriteError::Store(StoreError::Engine {
                    operation: Operation::CommitBatch,
                    ..
                })
            ),
            "got {failed:?}"
        );
        let wire = AtError::from(failed);
        assert_eq!(wire.code, AtCode::DataStore);
        assert!(wire.close);
        assert_eq!(value_of(&alice, "three@alice"), None);
        assert_eq!(alice.last_commit_id().expect("last"), Some(1));
        assert_poisoned(&store, &reports, ("two@alice", "2"));
    }

    #[test]
    fn a_batch_that_panics_while_applied_fails_its_write_and_poisons_the_store() {
        let (_dir, store, reports) = armed("store.apply=panic@2");
        let alice = store.tenant("@alice");
        put(&alice, "one@alice", "1").expect("first batch");
        let failed = put(&alice, "two@alice", "2").expect_err("second batch panics");
        match &failed {
            WriteError::Store(StoreError::WriterPanicked { message }) => {
                assert_eq!(&**message, "failpoint store.apply=panic@2")
            }
            other => panic!("expected WriterPanicked, got {other:?}"),
        }
        assert_eq!(AtError::from(failed).code, AtCode::DataStore);
        assert_eq!(value_of(&alice, "two@alice"), None);
        assert_poisoned(&store, &reports, ("one@alice", "1"));
    }

    #[test]
    fn every_waiter_of_a_panicking_batch_gets_an_error_not_silence() {
        let (_dir, store, reports) = armed("store.apply=panic@1");
        let alice = store.tenant("@alice");
        let pending: Vec<PendingWrite> = (0..16)
            .map(|i| {
                let record = value_record("v");
                let mutate: actor::MutateFn =
                    Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::Update)));
                block_on(alice.submit(format!("k{i}@alice"), true, mutate)).expect("submit")
            })
            .collect();
        let outcomes: Vec<_> = pending.into_iter().map(|p| block_on(p.outcome())).collect();
        // The first batch panicked; writes that missed it were refused.
        assert!(
            matches!(
                outcomes.first(),
                Some(Err(WriteError::Store(StoreError::WriterPanicked { .. })))
            ),
            "first: {:?}",
            outcomes.first()
        );
        for outcome in &outcomes {
            assert!(
                matches!(
                    outcome,
                    Err(WriteError::Store(
                        StoreError::WriterPanicked { .. } | StoreError::Poisoned
                    ))
                ),
                "got {outcome:?}"
            );
        }
        assert!(store.is_poisoned());
        assert!(reports.try_recv().is_ok());
        assert!(reports.try_recv().is_err(), "one report for the store");
    }

    /// Waits (polling, with a generous limit rather than a timing
    /// assertion) until the store is poisoned.
    fn wait_until_poisoned(store: &Store) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !store.is_poisoned() {
            assert!(
                std::time::Instant::now() < deadline,
                "the store was never poisoned"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_failed_background_sync_poisons_a_fast_store_and_reports_once() {
        let (_dir, store, reports) = armed("store.sync=error@1");
        let alice = store.tenant("@alice");
        // Acknowledged at once (fast mode), then synced in the background:
        // the sync fails.
        put(&alice, "one@alice", "1").expect("acknowledged before the sync");
        wait_until_poisoned(&store);
        assert_eq!(store.background_syncs(), 0);
        // The poison flag is set just before the report is sent.
        let fatal = reports
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("reported");
        assert!(
            fatal.reason.starts_with(
                "background sync failed: the data store failed to sync the journal in the background"
            ),
            "reason: {}",
            fatal.reason
        );
        assert!(fatal.reason.contains("failpoint store.sync=error@1"));
        assert!(reports.try_recv().is_err(), "one report");
        let refused = put(&alice, "two@alice", "2");
        assert!(matches!(
            refused,
            Err(WriteError::Store(StoreError::Poisoned))
        ));
        assert_eq!(value_of(&alice, "one@alice").as_deref(), Some("1"));
    }

    #[test]
    fn a_panicking_background_sync_poisons_and_the_actor_lives_on() {
        let (_dir, store, reports) = armed("store.sync=panic@1");
        let alice = store.tenant("@alice");
        put(&alice, "one@alice", "1").expect("acknowledged before the sync");
        wait_until_poisoned(&store);
        let fatal = reports
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("reported");
        assert!(
            fatal.reason.contains("panicked"),
            "reason: {}",
            fatal.reason
        );
        assert!(
            store
                .flush_blocking(std::time::Duration::from_secs(60))
                .is_ok(),
            "the actor still answers a flush"
        );
    }

    #[test]
    fn the_report_names_the_store_and_the_cause() {
        let (dir, store, reports) = armed("store.commit=error@1");
        let alice = store.tenant("@alice");
        put(&alice, "one@alice", "1").expect_err("first commit fails");
        let fatal = reports.try_recv().expect("reported");
        assert_eq!(fatal.component, format!("store {}", dir.path().display()));
        assert!(
            fatal
                .reason
                .starts_with("write batch failed: the data store failed to commit a write batch"),
            "reason: {}",
            fatal.reason
        );
        assert!(fatal.reason.contains("failpoint store.commit=error@1"));
    }
}
