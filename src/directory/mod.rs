//! The atDirectory (root server): `alice\n` ⇒ `host:port\r\n@` or `null\r\n@`.
//!
//! Behaviour follows the reference root server: a bare `@` greeting, input
//! lower-cased, at most [`DIRECTORY_LINE_BYTES_MAX`] buffered, CRLF before the
//! prompt, several lookups per connection, `@exit` closes. Misses are
//! throttled: the second and later wait [`DIRECTORY_MISS_DELAY_MS`], the
//! [`DIRECTORY_MISSES_MAX`]th closes the connection without a reply. One
//! leading `@` is accepted and ignored (a harmless superset).

pub mod records;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, FutureExt};

use crate::admission::{Admission, SessionLimits};
use crate::clock::Clock;
use crate::limits::{
    DIRECTORY_IDLE_MS, DIRECTORY_LINE_BYTES_MAX, DIRECTORY_MISS_DELAY_MS, DIRECTORY_MISSES_MAX,
};
use crate::protocol::frame::Frame;
use crate::session::io;
use crate::session::lines::LineBuffer;
pub use records::Records;

/// The directory's connection limits: the atServer's defaults, with the
/// directory's own idle deadline for its (never authenticated) connections.
pub fn limits() -> SessionLimits {
    SessionLimits {
        idle_unauth_ms: DIRECTORY_IDLE_MS,
        ..SessionLimits::default()
    }
}

/// What to do with one complete input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Write these bytes, after waiting `delay_ms`.
    Reply {
        bytes: Vec<u8>,
        delay_ms: u64,
    },
    Close,
}

/// Per-connection lookup state (miss throttling).
#[derive(Debug, Default)]
pub struct DirectorySession {
    misses: u32,
}

impl DirectorySession {
    /// Answers one line (already without its `\n`).
    pub fn answer(&mut self, records: &Records, line: &[u8]) -> Answer {
        let Ok(text) = std::str::from_utf8(line) else {
            return Answer::Close;
        };
        // A blank line is looked up like any name (and misses), as the
        // reference does: the C SDK sends one right after connecting.
        let query = text.trim().to_lowercase();
        if query == "@exit" {
            return Answer::Close;
        }
        match records.lookup(&query) {
            Some(address) => Answer::Reply {
                bytes: format!("{address}\r\n@").into_bytes(),
                delay_ms: 0,
            },
            None => {
                self.misses += 1;
                if self.misses >= DIRECTORY_MISSES_MAX {
                    return Answer::Close;
                }
                let delay_ms = if self.misses >= 2 {
                    DIRECTORY_MISS_DELAY_MS
                } else {
                    0
                };
                Answer::Reply {
                    bytes: b"null\r\n@".to_vec(),
                    delay_ms,
                }
            }
        }
    }
}

/// Serves one accepted directory connection until either side ends it.
/// Directory connections never authenticate, so every one of them counts
/// against the unauthenticated quota and its source's share.
pub async fn serve<S, C>(
    records: Arc<Records>,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
    stream: S,
    peer: Option<SocketAddr>,
    clock: C,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    let mut ticket = match admission.admit(peer.map(|p| p.ip())) {
        Ok(ticket) => ticket,
        Err(refusal) => {
            io::refuse(&clock, &admission, tls, stream, &refusal).await;
            return;
        }
    };
    let handshake = io::accept_tls(&clock, tls, stream, admission.handshake_limit());
    let handshake = async { handshake.await.ok() }.or(async {
        ticket.evicted().await;
        None
    });
    let Some(mut tls) = handshake.await else {
        return;
    };
    ticket.handshake_done();
    if io::write_all(&clock, &mut tls, b"@").await.is_err() {
        return;
    }
    let mut session = DirectorySession::default();
    let mut input = LineBuffer::new(DIRECTORY_LINE_BYTES_MAX);
    let mut last_line = Instant::now();
    'connection: loop {
        let idle = (last_line + ticket.idle_limit()).saturating_duration_since(Instant::now());
        let room = input.spare(DIRECTORY_LINE_BYTES_MAX + 1);
        let read = async { clock.deadline(idle, tls.read(room)).await.ok() }.or(async {
            ticket.evicted().await;
            None
        });
        let read = match read.await {
            Some(Ok(read)) if read > 0 => read,
            _ => break,
        };
        input.filled(DIRECTORY_LINE_BYTES_MAX + 1, read);
        loop {
            let answer = match input.next_line() {
                Frame::Line(line) => session.answer(&records, line),
                Frame::Incomplete => break,
                // The reference destroys the socket on overflow.
                Frame::TooLong => break 'connection,
            };
            last_line = Instant::now();
            match answer {
                Answer::Close => break 'connection,
                Answer::Reply { bytes, delay_ms } => {
                    if delay_ms > 0 {
                        clock.sleep(Duration::from_millis(delay_ms)).await;
                    }
                    if io::write_all(&clock, &mut tls, &bytes).await.is_err() {
                        break 'connection;
                    }
                }
            }
        }
        input.compact();
    }
    io::close(&clock, &mut tls).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Records {
        Records::from_entries([("alice", "localhost:6464")]).expect("records")
    }

    #[test]
    fn hits_answer_with_crlf_and_prompt() {
        let mut s = DirectorySession::default();
        let r = records();
        let expected = Answer::Reply {
            bytes: b"localhost:6464\r\n@".to_vec(),
            delay_ms: 0,
        };
        assert_eq!(s.answer(&r, b"alice"), expected);
        assert_eq!(s.answer(&r, b"ALICE\r"), expected);
        assert_eq!(s.answer(&r, b"@alice"), expected);
    }

    #[test]
    fn misses_are_throttled_then_close() {
        let mut s = DirectorySession::default();
        let r = records();
        assert_eq!(
            s.answer(&r, b"bob"),
            Answer::Reply {
                bytes: b"null\r\n@".to_vec(),
                delay_ms: 0
            }
        );
        assert_eq!(
            s.answer(&r, b"carol"),
            Answer::Reply {
                bytes: b"null\r\n@".to_vec(),
                delay_ms: DIRECTORY_MISS_DELAY_MS
            }
        );
        assert_eq!(
            s.answer(&r, b"alice"),
            Answer::Reply {
                bytes: b"localhost:6464\r\n@".to_vec(),
                delay_ms: 0
            }
        );
        assert_eq!(s.answer(&r, b"dave"), Answer::Close);
    }

    #[test]
    fn exit_closes() {
        let mut s = DirectorySession::default();
        assert_eq!(s.answer(&records(), b"@exit"), Answer::Close);
    }

    #[test]
    fn a_blank_line_is_a_lookup_that_misses() {
        let mut s = DirectorySession::default();
        let r = records();
        let null = |delay_ms| Answer::Reply {
            bytes: b"null\r\n@".to_vec(),
            delay_ms,
        };
        assert_eq!(s.answer(&r, b"\r"), null(0));
        assert_eq!(s.answer(&r, b"  "), null(DIRECTORY_MISS_DELAY_MS));
        assert_eq!(s.answer(&r, b""), Answer::Close);
    }
}
