//! Today's on-disk encodings, pinned by committed fixtures in
//! `tests/fixtures/store/`: good records must decode to exactly the values
//! below and today's encoder must still write exactly those bytes (so any
//! format change is caught), and each damaged copy must be refused with the
//! right error, never a panic.
//!
//! Regenerating the fixtures (only when the format changes on purpose, and
//! then together with a bump of `RECORD_FORMAT_VERSION`, keeping the old
//! files as `*-v<old>.bin` for the reader of the old version; the
//! `record-v1-*` files are such old files, which builds before records
//! carried their commit id wrote, and nothing rewrites them):
//!
//! ```text
//! cargo test --lib storage::fixture_tests::regenerate -- --ignored
//! ```
//!
//! That rewrites every file below from `full_record`, `minimal_record`,
//! `commit_entry` and `full_notification`; rename the constants and files
//! with the new version. Notification records carry their own version
//! (`NOTIFICATION_FORMAT_VERSION`), bumped on their own.

use std::mem::offset_of;

use super::error::{RecordAt, StoreError};
use super::notifications::{
    ArchivedNotificationMeta, ArchivedNotificationRecord, DeliveryStrategy, MessageType,
    NOTIFICATION_FORMAT_VERSION, NotificationMeta, NotificationRecord, NotificationStatus,
    NotificationType, OpType, Priority,
};
use super::record::{
    ArchivedCommitEntry, ArchivedStoredMeta, ArchivedStoredRecord, COMMIT_FORMAT_VERSION,
    CommitEntry, CommitOp, RECORD_FORMAT_V1, RECORD_FORMAT_VERSION, RecordCommit, RecordError,
    StoredMeta, StoredRecord,
};

/// Where the fixtures live, relative to the crate.
const FIXTURE_DIR: &str = "tests/fixtures/store";

/// A record with every field set; no field is left to `Default`, so adding a
/// field to the format fails to compile here until the fixtures follow.
fn full_record() -> StoredRecord {
    StoredRecord {
        value: Some("+1 555 0100 \u{260e}".into()),
        meta: StoredMeta {
            created_by: Some("@alice".into()),
            updated_by: Some("@bob".into()),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_123_456,
            available_at: Some(1_700_000_001_000),
            expires_at: Some(1_800_000_000_000),
            refresh_at: Some(1_750_000_000_000),
            version: 7,
            ttl: Some(99_999_000_000),
            ttb: Some(1_000),
            ttr: Some(-1),
            ccd: Some(true),
            is_binary: true,
            is_encrypted: true,
            data_signature: Some("c2lnbmF0dXJl".into()),
            shared_key_enc: Some("c2hhcmVkIGtleQ==".into()),
            pub_key_cs: Some("8f2a".into()),
            pub_key_hash: Some("ab12cd34".into()),
            hashing_algo: Some("sha256".into()),
            encoding: Some("base64".into()),
            enc_key_name: Some("key.alice".into()),
            enc_algo: Some("AES/CTR/PKCS7Padding".into()),
            iv_nonce: Some("AAECAwQFBgcICQoLDA0ODw==".into()),
            ske_enc_key_name: Some("ske.alice".into()),
            ske_enc_algo: Some("RSA-2048".into()),
            immutable: true,
            app_metadata: Some("{\"app\":\"wavi\"}".into()),
        },
    }
}

/// The smallest record: no value, every field at its default.
fn minimal_record() -> StoredRecord {
    StoredRecord::default()
}

fn commit_entry() -> CommitEntry {
    CommitEntry {
        key: "phone@alice".into(),
        op: CommitOp::UpdateMeta,
        op_time_ms: 1_700_000_123_456,
    }
}

