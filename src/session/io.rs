//! TLS and socket helpers shared by the atServer's and the directory's
//! connection tasks: every network await under a deadline.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures_rustls::server::TlsStream;

use crate::clock::Clock;
use crate::limits::{TLS_HANDSHAKE_MS, WRITE_MS};

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailed {
    Tls(std::io::Error),
    TimedOut,
}

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailed::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            HandshakeFailed::TimedOut => {
                write!(f, "TLS handshake not done within {TLS_HANDSHAKE_MS} ms")
            }
        }
    }
}

/// The server side of a TLS handshake, under [`TLS_HANDSHAKE_MS`].
pub async fn accept_tls<S, C>(
    clock: &C,
    config: Arc<rustls::ServerConfig>,
    stream: S,
) -> Result<TlsStream<S>, HandshakeFailed>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    let acceptor = futures_rustls::TlsAcceptor::from(config);
    match clock
        .deadline(
            Duration::from_millis(TLS_HANDSHAKE_MS),
            acceptor.accept(stream),
        )
        .await
    {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(error)) => Err(HandshakeFailed::Tls(error)),
        Err(_) => Err(HandshakeFailed::TimedOut),
    }
}

/// The socket would not take the bytes (closed, or not read for
/// [`WRITE_MS`]): the connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFailed;

/// Writes and flushes `bytes` under [`WRITE_MS`]: a client that does not
/// read is disconnected instead of pinning memory.
pub async fn write_all<S, C>(clock: &C, stream: &mut S, bytes: &[u8]) -> Result<(), WriteFailed>
where
    S: AsyncWrite + Unpin,
    C: Clock,
{
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match clock.deadline(Duration::from_millis(WRITE_MS), write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(WriteFailed),
    }
}

/// Sends TLS close_notify and shuts the socket, under [`WRITE_MS`].
pub async fn close<S, C>(clock: &C, stream: &mut S)
where
    S: AsyncWrite + Unpin,
    C: Clock,
{
    let _ = clock
        .deadline(Duration::from_millis(WRITE_MS), stream.close())
        .await;
}
