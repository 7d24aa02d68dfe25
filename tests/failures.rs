//! Failures stop loudly: the real binary, built with the `failpoints`
//! feature, is made to fail a commit or panic its write actor, and must
//! stop accepting work, say why in its log and exit non-zero (70) so that a
//! supervisor restarts it — never go on serving half-alive.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{Client, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_atserver");
const SECRET: &str = "failure-secret";

/// How long a failed server may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// The exit status the supervisor uses after a fatal failure.
const EXIT_FATAL: i32 = 70;

/// A running server, killed when the test ends however it ends.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Receiver<String>,
    _dir: tempfile::TempDir,
    target: TestServer,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `atserver serve` for `@fail` with `failpoints` armed.
    fn start(failpoints: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = atserver::devcerts::ensure(&dir.path().join("certs")).expect("certs");
        let mut child = Command::new(BIN)
            .args(["serve", "-a", "@fail", "-s", SECRET, "-p", "0"])
            .args(["--host", "127.0.0.1", "--shards", "1"])
            .arg("--tls-cert")
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("ATSERVER_FAILPOINTS", failpoints)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn atserver");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server starts");
            if line.contains("atServer ready")
                && let Some(addr) = line.split("addr=").nth(1)
            {
                break addr
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("address");
            }
        };
        Server {
            child,
            addr,
            log,
            target: TestServer::external(addr, certs.ca.clone()),
            _dir: dir,
        }
    }

    fn owner(&self) -> Client {
        let mut client = Client::connect(&self.target);
        client.cram("@fail", SECRET);
        client
    }

    /// Waits for the process to end; returns its status and its log.
    fn wait_for_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + EXIT_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let log: Vec<String> = self.log.try_iter().collect();
                return (status, log);
            }
            assert!(
                Instant::now() < deadline,
                "the server kept running after a fatal failure"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn assert_stopped_loudly(server: &mut Server, cause: &str) {
    let (status, log) = server.wait_for_exit();
    assert_eq!(
        status.code(),
        Some(EXIT_FATAL),
        "exit status; log: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.contains("stopping after a fatal failure") && line.contains(cause)),
        "the log says why: {log:#?}"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err(),
        "nothing listens any more"
    );
}

/// The store's first commit is the CRAM secret written at start; the second
/// is the client's first write.
#[test]
fn a_failed_commit_poisons_the_store_and_stops_the_process() {
    let mut server = Server::start("store.commit=error@2");
    let mut client = server.owner();
    let reply = client.send("update:first.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert!(client.is_closed(), "AT0002 closes the connection");
    assert_stopped_loudly(&mut server, "failpoint store.commit=error@2");
}

#[test]
fn a_panic_in_the_write_actor_poisons_the_store_and_stops_the_process() {
    let mut server = Server::start("store.apply=panic@2");
    let mut client = server.owner();
    let reply = client.send("update:first.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert_stopped_loudly(&mut server, "panicked");
}

#[test]
fn reads_are_served_until_the_failure_and_nothing_is_accepted_after() {
    let mut server = Server::start("store.commit=error@3");
    let mut client = server.owner();
    assert_eq!(client.send("update:kept.app@fail v"), "data:0\n@fail@");
    assert_eq!(client.send("llookup:kept.app@fail"), "data:v\n@fail@");
    let reply = client.send("update:lost.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert_stopped_loudly(&mut server, "failpoint store.commit=error@3");
}