/// A notification with every field set (no `Default` to hide behind).
fn full_notification() -> NotificationRecord {
    NotificationRecord {
        id: "6d7c1f2e-8a4b-4c3d-9e0f-112233445566".into(),
        from_atsign: "@bob".into(),
        to_atsign: "@alice".into(),
        notification_date_time: 1_700_000_000_123,
        notification: "@alice:phone.wavi@bob".into(),
        notification_type: NotificationType::Received,
        op_type: OpType::Delete,
        message_type: MessageType::Key,
        priority: Priority::High,
        notification_status: NotificationStatus::Errored,
        retry_count: 3,
        strategy: DeliveryStrategy::Latest,
        notifier: "wavi".into(),
        depth: 2,
        at_value: Some("QmFzZTY0\u{260e}".into()),
        at_metadata: Some(NotificationMeta {
            ttl: Some(60_000),
            ttb: Some(1_000),
            ttr: Some(-1),
            ccd: Some(true),
            is_encrypted: true,
            shared_key_enc: Some("c2hhcmVk".into()),
            pub_key_cs: Some("8f2a".into()),
            enc_key_name: Some("key.alice".into()),
            enc_algo: Some("AES/CTR/PKCS7Padding".into()),
            iv_nonce: Some("AAECAwQFBgcICQoLDA0ODw==".into()),
            ske_enc_key_name: Some("ske.alice".into()),
            ske_enc_algo: Some("RSA-2048".into()),
            data_signature: Some("c2lnbmF0dXJl".into()),
            pub_key_hash: Some("{\"hash\":\"ab12\"}".into()),
            app_metadata: Some("{\"app\":\"wavi\"}".into()),
            is_binary: true,
            encoding: Some("base64".into()),
            created_at: Some(1_699_999_000_000),
            updated_at: Some(1_699_999_500_000),
        }),
        ttl: Some(86_400_000),
        expires_at: 1_700_086_400_123,
    }
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/store/",
            $name
        ))
    };
}

/// The commit id the full record carries (the minimal one carries none).
const FULL_RECORD_COMMIT: u64 = 5;

const RECORD_FULL: &[u8] = fixture!("record-v2-full.bin");
const RECORD_MINIMAL: &[u8] = fixture!("record-v2-minimal.bin");
/// `record-v2-full.bin` with the bytes of two bools flipped to invalid values.
pub(super) const RECORD_FULL_FLIPPED: &[u8] = fixture!("record-v2-full.flipped.bin");
/// The first half of `record-v2-full.bin`'s bytes, then its version byte
/// (a torn write that still ends in a plausible version).
const RECORD_FULL_TRUNCATED: &[u8] = fixture!("record-v2-full.truncated.bin");
/// `record-v2-full.bin` with version byte 3.
const RECORD_FULL_VERSION_3: &[u8] = fixture!("record-v2-full.version-3.bin");
/// Version 1, as builds before records carried their commit id wrote it.
const RECORD_FULL_V1: &[u8] = fixture!("record-v1-full.bin");
const RECORD_MINIMAL_V1: &[u8] = fixture!("record-v1-minimal.bin");
/// `record-v1-full.bin` with the bytes of two bools flipped.
const RECORD_FULL_V1_FLIPPED: &[u8] = fixture!("record-v1-full.flipped.bin");
/// The first half of `record-v1-full.bin`'s archive, then its version byte.
const RECORD_FULL_V1_TRUNCATED: &[u8] = fixture!("record-v1-full.truncated.bin");
const COMMIT: &[u8] = fixture!("commit-v1.bin");
/// `commit-v1.bin` with the operation's tag flipped to an invalid value.
const COMMIT_FLIPPED: &[u8] = fixture!("commit-v1.flipped.bin");
/// The first half of `commit-v1.bin`'s archive, then its version byte.
const COMMIT_TRUNCATED: &[u8] = fixture!("commit-v1.truncated.bin");
/// `commit-v1.bin` with version byte 2.
pub(super) const COMMIT_VERSION_2: &[u8] = fixture!("commit-v1.version-2.bin");

const NOTIFICATION_FULL: &[u8] = fixture!("notification-v1-full.bin");
/// `notification-v1-full.bin` with two bools flipped to invalid values.
pub(super) const NOTIFICATION_FULL_FLIPPED: &[u8] = fixture!("notification-v1-full.flipped.bin");
/// The first half of `notification-v1-full.bin`'s archive, then its
/// version byte.
const NOTIFICATION_FULL_TRUNCATED: &[u8] = fixture!("notification-v1-full.truncated.bin");
/// `notification-v1-full.bin` with version byte 2.
const NOTIFICATION_FULL_VERSION_2: &[u8] = fixture!("notification-v1-full.version-2.bin");

