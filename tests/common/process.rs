//! The `atserver` binary run as a child process: started on an ephemeral
//! loopback port, its log collected, its memory readable, killed when the
//! test ends however it ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_atserver");

/// A server's folder: its certificates and its data, kept across restarts.
pub struct ServerHome {
    dir: tempfile::TempDir,
    certs: atserver::devcerts::DevCerts,
}

impl Default for ServerHome {
    fn default() -> Self {
        ServerHome::new()
    }
}

impl ServerHome {
    pub fn new() -> ServerHome {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = atserver::devcerts::ensure(&dir.path().join("certs")).expect("certs");
        ServerHome { dir, certs }
    }

    /// The `--data-dir` of servers started in this home.
    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The development CA and the loopback certificate of this home.
    pub fn certs(&self) -> &atserver::devcerts::DevCerts {
        &self.certs
    }
}

/// A running `atserver serve`.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    log: Receiver<String>,
    pub target: TestServer,
    /// What it logged until it was ready.
    pub startup_log: Vec<String>,
    _home: Option<ServerHome>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// `atserver serve` for `atsign` with `secret`, one shard, on
    /// 127.0.0.1, plus `extra` arguments and environment.
    pub fn start(
        atsign: &str,
        secret: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let home = ServerHome::new();
        let mut server = ServerProcess::start_at(&home, atsign, secret, extra, env);
        server._home = Some(home);
        server
    }

    /// The same, in `home` (which outlives the process: a restart finds
    /// the data the last one left).
    pub fn start_at(
        home: &ServerHome,
        atsign: &str,
        secret: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        ServerProcess::start_in(home, &home.data(), atsign, secret, extra, env)
    }

    /// The same with the certificates of `home` and the data in `data`
    /// (several servers sharing one CA).
    pub fn start_in(
        home: &ServerHome,
        data: &std::path::Path,
        atsign: &str,
        secret: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let certs = &home.certs;
        let mut child = serve_command(home, data, atsign, secret, extra, env)
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
        let mut startup_log = Vec::new();
        let addr: SocketAddr = loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server starts");
            startup_log.push(line.clone());
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
        ServerProcess {
            child,
            addr,
            log,
            target: TestServer::external(addr, certs.ca.clone()),
            startup_log,
            _home: None,
        }
    }

    /// Runs `atserver serve` in `home` as [`ServerProcess::start_at`] does,
    /// for a start that must end before the server is ready (a crash while
    /// provisioning): its exit status and everything it logged.
    pub fn run_to_exit(
        home: &ServerHome,
        atsign: &str,
        secret: &str,
        env: &[(&str, &str)],
        limit: Duration,
    ) -> (ExitStatus, Vec<String>) {
        let mut child = serve_command(home, &home.data(), atsign, secret, &[], env)
            .spawn()
            .expect("spawn atserver");
        // Read while it runs, so a full pipe cannot stall it.
        let stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server kept running for {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, reader.join().expect("log reader"))
    }

    /// The server's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .expect("VmRSS")
    }

    /// Stops the process at once, as `kill -9` does.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits up to `limit` for the process to end; its status and its log.
    pub fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let log: Vec<String> = self.log.try_iter().collect();
                return (status, log);
            }
            assert!(
                Instant::now() < deadline,
                "the server kept running for {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `atserver serve` for `atsign` with `secret` in `home`: one shard on
/// 127.0.0.1, an ephemeral port, info logs on a pipe.
fn serve_command(
    home: &ServerHome,
    data: &std::path::Path,
    atsign: &str,
    secret: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let certs = &home.certs;
    let mut command = Command::new(BIN);
    command
        .args(["serve", "-a", atsign, "-s", secret])
        .args(["--host", "127.0.0.1", "--shards", "1"])
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    // An ephemeral port unless the caller names one (a restart in place).
    if !extra.contains(&"-p") {
        command.args(["-p", "0"]);
    }
    command
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}
