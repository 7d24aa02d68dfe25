//! The atDirectory client: which host and port serve an atSign
//! (root.md, server-to-server.md §1).
//!
//! One [`DirectoryClient`] per shard, generic over the [`Dial`] that opens
//! its sockets and the [`Clock`] that times them. A resolution:
//!
//! 1. normalises the atSign as the server does everywhere (lower case, one
//!    leading `@`, dots removed) and asks for the bare name (`alice`), as
//!    the reference's clients do;
//! 2. answers from the process-wide [`DirectoryCache`] when it holds a fresh
//!    answer: an address for `DIRECTORY_CACHE_TTL_MS`, a `null` for
//!    `DIRECTORY_NEGATIVE_TTL_MS`;
//! 3. otherwise asks the directory over TLS — one connection per question:
//!    greeting `@`, `alice\n`, `host:port\r\n@` or `null\r\n@`, `@exit` —
//!    retrying once after [`DIRECTORY_RETRY_DELAY_MS`] if the attempt
//!    failed (each attempt under [`DIRECTORY_ATTEMPT_MS`]), all of it under
//!    one deadline of [`DIRECTORY_RESOLVE_MS`];
//! 4. when asking fails, falls back to an address past its TTL but at most
//!    `DIRECTORY_STALE_MS` older than that, so peers stay reachable
//!    through a directory outage of up to a day.
//!
//! **A lookup storm makes one request.** On one shard, resolutions of the
//! same atSign that overlap share one request ([`inflight`]): the first
//! asks, the others wait for its outcome. Shards do not coordinate their
//! requests (that would cost a cross-core message per lookup), so while an
//! atSign is not cached each shard may make one request for it; as soon
//! as one answer is stored, every shard reads it from the shared cache.
//!
//! The bounds are named limits in `crate::limits`. Replies are read by the library client's framing (`client::framing`
//! knows the directory's `\r\n@`); this module only checks what they say
//! ([`answer`]) and bounds what the directory may send.

mod answer;
mod budget;
mod cache;
mod inflight;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;

pub use answer::{Answer, MalformedAddress, MalformedAnswer, ServerAddress, parse_address};
pub use budget::{ReadBudget, ReadBudgetSpent};
pub use cache::{CachePolicy, Cached, DirectoryCache};

use super::Dial;
use crate::client::ClientError;
use crate::client::nonblocking::Client;
use crate::clock::{Clock, DeadlineExceeded};
use crate::limits::{
    DIRECTORY_ATTEMPT_MS, DIRECTORY_REPLY_BYTES_MAX, DIRECTORY_RESOLVE_MS, DIRECTORY_RETRY_DELAY_MS,
};
use crate::protocol::atsign::normalize_atsign;
use inflight::{InFlight, Role};

/// Why an atSign could not be resolved. `Clone`, because one request's
/// outcome is shared by every task that waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    /// The text is not an atSign (the reference refuses it too).
    InvalidAtSign { message: String },
    /// The directory answered `null`: it knows no such atSign (the verbs
    /// answer AT0007 `SecondaryNotFoundException`).
    NotFound { atsign: String },
    /// The directory could not be reached or dropped the connection: no
    /// TCP connection, a failed TLS handshake (its certificate), a close.
    Unreachable { detail: String },
    /// The directory said something that is not an answer.
    Malformed { detail: String },
    /// No answer within the deadline of an attempt or of the resolution.
    TimedOut { limit_ms: u64 },
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::InvalidAtSign { message } => f.write_str(message),
            DirectoryError::NotFound { atsign } => {
                write!(f, "the atDirectory knows no atServer for {atsign}")
            }
            DirectoryError::Unreachable { detail } => {
                write!(f, "the atDirectory is unreachable: {detail}")
            }
            DirectoryError::Malformed { detail } => {
                write!(f, "the atDirectory's answer is malformed: {detail}")
            }
            DirectoryError::TimedOut { limit_ms } => {
                write!(f, "the atDirectory did not answer within {limit_ms} ms")
            }
        }
    }
}

