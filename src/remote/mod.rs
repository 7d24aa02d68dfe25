//! Talking to other atServers and to the atDirectory: the server's outbound
//! side (server-to-server.md).
//!
//! Nothing here names the runtime: outbound sockets come from a [`Dial`]
//! that `shard` provides (glommio TCP), and deadlines from a
//! [`Clock`](crate::clock::Clock). Transcripts and fuzzing use [`NoDial`],
//! which refuses every connection, so their replies never depend on a
//! network.

pub mod certificate;
pub mod courier;
pub mod directory;
pub mod outbound;
pub mod peers;
pub mod pol;
pub mod pool;
pub mod prover;

use std::future::Future;

use futures_lite::{AsyncRead, AsyncWrite};

/// Opens outbound TCP connections for the shard that holds it.
pub trait Dial: Clone + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;

    /// Connects to `host:port` (a name is resolved without blocking the
    /// shard). The caller puts the deadline on it.
    fn dial(&self, host: &str, port: u16) -> impl Future<Output = std::io::Result<Self::Stream>>;
}

/// A [`Dial`] that refuses every connection at once: for in-process
/// transcripts and fuzzing, where nothing may reach a network.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDial;

/// The stream type of [`NoDial`]; never constructed.
#[derive(Debug)]
pub enum NoStream {}

impl AsyncRead for NoStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match *self {}
    }
}

impl AsyncWrite for NoStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match *self {}
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match *self {}
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match *self {}
    }
}

impl Dial for NoDial {
    type Stream = NoStream;

    async fn dial(&self, host: &str, port: u16) -> std::io::Result<NoStream> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("no network here: {host}:{port}"),
        ))
    }
}
