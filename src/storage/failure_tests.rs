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
fn a_key_too_long_for_fjall_is_a_caught_panic_not_a_dead_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reports, sink) = recording_sink();
    let store = Store::open(dir.path(), Durability::Fast, sink).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "phone@alice", "123").expect("a write before the panic");
    let long_key = "k".repeat(actor::FJALL_KEY_BYTES_MAX + 1);
    let failed = put(&alice, &long_key, "x");
    assert!(
        matches!(
            failed,
            Err(WriteError::Store(StoreError::WriterPanicked { .. }))
        ),
        "got {failed:?}"
    );
    assert_poisoned(&store, &reports, ("phone@alice", "123"));
    // The actor outlived the panic: it still answers a flush.
    assert!(
        store
            .flush_blocking(std::time::Duration::from_secs(60))
            .is_ok()
    );
}

#[test]
fn a_corrupt_record_is_reported_with_its_key_by_read_get_and_for_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "a.good@alice", "fine").expect("write");
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
    let read = alice.read("b.bad@alice", |r| r.value_str().map(str::to_string));
    assert!(read.as_ref().is_err_and(names_the_key), "read: {read:?}");
    let got = alice.get("b.bad@alice");
    assert!(got.as_ref().is_err_and(names_the_key), "get: {got:?}");
    let mut seen = Vec::new();
    let scanned = alice.for_each(|key, _| {
        seen.push(key.to_string());
        true
    });
    assert!(
        scanned.as_ref().is_err_and(names_the_key),
        "for_each: {scanned:?}"
    );
    assert_eq!(seen, ["a.good@alice"]);
    assert_eq!(
        AtError::from(got.expect_err("corrupt")).message,
        format!(
            "the record of b.bad@alice (@alice) is corrupt: {}",
            record::StoredRecord::decode(corrupt).expect_err("corrupt")
        )
    );
    // The good record still reads; a corrupt one does not poison the store.
    assert_eq!(value_of(&alice, "a.good@alice").as_deref(), Some("fine"));
    assert!(!store.is_poisoned());
}

#[test]
fn a_commit_entry_of_another_format_version_is_reported_with_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "phone@alice", "1").expect("write");
    store
        .inner
        .keyspaces
        .commits
        .insert(
            layout::commit_key("@alice", 1),
            super::fixture_tests::COMMIT_VERSION_2,
        )
        .expect("a raw insert");
    let log = alice.commits_from(0, 10);
    assert!(
        matches!(
            &log,
            Err(StoreError::UnknownFormatVersion {
                at: RecordAt::Commit { atsign, id: 1 },
                found: 2,
            }) if atsign == "@alice"
        ),
        "commits_from: {log:?}"
    );
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