/// Flips every bit of the byte at `at` (counted from the archive's end,
/// where rkyv puts the root object), if there is one. The archive is
/// followed by `trailer` bytes, its version byte included.
fn flip_from_root(bytes: &mut [u8], trailer: usize, root_size: usize, field_offset: usize) {
    let archive_len = bytes.len().saturating_sub(trailer);
    let at = archive_len.saturating_sub(root_size) + field_offset;
    if let Some(byte) = bytes.get_mut(at) {
        *byte ^= 0xff;
    }
}

/// Bytes after a record's archive: version 2's commit id and version byte,
/// or version 1's version byte alone.
fn record_trailer(good: &[u8]) -> usize {
    match good.last() {
        Some(&RECORD_FORMAT_V1) => 1,
        _ => 9,
    }
}

fn flipped_record(good: &[u8]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    let trailer = record_trailer(good);
    let root = size_of::<ArchivedStoredRecord>();
    let meta = offset_of!(ArchivedStoredRecord, meta);
    flip_from_root(
        &mut bytes,
        trailer,
        root,
        meta + offset_of!(ArchivedStoredMeta, is_binary),
    );
    flip_from_root(
        &mut bytes,
        trailer,
        root,
        meta + offset_of!(ArchivedStoredMeta, immutable),
    );
    bytes
}

/// Flips `is_encrypted` and `is_binary` of the metadata, which rkyv keeps
/// inside the root object (an `Option` of a struct is stored inline).
fn flipped_notification(good: &[u8]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    let root = size_of::<ArchivedNotificationRecord>();
    let meta = offset_of!(ArchivedNotificationRecord, at_metadata);
    // An archived `Option<T>` is a tag byte followed by `T` at its alignment.
    let inner = align_of::<ArchivedNotificationMeta>();
    for field in [
        offset_of!(ArchivedNotificationMeta, is_encrypted),
        offset_of!(ArchivedNotificationMeta, is_binary),
    ] {
        flip_from_root(&mut bytes, 1, root, meta + inner + field);
    }
    bytes
}

fn notification_error(bytes: &[u8]) -> StoreError {
    match NotificationRecord::decode(bytes) {
        Ok(record) => panic!("damaged bytes decoded to {record:?}"),
        Err(error) => StoreError::unreadable(RecordAt::notification("@alice", "n1"), error),
    }
}

fn flipped_commit(good: &[u8]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    let root = size_of::<ArchivedCommitEntry>();
    flip_from_root(&mut bytes, 1, root, offset_of!(ArchivedCommitEntry, op));
    bytes
}

/// The first half of `good`'s bytes before its version byte, then that byte.
fn truncated(good: &[u8]) -> Vec<u8> {
    let Some((&version, rest)) = good.split_last() else {
        return Vec::new();
    };
    let mut bytes = rest.get(..rest.len() / 2).unwrap_or_default().to_vec();
    bytes.push(version);
    bytes
}

fn with_version(good: &[u8], version: u8) -> Vec<u8> {
    let mut bytes = good.to_vec();
    if let Some(last) = bytes.last_mut() {
        *last = version;
    }
    bytes
}

/// Where the store-level error of a fixture would point.
fn record_at() -> RecordAt {
    RecordAt::key("@alice", "phone@alice")
}

fn record_error(bytes: &[u8]) -> StoreError {
    match StoredRecord::decode(bytes) {
        Ok(record) => panic!("damaged bytes decoded to {record:?}"),
        Err(error) => StoreError::unreadable(record_at(), error),
    }
}

fn commit_error(bytes: &[u8]) -> StoreError {
    match CommitEntry::decode(bytes) {
        Ok(entry) => panic!("damaged bytes decoded to {entry:?}"),
        Err(error) => StoreError::unreadable(RecordAt::commit("@alice", 5), error),
    }
}

