//! Shared helpers for integration tests: an in-process server on an ephemeral
//! loopback port, and the library's blocking client wrapped to panic with a
//! clear message on failure.

// Test helpers fail the test loudly on anything unexpected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // each test binary uses a different subset

pub mod network;
pub mod notification;
pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atserver::app::{ServerPlan, start_server};
use atserver::client::{ClientError, blocking};
use atserver::context::SessionLimits;
use atserver::storage::Durability;
use atserver::tls::TlsFiles;
use rustls::pki_types::ServerName;

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
    start_sharded(atsigns, limits, 1)
}

/// [`start_with_limits`] on `shards` shards (connections spread over them).
pub fn start_sharded(atsigns: &[(&str, &str)], limits: SessionLimits, shards: usize) -> TestServer {
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
        shards,
        durability: Durability::Fast,
        limits,
        scheduling: atserver::shard::Scheduling::Batch,
        root: None,
        peer_certificates_required: true,
        auto_notify: true,
        outbound_step: std::time::Duration::from_millis(10_000),
        cache_refresh: std::time::Duration::from_secs(3_600),
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

/// A transcript connection (the in-process driver, no socket) on which
/// the owner of `atsign` has logged in with its CRAM `secret`.
pub fn transcript_owner(
    server: &atserver::app::ScratchServer,
    atsign: &str,
    secret: &str,
) -> atserver::session::Transcript {
    let mut t = atserver::session::Transcript::new(server.server.clone()).expect("transcript");
    let reply = t.send(&format!("from:{atsign}"));
    let challenge = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("a challenge");
    let cram = atserver::client::auth::cram_line(secret, challenge);
    assert_eq!(t.send(&cram), format!("data:success\n{atsign}@"));
    t
}

/// The library's blocking client, panicking with a clear message on any
/// failure, as tests want.
pub struct Client {
    inner: blocking::Client,
}

fn tls_for(ca: &Path) -> Arc<rustls::ClientConfig> {
    atserver::tls::client_config(ca, None)
        .unwrap_or_else(|e| panic!("client TLS config from {}: {e}", ca.display()))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

impl Client {
    /// Connects, completes TLS and reads the `@` greeting.
    pub fn connect(server: &TestServer) -> Client {
        let inner =
            blocking::Client::connect(server.addr, tls_for(&server.ca), localhost(), READ_TIMEOUT)
                .unwrap_or_else(|e| panic!("connecting to {}: {e}", server.addr));
        Client { inner }
    }

    /// Connects presenting the certificate `cert` (PEM chain) with `key` as
    /// a TLS client certificate, as another atServer does, and reads the
    /// greeting.
    pub fn connect_as_server(server: &TestServer, cert: &Path, key: &Path) -> Client {
        let tls = atserver::tls::client_config(&server.ca, Some((cert, key)))
            .unwrap_or_else(|e| panic!("client TLS config with an identity: {e}"));
        let inner = blocking::Client::connect(server.addr, tls, localhost(), READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", server.addr));
        Client { inner }
    }

    /// Connects and completes TLS without reading anything.
    pub fn connect_raw(addr: SocketAddr, ca: &Path) -> Client {
        let inner = blocking::Client::connect_without_greeting(
            addr,
            tls_for(ca),
            localhost(),
            READ_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        Client { inner }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.inner
            .write_raw(bytes)
            .unwrap_or_else(|e| panic!("write failed: {e}"));
    }

    pub fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        self.inner
            .read_exact(n)
            .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"))
    }

    /// Reads one reply: everything up to and including the prompt after the
    /// next `\n` (`@` or `@name@`). Returns it as text.
    pub fn read_reply(&mut self) -> String {
        let reply = self
            .inner
            .read_reply()
            .unwrap_or_else(|e| panic!("waiting for a reply: {e}"));
        String::from_utf8(reply.into_bytes()).expect("utf-8 reply")
    }

    /// Sends one line and returns the full reply including its prompt.
    pub fn send(&mut self, line: &str) -> String {
        let reply = self
            .inner
            .request(line)
            .unwrap_or_else(|e| panic!("request {:?}: {e}", shorten(line)));
        String::from_utf8(reply.into_bytes()).expect("utf-8 reply")
    }

    /// Sends a `monitor` command; the connection is a monitor from then on.
    pub fn start_monitor(&mut self, line: &str) {
        self.inner
            .start_monitor(line)
            .unwrap_or_else(|e| panic!("monitor {line:?}: {e}"));
    }

    /// The next line on a monitor connection within `limit` (a
    /// notification line, or a reply without prompt), or `None` when
    /// nothing came.
    pub fn monitor_line_within(&mut self, limit: std::time::Duration) -> Option<String> {
        use atserver::client::{ClientError, MonitorFrame};
        match self.inner.read_monitor_frame_within(limit) {
            Ok(MonitorFrame::Notification(line)) => {
                Some(String::from_utf8(line).expect("utf-8 notification"))
            }
            Ok(MonitorFrame::Reply(reply)) => {
                Some(String::from_utf8(reply.into_bytes()).expect("utf-8 reply"))
            }
            Err(ClientError::Timeout { .. }) => None,
            Err(e) => panic!("reading the monitor: {e}"),
        }
    }

    /// `pol` as `atsign`; the raw answer to a refused one.
    pub fn pol(&mut self, atsign: &str) -> Result<(), String> {
        match self.inner.pol(atsign) {
            Ok(()) => Ok(()),
            Err(atserver::client::ClientError::UnexpectedReply { reply, .. }) => {
                Err(String::from_utf8(reply).expect("utf-8 reply"))
            }
            Err(e) => panic!("pol: {e}"),
        }
    }

    /// True when the server closes the connection (EOF) within the read
    /// timeout; any bytes that arrive first are discarded.
    pub fn is_closed(&mut self) -> bool {
        !matches!(
            self.inner.wait_for_close(),
            Err(ClientError::Timeout { .. })
        )
    }

    /// Authenticates as `atsign` with its CRAM secret.
    pub fn cram(&mut self, atsign: &str, secret: &str) {
        self.inner
            .cram(atsign, secret)
            .unwrap_or_else(|e| panic!("cram as {atsign}: {e}"));
        assert_eq!(
            self.inner.framer().expected_prompt(),
            format!("{atsign}@").as_bytes(),
            "prompt after cram"
        );
    }

    /// Sends `from:` and returns the challenge text (reply without `data:`).
    pub fn challenge(&mut self, atsign: &str) -> String {
        self.inner
            .challenge(atsign)
            .unwrap_or_else(|e| panic!("challenge for {atsign}: {e}"))
    }
}

/// A line short enough for a panic message.
fn shorten(line: &str) -> &str {
    line.get(..line.len().min(80)).unwrap_or(line)
}

/// Whether `text` is a lower-case hyphenated UUID.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A TCP connection to `to` from the loopback address `source` (any of
/// 127.0.0.0/8), so a test can play several client addresses at once.
pub fn tcp_from(source: std::net::Ipv4Addr, to: SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("tcp_from connects to IPv4 addresses only");
    };
    let address = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let local = address(source, 0);
    let remote = address(*to.ip(), to.port());
    // SAFETY: plain socket syscalls on a descriptor this function owns until
    // it hands it to `TcpStream`; both addresses are valid `sockaddr_in`
    // values that outlive the calls, with their true length.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let bound = libc::bind(fd, (&raw const local).cast(), length);
        assert_eq!(
            bound,
            0,
            "bind {source}: {}",
            std::io::Error::last_os_error()
        );
        let connected = libc::connect(fd, (&raw const remote).cast(), length);
        assert_eq!(
            connected,
            0,
            "connect {to}: {}",
            std::io::Error::last_os_error()
        );
        let stream = std::net::TcpStream::from_raw_fd(fd);
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream
    }
}

impl Client {
    /// TLS (and the greeting) over a socket the test connected itself.
    pub fn over_tcp(tcp: std::net::TcpStream, ca: &Path) -> Client {
        let mut inner = blocking::Client::over_tcp(tcp, tls_for(ca), localhost(), READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("TLS over a prepared socket: {e}"));
        inner
            .read_greeting()
            .unwrap_or_else(|e| panic!("greeting: {e}"));
        Client { inner }
    }

    /// TLS over a socket the test connected itself, reading nothing.
    pub fn over_tcp_raw(tcp: std::net::TcpStream, ca: &Path) -> Client {
        let inner = blocking::Client::over_tcp(tcp, tls_for(ca), localhost(), READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("TLS over a prepared socket: {e}"));
        Client { inner }
    }
}

impl Client {
    /// Writes `bytes`; false when the server stopped taking them (a closed
    /// connection, or one the server stopped reading until the timeout).
    pub fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.inner.write_raw(bytes).is_ok()
    }
}
