//! Typed storage failures, and the one place they become wire errors.
//!
//! Every fallible call of the storage API returns a [`StoreError`]: one
//! variant per cause, each carrying the static context needed to act on it
//! (which operation, which record). Only `From<StoreError> for AtError`
//! turns one into the wire error a client sees: AT0002 for every failure,
//! AT0016 for a key the store cannot hold (a refusal of that one request,
//! like the verbs' own key-length check). Writes have a second way to fail
//! that is not a storage failure at all: the verb's closure may refuse the
//! write (an immutable key, say). [`WriteError`] keeps the two apart.

use std::fmt;
use std::sync::Arc;

use super::notifications::NotificationProblem;
use super::record::RecordError;
use crate::error::{AtCode, AtError};

/// What the store was doing when fjall or the operating system failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Creating the shard's folder.
    CreateFolder,
    /// Opening (or recovering) the fjall database.
    OpenDatabase,
    /// Opening one keyspace (its name).
    OpenKeyspace(&'static str),
    /// Starting the write actor's thread.
    StartWriter,
    /// A point read in a keyspace (its name).
    Read(&'static str),
    /// A prefix or range scan of a keyspace (its name).
    Scan(&'static str),
    /// Staging a write batch (only a failpoint fails here).
    ApplyBatch,
    /// Committing a write batch (journal append, and fsync when durable).
    CommitBatch,
    /// Persisting the journal for a flush.
    Persist,
    /// Persisting the journal in the background (fast mode).
    BackgroundSync,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::CreateFolder => f.write_str("create the store folder"),
            Operation::OpenDatabase => f.write_str("open the database"),
            Operation::OpenKeyspace(name) => write!(f, "open keyspace {name}"),
            Operation::StartWriter => f.write_str("start the write actor"),
            Operation::Read(name) => write!(f, "read from keyspace {name}"),
            Operation::Scan(name) => write!(f, "scan keyspace {name}"),
            Operation::ApplyBatch => f.write_str("apply a write batch"),
            Operation::CommitBatch => f.write_str("commit a write batch"),
            Operation::Persist => f.write_str("persist the journal"),
            Operation::BackgroundSync => f.write_str("sync the journal in the background"),
        }
    }
}

/// Which stored value could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordAt {
    /// The record of `key` (in the `keys` keyspace).
    Key { atsign: String, key: String },
    /// Commit-log entry `id` (in the `commits` keyspace).
    Commit { atsign: String, id: u64 },
    /// Notification `id` (in the `notifications` keyspace or its indexes).
    Notification { atsign: String, id: String },
}

impl RecordAt {
    pub fn key(atsign: &str, key: &str) -> RecordAt {
        RecordAt::Key {
            atsign: atsign.to_string(),
            key: key.to_string(),
        }
    }

    pub fn notification(atsign: &str, id: &str) -> RecordAt {
        RecordAt::Notification {
            atsign: atsign.to_string(),
            id: id.to_string(),
        }
    }

    pub fn commit(atsign: &str, id: u64) -> RecordAt {
        RecordAt::Commit {
            atsign: atsign.to_string(),
            id,
        }
    }
}

impl fmt::Display for RecordAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordAt::Key { atsign, key } => write!(f, "the record of {key} ({atsign})"),
            RecordAt::Commit { atsign, id } => write!(f, "commit {id} of {atsign}"),
            RecordAt::Notification { atsign, id } => write!(f, "notification {id} of {atsign}"),
        }
    }
}

