//! `atserver check-store DATA_DIR`, run as the real binary: a clean store
//! passes (exit 0); a value corrupted straight in the keyspace is named on
//! one line with its shard, keyspace, atSign and key, and the command exits
//! non-zero; a store a server still holds is refused with a reason.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use atserver::health::FatalSink;
use atserver::storage::{CommitOp, Durability, Mutation, Store, StoredRecord};
use futures_lite::future::block_on;

const BIN: &str = env!("CARGO_BIN_EXE_atserver");

/// `record-v1-full.bin` with two bools flipped to invalid values.
const CORRUPT_RECORD: &[u8] = include_bytes!("fixtures/store/record-v1-full.flipped.bin");

/// A data folder laid out as `serve` leaves it: one storage shard holding
/// two good records of `@alice`, closed.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("storage-shards"), "1\n").expect("shard count");
    let store = Store::open(
        &dir.path().join("shard-0"),
        Durability::Durable,
        FatalSink::log_only(),
    )
    .expect("open");
    let alice = store.tenant("@alice");
    for key in ["phone@alice", "email@alice"] {
        let record = StoredRecord::written_by(Some("v".into()), "@alice", 1);
        block_on(alice.write(key.into(), true, move |_| {
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        }))
        .expect("write");
    }
    drop(alice);
    assert!(store.close().is_ok(), "the only handle closes the store");
    dir
}

/// Writes `value` for `@alice`'s `key` straight into the `keys` keyspace,
/// as a bit flip on disk would leave it.
fn corrupt(shard: &Path, key: &str, value: &[u8]) {
    let db = fjall::Database::builder(shard).open().expect("open raw");
    let keys = db
        .keyspace("keys", fjall::KeyspaceCreateOptions::default)
        .expect("keys");
    keys.insert(format!("@alice\0{key}"), value)
        .expect("insert");
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

fn check_store(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("check-store")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run atserver check-store")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_clean_store_passes() {
    let dir = data_dir();
    let output = check_store(dir.path());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains("checked shard-0: 2 records, 2 commit entries"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.ends_with(": 0 corrupt")),
        "{out}"
    );
    assert!(!out.contains("corrupt shard-0"), "{out}");
}

#[test]
fn a_corrupt_value_is_named_with_its_key_and_fails_the_check() {
    let dir = data_dir();
    corrupt(&dir.path().join("shard-0"), "bad@alice", CORRUPT_RECORD);
    let output = check_store(dir.path());
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let findings: Vec<&str> = out.lines().filter(|l| l.starts_with("corrupt ")).collect();
    assert_eq!(findings.len(), 1, "{out}");
    assert!(
        findings[0].starts_with("corrupt shard-0 keys @alice key \"bad@alice\": "),
        "{out}"
    );
    assert!(findings[0].contains("failed validation"), "{out}");
    assert!(out.contains("3 records, 2 commit entries"), "{out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.ends_with(": 1 corrupt")),
        "{out}"
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("failed validation (listed above)"), "{err}");
}

#[test]
fn a_store_in_use_is_refused_with_a_reason() {
    let dir = data_dir();
    let held = Store::open(
        &dir.path().join("shard-0"),
        Durability::Durable,
        FatalSink::log_only(),
    )
    .expect("open");
    let output = check_store(dir.path());
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use: stop the server"), "{err}");
    drop(held);
}

#[test]
fn a_folder_without_storage_shards_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = check_store(dir.path());
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("holds no storage shard"), "{err}");
}
