//! Tests that run the `atserver` binary itself: the commands an operator
//! types, `kill -9` durability, the directory and the one-command dev setup.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atserver::client::auth::cram_line;
use common::{Client, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_atserver");

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a tracing line containing `marker` on stderr and returns the
/// `addr=` it reports.
fn wait_for_addr(child: &mut Child, marker: &str) -> SocketAddr {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&marker)
                && let Some(addr) = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server reported its address");
    addr.parse().expect("socket address")
}

fn serve(data: &Path, certs: &atserver::devcerts::DevCerts, secret: &str) -> (Running, SocketAddr) {
    serve_with(data, certs, secret, "durable")
}

fn serve_with(
    data: &Path,
    certs: &atserver::devcerts::DevCerts,
    secret: &str,
    durability: &str,
) -> (Running, SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "-a",
            "@durable",
            "-s",
            secret,
            "-p",
            "0",
            "--host",
            "127.0.0.1",
            "--shards",
            "1",
        ])
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .arg("--data-dir")
        .arg(data)
        .args(["--durability", durability])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atserver");
    let addr = wait_for_addr(&mut child, "atServer ready");
    (Running(child), addr)
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = atserver::devcerts::ensure(&dir.path().join("certs")).expect("certs");
    let data = dir.path().join("data");
    let secret = "kill-nine-secret";
    let (mut first, addr) = serve(&data, &certs, secret);
    let target = TestServer::external(addr, certs.ca.clone());
    let mut c = Client::connect(&target);
    c.cram("@durable", secret);
    // Commit ids 0 and 1 are the signing key pair of the first start; the
    // restart keeps that pair, so the ids go on from 201.
    for i in 0..200 {
        assert_eq!(
            c.send(&format!("update:k{i}.app@durable value-{i}")),
            format!("data:{}\n@durable@", i + 2)
        );
    }
    // SIGKILL: no chance to flush anything that was not already durable.
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();
    drop(first);

    let (_second, addr) = serve(&data, &certs, secret);
    let target = TestServer::external(addr, certs.ca.clone());
    let mut c = Client::connect(&target);
    c.cram("@durable", secret);
    for i in [0, 99, 199] {
        assert_eq!(
            c.send(&format!("llookup:k{i}.app@durable")),
            format!("data:value-{i}\n@durable@")
        );
    }
    assert_eq!(
        c.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"201\"}]\n@durable@"
    );
    assert_eq!(c.send("update:after.app@durable x"), "data:202\n@durable@");
}

#[test]
fn sigterm_flushes_the_store_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = atserver::devcerts::ensure(&dir.path().join("certs")).expect("certs");
    let data = dir.path().join("data");
    let secret = "sigterm-secret";
    let (mut first, addr) = serve_with(&data, &certs, secret, "fast");
    let target = TestServer::external(addr, certs.ca.clone());
    let mut c = Client::connect(&target);
    c.cram("@durable", secret);
    for i in 0..20 {
        assert_eq!(
            c.send(&format!("update:t{i}.app@durable v{i}")),
            format!("data:{}\n@durable@", i + 2)
        );
    }
    let pid = first.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = first.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit on SIGTERM, got {exit:?}");
    drop(first);

    let (_second, addr) = serve_with(&data, &certs, secret, "fast");
    let target = TestServer::external(addr, certs.ca.clone());
    let mut c = Client::connect(&target);
    c.cram("@durable", secret);
    assert_eq!(c.send("llookup:t19.app@durable"), "data:v19\n@durable@");
}

/// One directory lookup; the reply (`host:port\r\n@`) frames like a
/// server reply whose payload ends in `\r`.
fn directory_exchange(client: &mut Client, query: &str) -> String {
    client.write(format!("{query}\n").as_bytes());
    client.read_reply()
}

/// `atserver directory` on an ephemeral loopback port with `records`.
struct Directory {
    _running: Running,
    addr: SocketAddr,
    certs: atserver::devcerts::DevCerts,
    _dir: tempfile::TempDir,
}

impl Directory {
    fn start(records: &[&str]) -> Directory {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = atserver::devcerts::ensure(dir.path()).expect("certs");
        let mut command = Command::new(BIN);
        command.args(["directory", "--listen", "127.0.0.1:0"]);
        for record in records {
            command.args(["--record", record]);
        }
        let mut child = command
            .arg("--tls-cert")
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn directory");
        let addr = wait_for_addr(&mut child, "atDirectory ready");
        Directory {
            _running: Running(child),
            addr,
            certs,
            _dir: dir,
        }
    }

    /// A TLS connection past its `@` greeting.
    fn connect(&self) -> Client {
        let mut client = Client::connect_raw(self.addr, &self.certs.ca);
        assert_eq!(client.read_exactly(1), b"@");
        client
    }
}

