//! `many-atsigns`: the update/llookup mix on one server process hosting
//! `--atsigns` atSigns (1,000 by default), against the same load on a
//! server hosting one, for each of `--shard-counts` (1 and 2): four
//! measured runs in one invocation, so the ratios come from the same
//! minutes of the same noisy machine.
//!
//! **The connections.** Both runs of a shard count have the same shape:
//! `M = max(--connections, --atsigns)` pkam-authenticated connections,
//! opened before the window and grouped into `--connections` rotating
//! slots (connection `j` in slot `j % connections`). A slot keeps
//! `--pipeline` requests in flight on one connection for a turn of
//! [`TURN_WINDOWS`] × `--pipeline` requests, waits for their replies and
//! hands over to its next connection; so `--connections` connections are
//! busy at any moment, as in `update-llookup`, while every connection, and
//! with N atSigns every atSign, gets requests all through the window. In
//! the N-atSign run connection `j` is the owner of atSign `j % N`, each
//! naming its own atSign's keys; in the one-atSign run every connection is
//! `--atsign`'s owner. Only the number of atSigns differs.
//!
//! **The data.** The same number of keys in both runs: each of the N
//! atSigns holds `max(1, --keys / N)` keys (`lt<i>.bench@tenant<k>`; by
//! default `--keys` is 10 × N), the one atSign N times as many.
//!
//! **The servers.** Hosting N atSigns costs an RSA-2048 signing key pair
//! generated per atSign at the server's first start (~0.1–0.2 s each), so
//! every server is first *prepared*: all of them are started at once on
//! their own data folders (the key generation of the N-atSign ones runs in
//! parallel), each atSign is onboarded (`cram`, the run's pkam public key)
//! and its keys written, and the server is stopped with SIGTERM. Each
//! measured run then restarts its server on its prepared folder (a
//! fraction of a second), alone on the machine; its CPU over the window is
//! the figure per operation. The atSigns and their secrets reach the
//! server by `-a` flags and a `--cram-secret-file`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atserver::client::auth::PkamKey;
use rustls::pki_types::ServerName;
use serde_json::{Map, Value, json};

use crate::client::Target;
use crate::evloop;
use crate::procs::{self, AtServerSpec, CertFiles};
use crate::report::{self, ProcUse, RunReport, RunShape, Shared};
use crate::scenario::{Ctx, Gate, self_key};

/// `--atsigns` unless given: the goal.
pub const ATSIGNS_DEFAULT: usize = 1_000;
/// Most atSigns one run hosts: each costs its key generation twice (one
/// server per shard count) and one open connection in both runs.
pub const ATSIGNS_MAX: usize = 10_000;
/// Keys per atSign unless `--keys`: with one, every request of a
/// connection's pipeline would name the same key.
pub const KEYS_PER_ATSIGN_DEFAULT: usize = 10;
/// Most executor shards in `--shard-counts`.
pub const SHARD_COUNT_MAX: usize = 64;
/// A rotating slot's turn on one connection, in pipeline windows: long
/// enough that handing over (one round trip without a full pipeline) is a
/// small part of it, short enough that each connection gets many turns in
/// a 10 s window.
pub const TURN_WINDOWS: u64 = 8;
/// Threads onboarding atSigns: each has at most one unauthenticated
/// connection open, far below the server's 64 per source address.
const ONBOARD_THREADS: usize = 4;
/// Keys written per pipelined batch while onboarding.
const WRITE_BATCH: usize = 64;
/// How long a stopping server may take to flush (its own bound is 30 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// The name of the `i`-th hosted atSign of the N-atSign runs.
pub fn tenant(i: usize) -> String {
    format!("@tenant{i}")
}

/// What the scenario needs from the command line.
pub struct ManySpec<'a> {
    pub bin: &'a std::path::Path,
    pub certs: &'a CertFiles,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub work: &'a std::path::Path,
    pub durability: &'a str,
    pub extra_args: &'a [String],
    pub shard_counts: &'a [usize],
    pub atsigns: usize,
    /// The atSign of the one-atSign runs (`--atsign`, normalised).
    pub one_atsign: String,
    pub connections: usize,
    pub pipeline: usize,
    pub client_threads: usize,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub value: String,
    pub keys: usize,
    pub update_percent: u32,
}

