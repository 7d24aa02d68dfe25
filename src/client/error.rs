//! The one error type of both clients: a variant per cause, each with the
//! operation it interrupted.

use std::fmt;

use super::auth::KeyError;

/// What the client was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Opening the TCP connection.
    Connect,
    /// Setting TCP_NODELAY or the socket timeouts.
    ConfigureSocket,
    /// The TLS handshake.
    Handshake,
    /// Reading the `@` greeting.
    Greeting,
    /// Writing request bytes.
    Send,
    /// Reading a reply or raw bytes.
    Receive,
    /// `from:` and its challenge.
    Challenge,
    /// `cram:` and its answer.
    Cram,
    /// `pkam:` and its answer.
    Pkam,
    /// `pol` and its answer (server-to-server).
    Pol,
    /// Waiting for the server to close the connection.
    AwaitClose,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connecting",
            Operation::ConfigureSocket => "configuring the socket",
            Operation::Handshake => "the TLS handshake",
            Operation::Greeting => "reading the greeting",
            Operation::Send => "sending",
            Operation::Receive => "receiving",
            Operation::Challenge => "asking for a challenge",
            Operation::Cram => "cram authentication",
            Operation::Pkam => "pkam authentication",
            Operation::Pol => "pol authentication",
            Operation::AwaitClose => "waiting for the close",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket call failed.
    Io {
        during: Operation,
        source: std::io::Error,
    },
    /// Nothing (or not enough) arrived within the timeout; `pending` holds
    /// the bytes received that did not complete a frame.
    Timeout { during: Operation, pending: Vec<u8> },
    /// The server closed the connection; `pending` holds the bytes received
    /// after the last complete frame (the inbound-limit refusal, say).
    Closed { during: Operation, pending: Vec<u8> },
    /// TLS failed: the handshake, the server's certificate, or a record.
    Tls {
        during: Operation,
        source: rustls::Error,
    },
    /// A frame arrived that the operation cannot accept: an error reply to
    /// `from:`, a notification where a reply was due, a wrong greeting.
    UnexpectedReply { during: Operation, reply: Vec<u8> },
    /// More than [`crate::limits::CLIENT_REPLY_BYTES_MAX`] bytes arrived without ending a
    /// frame.
    ReplyTooLong { limit_bytes: usize },
    /// The pkam key could not sign the challenge.
    Key(KeyError),
}

impl ClientError {
    /// The operation that failed, when the error has one.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            ClientError::Io { during, .. }
            | ClientError::Timeout { during, .. }
            | ClientError::Closed { during, .. }
            | ClientError::Tls { during, .. }
            | ClientError::UnexpectedReply { during, .. } => Some(*during),
            ClientError::ReplyTooLong { .. } | ClientError::Key(_) => None,
        }
    }

    /// Sorts a socket error from a (blocking or async) read or write:
    /// timeouts, closes and TLS alerts get their own variants.
    pub(crate) fn from_io(during: Operation, error: std::io::Error, pending: &[u8]) -> ClientError {
        use std::io::ErrorKind;
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return ClientError::Tls {
                during,
                source: tls.clone(),
            };
        }
        match error.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ClientError::Timeout {
                during,
                pending: pending.to_vec(),
            },
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => ClientError::Closed {
                during,
                pending: pending.to_vec(),
            },
            _ => ClientError::Io {
                during,
                source: error,
            },
        }
    }
}

/// At most this many bytes of a reply are shown in an error message.
const SHOWN_BYTES_MAX: usize = 120;

/// Writes `bytes` as lossy text, shortened.
fn show(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let shown = bytes
        .get(..bytes.len().min(SHOWN_BYTES_MAX))
        .unwrap_or_default();
    write!(f, "{:?}", String::from_utf8_lossy(shown))?;
    if bytes.len() > SHOWN_BYTES_MAX {
        write!(f, " (of {} bytes)", bytes.len())?;
    }
    Ok(())
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io { during, source } => write!(f, "{during}: {source}"),
            ClientError::Timeout { during, pending } => {
                write!(f, "{during}: timed out")?;
                if !pending.is_empty() {
                    f.write_str(" with ")?;
                    show(f, pending)?;
                    f.write_str(" pending")?;
                }
                Ok(())
            }
            ClientError::Closed { during, pending } => {
                write!(f, "{during}: the server closed the connection")?;
                if !pending.is_empty() {
                    f.write_str(" after ")?;
                    show(f, pending)?;
                }
                Ok(())
            }
            ClientError::Tls { during, source } => write!(f, "{during}: TLS: {source}"),
            ClientError::UnexpectedReply { during, reply } => {
                write!(f, "{during}: unexpected reply ")?;
                show(f, reply)
            }
            ClientError::ReplyTooLong { limit_bytes } => {
                write!(f, "a reply exceeded the {limit_bytes}-byte limit")
            }
            ClientError::Key(e) => write!(f, "signing the challenge: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io { source, .. } => Some(source),
            ClientError::Tls { source, .. } => Some(source),
            ClientError::Key(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KeyError> for ClientError {
    fn from(e: KeyError) -> Self {
        ClientError::Key(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_are_sorted_by_cause() {
        let timeout = std::io::Error::from(std::io::ErrorKind::WouldBlock);
        assert!(matches!(
            ClientError::from_io(Operation::Receive, timeout, b"da"),
            ClientError::Timeout { during: Operation::Receive, pending } if pending == b"da"
        ));
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            ClientError::from_io(Operation::Receive, eof, b""),
            ClientError::Closed { .. }
        ));
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(matches!(
            ClientError::from_io(Operation::Handshake, tls, b""),
            ClientError::Tls {
                source: rustls::Error::DecryptError,
                ..
            }
        ));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = ClientError::from_io(Operation::Send, other, b"");
        assert_eq!(e.operation(), Some(Operation::Send));
        assert!(e.to_string().starts_with("sending: "), "{e}");
    }

    #[test]
    fn messages_show_a_short_prefix_of_long_replies() {
        let e = ClientError::UnexpectedReply {
            during: Operation::Challenge,
            reply: vec![b'x'; 500],
        };
        let text = e.to_string();
        assert!(
            text.starts_with("asking for a challenge: unexpected reply \"xxx"),
            "{text}"
        );
        assert!(text.ends_with("(of 500 bytes)"), "{text}");
    }
}