#[test]
fn the_directory_answers_lookups_and_throttles_misses() {
    let directory = Directory::start(&["alice=127.0.0.1:6464", "@Bob=localhost:7000"]);
    let mut c = directory.connect();
    assert_eq!(directory_exchange(&mut c, "alice"), "127.0.0.1:6464\r\n@");
    assert_eq!(directory_exchange(&mut c, "BOB"), "localhost:7000\r\n@");
    assert_eq!(directory_exchange(&mut c, "nobody"), "null\r\n@");
    let started = Instant::now();
    assert_eq!(directory_exchange(&mut c, "nobody2"), "null\r\n@");
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "second miss is delayed"
    );
    c.write(b"nobody3\n");
    assert!(c.is_closed(), "third miss closes");
}

/// The C SDK sends a blank line right after the directory's `@`: the
/// reference looks up `""`, answers `null` and counts it as a miss.
#[test]
fn the_directory_answers_a_blank_line_as_a_missed_lookup() {
    let directory = Directory::start(&["alice=127.0.0.1:6464"]);
    let mut c = directory.connect();
    c.write(b"\r\n");
    assert_eq!(c.read_exactly(7), b"null\r\n@");
    assert_eq!(directory_exchange(&mut c, "alice"), "127.0.0.1:6464\r\n@");
    // The blank line was the first miss: this one is the second (delayed),
    // and a third closes.
    let started = Instant::now();
    assert_eq!(directory_exchange(&mut c, ""), "null\r\n@");
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "the second miss is delayed"
    );
    c.write(b" \r\n");
    assert!(c.is_closed(), "the third miss closes");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn dev_starts_a_directory_and_a_server_in_one_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (directory_port, port) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--directory-port",
            &directory_port.to_string(),
            "--port",
            &port.to_string(),
            "--shards",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev");
    let mut stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).is_ok_and(|n| n == 1) {
            text.push(byte[0] as char);
            if text.ends_with("ready\n") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let printed = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dev printed ready");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines[0], format!("directory 127.0.0.1:{directory_port}"));
    let ca = lines[1].strip_prefix("ca ").expect("ca line");
    let alice: Vec<&str> = lines[2].split(' ').collect();
    assert_eq!(
        &alice[..3],
        ["@alice", &format!("127.0.0.1:{port}"), "cram-secret"]
    );
    assert!(lines[3].starts_with("@bob "));

    let mut root = Client::connect_raw(
        format!("127.0.0.1:{directory_port}").parse().expect("addr"),
        Path::new(ca),
    );
    assert_eq!(root.read_exactly(1), b"@");
    assert_eq!(
        directory_exchange(&mut root, "alice"),
        format!("127.0.0.1:{port}\r\n@")
    );

    let target = TestServer::external(
        format!("127.0.0.1:{port}").parse().expect("addr"),
        ca.into(),
    );
    let mut c = Client::connect(&target);
    let challenge = c.challenge("@alice");
    assert_eq!(
        c.send(&cram_line(alice[3], &challenge)),
        "data:success\n@alice@"
    );
    drop(running);
}

/// The server's own directory client, on a shard with the shard's dialer
/// and clock, against the real `atserver directory` over TLS on loopback.
#[test]
fn the_directory_client_resolves_a_registered_atsign_over_tls() {
    use atserver::remote::directory::{DirectoryCache, DirectoryClient, DirectoryError};
    use atserver::shard::{ShardClock, ShardDialer};

    let directory = Directory::start(&["alice=127.0.0.1:6464"]);
    let root = format!("127.0.0.1:{}", directory.addr.port());
    let files = atserver::tls::TlsFiles {
        cert: directory.certs.cert.clone(),
        key: directory.certs.key.clone(),
        ca: Some(directory.certs.ca.clone()),
    };
    let tls = atserver::tls::outbound_config(&files).expect("outbound TLS");
    atserver::shard::ensure_memlock().expect("locked memory");
    // A test-only executor: the shard module's dialer and clock need one.
    let outcomes = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(atserver::limits::IO_MEMORY_BYTES)
        .spawn(move || async move {
            let root = atserver::remote::directory::parse_address(&root).expect("root");
            let client = DirectoryClient::new(
                root,
                tls,
                std::sync::Arc::new(DirectoryCache::default()),
                ShardDialer,
                ShardClock,
            )
            .expect("client");
            let alice = client.resolve("@Alice").await.map(|a| a.to_string());
            let nobody = client.resolve("@nobody").await.map(|a| a.to_string());
            (alice, nobody, client.cache().len())
        })
        .expect("executor")
        .join()
        .expect("executor ran");
    assert_eq!(outcomes.0, Ok("127.0.0.1:6464".to_string()));
    assert_eq!(
        outcomes.1,
        Err(DirectoryError::NotFound {
            atsign: "@nobody".into()
        })
    );
    assert_eq!(outcomes.2, 2, "the address and the null are both cached");
}
