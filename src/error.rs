//! The atProtocol error codes and the one place that knows their wire text.
//!
//! Every failure a verb can report is an [`AtError`]: a code from the
//! reference's table plus a message. [`crate::protocol::reply`] is the only
//! place that turns one into bytes; whether the connection survives is decided
//! here, by [`AtCode::closes_connection`].

use std::fmt;

/// The `ATxxxx` codes of the reference (`at_commons` `error_codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtCode {
    ServerException,
    DataStore,
    InvalidSyntax,
    Socket,
    BufferLimit,
    OutboundConnectionLimit,
    SecondaryNotFound,
    HandshakeFailure,
    Unauthorized,
    InternalServerError,
    InternalServerException,
    InboundConnectionLimit,
    BlockedConnection,
    KeyNotFound,
    InvalidKey,
    SecondaryConnect,
    IllegalArguments,
    Timeout,
    ServerPaused,
    ApkamDenied,
    ApkamPending,
    ApkamRevoked,
    ApkamExpired,
    CannotRevokeSelf,
    IllegalState,
    AuthFailed,
}

impl AtCode {
    /// Every code, in table order.
    pub const ALL: [AtCode; 26] = [
        AtCode::ServerException,
        AtCode::DataStore,
        AtCode::InvalidSyntax,
        AtCode::Socket,
        AtCode::BufferLimit,
        AtCode::OutboundConnectionLimit,
        AtCode::SecondaryNotFound,
        AtCode::HandshakeFailure,
        AtCode::Unauthorized,
        AtCode::InternalServerError,
        AtCode::InternalServerException,
        AtCode::InboundConnectionLimit,
        AtCode::BlockedConnection,
        AtCode::KeyNotFound,
        AtCode::InvalidKey,
        AtCode::SecondaryConnect,
        AtCode::IllegalArguments,
        AtCode::Timeout,
        AtCode::ServerPaused,
        AtCode::ApkamDenied,
        AtCode::ApkamPending,
        AtCode::ApkamRevoked,
        AtCode::ApkamExpired,
        AtCode::CannotRevokeSelf,
        AtCode::IllegalState,
        AtCode::AuthFailed,
    ];

    /// The code of `AT0015`-style text, if it is one of ours.
    pub fn from_code(text: &str) -> Option<AtCode> {
        AtCode::ALL.into_iter().find(|code| code.code() == text)
    }

    /// The code as clients grep for it, e.g. `AT0015`.
    pub const fn code(self) -> &'static str {
        match self {
            AtCode::ServerException => "AT0001",
            AtCode::DataStore => "AT0002",
            AtCode::InvalidSyntax => "AT0003",
            AtCode::Socket => "AT0004",
            AtCode::BufferLimit => "AT0005",
            AtCode::OutboundConnectionLimit => "AT0006",
            AtCode::SecondaryNotFound => "AT0007",
            AtCode::HandshakeFailure => "AT0008",
            AtCode::Unauthorized => "AT0009",
            AtCode::InternalServerError => "AT0010",
            AtCode::InternalServerException => "AT0011",
            AtCode::InboundConnectionLimit => "AT0012",
            AtCode::BlockedConnection => "AT0013",
            AtCode::KeyNotFound => "AT0015",
            AtCode::InvalidKey => "AT0016",
            AtCode::SecondaryConnect => "AT0021",
            AtCode::IllegalArguments => "AT0022",
            AtCode::Timeout => "AT0023",
            AtCode::ServerPaused => "AT0024",
            AtCode::ApkamDenied => "AT0025",
            AtCode::ApkamPending => "AT0026",
            AtCode::ApkamRevoked => "AT0027",
            AtCode::ApkamExpired => "AT0028",
            AtCode::CannotRevokeSelf => "AT0031",
            AtCode::IllegalState => "AT0032",
            AtCode::AuthFailed => "AT0401",
        }
    }

    /// The generic description an owner-authenticated connection sees before
    /// ` : <message>`.
    pub const fn description(self) -> &'static str {
        match self {
            AtCode::ServerException => "Server exception",
            AtCode::DataStore => "DataStore exception",
            AtCode::InvalidSyntax => "Invalid syntax",
            AtCode::Socket => "Socket error",
            AtCode::BufferLimit => "Buffer limit exceeded",
            AtCode::OutboundConnectionLimit => "Outbound connection limit exceeded",
            AtCode::SecondaryNotFound => "Secondary server not found",
            AtCode::HandshakeFailure => "Handshake failure",
            AtCode::Unauthorized => "UnAuthorized client in request",
            AtCode::InternalServerError => "Internal server error",
            AtCode::InternalServerException => "Internal server exception",
            AtCode::InboundConnectionLimit => "Inbound connection limit exceeded",
            AtCode::BlockedConnection => "Connection Exception",
            AtCode::KeyNotFound => "key not found",
            AtCode::InvalidKey => "Invalid key",
            AtCode::SecondaryConnect => "Unable to connect to secondary",
            AtCode::IllegalArguments => "Illegal arguments",
            AtCode::Timeout => "Timeout waiting for response",
            AtCode::ServerPaused => "Server is paused",
            AtCode::ApkamDenied => "Apkam Auth Denied",
            AtCode::ApkamPending => "Apkam Auth Failed",
            AtCode::ApkamRevoked => "Apkam Access Revoked",
            AtCode::ApkamExpired => "Too Many Requests",
            AtCode::CannotRevokeSelf => "Cannot revoke self enrollment",
            AtCode::IllegalState => "Illegal state",
            AtCode::AuthFailed => "Client authentication failed",
        }
    }

    /// Whether the reference closes the connection after writing this error.
    /// Most errors leave it open (SPEC≠CODE: the spec says AT0401 closes).
    pub const fn closes_connection(self) -> bool {
        matches!(
            self,
            AtCode::DataStore
                | AtCode::BufferLimit
                | AtCode::InboundConnectionLimit
                | AtCode::BlockedConnection
                | AtCode::ServerPaused
        )
    }
}

