//! One client connection: TLS, framing, the request loop, replies.
//!
//! The loop reads whatever the socket has, answers every complete line in
//! order (pipelined requests are fine), and writes all the replies of one read
//! in one write. Every network await has a deadline.

pub mod inflight;
pub mod state;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};

use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::limits::{LINE_BYTES_MAX, READ_CHUNK_BYTES, TLS_HANDSHAKE_MS, WRITE_MS};
use crate::protocol::frame::{self, Frame};
use crate::protocol::reply;
use crate::shard::{self, ConnectionFuture, ConnectionHandler, Socket};
pub use inflight::InFlight;
pub use state::{Auth, Flow, Session};

/// The connection factory handed to every shard.
#[derive(Clone)]
pub struct AtServerConnections {
    pub ctx: Arc<ServerContext>,
}

impl ConnectionHandler for AtServerConnections {
    fn handle(&self, _shard: usize, stream: Socket) -> ConnectionFuture {
        Box::pin(run(self.ctx.clone(), stream))
    }
}

async fn run(ctx: Arc<ServerContext>, stream: Socket) {
    let peer = stream.peer_addr().ok();
    let acceptor = futures_rustls::TlsAcceptor::from(ctx.tls.clone());
    let handshake = shard::deadline(
        Duration::from_millis(TLS_HANDSHAKE_MS),
        acceptor.accept(stream),
    );
    let mut tls = match handshake.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            return;
        }
    };
    let Some(_slot) = ctx.admit() else {
        let mut out = Vec::new();
        reply::inbound_limit(&mut out);
        let _ = write_all(&mut tls, &out).await;
        let _ = shard::deadline(Duration::from_millis(WRITE_MS), tls.close()).await;
        return;
    };
    let mut session = Session::new(ctx.clone());
    let mut inflight = InFlight::default();
    if write_all(&mut tls, b"@").await.is_err() {
        return;
    }
    let mut inbuf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    // Idle connections hold small buffers; busy ones grow theirs (see below).
    let mut read_size = READ_SIZE_MIN_BYTES;
    // Leading bytes of the unconsumed input known to hold no `\n`: a long
    // line arriving over many reads is scanned once.
    let mut scanned = 0usize;
    'connection: loop {
        // Wait for input, or for the oldest in-flight write to become
        // durable, whichever comes first: a pipelining client keeps sending
        // while its earlier writes are being committed.
        let idle = Duration::from_millis(session.idle_limit_ms());
        let filled = inbuf.len();
        let may_read = inflight.len() < INFLIGHT_REPLIES_MAX;
        if may_read {
            inbuf.resize(filled + read_size, 0);
        }
        let event = {
            let target = inbuf.get_mut(filled..).unwrap_or_default();
            let read = async {
                if may_read {
                    Event::Read(shard::deadline(idle, tls.read(target)).await)
                } else {
                    futures_lite::future::pending().await
                }
            };
            let write_done = async {
                if inflight.is_empty() {
                    futures_lite::future::pending::<()>().await;
                }
                inflight.wait_front().await;
                Event::WriteDone
            };
            read.or(write_done).await
        };
        let mut flow = Flow::Continue;
        match event {
            Event::WriteDone => inbuf.truncate(filled),
            Event::Read(Ok(Ok(0)) | Ok(Err(_))) => break,
            Event::Read(Err(_)) => {
                tracing::debug!(?peer, "idle connection closed");
                break;
            }
            Event::Read(Ok(Ok(read))) => {
                inbuf.truncate(filled + read);
                read_size = if read == read_size {
                    (read_size * 2).min(READ_CHUNK_BYTES)
                } else {
                    READ_SIZE_MIN_BYTES.max(read_size / 2)
                };
                let mut consumed = 0;
                while flow == Flow::Continue {
                    let rest = inbuf.get(consumed..).unwrap_or_default();
                    match frame::next_line_after(rest, LINE_BYTES_MAX, scanned) {
                        (Frame::Line(line), used) => {
                            consumed += used;
                            scanned = 0;
                            flow = session.handle_line(line, &mut inflight, &mut out).await;
                            if out.len() + inflight.ready_bytes() >= REPLY_BUFFER_BYTES_MAX {
                                // Large replies: send what is due before
                                // computing more, so memory stays bounded.
                                if session.flush(&mut inflight, &mut out).await == Flow::Close {
                                    flow = Flow::Close;
                                }
                                if write_all(&mut tls, &out).await.is_err() {
                                    break 'connection;
                                }
                                out.clear();
                            }
                        }
                        (Frame::Incomplete, _) => {
                            scanned = rest.len();
                            break;
                        }
                        (Frame::TooLong, _) => {
                            let error = AtError::new(
                                AtCode::BufferLimit,
                                format!(
                                    "InboundBuffer overflow: server received request which exceeded the buffer size limit of {LINE_BYTES_MAX} bytes. Terminating the connection."
                                ),
                            );
                            session.flush(&mut inflight, &mut out).await;
                            session.write_error(&error, &mut out);
                            flow = Flow::Close;
                        }
                    }
                }
                inbuf.drain(..consumed.min(inbuf.len()));
            }
        }
        if flow == Flow::Continue {
            flow = session.emit_ready(&mut inflight, &mut out);
        }
        if !out.is_empty() {
            if write_all(&mut tls, &out).await.is_err() {
                break 'connection;
            }
            out.clear();
        }
        if read_size == READ_SIZE_MIN_BYTES && inflight.is_empty() {
            // The connection has gone quiet: give back what a burst grew.
            release_if_large(&mut inbuf);
            release_if_large(&mut out);
            session.release_buffers();
        }
        if flow == Flow::Close {
            break;
        }
    }
    let _ = shard::deadline(Duration::from_millis(WRITE_MS), tls.close()).await;
}

/// What woke the connection loop.
enum Event {
    Read(Result<std::io::Result<usize>, shard::DeadlineExceeded>),
    WriteDone,
}

/// Reply bytes a connection may buffer before it must write them out: one
/// pipelined read of `llookup`s of large values cannot pin unbounded memory.
const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;

/// Replies a connection may have pending before it stops reading more
/// requests: bounds the memory one pipelining client can pin.
const INFLIGHT_REPLIES_MAX: usize = 1_024;

/// First read size of a connection; doubled while reads fill the buffer, up
/// to [`READ_CHUNK_BYTES`], and halved back when they do not.
const READ_SIZE_MIN_BYTES: usize = 512;

/// Buffers above this capacity are freed once empty, so 10,000 idle
/// connections do not each keep the memory of their largest request.
const IDLE_BUFFER_BYTES_MAX: usize = 4 * 1024;

fn release_if_large(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER_BYTES_MAX {
        *buffer = Vec::new();
    }
}

async fn write_all<S: AsyncWriteExt + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), ()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match shard::deadline(Duration::from_millis(WRITE_MS), write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
