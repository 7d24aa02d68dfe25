//! The request pipeline of one connection, without I/O: lines in, reply
//! bytes out, in request order.
//!
//! Each line goes through the gate ([`crate::verbs::gate`]); what passes is
//! run by its row's ordering class. Writes are handed to the storage actor
//! without waiting and answered, in order, once durable ([`InFlight`]); a
//! keyed read runs at once unless a write to its key is in flight; every
//! other verb first waits for all in-flight writes, so a client always reads
//! its own writes. Nothing here touches a socket: the I/O task
//! ([`super::serve`]) and the in-process transcript driver
//! ([`super::transcript`]) both drive it.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inflight::{InFlight, Slot, WriteReply};
use super::lines::LineBuffer;
use crate::auth::challenge::{RandomnessFailed, uuid_v4};
use crate::clock::Clock;
use crate::connection::ConnectionState;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::limits::{
    IDLE_BUFFER_BYTES_MAX, INFLIGHT_REPLIES_MAX, INFLIGHT_WRITE_BYTES_MAX, LINE_BYTES_MAX,
    REPLY_BUFFER_BYTES_MAX, STORE_WAIT_MS, UNAUTH_LINE_BYTES_MAX,
};
use crate::monitors::MonitorSignal;
use crate::protocol::command::Command;
use crate::protocol::frame::Frame;
use crate::protocol::reply;
use crate::remote::peers::PeerAccess;
use crate::storage::{KeyWrite, PendingWrite, StoreError, WriteRequest};
use crate::verbs::table::Ordering;
use crate::verbs::{self, FollowUp, Monitoring, Planned, PreparedWrite, Reply, Verdict};

/// AT0005 for a line over `limit` (the reference's text, naming the limit
/// that applied).
pub fn line_too_long(limit: usize) -> AtError {
    AtError::new(
        AtCode::BufferLimit,
        format!(
            "InboundBuffer overflow: server received request which exceeded the buffer size limit of {limit} bytes. Terminating the connection."
        ),
    )
}

/// AT0005 for a read the process's input budget cannot take.
pub fn input_budget_exhausted(budget: usize) -> AtError {
    AtError::new(
        AtCode::BufferLimit,
        format!(
            "InboundBuffer overflow: the server's input buffers are full ({budget} bytes for connections in this state). Terminating the connection."
        ),
    )
}

/// AT0002 for a write the store did not answer in time.
fn store_timed_out() -> AtError {
    AtError::new(
        AtCode::DataStore,
        format!("the data store did not answer within {STORE_WAIT_MS} ms"),
    )
}

/// Whether the connection goes on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Why [`Pipeline::answer`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every complete line is answered or in flight: read more.
    NeedInput,
    /// The reply buffer is full: write it out, then call again.
    WriteOut,
    /// Write what is buffered, then close.
    Close,
}

/// A write the store is taking, and what its in-flight slot holds.
struct Submitted {
    /// The key reads wait for while the write is in flight.
    key: String,
    companion_key: Option<String>,
    line_bytes: usize,
    follow_up: Option<Box<FollowUp>>,
    reply: WriteReply,
}

/// One connection's request pipeline.
pub struct Pipeline<C: Clock> {
    server: Arc<ServerContext>,
    state: ConnectionState,
    inflight: InFlight,
    clock: C,
    /// Reused buffer for reply payloads: no allocation per request.
    payload: String,
    /// Reused buffer for the assembled key of a keyed read.
    key: String,
    /// Reused buffer for a line that normalisation had to change.
    normalized: String,
    /// The way to other atServers, of the shard this connection runs on.
    peers: Rc<dyn PeerAccess>,
    /// Set once the connection ran `monitor`.
    monitoring: Option<Monitoring>,
    /// What follows writes that are durable and answered (stats lines,
    /// auto-notifications), run once their replies are written.
    follow_ups: Vec<FollowUp>,
}

impl<C: Clock> Pipeline<C> {
    /// A new connection's pipeline, with a fresh session id (which needs
    /// the random-number source).
    pub fn new(
        server: Arc<ServerContext>,
        clock: C,
        peer: Option<IpAddr>,
    ) -> Result<Pipeline<C>, RandomnessFailed> {
        let session_id = format!("_{}", uuid_v4(&server.rng)?);
        let tenant = server.sole_tenant().cloned();
        Ok(Pipeline {
            state: ConnectionState::new(session_id, peer, tenant, Instant::now()),
            server,
            inflight: InFlight::default(),
            clock,
            payload: String::new(),
            key: String::new(),
            normalized: String::new(),
            peers: crate::remote::peers::of_this_shard(),
            monitoring: None,
            follow_ups: Vec::new(),
        })
    }

    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// Hands the connection the client certificate of its TLS session.
    pub fn set_peer_certificate(
        &mut self,
        certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    ) {
        self.state.set_peer_certificate(certificate);
    }