/// A storage failure. Cheap to clone (sources are shared), so every waiter of
/// a failed batch can be handed the same cause.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// fjall failed (I/O underneath, a recovery problem, or its own poison).
    Engine {
        operation: Operation,
        source: Arc<fjall::Error>,
    },
    /// A call of the store's own to the operating system failed.
    Io {
        operation: Operation,
        source: Arc<std::io::Error>,
    },
    /// A stored value did not validate (flipped or missing bytes); the
    /// source says what failed.
    CorruptRecord { at: RecordAt, source: RecordError },
    /// A stored value ends in a format version this build does not read.
    UnknownFormatVersion { at: RecordAt, found: u8 },
    /// A key whose longest layout key (see `layout::write_key_bytes`) is
    /// over fjall's [`FJALL_KEY_BYTES_MAX`](super::actor::FJALL_KEY_BYTES_MAX):
    /// refused before fjall sees it, which would panic. Only that request
    /// fails; the store is fine.
    KeyTooLong {
        atsign: String,
        /// The key's length in bytes.
        key_bytes: usize,
        /// The longest key the layout would build from it.
        layout_bytes: usize,
    },
    /// A notification the store does not take (a bad or too-long id, too
    /// much text): refused before it is queued. Only that request fails;
    /// the store is fine. AT0002, as the reference answers a too-long id.
    InvalidNotification {
        atsign: String,
        problem: NotificationProblem,
    },
    /// An earlier failure poisoned the store: it refuses every write, reads
    /// keep working (poison, don't limp).
    Poisoned,
    /// The write actor panicked while applying or committing this write's
    /// batch; nothing of the batch is acknowledged and the store is
    /// poisoned. `message` is the panic's own text.
    WriterPanicked { message: Arc<str> },
    /// The write actor is gone: it stopped, or died without answering.
    WriterStopped,
    /// A flush did not finish within the caller's limit.
    FlushTimedOut,
    /// `ATSERVER_FAILPOINTS` could not be parsed (only built with the
    /// `failpoints` feature).
    #[cfg(feature = "failpoints")]
    FailpointSpec {
        spec: String,
        source: super::failpoints::SpecError,
    },
}

impl StoreError {
    pub(crate) fn engine(operation: Operation) -> impl FnOnce(fjall::Error) -> StoreError {
        move |source| StoreError::Engine {
            operation,
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(operation: Operation) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| StoreError::Io {
            operation,
            source: Arc::new(source),
        }
    }

    /// Whether the request, not the store, is at fault: the store is fine
    /// and other requests go on.
    pub fn is_request_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::KeyTooLong { .. } | StoreError::InvalidNotification { .. }
        )
    }

    /// Whether fjall refused to open the folder because another process
    /// (or store) holds it.
    pub fn is_folder_locked(&self) -> bool {
        matches!(self, StoreError::Engine { source, .. } if matches!(**source, fjall::Error::Locked))
    }

    /// The error for bytes at `at` that `decode` refused: an unknown version
    /// is its own variant (a newer build wrote it, or a format bump was
    /// missed), anything else is corruption.
    pub(crate) fn unreadable(at: RecordAt, source: RecordError) -> StoreError {
        match source {
            RecordError::UnknownVersion(found) => StoreError::UnknownFormatVersion { at, found },
            source => StoreError::CorruptRecord { at, source },
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Engine { operation, .. } => {
                write!(f, "the data store failed to {operation}")
            }
            StoreError::Io { operation, .. } => write!(f, "the data store failed to {operation}"),
            StoreError::CorruptRecord { at, .. } => write!(f, "{at} is corrupt"),
            StoreError::UnknownFormatVersion { at, found } => write!(
                f,
                "{at} has format version {found}, which this build does not read"
            ),
            StoreError::KeyTooLong {
                atsign,
                key_bytes,
                layout_bytes,
            } => write!(
                f,
                "a key of {key_bytes} bytes of {atsign} is too long for the data store \
                 (its layout key would take {layout_bytes} bytes, at most {} fit)",
                super::actor::FJALL_KEY_BYTES_MAX
            ),
            StoreError::InvalidNotification { atsign, problem } => {
                write!(f, "a notification of {atsign} was refused: {problem}")
            }
            StoreError::Poisoned => f.write_str("the data store refuses writes after a failure"),
            StoreError::WriterPanicked { message } => {
                write!(f, "the data store writer panicked: {message}")
            }
            StoreError::WriterStopped => f.write_str("the data store writer has stopped"),
            StoreError::FlushTimedOut => f.write_str("the data store flush did not finish in time"),
            #[cfg(feature = "failpoints")]
            StoreError::FailpointSpec { spec, .. } => {
                write!(
                    f,
                    "{} is invalid: {spec:?}",
                    super::failpoints::FAILPOINTS_ENV
                )
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Engine { source, .. } => Some(source.as_ref()),
            StoreError::Io { source, .. } => Some(source.as_ref()),
            StoreError::CorruptRecord { source, .. } => Some(source),
            #[cfg(feature = "failpoints")]
            StoreError::FailpointSpec { source, .. } => Some(source),
            StoreError::UnknownFormatVersion { .. }
            | StoreError::KeyTooLong { .. }
            | StoreError::InvalidNotification { .. }
            | StoreError::Poisoned
            | StoreError::WriterPanicked { .. }
            | StoreError::WriterStopped
            | StoreError::FlushTimedOut => None,
        }
    }
}

