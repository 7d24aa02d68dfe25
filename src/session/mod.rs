//! One client connection: the I/O task, and the logic it drives.
//!
//! [`serve`] only does TLS, reads and writes: it reads whatever the socket
//! has into the connection's [`LineBuffer`], lets the [`Pipeline`] answer
//! every complete line in order (pipelined requests are fine), and writes
//! all the replies of one read in one write. Every network await has a
//! deadline. The pipeline touches no socket, so [`transcript`] drives the
//! same logic in-process.

pub mod fuzzing;
pub mod inflight;
pub mod io;
pub mod lines;
pub mod pipeline;
pub mod transcript;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, FutureExt};

use crate::clock::Clock;
use crate::context::ServerContext;
use crate::limits::{
    IDLE_BUFFER_BYTES_MAX, LINE_BYTES_MAX, READ_CHUNK_BYTES, READ_SIZE_MIN_BYTES, STORE_WAIT_MS,
    STREAMING_TURN_MS,
};
pub use inflight::InFlight;
pub use lines::LineBuffer;
pub use pipeline::{Flow, Pipeline, Progress};
pub use transcript::Transcript;

/// A future, and whether it had to wait (returned `Pending`) before it
/// was ready.
struct PendedOnce<F> {
    future: F,
    pended: bool,
}

impl<F> PendedOnce<F> {
    fn new(future: F) -> PendedOnce<F> {
        PendedOnce {
            future,
            pended: false,
        }
    }
}

impl<F: std::future::Future + Unpin> std::future::Future for PendedOnce<F> {
    type Output = (F::Output, bool);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match std::pin::Pin::new(&mut self.future).poll(cx) {
            std::task::Poll::Ready(output) => std::task::Poll::Ready((output, self.pended)),
            std::task::Poll::Pending => {
                self.pended = true;
                std::task::Poll::Pending
            }
        }
    }
}

/// What woke the connection loop.
enum Event {
    Read(std::io::Result<usize>),
    /// Nothing came for the connection's idle deadline.
    Idle,
    WriteDone,
    /// The store did not answer the oldest in-flight write in time.
    StoreTimedOut,
    /// Evicted to make room for a newcomer while still unauthenticated.
    Evicted,
    /// A monitor connection has notification lines to write (or its stats
    /// notification is due).
    Notifications,
}

