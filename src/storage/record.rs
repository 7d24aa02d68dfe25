//! The on-disk record: a value and its metadata as an rkyv archive, then
//! the id of its key's commit entry, then one format-version byte.
//!
//! Trailing fields keep the archive at the start of the buffer fjall hands
//! back, with that buffer's alignment; rkyv places its root at the end of
//! the archive, so a reader slices the archive off the front.
//!
//! Versions this build reads:
//! - 1: `archive ‖ 0x01`. The key's commit entry, if any, is named by
//!   `commit_index` (records written before they carried it).
//! - 2: `archive ‖ commit id (u64, big-endian; all ones: no entry) ‖ 0x02`.
//!   What this build writes: a live key's write then needs no index entry.

use rkyv::{Archive, Deserialize, Serialize, rancor};

/// The record version this build writes; readers also accept
/// [`RECORD_FORMAT_V1`] and refuse others.
pub const RECORD_FORMAT_VERSION: u8 = 2;

/// Records written before they carried their commit id.
pub const RECORD_FORMAT_V1: u8 = 1;

/// The version of commit-log entries; bumped on its own.
pub const COMMIT_FORMAT_VERSION: u8 = 1;

/// Bytes of a version-2 record after its archive (commit id and version).
const V2_TRAILER_BYTES: usize = 9;

/// A version-2 commit id meaning "no entry" (ids count up from 0 and are
/// gap-free, so they never reach it).
const NO_COMMIT: u64 = u64::MAX;

/// What a record says about its key's commit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCommit {
    /// A version-1 record says nothing: `commit_index` knows.
    Unrecorded,
    /// The id of the key's one entry, or `None` when it has none.
    Known(Option<u64>),
}

/// Metadata kept with every record. Times are epoch milliseconds (UTC).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredMeta {
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub available_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub refresh_at: Option<i64>,
    pub version: u32,
    pub ttl: Option<i64>,
    pub ttb: Option<i64>,
    pub ttr: Option<i64>,
    pub ccd: Option<bool>,
    pub is_binary: bool,
    pub is_encrypted: bool,
    pub data_signature: Option<String>,
    pub shared_key_enc: Option<String>,
    pub pub_key_cs: Option<String>,
    pub pub_key_hash: Option<String>,
    pub hashing_algo: Option<String>,
    pub encoding: Option<String>,
    pub enc_key_name: Option<String>,
    pub enc_algo: Option<String>,
    pub iv_nonce: Option<String>,
    pub ske_enc_key_name: Option<String>,
    pub ske_enc_algo: Option<String>,
    pub immutable: bool,
    pub app_metadata: Option<String>,
}

/// One key's value and metadata. A `None` value is legal: `update:meta` of a
/// missing key creates one, and `llookup` then answers `data:null`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRecord {
    pub value: Option<String>,
    pub meta: StoredMeta,
}

/// Why bytes read back from disk could not be used. Knows nothing of where
/// the bytes came from: the store wraps it in a
/// [`StoreError`](super::StoreError) naming the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// No bytes at all, not even the format-version byte.
    Empty,
    /// The trailing format-version byte is not one this build reads.
    UnknownVersion(u8),
    /// The archive failed validation (bytecheck) or deserialisation; the
    /// text is rkyv's account of what failed.
    Corrupt(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Empty => write!(f, "no bytes, not even a format version"),
            RecordError::UnknownVersion(v) => write!(f, "unknown record format version {v}"),
            RecordError::Corrupt(e) => write!(f, "the archive failed validation: {e}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl StoredRecord {
    /// Serialises the record (version 2) carrying `commit`, the id of its
    /// key's commit entry (`None`: the key has none).
    pub fn encode(&self, commit: Option<u64>) -> Vec<u8> {
        // Serialising plain owned data into a Vec cannot fail; an error here
        // would be an rkyv bug, so it is reported as an empty record rather
        // than a panic on a request path.
        match rkyv::to_bytes::<rancor::Error>(self) {
            Ok(aligned) => {
                let mut bytes = Vec::with_capacity(aligned.len() + V2_TRAILER_BYTES);
                bytes.extend_from_slice(&aligned);
                bytes.extend_from_slice(&commit.unwrap_or(NO_COMMIT).to_be_bytes());
                bytes.push(RECORD_FORMAT_VERSION);
                bytes
            }
            Err(_) => Vec::new(),
        }
    }

    /// A version-1 record, as builds before version 2 wrote it (tests of
    /// stores such builds left).
    #[cfg(test)]
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut bytes = match rkyv::to_bytes::<rancor::Error>(self) {
            Ok(aligned) => aligned.to_vec(),
            Err(_) => Vec::new(),
        };
        bytes.push(RECORD_FORMAT_V1);
        bytes
    }

    /// A fresh record written by `writer` at `now_ms`, with no other metadata
    /// (server-internal keys such as the CRAM secret and its tombstone).
    pub fn written_by(value: Option<String>, writer: &str, now_ms: i64) -> StoredRecord {
        StoredRecord {
            value,
            meta: StoredMeta {
                created_by: Some(writer.to_string()),
                updated_by: Some(writer.to_string()),
                created_at: now_ms,
                updated_at: now_ms,
                ..StoredMeta::default()
            },
        }
    }

    /// Validates (bytecheck) and deserialises a record read from disk.
    pub fn decode(bytes: &[u8]) -> Result<StoredRecord, RecordError> {
        Self::decode_with_commit(bytes).map(|(record, _)| record)
    }

    /// [`StoredRecord::decode`], and what the record says of its commit
    /// entry.
    pub fn decode_with_commit(bytes: &[u8]) -> Result<(StoredRecord, RecordCommit), RecordError> {
        let (_, commit) = split(bytes)?;
        let record = with_archived(bytes, |archived| {
            rkyv::deserialize::<StoredRecord, rancor::Error>(archived)
                .map_err(|e| RecordError::Corrupt(e.to_string()))
        })??;
        Ok((record, commit))
    }

    /// Whether the record can be seen at `now_ms`: born (`availableAt`) and not
    /// expired (`expiresAt`), the reference's `isActiveKey`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        is_active(self.meta.available_at, self.meta.expires_at, now_ms)
    }
}