    /// The longest line the connection may send now: small until it has
    /// authenticated.
    pub fn line_bytes_max(&self) -> usize {
        if self.state.is_authenticated() {
            LINE_BYTES_MAX
        } else {
            UNAUTH_LINE_BYTES_MAX
        }
    }

    /// Whether replies are waiting for in-flight writes.
    pub fn has_pending(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Whether the connection may read more requests: false once
    /// [`INFLIGHT_REPLIES_MAX`] replies or [`INFLIGHT_WRITE_BYTES_MAX`] bytes
    /// of writes are pending.
    pub fn can_take_more(&self) -> bool {
        self.inflight.len() < INFLIGHT_REPLIES_MAX
            && self.inflight.write_bytes() < INFLIGHT_WRITE_BYTES_MAX
    }

    /// Answers the complete lines in `input`, appending replies to `out`,
    /// until it needs more input, must write out, or must close.
    pub async fn answer(&mut self, input: &mut LineBuffer, out: &mut Vec<u8>) -> Progress {
        loop {
            input.set_line_bytes_max(self.line_bytes_max());
            match input.next_line() {
                Frame::Line(line) => {
                    if self.handle_line(line, out).await == Flow::Close {
                        return Progress::Close;
                    }
                    if out.len() + self.inflight.ready_bytes() >= REPLY_BUFFER_BYTES_MAX {
                        // Large replies: send what is due before computing
                        // more, so memory stays bounded.
                        if self.flush(out).await == Flow::Close {
                            return Progress::Close;
                        }
                        return Progress::WriteOut;
                    }
                }
                Frame::Incomplete => {
                    return match self.emit_ready(out) {
                        Flow::Continue => Progress::NeedInput,
                        Flow::Close => Progress::Close,
                    };
                }
                Frame::TooLong => {
                    let error = line_too_long(input.line_bytes_max());
                    self.flush(out).await;
                    self.state.write_error(&error, out);
                    return Progress::Close;
                }
            }
        }
    }

    /// Handles one request line (without its `\n`). Its reply is appended to
    /// `out`, or queued behind replies that are not known yet.
    pub async fn handle_line(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Flow {
        let mut normalized = std::mem::take(&mut self.normalized);
        let flow = match verbs::gate::admit(&mut self.state, raw, &mut normalized, Instant::now) {
            Verdict::Exit => {
                self.flush(out).await;
                Flow::Close
            }
            Verdict::Refuse(error) => self.queue_error(&error, out).await,
            Verdict::Run(planned) => self.run(planned, raw.len(), out).await,
        };
        self.normalized = normalized;
        flow
    }

    /// Runs a planned line of `line_bytes` by its row's ordering class.
    async fn run(&mut self, planned: Planned<'_>, line_bytes: usize, out: &mut Vec<u8>) -> Flow {
        if let Some(prepared) = verbs::prepare_received_notification(&planned, &self.server.rng) {
            return self.receive_notification(prepared, line_bytes, out).await;
        }
        if let Some(prepared) =
            verbs::prepare_outgoing_notification(&self.server, &planned, &self.server.rng)
        {
            return self.send_notification(prepared, line_bytes, out).await;
        }
        match planned.row.ordering {
            Ordering::Write => match verbs::prepare_write(planned) {
                Ok(write) => self.submit(write, line_bytes, out).await,
                Err(error) => self.queue_error(&error, out).await,
            },
            Ordering::KeyedRead => match verbs::read_key(&planned.command) {
                Some(key) => {
                    let mut assembled = std::mem::take(&mut self.key);
                    key.assemble_into(&mut assembled);
                    let flow = self.keyed_read(planned, &assembled, out).await;
                    self.key = assembled;
                    flow
                }
                None => self.barrier(planned, out).await,
            },
            Ordering::Barrier => self.barrier(planned, out).await,
        }
    }

    /// Runs a command after every in-flight write has completed.
    async fn barrier(&mut self, planned: Planned<'_>, out: &mut Vec<u8>) -> Flow {
        if self.flush(out).await == Flow::Close {
            return Flow::Close;
        }
        if matches!(planned.command, Command::Monitor(_)) {
            return self.start_monitor(planned, out);
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        let result = verbs::run(
            &self.server,
            &mut self.state,
            planned,
            &self.clock,
            self.peers.as_ref(),
            &mut payload,
        )
        .await;
        let flow = self.respond(result, &payload, out);
        self.payload = payload;
        flow
    }

    /// A notification another atServer delivers: submitted to the store
    /// without waiting, like an owner's write, so a peer's window of
    /// notifications shares the actor's batches; answered `data:success`
    /// in order once durable, its cached copy and monitor line following.
    async fn receive_notification(
        &mut self,
        prepared: Result<verbs::Received, AtError>,
        line_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Flow {
        let received = match prepared {
            Ok(verbs::Received::Store(received)) => received,
            // Acknowledged so the sender stops, kept nowhere.
            Ok(verbs::Received::Expired) => return self.queue_data("success", out),
            Err(error) => return self.queue_error(&error, out).await,
        };
        let store = received.tenant.store.clone();
        let submitted = store.submit_put_notification(received.record.clone());
        let slot = Submitted {
            // Reads of the cached copy it may write wait for it.
            key: received.copy_key(),
            companion_key: None,
            line_bytes,
            follow_up: Some(Box::new(FollowUp::Received(received))),
            reply: WriteReply::Text("success".to_string()),
        };
        self.queue_submitted(submitted, slot, out).await
    }

    /// An owner's notification to another atServer: stored without
    /// waiting, answered `data:<id>` in order once durable, then handed to
    /// the courier.
    async fn send_notification(
        &mut self,
        prepared: Result<verbs::Outgoing, AtError>,
        line_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Flow {
        let outgoing = match prepared {
            Ok(verbs::Outgoing::Queue(outgoing)) => outgoing,
            Ok(verbs::Outgoing::Answered(id)) => return self.queue_data(&id, out),
            Err(error) => return self.queue_error(&error, out).await,
        };
        let id = outgoing.record.id.clone();
        let store = outgoing.tenant.store.clone();
        let submitted = store.submit_put_notification(outgoing.record.clone());
        let slot = Submitted {
            key: format!("notification:{id}"),
            companion_key: None,
            line_bytes,
            follow_up: Some(Box::new(FollowUp::Sent(outgoing))),
            reply: WriteReply::Text(id),
        };
        self.queue_submitted(submitted, slot, out).await
    }

    /// `data:<payload>` in request order: at once, or behind the replies
    /// that are not known yet.
    fn queue_data(&mut self, payload: &str, out: &mut Vec<u8>) -> Flow {
        let mut reply = Vec::new();
        let flow = self.respond(Ok(Reply::Data), payload, &mut reply);
        if self.inflight.is_empty() {
            out.extend_from_slice(&reply);
        } else {
            self.inflight.push_ready(reply);
        }
        flow
    }

    /// `monitor`: no reply at all; from now on the connection's
    /// notifications are written between its replies, which lose their
    /// prompt. A second `monitor` replaces the first.
    fn start_monitor(&mut self, planned: Planned<'_>, out: &mut Vec<u8>) -> Flow {
        match verbs::start_monitor(planned, Instant::now()) {
            Ok(monitoring) => {
                self.monitoring = Some(monitoring);
                self.state.set_monitoring();
                Flow::Continue
            }
            Err(error) => self.respond(Err(error), "", out),
        }
    }

    /// The monitor's wake-up, when the connection is one.
    pub fn monitor_signal(&self) -> Option<MonitorSignal> {
        self.monitoring.as_ref().map(Monitoring::signal)
    }

    /// Whether monitor lines can be written now without waiting.
    pub fn monitor_has_work(&self) -> bool {
        self.monitoring.as_ref().is_some_and(Monitoring::has_work)
    }

    /// When the monitor's next stats notification is due.
    pub fn next_stats(&self) -> Option<Instant> {
        self.monitoring.as_ref().map(Monitoring::next_stats)
    }

    /// Appends the monitor lines that are due (and the stats notification
    /// when `now` has reached it). Called only between whole replies: `out`
    /// never holds part of one here.
    pub fn write_notifications(&mut self, out: &mut Vec<u8>, now: Instant) -> Flow {
        let Some(monitoring) = self.monitoring.as_mut() else {
            return Flow::Continue;
        };
        let now_ms = crate::storage::actor::now_ms();
        if now >= monitoring.next_stats() {
            monitoring.write_stats(out, now, now_ms);
        }
        match monitoring.write_due(out, now_ms) {
            Ok(()) => Flow::Continue,
            Err(error) => {
                tracing::debug!(%error, "monitor closed");
                self.state.write_error(&error, out);
                Flow::Close
            }
        }
    }

    /// Reads `key` at once unless a write to it is in flight; the reply
    /// queues behind earlier replies that are not known yet.
    async fn keyed_read(&mut self, planned: Planned<'_>, key: &str, out: &mut Vec<u8>) -> Flow {
        if self.inflight.touches(key) && self.flush(out).await == Flow::Close {
            return Flow::Close;
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        let result = verbs::run_keyed_read(planned, key, &mut payload);
        let flow = match result {
            Err(error) if error.close || !self.inflight.is_empty() => {
                self.queue_error(&error, out).await
            }
            result if self.inflight.is_empty() => self.respond(result, &payload, out),
            result => {
                let mut reply = Vec::new();
                let flow = self.respond(result, &payload, &mut reply);
                self.inflight.push_ready(reply);
                flow
            }
        };
        self.payload = payload;
        flow
    }

    /// The one place a handler's result becomes reply bytes.
    fn respond(&self, result: Result<Reply, AtError>, payload: &str, out: &mut Vec<u8>) -> Flow {
        match result {
            Ok(Reply::Data) => reply::data(out, payload, self.state.prompt()),
            Ok(Reply::DataSpaced) => reply::data_spaced(out, payload, self.state.prompt()),
            Ok(Reply::BarePrompt) => reply::bare_prompt(out, self.state.prompt()),
            Err(error) => {
                self.state.write_error(&error, out);
                if error.close {
                    return Flow::Close;
                }
            }
        }
        Flow::Continue
    }

    /// Hands a write (with its companion, as one atomic request) to the
    /// storage actor without waiting for it to be durable; `line_bytes`
    /// counts against the connection's in-flight write bytes until it is
    /// answered, and against the atSign's queued bytes until the actor
    /// takes it.
    async fn submit(&mut self, write: PreparedWrite, line_bytes: usize, out: &mut Vec<u8>) -> Flow {
        let PreparedWrite {
            tenant,
            key,
            commit,
            mutate,
            companion,
            follow_up,
        } = write;
        let companion_key = companion.as_ref().map(|companion| companion.key.clone());
        let request = WriteRequest {
            write: KeyWrite::new(key.clone(), commit, mutate),
            companion,
            request_bytes: line_bytes,
        };
        let submitted = tenant.store.submit_request(request);
        let slot = Submitted {
            key,
            companion_key,
            line_bytes,
            follow_up,
            reply: WriteReply::CommitId,
        };
        self.queue_submitted(submitted, slot, out).await
    }

    /// Waits, at most [`STORE_WAIT_MS`], for the store to take a write,
    /// then queues its reply slot: the one way a write joins the
    /// connection's in-flight queue.
    async fn queue_submitted(
        &mut self,
        submitted: impl std::future::Future<Output = Result<PendingWrite, StoreError>>,
        slot: Submitted,
        out: &mut Vec<u8>,
    ) -> Flow {
        let submitted = self
            .clock
            .deadline(Duration::from_millis(STORE_WAIT_MS), submitted)
            .await;
        match submitted {
            Ok(Ok(pending)) => self.inflight.push_write(
                slot.key,
                slot.companion_key,
                slot.line_bytes,
                pending,
                slot.follow_up,
                slot.reply,
            ),
            Ok(Err(error)) => return self.queue_error(&error.into(), out).await,
            Err(_) => {
                // The store took nothing for the whole wait: as for a write
                // it does not answer, give up on this connection's writes.
                self.abandon_writes(out);
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Queues an error reply in order; an error that closes the connection
    /// first lets everything before it be answered.
    async fn queue_error(&mut self, error: &AtError, out: &mut Vec<u8>) -> Flow {
        if error.close {
            self.flush(out).await;
            self.state.write_error(error, out);
            return Flow::Close;
        }
        if self.inflight.is_empty() {
            self.state.write_error(error, out);
        } else {
            let mut reply = Vec::new();
            self.state.write_error(error, &mut reply);
            self.inflight.push_ready(reply);
        }
        Flow::Continue
    }

    /// Answers everything queued, then `error` (which closes the connection).
    pub async fn close_with(&mut self, error: &AtError, out: &mut Vec<u8>) {
        self.flush(out).await;
        self.state.write_error(error, out);
    }

    /// Resolves once the oldest in-flight write is durable, or with
    /// `false` when the store has not answered it within
    /// [`STORE_WAIT_MS`]: a hung disk shows as an error, not as a
    /// connection pinned forever.
    pub async fn oldest_write_done(&mut self) -> bool {
        let limit = Duration::from_millis(STORE_WAIT_MS);
        self.clock
            .deadline(limit, self.inflight.wait_front())
            .await
            .is_ok()
    }

    /// Resolves once the oldest in-flight write is durable, with no deadline
    /// of its own: the connection loop puts one deadline on its whole wait.
    pub async fn oldest_write_durable(&mut self) {
        self.inflight.wait_front().await;
    }

    /// Gives up on the in-flight writes (the store did not answer in time):
    /// their replies are dropped and AT0002 closes the connection.
    pub fn abandon_writes(&mut self, out: &mut Vec<u8>) {
        tracing::error!(
            waiting = self.inflight.len(),
            "the data store did not answer within {STORE_WAIT_MS} ms: closing the connection"
        );
        self.inflight.clear();
        self.state.write_error(&store_timed_out(), out);
    }

    /// Waits for every in-flight write and appends all queued replies, in
    /// request order. Stops at an error that closes the connection (and at
    /// a store that does not answer within [`STORE_WAIT_MS`]).
    pub async fn flush(&mut self, out: &mut Vec<u8>) -> Flow {
        while !self.inflight.is_empty() {
            if !self.oldest_write_done().await {
                self.abandon_writes(out);
                return Flow::Close;
            }
            if self.emit_ready(out) == Flow::Close {
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Appends the replies at the front of the queue that are known by now,
    /// without waiting. Stops at an error that closes the connection.
    pub fn emit_ready(&mut self, out: &mut Vec<u8>) -> Flow {
        loop {
            let outcome = match self.inflight.front_mut() {
                None => return Flow::Continue,
                Some(Slot::Ready(_)) => None,
                Some(Slot::Write { pending, .. }) => match pending.try_outcome() {
                    Some(outcome) => Some(outcome),
                    None => return Flow::Continue,
                },
            };
            let Some(slot) = self.inflight.pop_front() else {
                return Flow::Continue;
            };
            match (slot, outcome) {
                (Slot::Ready(bytes), _) => out.extend_from_slice(&bytes),
                (
                    Slot::Write {
                        follow_up, reply, ..
                    },
                    Some(result),
                ) => {
                    let mut payload = std::mem::take(&mut self.payload);
                    payload.clear();
                    if let (Ok(outcome), Some(follow_up)) = (&result, follow_up)
                        && follow_up.wanted(outcome.existed)
                    {
                        self.follow_ups.push(*follow_up);
                    }
                    let result = result.map_err(AtError::from).map(|outcome| {
                        match reply {
                            WriteReply::CommitId => {
                                verbs::write::write_commit_id(&mut payload, outcome.commit_id)
                            }
                            WriteReply::Text(text) => payload.push_str(&text),
                        }
                        Reply::Data
                    });
                    let flow = self.respond(result, &payload, out);
                    self.payload = payload;
                    if flow == Flow::Close {
                        self.inflight.clear();
                        return Flow::Close;
                    }
                }
                (Slot::Write { .. }, None) => {}
            }
        }
    }

    /// Whether durable writes have follow-ups to run.
    pub fn has_follow_ups(&self) -> bool {
        !self.follow_ups.is_empty()
    }

    /// Runs what follows the writes answered so far (call after their
    /// replies are written: an auto-notification never delays a reply).
    pub async fn run_follow_ups(&mut self) {
        for follow_up in std::mem::take(&mut self.follow_ups) {
            verbs::run_follow_up(&self.server, &follow_up, &self.server.rng).await;
        }
    }

    /// Frees scratch buffers a burst grew, once the connection is quiet.
    pub fn release_buffers(&mut self) {
        for buffer in [&mut self.payload, &mut self.key, &mut self.normalized] {
            if buffer.capacity() > IDLE_BUFFER_BYTES_MAX {
                *buffer = String::new();
            }
        }
    }
}