impl ManySpec<'_> {
    /// Keys each atSign of the N-atSign runs holds.
    pub fn keys_per_atsign(&self) -> usize {
        (self.keys / self.atsigns.max(1)).max(1)
    }

    /// Keys in each run: the same with one atSign as with N.
    pub fn keys_total(&self) -> usize {
        self.keys_per_atsign() * self.atsigns
    }

    /// Connections open in every run.
    pub fn connections_open(&self) -> usize {
        self.connections.max(self.atsigns)
    }

    /// Requests of one connection's turn.
    pub fn turn_requests(&self) -> u64 {
        TURN_WINDOWS * self.pipeline as u64
    }
}

/// One measured run: a server hosting `hosted` with `shards` shards.
struct Case {
    shards: usize,
    /// (atSign, CRAM secret).
    hosted: Vec<(String, String)>,
    /// Keys written for, and read and written by, each hosted atSign.
    keys_per_atsign: usize,
    /// `s<shards>-one` or `s<shards>-many`: its folder in the work folder.
    label: String,
}

impl Case {
    fn dir(&self, work: &std::path::Path) -> std::path::PathBuf {
        work.join(format!("many-{}", self.label))
    }

    fn server_spec<'a>(
        &'a self,
        spec: &'a ManySpec<'_>,
        dir: &'a std::path::Path,
        secrets: &'a std::path::Path,
        log: std::path::PathBuf,
    ) -> AtServerSpec<'a> {
        AtServerSpec {
            bin: spec.bin,
            hosted: &self.hosted,
            secret_file: Some(secrets),
            certs: spec.certs,
            data_dir: dir.join("data"),
            log,
            shards: Some(self.shards),
            extra_args: spec.extra_args,
            durability: spec.durability,
        }
    }
}

/// The outcome: the JSON document, the summary table, and whether every
/// run was clean (no error, no lost reply, some throughput).
pub struct Outcome {
    pub document: Value,
    pub table: String,
    pub clean: bool,
}

/// Prepares every server, then measures each case in turn.
pub fn run(spec: &ManySpec<'_>, key: PkamKey) -> Result<Outcome, String> {
    let mut cases = Vec::new();
    for &shards in spec.shard_counts {
        let secret = crate::random_hex(16)?;
        cases.push(Case {
            shards,
            hosted: vec![(spec.one_atsign.clone(), secret)],
            keys_per_atsign: spec.keys_total(),
            label: format!("s{shards}-one"),
        });
        let mut hosted = Vec::with_capacity(spec.atsigns);
        for i in 0..spec.atsigns {
            hosted.push((tenant(i), crate::random_hex(16)?));
        }
        cases.push(Case {
            shards,
            hosted,
            keys_per_atsign: spec.keys_per_atsign(),
            label: format!("s{shards}-many"),
        });
    }
    let mut ctx = Ctx {
        target: Target {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Arc::clone(&spec.tls),
            server_name: spec.server_name.clone(),
            atsign: spec.one_atsign.clone(),
        },
        key,
        shared: Arc::new(Shared::new(spec.requests)),
        pipeline: spec.pipeline,
        value: spec.value.clone(),
        keys: 1,
        update_percent: spec.update_percent,
        lookups_per_connection: 1,
    };
    prepare(spec, &cases, &ctx)?;
    let mut rows: Vec<(usize, usize, RunReport)> = Vec::new();
    for case in &cases {
        if procs::interrupted() {
            return Err("interrupted".into());
        }
        let report = measure_case(spec, case, &mut ctx)?;
        println!(
            "== {} atSign(s), {} shard(s)\n{}",
            case.hosted.len(),
            case.shards,
            report.table()
        );
        rows.push((case.shards, case.hosted.len(), report));
    }
    let clean = rows.iter().all(|(_, _, r)| r.errors == 0 && r.ops > 0);
    Ok(Outcome {
        document: document(spec, &rows),
        table: table(spec, &rows),
        clean,
    })
}

