//! An async client for the server's own outbound connections: generic over
//! any `futures_io` stream (glommio's `TcpStream` under
//! `futures_rustls::TlsConnector`, say), with a [`Clock`] deadline on every
//! network await, so a peer that stops answering costs at most the timeout
//! and the runtime is never named here.
//!
//! Every send, every reply read and each step of connecting runs under its
//! own deadline of the client's timeout, as a whole (a peer that trickles a
//! reply cannot stretch it). When one fails the stream may hold half a
//! request or half a reply: drop the client.

use std::future::Future;
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustls::pki_types::ServerName;

use super::auth::{self, PkamKey};
use super::framing::ReplyFramer;
use super::inbox::{Inbox, expect_success};
use super::{ClientError, Operation, Reply};
use crate::clock::{Clock, DeadlineExceeded};

/// One connection to an atServer over `S`, timed by `C`.
pub struct Client<S, C> {
    /// The (usually TLS) byte stream.
    stream: S,
    /// Where deadlines come from.
    clock: C,
    /// Bytes received and not yet handed out, and their framing.
    inbox: Inbox,
    /// Bound on each operation as a whole.
    timeout: Duration,
    /// The atSign of the last challenge, until a `cram:`/`pkam:` line is
    /// sent: its reply is read as an authentication attempt for it.
    challenged: Option<String>,
}

impl<T, C> Client<futures_rustls::client::TlsStream<T>, C>
where
    T: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    /// Opens the transport with `open` (e.g. a TCP connect; set TCP_NODELAY
    /// there), completes the TLS handshake through `connector` and reads the
    /// `@` greeting, each under its own deadline of `timeout`.
    pub async fn connect<F>(
        open: F,
        connector: &futures_rustls::TlsConnector,
        server_name: ServerName<'static>,
        clock: C,
        timeout: Duration,
    ) -> Result<Self, ClientError>
    where
        F: Future<Output = std::io::Result<T>>,
    {
        let transport = clock
            .deadline(timeout, open)
            .await
            .map_err(|DeadlineExceeded| ClientError::Timeout {
                during: Operation::Connect,
                pending: Vec::new(),
            })?
            .map_err(|e| ClientError::from_io(Operation::Connect, e, &[]))?;
        let stream = clock
            .deadline(timeout, connector.connect(server_name, transport))
            .await
            .map_err(|DeadlineExceeded| ClientError::Timeout {
                during: Operation::Handshake,
                pending: Vec::new(),
            })?
            .map_err(|e| ClientError::from_io(Operation::Handshake, e, &[]))?;
        let mut client = Client::new(stream, clock, timeout);
        client.read_greeting().await?;
        Ok(client)
    }
}

impl<S, C> Client<S, C>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
{
    /// A client over an established stream; nothing is read yet (call
    /// [`Client::read_greeting`] on a fresh connection).
    pub fn new(stream: S, clock: C, timeout: Duration) -> Self {
        Client {
            stream,
            clock,
            inbox: Inbox::new(),
            timeout,
            challenged: None,
        }
    }

    /// The framing state: the prompt the connection expects now.
    pub fn framer(&self) -> &ReplyFramer {
        &self.inbox.framer
    }

    /// The outcome of an operation run under the deadline.
    fn settle<T>(
        &self,
        during: Operation,
        outcome: Result<Result<T, ClientError>, DeadlineExceeded>,
    ) -> Result<T, ClientError> {
        outcome.unwrap_or_else(|DeadlineExceeded| {
            Err(ClientError::Timeout {
                during,
                pending: self.inbox.pending().to_vec(),
            })
        })
    }

    /// Reads at least one more byte into the inbox (no deadline of its own:
    /// every caller runs under one).
    async fn fill(&mut self, during: Operation) -> Result<(), ClientError> {
        let space = self.inbox.read_space()?;
        let read = self.stream.read(space).await;
        self.inbox.settle_read(during, read)
    }

    async fn greeting_unbounded(&mut self) -> Result<(), ClientError> {
        loop {
            if let Some(prompt) = self.inbox.take_prompt(Operation::Greeting)? {
                return if prompt == b"@" {
                    Ok(())
                } else {
                    Err(ClientError::UnexpectedReply {
                        during: Operation::Greeting,
                        reply: prompt,
                    })
                };
            }
            self.fill(Operation::Greeting).await?;
        }
    }

    /// Reads the `@` a new connection starts with.
    pub async fn read_greeting(&mut self) -> Result<(), ClientError> {
        let clock = self.clock.clone();
        let outcome = clock
            .deadline(self.timeout, self.greeting_unbounded())
            .await;
        self.settle(Operation::Greeting, outcome)
    }

    async fn write_unbounded(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let sent = match self.stream.write_all(bytes).await {
            Ok(()) => self.stream.flush().await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| ClientError::from_io(Operation::Send, e, &[]))
    }

