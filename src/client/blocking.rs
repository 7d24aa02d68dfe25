//! A blocking client: a std `TcpStream` under `rustls::StreamOwned`, for
//! tests and tools. Every socket call has a timeout and every reply must be
//! whole within it, so nothing can hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::auth::{self, PkamKey};
use super::framing::ReplyFramer;
use super::inbox::{Inbox, expect_success};
use super::{ClientError, MonitorFrame, Operation, Reply};

/// One connection to an atServer (or the atDirectory).
pub struct Client {
    /// The TLS session over the socket.
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// Bytes received and not yet handed out, and their framing.
    inbox: Inbox,
    /// Bound on each socket call and on each reply or raw read as a whole.
    timeout: Duration,
    /// The atSign of the last challenge, until a `cram:`/`pkam:` line is
    /// sent: its reply is read as an authentication attempt for it.
    challenged: Option<String>,
}

/// What [`Client::into_parts`] hands to a driver that takes over.
pub struct Parts {
    /// The socket, still blocking with the client's timeouts.
    pub tcp: TcpStream,
    /// The TLS session, handshake done.
    pub tls: rustls::ClientConnection,
    /// The framing, with the prompt the connection expects now.
    pub framer: ReplyFramer,
    /// Bytes received and not yet framed.
    pub pending: Vec<u8>,
}

