//! Several `atserver serve` processes and one `atserver directory` on
//! loopback, sharing one development CA, so the servers trust each other
//! (server and client certificates) and the directory: the set-up of the
//! server-to-server tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestServer;
use super::process::{ServerHome, ServerProcess};

const BIN: &str = env!("CARGO_BIN_EXE_atserver");

/// A free loopback port (released again, so a race is possible but rare).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Kills the directory when the network is dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes of one test network.
pub struct Network {
    /// One server per atSign, in the order given.
    pub servers: Vec<ServerProcess>,
    /// The directory's address (what `--root` names).
    pub root: SocketAddr,
    pub home: ServerHome,
    /// `(atsign, secret)` of each server, in order.
    atsigns: Vec<(String, String)>,
    _directory: Killed,
}

impl Network {
    /// A server per `(atsign, secret)`, each with `extra` arguments, and a
    /// directory that knows them plus `records` (`name=host:port`, for
    /// atSigns whose "servers" a test plays itself).
    pub fn start(atsigns: &[(&str, &str)], extra: &[&str], records: &[String]) -> Network {
        let home = ServerHome::new();
        let root_port = free_port();
        let root = format!("127.0.0.1:{root_port}");
        let ca = home.certs().ca.to_string_lossy().to_string();
        let mut servers = Vec::new();
        for (atsign, secret) in atsigns {
            let mut args = vec!["--tls-ca", ca.as_str(), "--root", root.as_str()];
            args.extend_from_slice(extra);
            let data = home.data().join(atsign.trim_start_matches('@'));
            servers.push(ServerProcess::start_in(
                &home,
                &data,
                atsign,
                secret,
                &args,
                &[],
            ));
        }
        let mut all: Vec<String> = atsigns
            .iter()
            .zip(&servers)
            .map(|((atsign, _), server)| format!("{atsign}={}", server.addr))
            .collect();
        all.extend_from_slice(records);
        let directory = start_directory(&home, &root, &all);
        Network {
            servers,
            root: root.parse().expect("root address"),
            home,
            atsigns: atsigns
                .iter()
                .map(|(a, s)| (a.to_string(), s.to_string()))
                .collect(),
            _directory: directory,
        }
    }

    /// The `TestServer` view of the server of the `index`th atSign.
    pub fn server(&self, index: usize) -> &TestServer {
        &self.servers[index].target
    }

    /// Stops the server of the `index`th atSign at once, as `kill -9` does.
    pub fn kill(&mut self, index: usize) {
        self.servers[index].kill();
    }

    /// Starts the server of the `index`th atSign again on its address and
    /// data (the directory keeps pointing at it), with `extra` arguments.
    pub fn restart(&mut self, index: usize, extra: &[&str]) {
        self.servers[index].kill();
        let (atsign, secret) = self.atsigns[index].clone();
        let port = self.servers[index].addr.port().to_string();
        let root = self.root.to_string();
        let ca = self.home.certs().ca.to_string_lossy().to_string();
        let mut args = vec![
            "--tls-ca",
            ca.as_str(),
            "--root",
            root.as_str(),
            "-p",
            port.as_str(),
        ];
        args.extend_from_slice(extra);
        let data = self.home.data().join(atsign.trim_start_matches('@'));
        self.servers[index] =
            ServerProcess::start_in(&self.home, &data, &atsign, &secret, &args, &[]);
    }

    /// The shared certificate files.
    pub fn ca(&self) -> PathBuf {
        self.home.certs().ca.clone()
    }
}

fn start_directory(home: &ServerHome, listen: &str, records: &[String]) -> Killed {
    let certs = home.certs();
    let mut command = Command::new(BIN);
    command.args(["directory", "--listen", listen]);
    for record in records {
        command.args(["--record", record]);
    }
    let mut child = command
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn directory");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the directory starts");
        if line.contains("atDirectory ready") {
            break;
        }
    }
    Killed(child)
}