/// A failure to report to the client: a code and the detail message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtError {
    pub code: AtCode,
    pub message: String,
    /// Set for the few errors that close the connection although their code
    /// usually does not (an invalid atSign is AT0011 and closes).
    pub close: bool,
    /// Written as `error:<code>:<message>` (never JSON, no description): the
    /// reference's form for errors a handler sets on its response object
    /// (APKAM states in `pkam`, `stats` failures).
    pub response_object: bool,
}

impl AtError {
    pub fn new(code: AtCode, message: impl Into<String>) -> Self {
        AtError {
            code,
            message: message.into(),
            close: code.closes_connection(),
            response_object: false,
        }
    }

    /// The same error, but the connection is closed after it is written.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The same error, written in the response-object form.
    pub fn response_object(mut self) -> Self {
        self.response_object = true;
        self
    }

    pub fn key_not_found(key: &str) -> Self {
        AtError::new(
            AtCode::KeyNotFound,
            format!("{key} does not exist in keystore"),
        )
    }

    pub fn invalid_command() -> Self {
        AtError::new(AtCode::InvalidSyntax, "invalid command")
    }

    pub fn needs_auth() -> Self {
        AtError::new(
            AtCode::AuthFailed,
            "Command cannot be executed without auth",
        )
    }
}

impl fmt::Display for AtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.code.code(), self.message)
    }
}

impl std::error::Error for AtError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_text_once() {
        for code in AtCode::ALL {
            assert_eq!(AtCode::from_code(code.code()), Some(code));
            assert_eq!(AtCode::ALL.iter().filter(|c| **c == code).count(), 1);
        }
        assert_eq!(AtCode::from_code("AT9999"), None);
    }

    #[test]
    fn only_the_reference_close_class_closes() {
        assert!(AtCode::BufferLimit.closes_connection());
        assert!(!AtCode::AuthFailed.closes_connection());
        assert!(!AtCode::InvalidSyntax.closes_connection());
        assert!(
            AtError::new(AtCode::InternalServerException, "bad atsign")
                .closing()
                .close
        );
    }

    #[test]
    fn codes_are_six_characters_without_hyphen() {
        for code in [
            AtCode::KeyNotFound,
            AtCode::AuthFailed,
            AtCode::CannotRevokeSelf,
        ] {
            assert_eq!(code.code().len(), 6);
            assert!(!code.code().contains('-'));
        }
    }
}
