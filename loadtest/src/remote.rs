//! The `remote-lookup` scenario's network and its cold lookups.
//!
//! An atDirectory and two atservers on loopback, all with the run's
//! certificate and trusting the run's CA (`--tls-ca`, `--root`), as
//! `tests/common/network.rs` sets them up: @alice's server holds the data,
//! @bob's owner asks its own server for it, and @bob's server fetches it
//! from @alice's (directory, TLS with client certificates, `to:`, `from`,
//! `pol`, then `lookup:all:`), keeping the authenticated connection pooled.
//!
//! Cold lookups need a path nothing has warmed yet, on either side: each one
//! is made by a fresh pair of atSigns, `@coldbob<i>` (hosted on @bob's
//! server) looking up what `@coldalice<i>` (hosted on @alice's) shared with
//! it. Neither server has resolved, connected to or authenticated either
//! atSign of the pair before: @bob's server resolves @coldalice<i>, opens a
//! new TLS connection and proves @coldbob<i>; @alice's server resolves
//! @coldbob<i>, checks the client certificate against that address and
//! fetches the cookie and signing key from @bob's server on a new
//! connection of its own. What stays warm is each process's TLS session
//! cache (every server here is at 127.0.0.1, so a second handshake with the
//! same server resumes) and the shard's connection to the directory.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use atserver::client::blocking::Client;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::client::Target;
use crate::procs::{self, AtServerSpec, CertFiles, ChildGuard};
use crate::report::{Latency, new_histogram};

/// The atSign whose server holds the data.
pub const REMOTE_ATSIGN: &str = "@alice";
/// The atSign whose owner connections do the lookups, on its own server.
pub const LOCAL_ATSIGN: &str = "@bob";
/// Cold lookups of a run: each one adds an atSign to both servers, and
/// each atSign costs a signing key pair generated at the server's start.
pub const COLD_LOOKUPS_MAX: usize = 64;
/// The key every cold pair shares.
const COLD_KEY: &str = "cold.bench";
/// Updates written per pipelined batch while sharing keys.
const SHARE_BATCH: usize = 64;

/// The key `i` of the warm lookups, as @bob's owner names it.
pub fn shared_key(i: u64) -> String {
    format!("rk{i}.bench{REMOTE_ATSIGN}")
}

fn cold_remote(i: usize) -> String {
    format!("@coldalice{i}")
}

fn cold_local(i: usize) -> String {
    format!("@coldbob{i}")
}

/// What starting the network needs.
pub struct NetworkSpec<'a> {
    pub bin: &'a Path,
    pub certs: &'a CertFiles,
    pub work: &'a Path,
    pub durability: &'a str,
    pub shards: Option<usize>,
    pub extra_args: &'a [String],
    pub cold_lookups: usize,
    /// Whether the servers notify the recipients of shared keys the owners
    /// write. Off for lookups: the shares made while setting up would
    /// otherwise open connections between the cold pairs (the
    /// notifications' delivery) before the cold lookups are measured.
    pub auto_notify: bool,
}

/// The directory and both servers; all are stopped when this is dropped.
pub struct Network {
    pub alice: ChildGuard,
    pub alice_addr: SocketAddr,
    pub bob: ChildGuard,
    pub bob_addr: SocketAddr,
    directory: ChildGuard,
    /// (atSign, CRAM secret) hosted on @alice's server, @alice first.
    alice_hosted: Vec<(String, String)>,
    /// The same for @bob's server, @bob first.
    bob_hosted: Vec<(String, String)>,
    cold_lookups: usize,
    /// The two servers' logs, @alice's first.
    logs: (std::path::PathBuf, std::path::PathBuf),
}

impl Network {
    /// Starts both servers (at once: each generates a signing key pair per
    /// atSign before it listens) pointing at a directory on a port chosen
    /// now, then the directory with their addresses.
    pub fn start(spec: &NetworkSpec<'_>) -> Result<Network, String> {
        let directory_addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let mut alice_hosted = vec![(REMOTE_ATSIGN.to_string(), crate::random_hex(16)?)];
        let mut bob_hosted = vec![(LOCAL_ATSIGN.to_string(), crate::random_hex(16)?)];
        for i in 0..spec.cold_lookups {
            alice_hosted.push((cold_remote(i), crate::random_hex(16)?));
            bob_hosted.push((cold_local(i), crate::random_hex(16)?));
        }
        let mut server_args = vec![
            "--tls-ca".to_string(),
            spec.certs.ca.to_string_lossy().into_owned(),
            "--root".to_string(),
            directory_addr.to_string(),
        ];
        if !spec.auto_notify {
            server_args.push("--no-auto-notify".to_string());
        }
        server_args.extend_from_slice(spec.extra_args);
        let server = |name: &str, hosted: &[(String, String)]| {
            procs::spawn_atserver(&AtServerSpec {
                bin: spec.bin,
                hosted,
                secret_file: None,
                certs: spec.certs,
                data_dir: spec.work.join(format!("{name}-data")),
                log: spec.work.join(format!("{name}.log")),
                shards: spec.shards,
                extra_args: &server_args,
                durability: spec.durability,
            })
        };
        // Both spawned from this thread (their parent-death signal follows
        // the spawning thread), then waited for together.
        let alice = server("alice", &alice_hosted)?;
        let bob = server("bob", &bob_hosted)?;
        let (alice, bob) = (alice.wait_ready(), bob.wait_ready());
        let ((alice, alice_addr), (bob, bob_addr)) = (alice?, bob?);
        let mut records = String::new();
        for (hosted, addr) in [(&alice_hosted, alice_addr), (&bob_hosted, bob_addr)] {
            for (atsign, _) in hosted {
                let _ = writeln!(records, "{}={addr}", atsign.trim_start_matches('@'));
            }
        }
        let records_file = spec.work.join("directory-records.txt");
        std::fs::write(&records_file, records)
            .map_err(|e| format!("cannot write {}: {e}", records_file.display()))?;
        let (directory, _) = procs::start_directory(
            spec.bin,
            directory_addr,
            &records_file,
            spec.certs,
            &spec.work.join("directory.log"),
        )?;
        Ok(Network {
            alice,
            alice_addr,
            bob,
            bob_addr,
            directory,
            alice_hosted,
            bob_hosted,
            cold_lookups: spec.cold_lookups,
            logs: (spec.work.join("alice.log"), spec.work.join("bob.log")),
        })
    }