/// What a prepared data folder was prepared for: a folder whose
/// `prepared.txt` says the same is reused (`--work-dir` keeps them).
fn stamp(spec: &ManySpec<'_>, case: &Case, key: &PkamKey) -> String {
    // FNV-1a: the key text is long, a digest tells keys apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.public_key_text().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let bin = std::fs::metadata(spec.bin).ok();
    let modified = bin
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "atsigns={} first={} shards={} keys_per_atsign={} value_size={} pkam={hash:016x} bin={} bytes={} modified={modified}\n",
        case.hosted.len(),
        case.hosted.first().map_or("", |(a, _)| a.as_str()),
        case.shards,
        case.keys_per_atsign,
        spec.value.len(),
        spec.bin.display(),
        bin.map_or(0, |m| m.len()),
    )
}

/// Starts every case's server at once on a fresh data folder, onboards
/// its atSigns and writes their keys, and stops it. A folder prepared for
/// the same atSigns, keys, value size, pkam key and binary by an earlier
/// run in the same `--work-dir` is reused.
fn prepare(spec: &ManySpec<'_>, cases: &[Case], ctx: &Ctx) -> Result<(), String> {
    let started = Instant::now();
    let mut starting = Vec::new();
    let mut todo = Vec::new();
    for case in cases {
        let dir = case.dir(spec.work);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let wanted = stamp(spec, case, &ctx.key);
        let stamp_file = dir.join("prepared.txt");
        if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(wanted.as_str()) {
            eprintln!(
                "loadtest: reusing {} prepared by an earlier run ({})",
                dir.display(),
                wanted.trim()
            );
            continue;
        }
        let _ = std::fs::remove_file(&stamp_file);
        let data = dir.join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .map_err(|e| format!("cannot remove {}: {e}", data.display()))?;
        }
        let secrets = dir.join("cram-secrets.txt");
        let server = case.server_spec(spec, &dir, &secrets, dir.join("prepare.log"));
        // Spawned from this thread, which lives as long as the run (the
        // parent-death signal follows the spawning thread).
        starting.push(procs::spawn_atserver(&server)?);
        todo.push((case, stamp_file, wanted));
    }
    if !todo.is_empty() {
        let biggest = todo
            .iter()
            .map(|(c, _, _)| c.hosted.len())
            .max()
            .unwrap_or(0);
        eprintln!(
            "loadtest: preparing {} servers at once (up to {biggest} atSigns each: a signing key pair generated per atSign, then onboarding and {} keys per server)",
            todo.len(),
            spec.keys_total()
        );
    }
    for ((case, stamp_file, wanted), pending) in todo.into_iter().zip(starting) {
        let (guard, addr) = pending.wait_ready()?;
        let target = Target {
            addr,
            ..ctx.target.clone()
        };
        onboard(
            &target,
            &case.hosted,
            &ctx.key,
            case.keys_per_atsign,
            &ctx.value,
        )
        .map_err(|e| format!("preparing {}: {e}", case.label))?;
        guard.stop(STOP_TIMEOUT)?;
        std::fs::write(&stamp_file, wanted)
            .map_err(|e| format!("cannot write {}: {e}", stamp_file.display()))?;
        eprintln!(
            "loadtest: prepared {} ({} atSigns) after {:.1} s",
            case.label,
            case.hosted.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Onboards each atSign (`cram`, then the run's pkam public key) and
/// writes its `keys` keys, on [`ONBOARD_THREADS`] threads.
fn onboard(
    target: &Target,
    hosted: &[(String, String)],
    key: &PkamKey,
    keys: usize,
    value: &str,
) -> Result<(), String> {
    let threads = ONBOARD_THREADS.min(hosted.len()).max(1);
    let per = hosted.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = hosted
            .chunks(per.max(1))
            .map(|chunk| {
                scope.spawn(move || -> Result<(), String> {
                    for (atsign, secret) in chunk {
                        if procs::interrupted() {
                            return Err("interrupted".into());
                        }
                        onboard_one(target, atsign, secret, key, keys, value)?;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut first_error = None;
        for worker in workers {
            let outcome = worker
                .join()
                .unwrap_or_else(|_| Err("an onboarding thread panicked".into()));
            if let Err(e) = outcome
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

fn onboard_one(
    target: &Target,
    atsign: &str,
    secret: &str,
    key: &PkamKey,
    keys: usize,
    value: &str,
) -> Result<(), String> {
    let mut conn = crate::remote::cram_owner(target, atsign, secret)?;
    let reply = conn
        .request(&format!(
            "update:privatekey:at_pkam_publickey {}",
            key.public_key_text()
        ))
        .map_err(|e| format!("{atsign}: installing the pkam public key: {e}"))?;
    if reply.data().is_none() {
        return Err(format!(
            "{atsign}: installing the pkam public key: {}",
            String::from_utf8_lossy(reply.payload())
        ));
    }
    let mut written = 0;
    while written < keys {
        let batch = WRITE_BATCH.min(keys - written);
        let mut out = Vec::new();
        for i in written..written + batch {
            out.extend_from_slice(
                format!("update:{} {value}\n", self_key(i as u64, atsign)).as_bytes(),
            );
        }
        conn.write_raw(&out)
            .map_err(|e| format!("{atsign}: writing keys: {e}"))?;
        for _ in 0..batch {
            let reply = conn
                .read_reply()
                .map_err(|e| format!("{atsign}: writing keys: {e}"))?;
            if reply.data().is_none() {
                return Err(format!(
                    "{atsign}: update refused: {}",
                    String::from_utf8_lossy(reply.payload())
                ));
            }
        }
        written += batch;
    }
    conn.close();
    Ok(())
}

/// The owners of each rotating slot's connections, in turn order:
/// connection `j` of `open` is in slot `j % slots` and is the owner of
/// `atsigns[j % atsigns.len()]`.
fn slot_groups(atsigns: &[String], slots: usize, open: usize) -> Vec<Vec<String>> {
    let slots = slots.max(1);
    let mut groups = vec![Vec::new(); slots.min(open.max(1))];
    let count = groups.len();
    for j in 0..open {
        if let (Some(group), Some(atsign)) = (
            groups.get_mut(j % count),
            atsigns.get(j % atsigns.len().max(1)),
        ) {
            group.push(atsign.clone());
        }
    }
    groups
}

/// Restarts the case's prepared server, runs the window, stops it.
fn measure_case(spec: &ManySpec<'_>, case: &Case, ctx: &mut Ctx) -> Result<RunReport, String> {
    let dir = case.dir(spec.work);
    let secrets = dir.join("cram-secrets.txt");
    let server = case.server_spec(spec, &dir, &secrets, dir.join("run.log"));
    let (mut guard, addr) = procs::start_atserver(&server)?;
    eprintln!(
        "loadtest: started {} (pid {}) on {addr}: {} atSign(s), {} shard(s)",
        spec.bin.display(),
        guard.pid(),
        case.hosted.len(),
        case.shards
    );
    ctx.target.addr = addr;
    ctx.keys = case.keys_per_atsign;
    ctx.shared = Arc::new(Shared::new(spec.requests));
    let atsigns: Vec<String> = case.hosted.iter().map(|(a, _)| a.clone()).collect();
    let groups = slot_groups(&atsigns, spec.connections, spec.connections_open());
    let mut report = window(spec, ctx, &groups, guard.pid())?;
    guard.check_alive()?;
    guard.stop(STOP_TIMEOUT)?;
    report.extra.extend([
        ("shards".to_string(), json!(case.shards)),
        ("atsigns".to_string(), json!(case.hosted.len())),
        (
            "connections_open".to_string(),
            json!(spec.connections_open()),
        ),
        ("turn_requests".to_string(), json!(spec.turn_requests())),
        ("keys_per_atsign".to_string(), json!(case.keys_per_atsign)),
    ]);
    Ok(report)
}

/// The measured window, as `update-llookup`'s (`main::run_scenario`), on
/// rotating slots.
fn window(
    spec: &ManySpec<'_>,
    ctx: &Ctx,
    groups: &[Vec<String>],
    server_pid: u32,
) -> Result<RunReport, String> {
    let shared = &ctx.shared;
    let done = AtomicBool::new(false);
    let ready = Gate::default();
    let ready = &ready;
    let turn = spec.turn_requests();
    let mut measured = None;
    std::thread::scope(|scope| -> Result<(), String> {
        let threads = spec.client_threads.min(groups.len()).max(1);
        let mut workers = Vec::new();
        for t in 0..threads {
            let ids = (groups.len() * t / threads)..(groups.len() * (t + 1) / threads);
            let first = ids.start;
            let mine = groups.get(ids).unwrap_or_default();
            workers.push(crate::spawn_worker(
                scope,
                shared,
                format!("loop-{t}"),
                move || evloop::rotating_loop(ctx, mine, turn, first, ready),
            )?);
        }
        ready.wait_arrivals(workers.len(), shared);
        ready.open();
        let (server0, client0) = crate::samples(Some(server_pid));
        let started = Instant::now();
        let ended = crate::show_progress_until_over(scope, shared, started, &done, spec.duration);
        for worker in workers {
            if worker.join().is_err() {
                shared.error("a client thread panicked");
            }
        }
        done.store(true, Ordering::Relaxed);
        measured = Some((started, ended, server0, client0));
        Ok(())
    })?;
    let Some((started, ended, server0, client0)) = measured else {
        return Err("the run did not start".into());
    };
    let (server_end, client_end) = crate::samples(Some(server_pid));
    let shape = RunShape {
        scenario: "many-atsigns".into(),
        connections: spec.connections,
        pipeline: spec.pipeline,
        value_size: spec.value.len(),
    };
    let server = ProcUse::between(Some(server_pid), server0, server_end);
    let client = ProcUse::between(None, client0, client_end);
    Ok(shared.report(
        shape,
        ended.duration_since(started),
        Some(server),
        Some(client),
    ))
}

/// The run of `shards` shards with one atSign (`many == false`) or N.
fn find(rows: &[(usize, usize, RunReport)], shards: usize, many: bool) -> Option<&RunReport> {
    rows.iter()
        .find(|(s, a, _)| *s == shards && (*a > 1) == many)
        .map(|(_, _, r)| r)
}

/// N atSigns over one, at `shards`: (throughput, server CPU per op).
fn many_over_one(rows: &[(usize, usize, RunReport)], shards: usize) -> (Option<f64>, Option<f64>) {
    match (find(rows, shards, false), find(rows, shards, true)) {
        (Some(one), Some(many)) => (
            report::ratio(Some(many.ops_per_sec()), Some(one.ops_per_sec())),
            report::ratio(many.server_cpu_us_per_op(), one.server_cpu_us_per_op()),
        ),
        _ => (None, None),
    }
}

/// 2 shards over 1, with one atSign and with N: (one, many).
fn two_over_one_shard(rows: &[(usize, usize, RunReport)]) -> Option<(Option<f64>, Option<f64>)> {
    let scaling = |many: bool| {
        let one_shard = find(rows, 1, many)?;
        let two_shards = find(rows, 2, many)?;
        report::ratio(
            Some(two_shards.ops_per_sec()),
            Some(one_shard.ops_per_sec()),
        )
    };
    (find(rows, 1, false).is_some() && find(rows, 2, false).is_some())
        .then(|| (scaling(false), scaling(true)))
}

fn rounded3(r: Option<f64>) -> Value {
    r.map_or(Value::Null, |r| json!(report::rounded(r, 3)))
}

/// The JSON document (fields in `loadtest/README.md`).
fn document(spec: &ManySpec<'_>, rows: &[(usize, usize, RunReport)]) -> Value {
    let summary: Vec<Value> = rows
        .iter()
        .map(|(shards, atsigns, r)| {
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            let percent =
                |p: Option<ProcUse>| p.map(|p| report::rounded(p.cpu_seconds() / secs * 100.0, 1));
            json!({
                "shards": shards,
                "atsigns": atsigns,
                "ops_per_s": r.ops_per_sec().round(),
                "server_cpu_us_per_op": r.server_cpu_us_per_op().map(|c| report::rounded(c, 2)),
                "server_cpu_percent": percent(r.server),
                "client_cpu_percent": percent(r.client),
                "errors": r.errors,
                "latency_us": r.latency.json(),
            })
        })
        .collect();
    let mut throughput = Map::new();
    let mut cpu = Map::new();
    for &shards in spec.shard_counts {
        let (t, c) = many_over_one(rows, shards);
        throughput.insert(shards.to_string(), rounded3(t));
        cpu.insert(shards.to_string(), rounded3(c));
    }
    let scaling = two_over_one_shard(rows).map_or(
        Value::Null,
        |(one, many)| json!({"one_atsign": rounded3(one), "many_atsigns": rounded3(many)}),
    );
    json!({
        "scenario": "many-atsigns",
        "errors": rows.iter().map(|(_, _, r)| r.errors).sum::<u64>(),
        "ops": rows.iter().map(|(_, _, r)| r.ops).sum::<u64>(),
        "atsigns": spec.atsigns,
        "connections": spec.connections,
        "connections_open": spec.connections_open(),
        "pipeline": spec.pipeline,
        "value_size": spec.value.len(),
        "update_percent": spec.update_percent,
        "duration_s": spec.duration.as_secs_f64(),
        "turn_requests": spec.turn_requests(),
        "keys_per_atsign": spec.keys_per_atsign(),
        "keys_total": spec.keys_total(),
        "many_atsigns": summary,
        "throughput_ratio_many_over_one": throughput,
        "server_cpu_ratio_many_over_one": cpu,
        "scaling_two_over_one_shard": scaling,
        "runs": rows.iter().map(|(_, _, r)| r.json()).collect::<Vec<_>>(),
    })
}

/// The summary table: one row per run, then the ratios.
fn table(spec: &ManySpec<'_>, rows: &[(usize, usize, RunReport)]) -> String {
    let mut out = format!(
        "\nmany atSigns: {} atSigns vs one ({}), {} connections busy of {} open (a turn of {} requests each), pipeline {}, {} % updates, {} key(s) per atSign ({} in all)\n",
        spec.atsigns,
        spec.one_atsign,
        spec.connections,
        spec.connections_open(),
        spec.turn_requests(),
        spec.pipeline,
        spec.update_percent,
        spec.keys_per_atsign(),
        spec.keys_total()
    );
    out.push_str(&format!(
        "{:>6} {:>7} {:>10} {:>9} {:>9} {:>9} {:>16} {:>12} {:>12} {:>7}\n",
        "shards",
        "atSigns",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "server CPU µs/op",
        "server CPU %",
        "client CPU %",
        "errors"
    ));
    let shown = |v: Option<f64>, decimals: usize| {
        v.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
    };
    for (shards, atsigns, r) in rows {
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        let percent = |p: Option<ProcUse>| p.map(|p| p.cpu_seconds() / secs * 100.0);
        out.push_str(&format!(
            "{shards:>6} {atsigns:>7} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>16} {:>12} {:>12} {:>7}\n",
            r.ops_per_sec(),
            r.latency.p50,
            r.latency.p99,
            r.latency.p999,
            shown(r.server_cpu_us_per_op(), 2),
            shown(percent(r.server), 0),
            shown(percent(r.client), 0),
            r.errors
        ));
    }
    for &shards in spec.shard_counts {
        let (t, c) = many_over_one(rows, shards);
        out.push_str(&format!(
            "ratio {} atSigns / one, {shards} shard(s): {} ops/s, {} server CPU per op\n",
            spec.atsigns,
            shown(t, 3),
            shown(c, 3)
        ));
    }
    if let Some((one, many)) = two_over_one_shard(rows) {
        out.push_str(&format!(
            "scaling 2 shards / 1 shard: {} ops/s with one atSign, {} with {} atSigns\n",
            shown(one, 3),
            shown(many, 3),
            spec.atsigns
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(tenant).collect()
    }

    #[test]
    fn with_more_atsigns_than_slots_each_atsign_has_one_connection() {
        let groups = slot_groups(&names(10), 4, 10);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0], ["@tenant0", "@tenant4", "@tenant8"]);
        assert_eq!(groups[3], ["@tenant3", "@tenant7"]);
        let mut all: Vec<String> = groups.concat();
        all.sort();
        let mut expected = names(10);
        expected.sort();
        assert_eq!(all, expected);
    }

    #[test]
    fn with_more_slots_than_atsigns_the_atsigns_repeat() {
        let groups = slot_groups(&names(3), 5, 5);
        assert_eq!(groups.len(), 5);
        assert!(groups.iter().all(|g| g.len() == 1));
        assert_eq!(groups[3], ["@tenant0"]);
        assert_eq!(groups[4], ["@tenant1"]);
    }

    #[test]
    fn the_one_atsign_run_has_the_same_shape() {
        let one = vec!["@alice".to_string()];
        let groups = slot_groups(&one, 4, 10);
        let shape: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(shape, [3, 3, 2, 2]);
        assert!(groups.concat().iter().all(|a| a == "@alice"));
    }

    fn report(ops: u64, cpu_seconds: f64) -> RunReport {
        RunReport {
            scenario: "many-atsigns".into(),
            connections: 50,
            pipeline: 1,
            value_size: 100,
            elapsed: Duration::from_secs(1),
            ops,
            errors: 0,
            reconnects: 0,
            latency: Latency::default(),
            server: Some(ProcUse {
                pid: Some(1),
                start: procs::ProcSample::default(),
                end: procs::ProcSample {
                    cpu_seconds,
                    ..procs::ProcSample::default()
                },
            }),
            client: None,
            error_samples: Vec::new(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn the_document_has_the_ratios_per_shard_count_and_the_scaling() {
        let certs = CertFiles {
            ca: "ca.pem".into(),
            cert: "server.pem".into(),
            key: "server.key".into(),
        };
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        );
        let spec = ManySpec {
            bin: std::path::Path::new("atserver"),
            certs: &certs,
            tls,
            server_name: ServerName::try_from("localhost").expect("name"),
            work: std::path::Path::new("."),
            durability: "fast",
            extra_args: &[],
            shard_counts: &[1, 2],
            atsigns: 1000,
            one_atsign: "@alice".into(),
            connections: 50,
            pipeline: 1,
            client_threads: 1,
            duration: Duration::from_secs(1),
            requests: None,
            value: "v".repeat(100),
            keys: 1000,
            update_percent: 50,
        };
        assert_eq!(
            (
                spec.keys_per_atsign(),
                spec.keys_total(),
                spec.connections_open()
            ),
            (1, 1000, 1000)
        );
        // 1 shard: 100 k/s at 10 µs/op, then 90 k/s at 12 µs/op; 2 shards:
        // 120 k/s and 108 k/s.
        let rows = vec![
            (1, 1, report(100_000, 1.0)),
            (1, 1000, report(90_000, 1.08)),
            (2, 1, report(120_000, 1.2)),
            (2, 1000, report(108_000, 1.08)),
        ];
        let doc = document(&spec, &rows);
        assert_eq!(doc["ops"], json!(418_000));
        assert_eq!(doc["errors"], json!(0));
        assert_eq!(doc["throughput_ratio_many_over_one"]["1"], json!(0.9));
        assert_eq!(doc["server_cpu_ratio_many_over_one"]["1"], json!(1.2));
        assert_eq!(doc["throughput_ratio_many_over_one"]["2"], json!(0.9));
        assert_eq!(doc["scaling_two_over_one_shard"]["one_atsign"], json!(1.2));
        assert_eq!(
            doc["scaling_two_over_one_shard"]["many_atsigns"],
            json!(1.2)
        );
        let listed = doc["many_atsigns"].as_array().expect("runs");
        assert_eq!(listed.len(), 4);
        assert_eq!(listed[1]["atsigns"], json!(1000));
        assert_eq!(listed[1]["server_cpu_us_per_op"], json!(12.0));
        assert_eq!(listed[3]["shards"], json!(2));
        let text = table(&spec, &rows);
        assert!(
            text.contains(
                "ratio 1000 atSigns / one, 1 shard(s): 0.900 ops/s, 1.200 server CPU per op"
            ),
            "{text}"
        );
        assert!(
            text.contains("scaling 2 shards / 1 shard: 1.200 ops/s with one atSign"),
            "{text}"
        );
    }
}