/// The reference's visibility rule.
pub fn is_active(available_at: Option<i64>, expires_at: Option<i64>, now_ms: i64) -> bool {
    available_at.is_none_or(|at| at <= now_ms) && expires_at.is_none_or(|at| at >= now_ms)
}

impl ArchivedStoredRecord {
    /// The reference's visibility rule, read zero-copy.
    pub fn is_active(&self, now_ms: i64) -> bool {
        let available = self.meta.available_at.as_ref().map(|v| v.to_native());
        let expires = self.meta.expires_at.as_ref().map(|v| v.to_native());
        is_active(available, expires, now_ms)
    }

    /// The stored value, if any, without copying it.
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_ref().map(|v| v.as_str())
    }
}

/// Splits a stored record into its archive and what it says of its commit
/// entry, by its version byte. Validates nothing of the archive.
fn split(bytes: &[u8]) -> Result<(&[u8], RecordCommit), RecordError> {
    let Some((&version, rest)) = bytes.split_last() else {
        return Err(RecordError::Empty);
    };
    match version {
        RECORD_FORMAT_VERSION => {
            let split_at = rest
                .len()
                .checked_sub(V2_TRAILER_BYTES - 1)
                .ok_or_else(|| {
                    RecordError::Corrupt("too short to hold its commit id".to_string())
                })?;
            let (archive, id) = rest.split_at(split_at);
            let id = u64::from_be_bytes(id.try_into().map_err(|_| {
                RecordError::Corrupt("too short to hold its commit id".to_string())
            })?);
            Ok((
                archive,
                RecordCommit::Known((id != NO_COMMIT).then_some(id)),
            ))
        }
        RECORD_FORMAT_V1 => Ok((rest, RecordCommit::Unrecorded)),
        other => Err(RecordError::UnknownVersion(other)),
    }
}

/// What a stored record says of its key's commit entry, without
/// validating its archive (the write actor's look-up of the entry a write
/// supersedes).
pub fn commit_of(bytes: &[u8]) -> Result<RecordCommit, RecordError> {
    split(bytes).map(|(_, commit)| commit)
}

/// Runs `f` on the validated archive inside `bytes` (a stored record of a
/// version this build reads). Copies into an aligned buffer only when the
/// slice is misaligned.
pub fn with_archived<R>(
    bytes: &[u8],
    f: impl FnOnce(&ArchivedStoredRecord) -> R,
) -> Result<R, RecordError> {
    let (archive, _) = split(bytes)?;
    match rkyv::access::<ArchivedStoredRecord, rancor::Error>(archive) {
        Ok(archived) => Ok(f(archived)),
        Err(_) => {
            let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archive.len());
            aligned.extend_from_slice(archive);
            let archived = rkyv::access::<ArchivedStoredRecord, rancor::Error>(&aligned)
                .map_err(|e| RecordError::Corrupt(e.to_string()))?;
            Ok(f(archived))
        }
    }
}

/// What a commit-log entry records: the reference's operation symbols.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOp {
    /// `+`
    Update,
    /// `#`
    UpdateMeta,
    /// `*`
    UpdateAll,
    /// `-`
    Delete,
}

