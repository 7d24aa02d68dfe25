//! The on-disk record: a value and its metadata, as an rkyv archive followed
//! by one format-version byte.
//!
//! The version byte sits at the *end* so the archive keeps the alignment of
//! the buffer fjall hands back; rkyv places its root at the end of the archive
//! anyway, so nothing is lost by reading `bytes[..len - 1]`.

use rkyv::{Archive, Deserialize, Serialize, rancor};

/// Bumped whenever `StoredRecord`'s layout changes; readers refuse others.
pub const RECORD_FORMAT_VERSION: u8 = 1;

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
    /// The trailing format-version byte is not [`RECORD_FORMAT_VERSION`].
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
    /// Serialises the record with its trailing format-version byte.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain owned data into a Vec cannot fail; an error here
        // would be an rkyv bug, so it is reported as an empty record rather
        // than a panic on a request path.
        match rkyv::to_bytes::<rancor::Error>(self) {
            Ok(aligned) => {
                let mut bytes = Vec::with_capacity(aligned.len() + 1);
                bytes.extend_from_slice(&aligned);
                bytes.push(RECORD_FORMAT_VERSION);
                bytes
            }
            Err(_) => Vec::new(),
        }
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
        with_archived(bytes, |archived| {
            rkyv::deserialize::<StoredRecord, rancor::Error>(archived)
                .map_err(|e| RecordError::Corrupt(e.to_string()))
        })?
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

/// Runs `f` on the validated archive inside `bytes` (archive + version byte).
/// Copies into an aligned buffer only when the slice is misaligned.
pub fn with_archived<R>(
    bytes: &[u8],
    f: impl FnOnce(&ArchivedStoredRecord) -> R,
) -> Result<R, RecordError> {
    let Some((&version, archive)) = bytes.split_last() else {
        return Err(RecordError::Empty);
    };
    if version != RECORD_FORMAT_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
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
                bytes.push(RECORD_FORMAT_VERSION);
                bytes
            }
            Err(_) => Vec::new(),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<CommitEntry, RecordError> {
        let Some((&version, archive)) = bytes.split_last() else {
            return Err(RecordError::Empty);
        };
        if version != RECORD_FORMAT_VERSION {
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
        assert_eq!(StoredRecord::decode(&record.encode()), Ok(record));
    }

    #[test]
    fn a_misaligned_buffer_is_still_read() {
        let encoded = sample().encode();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&encoded);
        assert_eq!(StoredRecord::decode(&shifted[1..]), Ok(sample()));
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let mut encoded = sample().encode();
        if let Some(last) = encoded.last_mut() {
            *last = 99;
        }
        assert_eq!(
            StoredRecord::decode(&encoded),
            Err(RecordError::UnknownVersion(99))
        );
        assert_eq!(StoredRecord::decode(&[]), Err(RecordError::Empty));
        assert!(matches!(
            StoredRecord::decode(&[1, 2, 3, RECORD_FORMAT_VERSION]),
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