    /// @bob's CRAM secret (to install the pkam key of the measured owner
    /// connections).
    pub fn bob_secret(&self) -> &str {
        self.bob_hosted.first().map_or("", |(_, s)| s.as_str())
    }

    /// How many reactor ticks each server (@alice's, @bob's) logged as
    /// having found work no wake-up had started (`stranded_ticks=N`, the
    /// latest total a server logs once a second when it moved; 0 when it
    /// never did).
    pub fn stranded_ticks(&self) -> (u64, u64) {
        (
            stranded_ticks_in(&self.logs.0),
            stranded_ticks_in(&self.logs.1),
        )
    }

    /// The log of @bob's server (the measured one in remote-lookup).
    pub fn bob_log(&self) -> &Path {
        &self.logs.1
    }

    /// @alice's CRAM secret (the notify scenarios' senders log in with it).
    pub fn alice_secret(&self) -> &str {
        self.alice_hosted.first().map_or("", |(_, s)| s.as_str())
    }

    /// Fails when any of the three processes has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        self.directory.check_alive()?;
        self.alice.check_alive()?;
        self.bob.check_alive()
    }
}

/// A cram-authenticated owner connection as `atsign` to the server of `at`.
pub fn cram_owner(at: &Target, atsign: &str, secret: &str) -> Result<Client, String> {
    let mut conn = at
        .connect()
        .map_err(|e| format!("connecting as {atsign}: {e}"))?;
    conn.cram(atsign, secret)
        .map_err(|e| format!("cram as {atsign}: {e}"))?;
    Ok(conn)
}

/// Sends `lines` pipelined in batches; every reply must be `data:`.
fn write_all_pipelined(conn: &mut Client, lines: &[String]) -> Result<(), String> {
    for batch in lines.chunks(SHARE_BATCH) {
        let mut out = String::new();
        for line in batch {
            out.push_str(line);
            out.push('\n');
        }
        conn.write_raw(out.as_bytes()).map_err(|e| e.to_string())?;
        for _ in batch {
            let reply = conn.read_reply().map_err(|e| e.to_string())?;
            if reply.data().is_none() {
                return Err(format!(
                    "update refused: {}",
                    String::from_utf8_lossy(reply.payload())
                ));
            }
        }
    }
    Ok(())
}

/// @alice's owner shares `keys` keys with @bob; each cold atSign shares
/// its key with its pair. `alice` is a target for @alice's server.
pub fn share(network: &Network, alice: &Target, keys: usize, value: &str) -> Result<(), String> {
    let (atsign, secret) = network
        .alice_hosted
        .first()
        .ok_or("no atSign on @alice's server")?;
    let mut conn = cram_owner(alice, atsign, secret)?;
    let lines: Vec<String> = (0..keys as u64)
        .map(|i| format!("update:{LOCAL_ATSIGN}:{} {value}", shared_key(i)))
        .collect();
    write_all_pipelined(&mut conn, &lines).map_err(|e| format!("sharing with @bob: {e}"))?;
    conn.close();
    for i in 0..network.cold_lookups {
        let (atsign, secret) = network
            .alice_hosted
            .get(i + 1)
            .ok_or("missing cold atSign")?;
        let mut conn = cram_owner(alice, atsign, secret)?;
        let line = format!("update:{}:{COLD_KEY}{atsign} {value}", cold_local(i));
        write_all_pipelined(&mut conn, &[line]).map_err(|e| format!("sharing as {atsign}: {e}"))?;
        conn.close();
    }
    Ok(())
}

/// The cold lookups' figures.
pub struct ColdReport {
    pub lookups: usize,
    pub errors: Vec<String>,
    pub latency: Latency,
    /// The run's first remote lookup: the only one whose TLS handshakes are
    /// all full (later ones resume) and which may also open the shard's
    /// directory connection.
    pub first_us: Option<f64>,
    /// Connections into @alice's server opened by the cold lookups (counted
    /// in `/proc/net/tcp`): one per lookup when each truly went cold.
    pub peer_connections_opened: Option<usize>,
}