impl std::error::Error for DirectoryError {}

impl DirectoryError {
    /// Whether asking again may help: not for a definite answer.
    fn is_transient(&self) -> bool {
        !matches!(
            self,
            DirectoryError::NotFound { .. } | DirectoryError::InvalidAtSign { .. }
        )
    }

    /// Sorts a failure of the library client on a directory connection.
    fn from_client(error: ClientError, attempt_ms: u64) -> DirectoryError {
        match error {
            ClientError::Timeout { .. } => DirectoryError::TimedOut {
                limit_ms: attempt_ms,
            },
            ClientError::Io { source, .. } if ReadBudgetSpent::is(&source) => {
                DirectoryError::Malformed {
                    detail: format!(
                        "more than {DIRECTORY_REPLY_BYTES_MAX} bytes without an answer"
                    ),
                }
            }
            ClientError::UnexpectedReply { .. } | ClientError::ReplyTooLong { .. } => {
                DirectoryError::Malformed {
                    detail: error.to_string(),
                }
            }
            other => DirectoryError::Unreachable {
                detail: other.to_string(),
            },
        }
    }
}

/// How long a resolution and each of its attempts may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryTiming {
    /// One deadline on the whole resolution.
    pub resolve: Duration,
    /// One deadline on each attempt (connect, TLS, greeting, answer).
    pub attempt: Duration,
    /// Pause before the one retry.
    pub retry_delay: Duration,
}

