//! Why a command of the `atserver` binary could not start or had to stop.

use std::path::PathBuf;

use crate::auth::signing::SigningError;
use crate::error::AtError;
use crate::health::Fatal;
use crate::shard::ShardError;
use crate::storage::{StoreError, WriteError};
use crate::tls::TlsError;

/// Exit status after a fatal failure of a running server (sysexits'
/// `EX_SOFTWARE`): distinct from a start-up error's 1, so a supervisor's
/// logs tell "could not start" from "stopped to be restarted".
pub const EXIT_FATAL: u8 = 70;

/// A failure of `serve`, `directory`, `dev` or `certs`.
#[derive(Debug)]
pub enum AppError {
    /// The command line asks for something impossible.
    Usage(String),
    /// A file or folder could not be read, written or created.
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file the server keeps is not what it wrote.
    Corrupt {
        path: PathBuf,
        detail: &'static str,
    },
    Tls(TlsError),
    Shard(ShardError),
    /// Opening or provisioning a store failed.
    Store(StoreError),
    /// Provisioning an atSign's CRAM secret was refused.
    Provisioning(AtError),
    /// The signing key pair could not be generated or stored.
    Signing(SigningError),
    /// Development certificates could not be made.
    Certs(String),
    /// The directory's records could not be loaded.
    Records(String),
    /// A thread the server needs could not be started.
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    /// Signals could not be set up.
    Signals(String),
    /// The running server hit a failure it cannot recover from.
    Fatal(Fatal),
}

impl AppError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Fatal(_) => EXIT_FATAL,
            _ => 1,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Usage(message) => f.write_str(message),
            AppError::Io { what, path, source } => {
                write!(f, "cannot {what} {}: {source}", path.display())
            }
            AppError::Corrupt { path, detail } => {
                write!(f, "{} is corrupt: {detail}", path.display())
            }
            AppError::Tls(error) => write!(f, "TLS: {error}"),
            AppError::Shard(error) => error.fmt(f),
            AppError::Store(error) => write!(f, "store: {error}"),
            AppError::Provisioning(error) => write!(f, "provisioning: {error}"),
            AppError::Signing(error) => write!(f, "signing key pair: {error}"),
            AppError::Certs(message) => write!(f, "certificates: {message}"),
            AppError::Records(message) => write!(f, "directory records: {message}"),
            AppError::Thread { what, source } => {
                write!(f, "cannot start the {what} thread: {source}")
            }
            AppError::Signals(message) => f.write_str(message),
            AppError::Fatal(fatal) => write!(f, "stopped after a fatal failure: {fatal}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<TlsError> for AppError {
    fn from(error: TlsError) -> Self {
        AppError::Tls(error)
    }
}

impl From<ShardError> for AppError {
    fn from(error: ShardError) -> Self {
        AppError::Shard(error)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        AppError::Store(error)
    }
}

impl From<SigningError> for AppError {
    fn from(error: SigningError) -> Self {
        match error {
            // A store failure is reported as one, whoever met it.
            SigningError::Store(error) | SigningError::Write(WriteError::Store(error)) => {
                AppError::Store(error)
            }
            other => AppError::Signing(other),
        }
    }
}

impl From<WriteError> for AppError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Store(error) => AppError::Store(error),
            WriteError::Refused(error) => AppError::Provisioning(error),
        }
    }
}