/// Serves one accepted connection until either side ends it.
pub async fn serve<S, C>(server: Arc<ServerContext>, stream: S, peer: Option<SocketAddr>, clock: C)
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    if !server.is_accepting() {
        return;
    }
    let admission = server.admission.clone();
    let mut ticket = match admission.admit(peer.map(|p| p.ip())) {
        Ok(ticket) => ticket,
        Err(refusal) => {
            tracing::debug!(?peer, %refusal, "connection refused");
            io::refuse(&clock, &admission, server.tls.clone(), stream, &refusal).await;
            return;
        }
    };
    let handshake = io::accept_tls(
        &clock,
        server.tls.clone(),
        stream,
        admission.handshake_limit(),
    );
    let handshake = async { Some(handshake.await) }.or(async {
        ticket.evicted().await;
        None
    });
    let mut tls = match handshake.await {
        Some(Ok(tls)) => tls,
        Some(Err(error)) => {
            tracing::debug!(?peer, %error, "no TLS session");
            return;
        }
        None => {
            tracing::debug!(?peer, "evicted during its TLS handshake");
            return;
        }
    };
    ticket.handshake_done();
    if io::write_all(&clock, &mut tls, Transcript::GREETING)
        .await
        .is_err()
    {
        return;
    }
    let mut pipeline = match Pipeline::new(server.clone(), clock.clone(), peer.map(|p| p.ip())) {
        Ok(pipeline) => pipeline,
        Err(error) => {
            tracing::error!(?peer, %error, "connection refused");
            io::close(&clock, &mut tls).await;
            return;
        }
    };
    // Another atServer presents its certificate here; `from:` checks it.
    pipeline.set_peer_certificate(io::peer_certificate(&tls));
    let mut input = LineBuffer::new(LINE_BYTES_MAX);
    let mut out: Vec<u8> = Vec::new();
    // Idle connections hold small buffers; busy ones grow theirs.
    let mut read_size = READ_SIZE_MIN_BYTES;
    // The idle deadline runs from the last complete line, so a client that
    // trickles a partial line cannot keep the connection alive forever.
    let mut last_line = Instant::now();
    // Since when this task has run without its wait ever having to wait
    // (input always there): a shard runs one task at a time, so such a
    // connection must give the others a turn now and then.
    let mut busy_since: Option<Instant> = None;
    // One clock read per turn of the loop, taken when its wait ends: the
    // idle deadline, the streaming turn and the last line's time all use
    // it (a turn lasts microseconds, far below any of those bounds).
    let mut now = last_line;
    'connection: loop {
        if pipeline.state().is_authenticated() {
            ticket.authenticated();
        }
        // Wait for input, or for the oldest in-flight write to become
        // durable, whichever comes first: a pipelining client keeps sending
        // while its earlier writes are being committed.
        // One deadline on the whole wait (one timer per wait, not one per
        // thing waited for): with writes in flight, how long the store may
        // take to answer; otherwise, how long the connection may stay idle.
        let writes_pending = pipeline.has_pending();
        let idle_limit = (last_line + ticket.idle_limit()).saturating_duration_since(now);
        let mut limit = if writes_pending {
            Duration::from_millis(STORE_WAIT_MS)
        } else {
            idle_limit
        };
        // A monitor also wakes for its stats notification.
        let stats_at = pipeline.next_stats();
        if let Some(at) = stats_at {
            limit = limit.min(at.saturating_duration_since(now));
        }
        let monitor = pipeline.monitor_signal();
        let monitor_busy = pipeline.monitor_has_work();
        let may_read = pipeline.can_take_more();
        let spare_len = if may_read { read_size } else { 0 };
        let event = {
            let room = input.spare(spare_len);
            let read = async {
                if may_read {
                    Event::Read(tls.read(room).await)
                } else {
                    futures_lite::future::pending().await
                }
            };
            let write_done = async {
                if !writes_pending {
                    futures_lite::future::pending::<()>().await;
                }
                pipeline.oldest_write_durable().await;
                Event::WriteDone
            };
            let evicted = async {
                ticket.evicted().await;
                Event::Evicted
            };
            let notified = async {
                match &monitor {
                    _ if monitor_busy => {}
                    Some(signal) => signal.ready().await,
                    None => futures_lite::future::pending::<()>().await,
                }
                Event::Notifications
            };
            // Notifications first: a busy client must not starve its monitor.
            let wait =
                std::pin::pin!(clock.deadline(limit, notified.or(read).or(write_done).or(evicted)));
            let (waited, pended) = PendedOnce::new(wait).await;
            now = Instant::now();
            if pended {
                busy_since = None;
            } else {
                busy_since.get_or_insert(now);
            }
            match waited {
                Ok(event) => event,
                Err(_) if stats_at.is_some_and(|at| now >= at) => Event::Notifications,
                Err(_) if writes_pending => Event::StoreTimedOut,
                Err(_) => Event::Idle,
            }
        };
        if matches!(
            event,
            Event::Read(_) | Event::WriteDone | Event::Notifications
        ) {
            crate::clock::mark_progress(now);
        }
        let progress = match event {
            Event::Notifications => {
                input.filled(spare_len, 0);
                match pipeline.write_notifications(&mut out, now) {
                    Flow::Continue => Progress::NeedInput,
                    Flow::Close => Progress::Close,
                }
            }
            Event::WriteDone => {
                input.filled(spare_len, 0);
                match pipeline.emit_ready(&mut out) {
                    Flow::Continue => Progress::NeedInput,
                    Flow::Close => Progress::Close,
                }
            }
            Event::Evicted => {
                tracing::debug!(?peer, "evicted while unauthenticated");
                break;
            }
            Event::StoreTimedOut => {
                input.filled(spare_len, 0);
                pipeline.abandon_writes(&mut out);
                Progress::Close
            }
            Event::Read(Ok(0) | Err(_)) => break,
            Event::Idle => {
                tracing::debug!(?peer, "idle connection closed");
                break;
            }
            Event::Read(Ok(read)) => {
                input.filled(spare_len, read);
                read_size = if read == read_size {
                    (read_size * 2).min(READ_CHUNK_BYTES)
                } else {
                    READ_SIZE_MIN_BYTES.max(read_size / 2)
                };
                if ticket.hold_input(input.capacity()) {
                    let lines_before = input.lines_taken();
                    let progress = loop {
                        match pipeline.answer(&mut input, &mut out).await {
                            Progress::WriteOut => {
                                if io::write_all(&clock, &mut tls, &out).await.is_err() {
                                    break 'connection;
                                }
                                out.clear();
                            }
                            done => break done,
                        }
                    };
                    if input.lines_taken() != lines_before {
                        last_line = now;
                    }
                    progress
                } else {
                    let limits = admission.limits();
                    let budget = if ticket.is_unauthenticated() {
                        limits.unauth_input_budget_bytes
                    } else {
                        limits.input_budget_bytes
                    };
                    tracing::warn!(?peer, budget, "input budget exhausted: closing");
                    pipeline
                        .close_with(&pipeline::input_budget_exhausted(budget), &mut out)
                        .await;
                    Progress::Close
                }
            }
        };
        input.compact();
        if !out.is_empty() {
            if io::write_all(&clock, &mut tls, &out).await.is_err() {
                break 'connection;
            }
            out.clear();
        }
        if pipeline.has_follow_ups() {
            pipeline.run_follow_ups().await;
        }
        if read_size == READ_SIZE_MIN_BYTES && !pipeline.has_pending() {
            // The connection has gone quiet: give back what a burst grew.
            input.release_if_idle();
            if out.capacity() > IDLE_BUFFER_BYTES_MAX {
                out = Vec::new();
            }
            pipeline.release_buffers();
        }
        ticket.hold_input(input.capacity());
        if progress == Progress::Close {
            break;
        }
        if busy_since.is_some_and(|since| {
            now.saturating_duration_since(since) >= Duration::from_millis(STREAMING_TURN_MS)
        }) {
            // A socket that always has more input never makes the read
            // wait: without this, one client streaming megabytes would
            // starve every other connection of its shard. A
            // request-response client waits every time, so it never pays
            // for the extra turn. The turn goes through the reactor, so
            // connections whose input arrived meanwhile run before this one.
            clock.yield_to_io().await;
            busy_since = None;
        }
    }
    // Writes answered just before the end still get what follows them.
    pipeline.run_follow_ups().await;
    io::close(&clock, &mut tls).await;
}
