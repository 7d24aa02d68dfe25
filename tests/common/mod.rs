//! Shared helpers for integration tests: an in-process server on an ephemeral
//! loopback port and a blocking TLS client that reads whole replies.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atserver::app::{ServerPlan, start_server};
use atserver::context::SessionLimits;
use atserver::session::tls::{TlsFiles, client_config};
use atserver::storage::Durability;

/// Every read in a test gives up after this long, so no test can hang.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server started elsewhere (another process) at `addr`.
    pub fn external(addr: SocketAddr, ca: PathBuf) -> TestServer {
        TestServer {
            addr,
            ca,
            _dir: None,
        }
    }
}

/// Starts an atServer hosting `atsigns` (each with the given cram secret) on
/// 127.0.0.1 with an ephemeral port. The server lives until the test
/// process exits.
pub fn start(atsigns: &[(&str, &str)]) -> TestServer {
    start_with_limits(atsigns, SessionLimits::default())
}

pub fn start_with_limits(atsigns: &[(&str, &str)], limits: SessionLimits) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = atserver::devcerts::ensure(&dir.path().join("certs")).expect("certs");
    let (tx, rx) = std::sync::mpsc::channel();
    let plan = ServerPlan {
        atsigns: atsigns
            .iter()
            .map(|(a, s)| (a.to_string(), Some(s.to_string())))
            .collect(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: TlsFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: Some(certs.ca.clone()),
        },
        data_dir: dir.path().join("data"),
        shards: 1,
        durability: Durability::Fast,
        limits,
        scheduling: atserver::shard::Scheduling::Batch,
    };
    let running = start_server(plan, atserver::health::FatalSink::log_only(), move |addr| {
        let _ = tx.send(addr);
    })
    .expect("server starts");
    // The server lives until the test process exits.
    std::mem::forget(running);
    let addr = rx.recv_timeout(READ_TIMEOUT).expect("server bound");
    TestServer {
        addr,
        ca: certs.ca,
        _dir: Some(dir),
    }
}

pub struct Client {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buffer: Vec<u8>,
}

impl Client {
    /// Connects, completes TLS and reads the `@` greeting.
    pub fn connect(server: &TestServer) -> Client {
        let mut client = Client::connect_raw(server.addr, &server.ca);
        assert_eq!(client.read_exactly(1), b"@", "greeting");
        client
    }

    pub fn connect_raw(addr: SocketAddr, ca: &std::path::Path) -> Client {
        let config = client_config(ca).expect("client config");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::clone(&config), name).expect("client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        tcp.set_nodelay(true).expect("nodelay");
        Client {
            stream: rustls::StreamOwned::new(conn, tcp),
            buffer: Vec::new(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
        self.stream.flush().expect("flush");
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    pub fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.buffer.len() < n {
            assert!(Instant::now() < deadline, "timed out");
            assert!(self.fill(), "connection closed while reading");
        }
        self.buffer.drain(..n).collect()
    }

    /// Reads one reply: everything up to and including the prompt after the
    /// next `\n` (`@` or `@name@`). Returns it as text.
    pub fn read_reply(&mut self) -> String {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(end) = reply_end(&self.buffer) {
                let reply: Vec<u8> = self.buffer.drain(..end).collect();
                return String::from_utf8(reply).expect("utf-8 reply");
            }
            assert!(Instant::now() < deadline, "timed out waiting for a reply");
            assert!(
                self.fill(),
                "connection closed before a full reply: {:?}",
                String::from_utf8_lossy(&self.buffer)
            );
        }
    }

    /// Sends one line and returns the full reply including its prompt.
    pub fn send(&mut self, line: &str) -> String {
        self.write(format!("{line}\n").as_bytes());
        self.read_reply()
    }

    /// True when the server closes the connection (EOF) within the read
    /// timeout; any bytes that arrive first are discarded.
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Authenticates as `atsign` with its CRAM secret.
    pub fn cram(&mut self, atsign: &str, secret: &str) {
        let challenge = self.challenge(atsign);
        let digest = cram_digest(secret, &challenge);
        assert_eq!(
            self.send(&format!("cram:{digest}")),
            format!("data:success\n{atsign}@")
        );
    }

    /// Sends `from:` and returns the challenge text (reply without `data:`).
    pub fn challenge(&mut self, atsign: &str) -> String {
        let reply = self.send(&format!("from:{atsign}"));
        let line = reply.split('\n').next().expect("line");
        line.strip_prefix("data:").expect("data reply").to_string()
    }
}

/// Where a complete reply ends in `buf`, if it holds one.
fn reply_end(buf: &[u8]) -> Option<usize> {
    let newline = buf.iter().position(|&b| b == b'\n')?;
    let rest = &buf[newline + 1..];
    if rest.first() != Some(&b'@') {
        return None;
    }
    // `@` alone, or `@name@`.
    match rest[1..].iter().position(|&b| b == b'@') {
        Some(i) if rest[1..=i].iter().all(|&b| b != b'\n' && b != b':') => {
            Some(newline + 1 + i + 2)
        }
        _ if rest.len() == 1
            || !rest[1..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
        {
            Some(newline + 2)
        }
        _ => None,
    }
}

pub fn cram_digest(secret: &str, challenge: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(secret.as_bytes());
    ctx.update(challenge.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` is a lower-case hyphenated UUID.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}
