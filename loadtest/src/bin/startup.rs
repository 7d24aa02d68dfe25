//! Startup time with a large store: fills a data folder with N keys through
//! the storage layer (the same write actor the server uses), then starts
//! `atserver serve` on it several times and reports the time from spawn to
//! its `atServer ready` line, and its RSS once ready.
//!
//! ```text
//! target/release/startup --keys 1000000 --dir /tmp/startup-1m
//! target/release/startup --keys 10000000 --dir /tmp/startup-10m --runs 5
//! # worst case: journals left unflushed, as after kill -9
//! target/release/startup --keys 1000000 --dir /tmp/s --fill-only --crash
//! target/release/startup --dir /tmp/s --reuse
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atserver::health::FatalSink;
use atserver::storage::{CommitOp, Durability, Mutation, Store, StoredRecord};
use clap::Parser;

/// Writes handed to the actor before waiting for them (they share batches).
const IN_FLIGHT_WRITES: usize = 8_192;

/// A server that is not ready after this long counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser, Debug)]
#[command(about = "Measure atserver start-up time with a large store")]
struct Args {
    /// Keys to write before measuring (skipped with --reuse).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Data folder to fill and start on.
    #[arg(long)]
    dir: PathBuf,
    /// Start on an existing folder instead of filling a new one.
    #[arg(long)]
    reuse: bool,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// How many times to start the server.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only fill the folder, then stop.
    #[arg(long)]
    fill_only: bool,
    /// With --fill-only: exit right after the last write is acknowledged,
    /// without closing the store (journals not flushed, as after a crash).
    #[arg(long)]
    crash: bool,
    /// The server binary.
    #[arg(long, default_value = "target/release/atserver")]
    atserver_bin: PathBuf,
}

fn fill(dir: &Path, keys: u64, value_size: usize, crash: bool) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // One storage shard: the layout `atserver serve` pins on first start.
    std::fs::write(dir.join("storage-shards"), "1\n").map_err(|e| e.to_string())?;
    let store = Store::open(
        &dir.join("shard-0"),
        Durability::Fast,
        FatalSink::log_only(),
    )
    .map_err(|e| e.to_string())?;
    let tenant = store.tenant("@alice");
    let value = "v".repeat(value_size);
    let started = Instant::now();
    let mut written = 0u64;
    while written < keys {
        let chunk = (keys - written).min(IN_FLIGHT_WRITES as u64);
        let mut pending = Vec::with_capacity(chunk as usize);
        for i in written..written + chunk {
            let record = StoredRecord::written_by(Some(value.clone()), "@alice", i as i64);
            let mutate = Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::Update)));
            let submit = tenant.submit(format!("k{i}.bench@alice"), true, mutate);
            pending.push(futures_lite::future::block_on(submit).map_err(|e| e.to_string())?);
        }
        for write in pending {
            futures_lite::future::block_on(write.outcome()).map_err(|e| e.to_string())?;
        }
        written += chunk;
        if written.is_multiple_of(1_000_000) || written == keys {
            let rate = written as f64 / started.elapsed().as_secs_f64();
            eprintln!("written {written} keys ({rate:.0}/s)");
        }
    }
    if crash {
        eprintln!("exiting without closing the store (simulated crash)");
        std::process::exit(0);
    }
    drop(tenant);
    store
        .close()
        .map_err(|_| "the store is still in use".to_string())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Starts the server on `dir` and returns (time to ready, RSS in KiB once ready).
fn start_once(
    args: &Args,
    certs: &atserver::devcerts::DevCerts,
) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let mut child = Command::new(&args.atserver_bin)
        .args([
            "serve",
            "-a",
            "@alice",
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
        .arg(&args.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.atserver_bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("atServer ready") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    let ready = rx.recv_timeout(READY_TIMEOUT);
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.map_err(|_| "the server never became ready".to_string())?;
    Ok((ready.duration_since(started), rss))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = (|| -> Result<(), String> {
        if !args.reuse {
            fill(&args.dir, args.keys, args.value_size, args.crash)?;
        }
        if args.fill_only {
            return Ok(());
        }
        let certs_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let certs = atserver::devcerts::ensure(certs_dir.path())?;
        println!(
            "data folder: {} ({} MiB)",
            args.dir.display(),
            dir_bytes(&args.dir) / (1 << 20)
        );
        let mut times = Vec::new();
        for run in 1..=args.runs {
            let (ready, rss) = start_once(&args, &certs)?;
            println!(
                "run {run}: ready in {:.1} ms, RSS {} MiB",
                ready.as_secs_f64() * 1e3,
                rss / 1024
            );
            times.push(ready);
        }
        times.sort();
        if let (Some(min), Some(median)) = (times.first(), times.get(times.len() / 2)) {
            println!(
                "keys {}: start-up to ready min {:.1} ms, median {:.1} ms",
                args.keys,
                min.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e3
            );
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("startup: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
