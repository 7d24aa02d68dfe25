//! The state of one connection and the per-line driver.

use std::sync::Arc;
use std::time::Instant;

use super::inflight::{InFlight, Slot};
use crate::auth::challenge::{Challenge, uuid_v4};
use crate::context::{ServerContext, Tenant};
use crate::error::{AtCode, AtError};
use crate::limits::{AUTH_FAILURES_MAX, UNAUTH_COMMANDS_PER_SEC_MAX};
use crate::protocol::frame::trim_line;
use crate::protocol::parse::normalize;
use crate::protocol::reply::{self, ErrorStyle, Prompt};
use crate::verbs::{self, PreparedWrite, Step};

/// Whether the connection goes on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Who the connection has proven to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// The owner of the tenant, by cram.
    Cram,
    /// The owner of the tenant, by pkam with the legacy key.
    Pkam,
}

pub struct Session {
    pub ctx: Arc<ServerContext>,
    /// `_<uuid>`, fixed for the connection's life.
    pub session_id: String,
    /// The hosted atSign this connection talks to, once known.
    pub tenant: Option<Arc<Tenant>>,
    pub auth: Auth,
    /// The outstanding `from:` challenge (single use).
    pub challenge: Option<Challenge>,
    pub error_style: ErrorStyle,
    pub auth_failures: u32,
    /// Reused buffer for reply payloads: no allocation per request.
    pub payload: String,
    /// Reused buffer for assembling the key of a read.
    key_scratch: String,
    rate_window_start: Instant,
    rate_window_count: u32,
}

impl Session {
    pub fn new(ctx: Arc<ServerContext>) -> Session {
        let session_id = format!("_{}", uuid_v4(&ctx.rng));
        let tenant = ctx.sole_tenant().cloned();
        Session {
            ctx,
            session_id,
            tenant,
            auth: Auth::None,
            challenge: None,
            error_style: ErrorStyle::Legacy,
            auth_failures: 0,
            payload: String::new(),
            key_scratch: String::new(),
            rate_window_start: Instant::now(),
            rate_window_count: 0,
        }
    }

    pub fn is_owner(&self) -> bool {
        self.auth != Auth::None
    }

    /// The tenant of an owner-authenticated connection.
    pub fn owner(&self) -> Option<&Arc<Tenant>> {
        if self.is_owner() {
            self.tenant.as_ref()
        } else {
            None
        }
    }

    pub fn idle_limit_ms(&self) -> u64 {
        if self.is_owner() {
            self.ctx.limits.idle_auth_ms
        } else {
            self.ctx.limits.idle_unauth_ms
        }
    }

