//! The atDirectory (root server): `alice\n` ⇒ `host:port\r\n@` or `null\r\n@`.
//!
//! Behaviour follows the reference root server: a bare `@` greeting, input
//! lower-cased, at most [`DIRECTORY_LINE_BYTES_MAX`] buffered, CRLF before the
//! prompt, several lookups per connection, `@exit` closes. Misses are
//! throttled: the second and later wait [`DIRECTORY_MISS_DELAY_MS`], the
//! [`DIRECTORY_MISSES_MAX`]th closes the connection without a reply. One
//! leading `@` is accepted and ignored (a harmless superset).

pub mod records;

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::limits::{
    DIRECTORY_IDLE_MS, DIRECTORY_LINE_BYTES_MAX, DIRECTORY_MISS_DELAY_MS, DIRECTORY_MISSES_MAX,
    TLS_HANDSHAKE_MS, WRITE_MS,
};
use crate::shard::{self, ConnectionFuture, ConnectionHandler, Socket};
pub use records::Records;

/// The connection factory of the directory, handed to every shard.
#[derive(Clone)]
pub struct DirectoryConnections {
    pub records: Arc<Records>,
    pub tls: Arc<rustls::ServerConfig>,
}

impl ConnectionHandler for DirectoryConnections {
    fn handle(&self, _shard: usize, stream: Socket) -> ConnectionFuture {
        Box::pin(serve_connection(
            self.records.clone(),
            self.tls.clone(),
            stream,
        ))
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
    Ignore,
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
        let query = text.trim().to_lowercase();
        if query.is_empty() {
            return Answer::Ignore;
        }
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

async fn serve_connection(records: Arc<Records>, tls: Arc<rustls::ServerConfig>, stream: Socket) {
    let acceptor = futures_rustls::TlsAcceptor::from(tls);
    let handshake = shard::deadline(
        Duration::from_millis(TLS_HANDSHAKE_MS),
        acceptor.accept(stream),
    );
    let Ok(Ok(mut tls)) = handshake.await else {
        return;
    };
    let write_deadline = Duration::from_millis(WRITE_MS);
    let greet = async {
        tls.write_all(b"@").await?;
        tls.flush().await
    };
    if !matches!(shard::deadline(write_deadline, greet).await, Ok(Ok(()))) {
        return;
    }
    let mut session = DirectorySession::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(DIRECTORY_LINE_BYTES_MAX);
    let mut chunk = [0u8; DIRECTORY_LINE_BYTES_MAX + 1];
    'connection: loop {
        let idle = Duration::from_millis(DIRECTORY_IDLE_MS);
        let n = match shard::deadline(idle, tls.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            match session.answer(&records, line.get(..end).unwrap_or_default()) {
                Answer::Ignore => {}
                Answer::Close => break 'connection,
                Answer::Reply { bytes, delay_ms } => {
                    if delay_ms > 0 {
                        shard::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    let write = async {
                        tls.write_all(&bytes).await?;
                        tls.flush().await
                    };
                    if !matches!(shard::deadline(write_deadline, write).await, Ok(Ok(()))) {
                        break 'connection;
                    }
                }
            }
        }
        if buffer.len() > DIRECTORY_LINE_BYTES_MAX {
            // The reference destroys the socket on overflow.
            break;
        }
    }
    let _ = shard::deadline(write_deadline, tls.close()).await;
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
    fn exit_closes_and_blank_lines_are_ignored() {
        let mut s = DirectorySession::default();
        assert_eq!(s.answer(&records(), b"@exit"), Answer::Close);
        assert_eq!(s.answer(&records(), b"  "), Answer::Ignore);
    }
}