impl ColdReport {
    pub fn extras(&self) -> Vec<(String, Value)> {
        vec![
            ("cold_lookups".into(), json!(self.lookups)),
            ("cold_errors".into(), json!(self.errors.len())),
            ("cold_latency_us".into(), self.latency.json()),
            (
                "cold_first_us".into(),
                json!(self.first_us.map(|us| (us * 10.0).round() / 10.0)),
            ),
            (
                "cold_peer_connections_opened".into(),
                json!(self.peer_connections_opened),
            ),
            (
                "cold_method".into(),
                json!(
                    "one fresh atSign pair per lookup: @coldbob<i>'s owner on @bob's server looks up what @coldalice<i> shared, so directory, TLS and pol are new on both servers; run sequentially before the warm window"
                ),
            ),
        ]
    }
}

/// Each cold pair's lookup, one at a time on otherwise idle servers. The
/// owner connection is opened and authenticated first, untimed; the timed
/// part is the `lookup:` alone, as @bob's owner sees it.
pub fn cold_lookups(network: &Network, bob: &Target, value: &str) -> ColdReport {
    let mut hist: Histogram<u64> = new_histogram();
    let mut errors = Vec::new();
    let mut first_us = None;
    let opened_before = procs::established_into(network.alice_addr.port());
    for i in 0..network.cold_lookups {
        let Some((atsign, secret)) = network.bob_hosted.get(i + 1) else {
            errors.push(format!("cold atSign {i} is missing"));
            continue;
        };
        let mut conn = match cram_owner(bob, atsign, secret) {
            Ok(conn) => conn,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let line = format!("lookup:{COLD_KEY}{}", cold_remote(i));
        let started = Instant::now();
        let reply = conn.request(&line);
        let took = started.elapsed();
        match reply {
            Ok(reply) if reply.data() == Some(value.as_bytes()) => {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.max(1));
                first_us.get_or_insert(took.as_secs_f64() * 1e6);
            }
            Ok(reply) => errors.push(format!(
                "cold {line}: {}",
                String::from_utf8_lossy(reply.payload())
            )),
            Err(e) => errors.push(format!("cold {line}: {e}")),
        }
        conn.close();
    }
    let opened_after = procs::established_into(network.alice_addr.port());
    ColdReport {
        lookups: network.cold_lookups,
        errors,
        latency: Latency::from_histogram(&hist),
        first_us,
        peer_connections_opened: opened_before
            .zip(opened_after)
            .map(|(before, after)| after.saturating_sub(before)),
    }
}

/// The last `stranded_ticks=N` an atserver wrote to the log at `path`.
pub fn stranded_ticks_in(path: &Path) -> u64 {
    TickTotals::in_log(path).stranded
}

/// What an atserver's reactor ticks found over its life, as the last line
/// it logged says (0 when it never logged one): work only the tick got
/// going (`stranded_ticks`), work woken in time but kept off its core past
/// the tick (`woken_late_ticks`), ticks that fired late (`late_ticks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickTotals {
    pub stranded: u64,
    pub woken_late: u64,
    pub late: u64,
}

impl TickTotals {
    /// Reads the log at `path` once, from its end.
    pub fn in_log(path: &Path) -> TickTotals {
        let Ok(log) = std::fs::read_to_string(path) else {
            return TickTotals::default();
        };
        let last = |name: &str| {
            let field = format!("{name}=");
            log.lines()
                .rev()
                .find_map(|line| {
                    line.split_whitespace()
                        .find_map(|word| word.strip_prefix(field.as_str()))
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0)
        };
        TickTotals {
            stranded: last("stranded_ticks"),
            woken_late: last("woken_late_ticks"),
            late: last("late_ticks"),
        }
    }

    /// The report's figures, under the names the server logs them by.
    pub fn extras(&self) -> Vec<(String, serde_json::Value)> {
        vec![
            ("stranded_ticks".into(), serde_json::json!(self.stranded)),
            (
                "woken_late_ticks".into(),
                serde_json::json!(self.woken_late),
            ),
            ("late_ticks".into(), serde_json::json!(self.late)),
        ]
    }
}

#[cfg(test)]
mod stranded_tests {
    #[test]
    fn the_last_logged_total_counts() {
        let dir = std::env::temp_dir().join(format!("stranded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("s.log");
        std::fs::write(
            &log,
            "x INFO atserver::shard: reactor ticks stranded_ticks=2 woken_late_ticks=3 late_ticks=4\ny\nz INFO atserver::shard: reactor ticks stranded_ticks=7 woken_late_ticks=8 late_ticks=9\n",
        )
        .unwrap();
        assert_eq!(super::stranded_ticks_in(&log), 7);
        assert_eq!(
            super::TickTotals::in_log(&log),
            super::TickTotals {
                stranded: 7,
                woken_late: 8,
                late: 9
            }
        );
        assert_eq!(super::stranded_ticks_in(&dir.join("missing.log")), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