impl Default for DirectoryTiming {
    fn default() -> Self {
        DirectoryTiming {
            resolve: Duration::from_millis(DIRECTORY_RESOLVE_MS),
            attempt: Duration::from_millis(DIRECTORY_ATTEMPT_MS),
            retry_delay: Duration::from_millis(DIRECTORY_RETRY_DELAY_MS),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Resolves atSigns to their atServers through one atDirectory, for the
/// shard that holds it (not `Send`: its in-flight table is the shard's).
pub struct DirectoryClient<D: Dial, C: Clock> {
    /// The directory's own address.
    root: ServerAddress,
    /// The name its certificate must carry.
    root_name: ServerName<'static>,
    connector: TlsConnector,
    dial: D,
    clock: C,
    /// Answers, shared by every shard of the process.
    cache: Arc<DirectoryCache>,
    /// This shard's requests in progress.
    in_flight: InFlight,
    timing: DirectoryTiming,
}

impl<D: Dial, C: Clock> DirectoryClient<D, C> {
    /// A client of the directory at `root`, connecting with `tls` (the
    /// server's outbound configuration: its trust roots, and its own
    /// certificate, which the directory does not ask for).
    pub fn new(
        root: ServerAddress,
        tls: Arc<rustls::ClientConfig>,
        cache: Arc<DirectoryCache>,
        dial: D,
        clock: C,
    ) -> Result<DirectoryClient<D, C>, MalformedAddress> {
        Ok(DirectoryClient {
            root_name: root.server_name()?,
            root,
            connector: TlsConnector::from(tls),
            dial,
            clock,
            cache,
            in_flight: InFlight::default(),
            timing: DirectoryTiming::default(),
        })
    }

    /// The same client with other deadlines (tests, tools).
    pub fn with_timing(mut self, timing: DirectoryTiming) -> DirectoryClient<D, C> {
        self.timing = timing;
        self
    }

    pub fn root(&self) -> &ServerAddress {
        &self.root
    }

    pub fn cache(&self) -> &Arc<DirectoryCache> {
        &self.cache
    }

    /// Where `atsign`'s atServer listens.
    pub async fn resolve(&self, atsign: &str) -> Result<ServerAddress, DirectoryError> {
        let atsign = normalize_atsign(atsign)
            .map_err(|e| DirectoryError::InvalidAtSign { message: e.message })?;
        let stale = match self.cache.get(&atsign, self.clock.now()) {
            Cached::Fresh(answer) => return found(answer, &atsign),
            Cached::Stale(address) => Some(address),
            Cached::Missing => None,
        };
        let limit = self.timing.resolve;
        let outcome = self
            .clock
            .deadline(limit, self.ask_shared(&atsign))
            .await
            .unwrap_or_else(|DeadlineExceeded| {
                Err(DirectoryError::TimedOut {
                    limit_ms: millis(limit),
                })
            });
        match (outcome, stale) {
            (Ok(answer), _) => found(answer, &atsign),
            (Err(error), Some(stale)) if error.is_transient() => {
                tracing::warn!(%atsign, %error, address = %stale, "atDirectory failed: using the expired answer");
                Ok(stale)
            }
            (Err(error), _) => Err(error),
        }
    }

    /// Asks the directory about `atsign`, or waits for this shard's request
    /// already asking; stores a definite answer in the cache.
    async fn ask_shared(&self, atsign: &str) -> Result<Answer, DirectoryError> {
        loop {
            match self.in_flight.join(atsign) {
                Role::Waiter(waiter) => {
                    if let Some(outcome) = waiter.await {
                        return outcome;
                    }
                    // The leader went away: ask in its place.
                }
                Role::Leader(leader) => {
                    let outcome = self.ask_with_retry(atsign).await;
                    if let Ok(answer) = &outcome {
                        self.cache.put(atsign, answer.clone(), self.clock.now());
                    }
                    leader.finish(outcome.clone());
                    return outcome;
                }
            }
        }
    }

    /// One attempt, and one more if the first failed for a reason that may
    /// pass.
    async fn ask_with_retry(&self, atsign: &str) -> Result<Answer, DirectoryError> {
        match self.ask_once(atsign).await {
            Err(error) if error.is_transient() => {
                tracing::debug!(%atsign, %error, "atDirectory attempt failed: retrying once");
                self.clock.sleep(self.timing.retry_delay).await;
                self.ask_once(atsign).await
            }
            outcome => outcome,
        }
    }

    async fn ask_once(&self, atsign: &str) -> Result<Answer, DirectoryError> {
        let limit = self.timing.attempt;
        self.clock
            .deadline(limit, self.exchange(atsign))
            .await
            .unwrap_or_else(|DeadlineExceeded| {
                Err(DirectoryError::TimedOut {
                    limit_ms: millis(limit),
                })
            })
    }

    /// One connection: TLS, greeting, question, answer, `@exit`.
    async fn exchange(&self, atsign: &str) -> Result<Answer, DirectoryError> {
        let attempt_ms = millis(self.timing.attempt);
        let tcp = self
            .dial
            .dial(self.root.host(), self.root.port())
            .await
            .map_err(|e| DirectoryError::Unreachable {
                detail: format!("connecting to {}: {e}", self.root),
            })?;
        let tls = self
            .connector
            .connect(self.root_name.clone(), tcp)
            .await
            .map_err(|e| DirectoryError::Unreachable {
                detail: format!("TLS with {}: {e}", self.root),
            })?;
        let stream = ReadBudget::new(tls, DIRECTORY_REPLY_BYTES_MAX);
        let mut client = Client::new(stream, self.clock.clone(), self.timing.attempt);
        let client_error = |e| DirectoryError::from_client(e, attempt_ms);
        client.read_greeting().await.map_err(client_error)?;
        let name = atsign.strip_prefix('@').unwrap_or(atsign);
        let reply = client.request(name).await.map_err(client_error)?;
        let answer = answer::parse_answer(reply.payload()).map_err(|e| DirectoryError::Malformed {
            detail: e.to_string(),
        });
        client.close().await;
        answer
    }
}

/// A cached or fresh answer as the caller wants it.
fn found(answer: Answer, atsign: &str) -> Result<ServerAddress, DirectoryError> {
    match answer {
        Answer::Found(address) => Ok(address),
        Answer::NotFound => Err(DirectoryError::NotFound {
            atsign: atsign.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