impl Client {
    /// Connects, completes the TLS handshake and reads the `@` greeting.
    pub fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let mut client = Client::connect_without_greeting(addr, tls, server_name, timeout)?;
        client.read_greeting()?;
        Ok(client)
    }

    /// Connects and completes the TLS handshake, reading nothing: for
    /// callers that need the exact first bytes (the inbound-limit refusal,
    /// the directory).
    pub fn connect_without_greeting(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| ClientError::from_io(Operation::Connect, e, &[]))?;
        Client::over_tcp(tcp, tls, server_name, timeout)
    }

    /// TLS over an already connected socket (one bound to a chosen source
    /// address, say), without reading the greeting.
    pub fn over_tcp(
        mut tcp: TcpStream,
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let io = |during| move |source| ClientError::Io { during, source };
        tcp.set_nodelay(true)
            .map_err(io(Operation::ConfigureSocket))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(io(Operation::ConfigureSocket))?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(io(Operation::ConfigureSocket))?;
        let mut session =
            rustls::ClientConnection::new(tls, server_name).map_err(|source| ClientError::Tls {
                during: Operation::Handshake,
                source,
            })?;
        let deadline = Instant::now() + timeout;
        while session.is_handshaking() {
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    during: Operation::Handshake,
                    pending: Vec::new(),
                });
            }
            session
                .complete_io(&mut tcp)
                .map_err(|e| ClientError::from_io(Operation::Handshake, e, &[]))?;
        }
        Ok(Client {
            stream: rustls::StreamOwned::new(session, tcp),
            inbox: Inbox::new(),
            timeout,
            challenged: None,
        })
    }

    /// Reads the `@` a new connection starts with.
    pub fn read_greeting(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.timeout;
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
            self.fill(Operation::Greeting, deadline)?;
        }
    }

    /// The framing state: the prompt the connection expects now.
    pub fn framer(&self) -> &ReplyFramer {
        &self.inbox.framer
    }

    /// Reads at least one more byte into the inbox, giving up at `deadline`.
    fn fill(&mut self, during: Operation, deadline: Instant) -> Result<(), ClientError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ClientError::Timeout {
                during,
                pending: self.inbox.pending().to_vec(),
            });
        }
        self.stream
            .sock
            .set_read_timeout(Some(remaining))
            .map_err(|source| ClientError::Io {
                during: Operation::ConfigureSocket,
                source,
            })?;
        let space = self.inbox.read_space()?;
        let read = self.stream.read(space);
        self.inbox.settle_read(during, read)
    }

    /// Writes `bytes` as they are and flushes them.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| ClientError::from_io(Operation::Send, e, &[]))
    }

    /// Sends one request line (the `\n` is added).
    pub fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        self.send_lines(&[line])
    }

    /// Sends several request lines in one write, without waiting: their
    /// replies arrive in order.
    pub fn send_lines(&mut self, lines: &[&str]) -> Result<(), ClientError> {
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        self.write_raw(&bytes)
    }

    /// The next reply, `<payload>\n<prompt>`, whole.
    pub fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(reply) = self.inbox.take_reply(Operation::Receive)? {
                return Ok(reply);
            }
            self.fill(Operation::Receive, deadline)?;
        }
    }

    /// Sends one line and reads its reply. A `cram:`/`pkam:` line sent after
    /// [`Client::challenge`] is read as an attempt to authenticate as the
    /// challenged atSign, whose reply may change the prompt.
    pub fn request(&mut self, line: &str) -> Result<Reply, ClientError> {
        if auth::is_auth_line(line)
            && let Some(atsign) = self.challenged.take()
        {
            self.inbox.framer.expect_auth_attempt(&atsign);
        }
        self.send_line(line)?;
        self.read_reply()
    }

    /// Sends `lines` in one write, then reads their replies in order.
    pub fn pipeline(&mut self, lines: &[&str]) -> Result<Vec<Reply>, ClientError> {
        self.send_lines(lines)?;
        lines.iter().map(|_| self.read_reply()).collect()
    }

    /// Sends `line` (a `monitor` command) and frames what follows as a
    /// monitor connection: no reply to it, replies without a prompt.
    pub fn start_monitor(&mut self, line: &str) -> Result<(), ClientError> {
        self.send_line(line)?;
        self.inbox.framer.expect_monitor();
        Ok(())
    }

    /// The next line of a monitor connection: a notification or the reply
    /// to a request sent on it, waiting at most the client's timeout.
    pub fn read_monitor_frame(&mut self) -> Result<MonitorFrame, ClientError> {
        self.read_monitor_frame_within(self.timeout)
    }

    /// [`Client::read_monitor_frame`] waiting at most `limit` (a
    /// [`ClientError::Timeout`] when nothing came).
    pub fn read_monitor_frame_within(
        &mut self,
        limit: Duration,
    ) -> Result<MonitorFrame, ClientError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(frame) = self.inbox.take_monitor_frame() {
                return Ok(frame);
            }
            self.fill(Operation::Receive, deadline)?;
        }
    }

    /// Exactly `n` raw bytes, bypassing framing.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(bytes) = self.inbox.take_exact(n) {
                return Ok(bytes);
            }
            self.fill(Operation::Receive, deadline)?;
        }
    }

    /// `from:<atsign>`; returns the challenge text (the reply without
    /// `data:`), to sign or digest.
    pub fn challenge(&mut self, atsign: &str) -> Result<String, ClientError> {
        let reply = self.request(&auth::from_line(atsign))?;
        let challenge =
            auth::challenge_of(reply.payload()).ok_or_else(|| ClientError::UnexpectedReply {
                during: Operation::Challenge,
                reply: reply.as_bytes().to_vec(),
            })?;
        self.challenged = auth::challenge_atsign(challenge).map(str::to_string);
        Ok(challenge.to_string())
    }

    /// `from:` then `cram:` with `secret`.
    pub fn cram(&mut self, atsign: &str, secret: &str) -> Result<(), ClientError> {
        let challenge = self.challenge(atsign)?;
        let reply = self.request(&auth::cram_line(secret, &challenge))?;
        expect_success(reply, Operation::Cram)
    }

    /// `from:` then `pkam:` signed with `key`.
    pub fn pkam(&mut self, atsign: &str, key: &PkamKey) -> Result<(), ClientError> {
        let challenge = self.challenge(atsign)?;
        let reply = self.request(&key.pkam_line(&challenge, None)?)?;
        expect_success(reply, Operation::Pkam)
    }

    /// `pol`, proving `atsign` to the server that issued the last
    /// `data:proof:` challenge, once the signed cookie is published. Success
    /// is the bare `@<atsign>@` prompt.
    pub fn pol(&mut self, atsign: &str) -> Result<(), ClientError> {
        self.challenged = None;
        self.inbox.framer.expect_pol_attempt(atsign);
        self.send_line("pol")?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if self.inbox.take_pol_answer()?.is_some() {
                return Ok(());
            }
            self.fill(Operation::Pol, deadline)?;
        }
    }

    /// Waits for the server to close the connection, discarding anything it
    /// sends first. `Ok` once it is closed; a `Timeout` if it stays open.
    pub fn wait_for_close(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.inbox.take_all();
            match self.fill(Operation::AwaitClose, deadline) {
                Ok(()) => {}
                Err(ClientError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Says `@exit` and ends the TLS session; errors no longer matter then.
    pub fn close(mut self) {
        let _ = self.stream.write_all(b"@exit\n");
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
    }

    /// The socket, the TLS session, the framing and any bytes received but
    /// not yet framed, for a driver that takes the connection over.
    pub fn into_parts(mut self) -> Parts {
        let pending = self.inbox.take_all();
        let framer = std::mem::take(&mut self.inbox.framer);
        let rustls::StreamOwned { conn, sock } = self.stream;
        Parts {
            tcp: sock,
            tls: conn,
            framer,
            pending,
        }
    }
}
