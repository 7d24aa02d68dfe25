//! An in-process transcript driver: request bytes in, reply bytes out, the
//! real pipeline and stores, no TLS and no socket.
//!
//! For byte-exact tests that need no network and for fuzzing whole
//! sessions. Sleeps (`noop:<ms>`) end at once ([`InstantClock`]), and every
//! reply a line will get is produced before [`Transcript::feed`] returns
//! (in-flight writes are awaited), so a transcript's output depends only on
//! its input.

use std::net::IpAddr;
use std::sync::Arc;

use super::lines::LineBuffer;
use super::pipeline::{Pipeline, Progress};
use crate::auth::challenge::RandomnessFailed;
use crate::clock::{Clock, InstantClock};
use crate::context::ServerContext;
use crate::limits::LINE_BYTES_MAX;

/// One simulated connection. Its clock is [`InstantClock`] unless a test
/// brings one that records what the server slept.
pub struct Transcript<C: Clock = InstantClock> {
    pipeline: Pipeline<C>,
    input: LineBuffer,
    closed: bool,
}

impl Transcript {
    /// What a new connection receives before it sends anything.
    pub const GREETING: &'static [u8] = b"@";

    /// A new connection to `server` (its greeting is [`Self::GREETING`]).
    pub fn new(server: Arc<ServerContext>) -> Result<Transcript, RandomnessFailed> {
        Transcript::with_clock(server, InstantClock, None)
    }
}

impl<C: Clock> Transcript<C> {
    /// A new connection with its own clock, as if from `peer`.
    pub fn with_clock(
        server: Arc<ServerContext>,
        clock: C,
        peer: Option<IpAddr>,
    ) -> Result<Transcript<C>, RandomnessFailed> {
        Ok(Transcript {
            pipeline: Pipeline::new(server, clock, peer)?,
            input: LineBuffer::new(LINE_BYTES_MAX),
            closed: false,
        })
    }

    /// Feeds `bytes` as if they arrived from the client and returns every
    /// reply they complete, in order. Once the connection has closed, later
    /// bytes get nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        self.input.extend(bytes);
        futures_lite::future::block_on(async {
            loop {
                match self.pipeline.answer(&mut self.input, &mut out).await {
                    Progress::WriteOut => continue,
                    Progress::NeedInput => {
                        if self.pipeline.flush(&mut out).await == super::Flow::Close {
                            self.closed = true;
                        }
                        break;
                    }
                    Progress::Close => {
                        self.closed = true;
                        break;
                    }
                }
            }
            self.pipeline.run_follow_ups().await;
        });
        self.input.compact();
        out
    }

    /// Sends one line (a `\n` is added) and returns its reply as text.
    pub fn send(&mut self, line: &str) -> String {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        String::from_utf8_lossy(&self.feed(&bytes)).into_owned()
    }

    /// The monitor lines the connection would write now (the replay's
    /// pages and whatever was published live), as the I/O task writes
    /// them between replies; empty when it is not a monitor.
    pub fn notifications(&mut self) -> String {
        let mut out = Vec::new();
        if self.closed {
            return String::new();
        }
        while self.pipeline.monitor_has_work() {
            if self
                .pipeline
                .write_notifications(&mut out, std::time::Instant::now())
                == super::Flow::Close
            {
                self.closed = true;
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether the server side has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