    pub fn prompt(&self) -> Prompt<'_> {
        match self.owner() {
            Some(tenant) => Prompt::Owner(&tenant.atsign),
            None => Prompt::Anonymous,
        }
    }

    /// Counts an unauthenticated command; false when over the rate limit.
    fn within_rate_limit(&mut self) -> bool {
        if self.is_owner() {
            return true;
        }
        if self.rate_window_start.elapsed().as_secs() >= 1 {
            self.rate_window_start = Instant::now();
            self.rate_window_count = 0;
        }
        self.rate_window_count += 1;
        self.rate_window_count <= UNAUTH_COMMANDS_PER_SEC_MAX
    }

    /// Records a failed cram/pkam; the connection closes after too many.
    pub fn auth_failure(&mut self, message: &str) -> AtError {
        self.auth_failures += 1;
        self.auth = Auth::None;
        let error = AtError::new(AtCode::AuthFailed, message);
        if self.auth_failures >= AUTH_FAILURES_MAX {
            error.closing()
        } else {
            error
        }
    }

    /// Frees the reply scratch buffer after a large reply.
    pub fn release_buffers(&mut self) {
        if self.payload.capacity() > 4 * 1024 {
            self.payload = String::new();
        }
    }

    pub fn write_error(&self, error: &AtError, out: &mut Vec<u8>) {
        if error.response_object {
            reply::response_error(out, error.code.code(), &error.message, self.prompt());
            return;
        }
        match self.owner() {
            Some(tenant) => reply::error(out, error, self.error_style, true, &tenant.atsign),
            None => reply::error(out, error, self.error_style, false, ""),
        }
    }

    /// Handles one request line. Its reply is appended to `out`, or queued in
    /// `inflight` behind replies that are not known yet.
    pub async fn handle_line(
        &mut self,
        raw: &[u8],
        inflight: &mut InFlight,
        out: &mut Vec<u8>,
    ) -> Flow {
        let line = trim_line(raw);
        if line.is_empty() {
            return Flow::Continue;
        }
        if line == b"@exit" {
            self.flush(inflight, out).await;
            return Flow::Close;
        }
        if !self.within_rate_limit() {
            let error = AtError::new(
                AtCode::InternalServerException,
                format!(
                    "too many requests: at most {UNAUTH_COMMANDS_PER_SEC_MAX} per second before authentication"
                ),
            );
            return self.queue_error(&error, inflight, out).await;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            let error = AtError::new(AtCode::InvalidSyntax, "request is not valid UTF-8");
            return self.queue_error(&error, inflight, out).await;
        };
        let normalized = normalize(text);
        match verbs::plan(self, &normalized) {
            Err(error) => self.queue_error(&error, inflight, out).await,
            Ok(Step::Write(write)) => self.submit(write, inflight, out).await,
            Ok(Step::Read { key, op }) => {
                // The key is assembled into a reused buffer: no allocation.
                let mut assembled = std::mem::take(&mut self.key_scratch);
                key.assemble_into(&mut assembled);
                let flow = if !inflight.touches(&assembled) {
                    if inflight.is_empty() {
                        verbs::run_read(self, &assembled, op, out)
                    } else {
                        let mut reply = Vec::new();
                        let flow = verbs::run_read(self, &assembled, op, &mut reply);
                        inflight.push_ready(reply);
                        flow
                    }
                } else if self.flush(inflight, out).await == Flow::Close {
                    Flow::Close
                } else {
                    verbs::run_read(self, &assembled, op, out)
                };
                self.key_scratch = assembled;
                flow
            }
            Ok(Step::Other(command)) => {
                if self.flush(inflight, out).await == Flow::Close {
                    return Flow::Close;
                }
                verbs::run_other(self, command, out).await
            }
        }
    }

    /// Hands a write (and its follow-up) to the storage actor without
    /// waiting for it to be durable.
    async fn submit(
        &mut self,
        write: PreparedWrite,
        inflight: &mut InFlight,
        out: &mut Vec<u8>,
    ) -> Flow {
        let PreparedWrite {
            tenant,
            key,
            commit,
            mutate,
            follow_up,
        } = write;
        match tenant.store.submit(key.clone(), commit, mutate).await {
            Ok(pending) => inflight.slots.push_back(Slot::Write { key, pending }),
            Err(error) => return self.queue_error(&error.into(), inflight, out).await,
        }
        if let Some(next) = follow_up {
            let PreparedWrite {
                tenant,
                key,
                commit,
                mutate,
                ..
            } = *next;
            match tenant.store.submit(key.clone(), commit, mutate).await {
                Ok(pending) => inflight.slots.push_back(Slot::Silent { key, pending }),
                Err(error) => tracing::warn!(%error, "follow-up write refused"),
            }
        }
        Flow::Continue
    }

    /// Queues an error reply in order; an error that closes the connection
    /// first lets everything before it be answered.
    async fn queue_error(
        &mut self,
        error: &AtError,
        inflight: &mut InFlight,
        out: &mut Vec<u8>,
    ) -> Flow {
        if error.close {
            self.flush(inflight, out).await;
            self.write_error(error, out);
            return Flow::Close;
        }
        if inflight.is_empty() {
            self.write_error(error, out);
        } else {
            let mut reply = Vec::new();
            self.write_error(error, &mut reply);
            inflight.push_ready(reply);
        }
        Flow::Continue
    }

    /// Waits for every in-flight write and appends all queued replies, in
    /// request order. Stops at an error that closes the connection.
    pub async fn flush(&mut self, inflight: &mut InFlight, out: &mut Vec<u8>) -> Flow {
        while !inflight.is_empty() {
            inflight.wait_front().await;
            if self.emit_ready(inflight, out) == Flow::Close {
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Appends the replies at the front of the queue that are known by now,
    /// without waiting. Stops at an error that closes the connection.
    pub fn emit_ready(&mut self, inflight: &mut InFlight, out: &mut Vec<u8>) -> Flow {
        loop {
            let outcome = match inflight.slots.front_mut() {
                None => return Flow::Continue,
                Some(Slot::Ready(_)) => None,
                Some(Slot::Write { pending, .. } | Slot::Silent { pending, .. }) => {
                    match pending.try_outcome() {
                        Some(outcome) => Some(outcome),
                        None => return Flow::Continue,
                    }
                }
            };
            let Some(slot) = inflight.pop_front() else {
                return Flow::Continue;
            };
            match (slot, outcome) {
                (Slot::Ready(bytes), _) => out.extend_from_slice(&bytes),
                (Slot::Write { .. }, Some(result)) => {
                    let result = result.map(|o| o.commit_id).map_err(AtError::from);
                    if verbs::respond_write(self, result, out) == Flow::Close {
                        inflight.clear();
                        return Flow::Close;
                    }
                }
                (Slot::Silent { .. }, Some(Err(error))) => {
                    tracing::warn!(%error, "follow-up write failed");
                }
                (Slot::Silent { .. } | Slot::Write { .. }, _) => {}
            }
        }
    }
}