impl CommitOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CommitOp::Update => "+",
            CommitOp::UpdateMeta => "#",
            CommitOp::UpdateAll => "*",
            CommitOp::Delete => "-",
        }
    }
}

/// One commit-log entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitEntry {
    pub key: String,
    pub op: CommitOp,
    pub op_time_ms: i64,
}

impl CommitEntry {
    pub fn encode(&self) -> Vec<u8> {
        match rkyv::to_bytes::<rancor::Error>(self) {
            Ok(aligned) => {
                let mut bytes = aligned.to_vec();
                bytes.push(COMMIT_FORMAT_VERSION);
                bytes
            }
            Err(_) => Vec::new(),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<CommitEntry, RecordError> {
        let Some((&version, archive)) = bytes.split_last() else {
            return Err(RecordError::Empty);
        };
        if version != COMMIT_FORMAT_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        rkyv::from_bytes::<CommitEntry, rancor::Error>(&aligned)
            .map_err(|e| RecordError::Corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredRecord {
        StoredRecord {
            value: Some("hello world".into()),
            meta: StoredMeta {
                created_by: Some("@alice".into()),
                created_at: 1_700_000_000_000,
                updated_at: 1_700_000_000_000,
                ttl: Some(60_000),
                expires_at: Some(1_700_000_060_000),
                iv_nonce: Some("abc==".into()),
                is_encrypted: true,
                ..StoredMeta::default()
            },
        }
    }

    #[test]
    fn a_record_survives_encode_and_decode() {
        let record = sample();
        assert_eq!(StoredRecord::decode(&record.encode(Some(3))), Ok(record));
    }

    #[test]
    fn a_record_carries_its_commit_id_or_none() {
        for commit in [Some(0), Some(41), Some(u64::MAX - 1), None] {
            let encoded = sample().encode(commit);
            assert_eq!(commit_of(&encoded), Ok(RecordCommit::Known(commit)));
            assert_eq!(
                StoredRecord::decode_with_commit(&encoded),
                Ok((sample(), RecordCommit::Known(commit)))
            );
        }
    }

    #[test]
    fn a_version_1_record_is_read_and_says_nothing_of_its_commit() {
        let v1 = sample().encode_v1();
        assert_eq!(v1.last(), Some(&RECORD_FORMAT_V1));
        assert_eq!(commit_of(&v1), Ok(RecordCommit::Unrecorded));
        assert_eq!(
            StoredRecord::decode_with_commit(&v1),
            Ok((sample(), RecordCommit::Unrecorded))
        );
        let read = with_archived(&v1, |archived| archived.value_str().map(str::to_string));
        assert_eq!(read, Ok(Some("hello world".to_string())));
    }

    #[test]
    fn a_version_2_record_too_short_for_its_commit_id_is_corrupt() {
        for len in 0..V2_TRAILER_BYTES - 1 {
            let mut bytes = vec![0u8; len];
            bytes.push(RECORD_FORMAT_VERSION);
            assert!(
                matches!(commit_of(&bytes), Err(RecordError::Corrupt(_))),
                "{len} bytes"
            );
            assert!(matches!(
                StoredRecord::decode(&bytes),
                Err(RecordError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn a_misaligned_buffer_is_still_read() {
        let encoded = sample().encode(None);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&encoded);
        assert_eq!(StoredRecord::decode(&shifted[1..]), Ok(sample()));
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let mut encoded = sample().encode(Some(1));
        if let Some(last) = encoded.last_mut() {
            *last = 99;
        }
        assert_eq!(
            StoredRecord::decode(&encoded),
            Err(RecordError::UnknownVersion(99))
        );
        assert_eq!(StoredRecord::decode(&[]), Err(RecordError::Empty));
        assert!(matches!(
            StoredRecord::decode(&[1, 2, 3, COMMIT_FORMAT_VERSION]),
            Err(RecordError::Corrupt(_))
        ));
    }

    #[test]
    fn activity_follows_birth_and_expiry() {
        let record = sample();
        assert!(record.is_active(1_700_000_000_000));
        assert!(!record.is_active(1_700_000_060_001));
        let unborn = StoredRecord {
            meta: StoredMeta {
                available_at: Some(10),
                ..StoredMeta::default()
            },
            ..StoredRecord::default()
        };
        assert!(!unborn.is_active(9));
        assert!(unborn.is_active(10));
    }

    #[test]
    fn commit_entries_round_trip() {
        let entry = CommitEntry {
            key: "phone@alice".into(),
            op: CommitOp::Delete,
            op_time_ms: 5,
        };
        assert_eq!(CommitEntry::decode(&entry.encode()), Ok(entry));
    }
}