    /// Writes `bytes` as they are and flushes them.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let clock = self.clock.clone();
        let outcome = clock
            .deadline(self.timeout, self.write_unbounded(bytes))
            .await;
        self.settle(Operation::Send, outcome)
    }

    /// Sends one request line (the `\n` is added).
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        self.send_lines(&[line]).await
    }

    /// Sends several request lines in one write, without waiting: their
    /// replies arrive in order.
    pub async fn send_lines(&mut self, lines: &[&str]) -> Result<(), ClientError> {
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        self.write_raw(&bytes).await
    }

    async fn reply_unbounded(&mut self) -> Result<Reply, ClientError> {
        loop {
            if let Some(reply) = self.inbox.take_reply(Operation::Receive)? {
                return Ok(reply);
            }
            self.fill(Operation::Receive).await?;
        }
    }

    /// The next reply, `<payload>\n<prompt>`, whole.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let clock = self.clock.clone();
        let outcome = clock.deadline(self.timeout, self.reply_unbounded()).await;
        self.settle(Operation::Receive, outcome)
    }

    /// Sends one line and reads its reply. A `cram:`/`pkam:` line sent after
    /// [`Client::challenge`] is read as an attempt to authenticate as the
    /// challenged atSign, whose reply may change the prompt.
    pub async fn request(&mut self, line: &str) -> Result<Reply, ClientError> {
        if auth::is_auth_line(line)
            && let Some(atsign) = self.challenged.take()
        {
            self.inbox.framer.expect_auth_attempt(&atsign);
        }
        self.send_line(line).await?;
        self.read_reply().await
    }

    /// Sends `lines` in one write, then reads their replies in order.
    pub async fn pipeline(&mut self, lines: &[&str]) -> Result<Vec<Reply>, ClientError> {
        self.send_lines(lines).await?;
        let mut replies = Vec::with_capacity(lines.len());
        for _ in lines {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    async fn exact_unbounded(&mut self, n: usize) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(bytes) = self.inbox.take_exact(n) {
                return Ok(bytes);
            }
            self.fill(Operation::Receive).await?;
        }
    }

    /// Exactly `n` raw bytes, bypassing framing.
    pub async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ClientError> {
        let clock = self.clock.clone();
        let outcome = clock.deadline(self.timeout, self.exact_unbounded(n)).await;
        self.settle(Operation::Receive, outcome)
    }

    /// `from:<atsign>`; returns the challenge text (the reply without
    /// `data:`), to sign or digest.
    pub async fn challenge(&mut self, atsign: &str) -> Result<String, ClientError> {
        let reply = self.request(&auth::from_line(atsign)).await?;
        let challenge =
            auth::challenge_of(reply.payload()).ok_or_else(|| ClientError::UnexpectedReply {
                during: Operation::Challenge,
                reply: reply.as_bytes().to_vec(),
            })?;
        self.challenged = auth::challenge_atsign(challenge).map(str::to_string);
        Ok(challenge.to_string())
    }

    /// `from:` then `cram:` with `secret`.
    pub async fn cram(&mut self, atsign: &str, secret: &str) -> Result<(), ClientError> {
        let challenge = self.challenge(atsign).await?;
        let reply = self.request(&auth::cram_line(secret, &challenge)).await?;
        expect_success(reply, Operation::Cram)
    }

    /// `from:` then `pkam:` signed with `key`.
    pub async fn pkam(&mut self, atsign: &str, key: &PkamKey) -> Result<(), ClientError> {
        let challenge = self.challenge(atsign).await?;
        let reply = self.request(&key.pkam_line(&challenge, None)?).await?;
        expect_success(reply, Operation::Pkam)
    }

    /// `pol`, proving `atsign` to the server that issued the last
    /// `data:proof:` challenge (after the caller has published the signed
    /// cookie where the server will look it up). Success is the bare
    /// `@<atsign>@` prompt; from then on replies end with it.
    pub async fn pol(&mut self, atsign: &str) -> Result<(), ClientError> {
        self.challenged = None;
        self.inbox.framer.expect_pol_attempt(atsign);
        self.send_line("pol").await?;
        let clock = self.clock.clone();
        let outcome = clock.deadline(self.timeout, self.pol_unbounded()).await;
        self.settle(Operation::Pol, outcome)
    }

    async fn pol_unbounded(&mut self) -> Result<(), ClientError> {
        loop {
            if self.inbox.take_pol_answer()?.is_some() {
                return Ok(());
            }
            self.fill(Operation::Pol).await?;
        }
    }

    async fn close_wait_unbounded(&mut self) -> Result<(), ClientError> {
        loop {
            self.inbox.take_all();
            match self.fill(Operation::AwaitClose).await {
                Ok(()) => {}
                Err(ClientError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the server to close the connection, discarding anything it
    /// sends first. `Ok` once it is closed; a `Timeout` if it stays open.
    pub async fn wait_for_close(&mut self) -> Result<(), ClientError> {
        let clock = self.clock.clone();
        let outcome = clock
            .deadline(self.timeout, self.close_wait_unbounded())
            .await;
        self.settle(Operation::AwaitClose, outcome)
    }

    /// Says `@exit` and closes the stream (for TLS, with close_notify);
    /// errors no longer matter then.
    pub async fn close(mut self) {
        let clock = self.clock.clone();
        let _ = clock
            .deadline(self.timeout, async {
                if self.stream.write_all(b"@exit\n").await.is_ok() {
                    let _ = self.stream.close().await;
                }
            })
            .await;
    }

    /// The stream, the framing and any bytes received but not yet framed.
    pub fn into_parts(mut self) -> (S, ReplyFramer, Vec<u8>) {
        let pending = self.inbox.take_all();
        let framer = std::mem::take(&mut self.inbox.framer);
        (self.stream, framer, pending)
    }
}
