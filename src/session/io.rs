//! TLS and socket helpers shared by the atServer's and the directory's
//! connection tasks: every network await under a deadline.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures_rustls::server::TlsStream;
use rustls::pki_types::CertificateDer;

use crate::admission::{Admission, Refusal};
use crate::clock::Clock;
use crate::limits::{REFUSAL_HANDSHAKE_MS, WRITE_MS};
use crate::protocol::reply;

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailed {
    Tls(std::io::Error),
    TimedOut(Duration),
}

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailed::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            HandshakeFailed::TimedOut(limit) => {
                write!(f, "TLS handshake not done within {} ms", limit.as_millis())
            }
        }
    }
}

/// The server side of a TLS handshake, under `limit` (at most
/// [`crate::limits::TLS_HANDSHAKE_MS`], less under pressure).
pub async fn accept_tls<S, C>(
    clock: &C,
    config: Arc<rustls::ServerConfig>,
    stream: S,
    limit: Duration,
) -> Result<TlsStream<S>, HandshakeFailed>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    let acceptor = futures_rustls::TlsAcceptor::from(config);
    match clock.deadline(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(error)) => Err(HandshakeFailed::Tls(error)),
        Err(_) => Err(HandshakeFailed::TimedOut(limit)),
    }
}

/// The end-entity certificate the client presented in `tls`'s handshake
/// (verified against the CA bundle by rustls), owned.
pub fn peer_certificate<S>(tls: &TlsStream<S>) -> Option<CertificateDer<'static>> {
    let (_, connection) = tls.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.clone().into_owned())
}

/// Tells a client it was not admitted (`error:AT0012-<why>`), if a refusal
/// handshake is available; otherwise just closes. Either way the stream is
/// gone afterwards.
pub async fn refuse<S, C>(
    clock: &C,
    admission: &Arc<Admission>,
    config: Arc<rustls::ServerConfig>,
    stream: S,
    refusal: &Refusal,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    let Some(_handshake) = admission.refusal_handshake() else {
        return;
    };
    let limit = Duration::from_millis(REFUSAL_HANDSHAKE_MS);
    let Ok(mut tls) = accept_tls(clock, config, stream, limit).await else {
        return;
    };
    let mut out = Vec::new();
    reply::inbound_limit(&mut out, &refusal.to_string());
    let _ = write_all(clock, &mut tls, &out).await;
    close(clock, &mut tls).await;
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