#[test]
fn the_fixtures_are_of_the_current_format_version() {
    assert_eq!(RECORD_FORMAT_VERSION, 2, "a new version needs new fixtures");
    for good in [RECORD_FULL, RECORD_MINIMAL] {
        assert_eq!(good.last(), Some(&RECORD_FORMAT_VERSION));
    }
    for old in [RECORD_FULL_V1, RECORD_MINIMAL_V1] {
        assert_eq!(old.last(), Some(&RECORD_FORMAT_V1));
    }
    assert_eq!(COMMIT_FORMAT_VERSION, 1, "a new version needs new fixtures");
    assert_eq!(COMMIT.last(), Some(&COMMIT_FORMAT_VERSION));
    assert_eq!(
        NOTIFICATION_FORMAT_VERSION, 1,
        "a new notification version needs new fixtures"
    );
    assert_eq!(NOTIFICATION_FULL.last(), Some(&NOTIFICATION_FORMAT_VERSION));
}

#[test]
fn the_notification_fixture_decodes_and_is_still_written_so() {
    assert_eq!(
        NotificationRecord::decode(NOTIFICATION_FULL),
        Ok(full_notification())
    );
    assert_eq!(full_notification().encode(), NOTIFICATION_FULL);
}

#[test]
fn damaged_notifications_are_refused_as_corrupt_or_of_another_version() {
    for (name, bytes) in [
        ("flipped", NOTIFICATION_FULL_FLIPPED),
        ("truncated", NOTIFICATION_FULL_TRUNCATED),
    ] {
        let error = notification_error(bytes);
        assert!(
            matches!(
                &error,
                StoreError::CorruptRecord {
                    at: RecordAt::Notification { .. },
                    source: RecordError::Corrupt(_)
                }
            ),
            "{name}: {error:?}"
        );
    }
    assert!(matches!(
        notification_error(NOTIFICATION_FULL_VERSION_2),
        StoreError::UnknownFormatVersion { found: 2, .. }
    ));
    assert_eq!(
        flipped_notification(NOTIFICATION_FULL),
        NOTIFICATION_FULL_FLIPPED
    );
    assert_eq!(truncated(NOTIFICATION_FULL), NOTIFICATION_FULL_TRUNCATED);
    assert_eq!(
        with_version(NOTIFICATION_FULL, 2),
        NOTIFICATION_FULL_VERSION_2
    );
}

#[test]
fn good_fixtures_decode_to_exactly_the_expected_values() {
    let full_commit = RecordCommit::Known(Some(FULL_RECORD_COMMIT));
    let cases = [
        (RECORD_FULL, full_record(), full_commit),
        (RECORD_MINIMAL, minimal_record(), RecordCommit::Known(None)),
        (RECORD_FULL_V1, full_record(), RecordCommit::Unrecorded),
        (
            RECORD_MINIMAL_V1,
            minimal_record(),
            RecordCommit::Unrecorded,
        ),
    ];
    for (bytes, record, commit) in cases {
        assert_eq!(
            StoredRecord::decode_with_commit(bytes),
            Ok((record, commit))
        );
        assert_eq!(super::record::commit_of(bytes), Ok(commit));
    }
    assert_eq!(CommitEntry::decode(COMMIT), Ok(commit_entry()));
    for bytes in [RECORD_FULL, RECORD_FULL_V1] {
        let zero_copy = super::record::with_archived(bytes, |archived| {
            (
                archived.value_str().map(str::to_string),
                archived.is_active(1_700_000_001_000),
            )
        });
        assert_eq!(
            zero_copy,
            Ok((Some("+1 555 0100 \u{260e}".to_string()), true))
        );
    }
}

#[test]
fn todays_encoder_still_writes_the_fixture_bytes() {
    assert_eq!(full_record().encode(Some(FULL_RECORD_COMMIT)), RECORD_FULL);
    assert_eq!(minimal_record().encode(None), RECORD_MINIMAL);
    assert_eq!(full_record().encode_v1(), RECORD_FULL_V1);
    assert_eq!(minimal_record().encode_v1(), RECORD_MINIMAL_V1);
    assert_eq!(commit_entry().encode(), COMMIT);
}