/// Formats an error followed by its chain of sources (`a: b: c`), for logs
/// and for the wire message, which carried the engine's own words before
/// errors were typed.
pub struct WithSources<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for WithSources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(source) = next {
            write!(f, ": {source}")?;
            next = source.source();
        }
        Ok(())
    }
}

/// The one conversion of a storage failure to the wire: AT0002, which closes
/// the connection, as the reference does for a DataStoreException. A key
/// too long for the store is no failure of the store but of the request:
/// AT0016, as the verbs answer a key over the reference's limits (which
/// they check first, so clients meet this only through a bug). A refused
/// notification stays AT0002: the reference answers a too-long notification
/// id so.
impl From<StoreError> for AtError {
    fn from(error: StoreError) -> AtError {
        let code = match error {
            StoreError::KeyTooLong { .. } => AtCode::InvalidKey,
            _ => AtCode::DataStore,
        };
        AtError::new(code, WithSources(&error).to_string())
    }
}

/// Why a write did not happen.
#[derive(Debug, Clone)]
pub enum WriteError {
    /// The write's own closure refused it (e.g. the key is immutable); the
    /// store is fine and nothing was written. Reported as the verb chose.
    Refused(AtError),
    /// The store failed; see [`StoreError`].
    Store(StoreError),
}

impl WriteError {
    /// Whether the store, not the request, is why the write did not happen.
    pub fn is_store_failure(&self) -> bool {
        matches!(self, WriteError::Store(error) if !error.is_request_refusal())
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Refused(error) => write!(f, "write refused: {error}"),
            WriteError::Store(error) => write!(f, "{}", WithSources(error)),
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Refused(error) => Some(error),
            WriteError::Store(error) => error.source(),
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> WriteError {
        WriteError::Store(error)
    }
}

/// A refusal is reported exactly as the verb built it; a storage failure
/// through the one conversion above.
impl From<WriteError> for AtError {
    fn from(error: WriteError) -> AtError {
        match error {
            WriteError::Refused(error) => error,
            WriteError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_is_at0002_and_closes_the_connection() {
        let io = StoreError::io(Operation::CreateFolder)(std::io::Error::other("disk on fire"));
        let wire = AtError::from(io);
        assert_eq!(wire.code, AtCode::DataStore);
        assert!(wire.close);
        assert_eq!(
            wire.message,
            "the data store failed to create the store folder: disk on fire"
        );
        assert_eq!(AtError::from(StoreError::Poisoned).code, AtCode::DataStore);
    }

    #[test]
    fn a_refusal_keeps_the_verbs_error_and_a_failure_becomes_at0002() {
        let refusal = AtError::new(AtCode::IllegalArguments, "immutable");
        let refused = WriteError::Refused(refusal.clone());
        assert!(!refused.is_store_failure());
        assert_eq!(AtError::from(refused), refusal);
        let failed = WriteError::from(StoreError::WriterStopped);
        assert!(failed.is_store_failure());
        assert_eq!(
            AtError::from(failed).message,
            "the data store writer has stopped"
        );
    }

    #[test]
    fn an_unknown_version_is_not_called_corruption() {
        let at = RecordAt::key("@alice", "phone@alice");
        assert!(matches!(
            StoreError::unreadable(at.clone(), RecordError::UnknownVersion(7)),
            StoreError::UnknownFormatVersion { found: 7, .. }
        ));
        let corrupt = StoreError::unreadable(at, RecordError::Empty);
        assert!(matches!(
            &corrupt,
            StoreError::CorruptRecord {
                source: RecordError::Empty,
                ..
            }
        ));
        assert_eq!(
            corrupt.to_string(),
            "the record of phone@alice (@alice) is corrupt"
        );
    }
}