#[test]
fn damaged_records_are_refused_as_corrupt_or_of_another_version() {
    for (name, bytes) in [
        ("flipped", RECORD_FULL_FLIPPED),
        ("truncated", RECORD_FULL_TRUNCATED),
        ("v1 flipped", RECORD_FULL_V1_FLIPPED),
        ("v1 truncated", RECORD_FULL_V1_TRUNCATED),
    ] {
        let error = record_error(bytes);
        assert!(
            matches!(
                &error,
                StoreError::CorruptRecord { at, source: RecordError::Corrupt(_) } if *at == record_at()
            ),
            "{name}: {error:?}"
        );
    }
    assert!(matches!(
        record_error(RECORD_FULL_VERSION_3),
        StoreError::UnknownFormatVersion { found: 3, .. }
    ));
    assert!(matches!(
        record_error(&[]),
        StoreError::CorruptRecord {
            source: RecordError::Empty,
            ..
        }
    ));
}

#[test]
fn damaged_commit_entries_are_refused_as_corrupt_or_of_another_version() {
    for (name, bytes) in [("flipped", COMMIT_FLIPPED), ("truncated", COMMIT_TRUNCATED)] {
        let error = commit_error(bytes);
        assert!(
            matches!(
                &error,
                StoreError::CorruptRecord {
                    at: RecordAt::Commit { id: 5, .. },
                    source: RecordError::Corrupt(_)
                }
            ),
            "{name}: {error:?}"
        );
    }
    assert!(matches!(
        commit_error(COMMIT_VERSION_2),
        StoreError::UnknownFormatVersion { found: 2, .. }
    ));
}

#[test]
fn the_damaged_fixtures_are_the_good_ones_damaged_as_described() {
    assert_eq!(flipped_record(RECORD_FULL), RECORD_FULL_FLIPPED);
    assert_eq!(truncated(RECORD_FULL), RECORD_FULL_TRUNCATED);
    assert_eq!(with_version(RECORD_FULL, 3), RECORD_FULL_VERSION_3);
    assert_eq!(flipped_record(RECORD_FULL_V1), RECORD_FULL_V1_FLIPPED);
    assert_eq!(truncated(RECORD_FULL_V1), RECORD_FULL_V1_TRUNCATED);
    assert_eq!(flipped_commit(COMMIT), COMMIT_FLIPPED);
    assert_eq!(truncated(COMMIT), COMMIT_TRUNCATED);
    assert_eq!(with_version(COMMIT, 2), COMMIT_VERSION_2);
}

/// Rewrites the fixtures from the values above (see the module docs).
#[test]
#[ignore = "rewrites tests/fixtures/store; run only for a deliberate format change"]
fn regenerate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_DIR);
    std::fs::create_dir_all(&dir).expect("fixture folder");
    let record = full_record().encode(Some(FULL_RECORD_COMMIT));
    let commit = commit_entry().encode();
    let notification = full_notification().encode();
    let files = [
        ("notification-v1-full.bin", notification.clone()),
        (
            "notification-v1-full.flipped.bin",
            flipped_notification(&notification),
        ),
        (
            "notification-v1-full.truncated.bin",
            truncated(&notification),
        ),
        (
            "notification-v1-full.version-2.bin",
            with_version(&notification, 2),
        ),
        ("record-v2-full.bin", record.clone()),
        ("record-v2-minimal.bin", minimal_record().encode(None)),
        ("commit-v1.bin", commit.clone()),
        ("record-v2-full.flipped.bin", flipped_record(&record)),
        ("record-v2-full.truncated.bin", truncated(&record)),
        ("record-v2-full.version-3.bin", with_version(&record, 3)),
        ("commit-v1.flipped.bin", flipped_commit(&commit)),
        ("commit-v1.truncated.bin", truncated(&commit)),
        ("commit-v1.version-2.bin", with_version(&commit, 2)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write fixture");
    }
}
