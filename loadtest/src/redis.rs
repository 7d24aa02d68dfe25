//! The Redis side of `--compare-redis`: installing the tools when they are
//! missing, the persistence of each baseline, running `redis-benchmark`
//! (TLS) and parsing its report.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::procs::{interrupted, on_path};
use crate::report::Latency;

/// The persistence of a redis-server the loadtest starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// No RDB, no AOF: nothing survives a restart (the original baseline).
    None,
    /// `appendonly yes`, `appendfsync everysec`: every write appended to
    /// the AOF, fsynced once a second by a background thread, as our
    /// `--durability fast` syncs its journal once a second.
    Everysec,
}

impl Persistence {
    /// The name in flags, JSON and the table.
    pub fn name(self) -> &'static str {
        match self {
            Persistence::None => "none",
            Persistence::Everysec => "everysec",
        }
    }

    /// The redis-server arguments that set it (RDB snapshots are off in
    /// both: `--save ""` comes with every start).
    pub fn server_args(self) -> &'static [&'static str] {
        match self {
            Persistence::None => &["--appendonly", "no"],
            Persistence::Everysec => &["--appendonly", "yes", "--appendfsync", "everysec"],
        }
    }
}

/// Bytes of the append-only files redis-server keeps in `dir`: Redis 7's
/// `appendonlydir/` (base, incremental and manifest files) or an older
/// single `appendonly.aof`. 0 when there are none.
pub fn aof_bytes(dir: &Path) -> u64 {
    let file_bytes = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let in_dir: u64 = std::fs::read_dir(dir.join("appendonlydir"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| file_bytes(&e.path()))
                .sum()
        })
        .unwrap_or(0);
    in_dir + file_bytes(&dir.join("appendonly.aof"))
}

/// The installer `--compare-redis` runs when the Redis tools are missing,
/// relative to the working directory (the repository root, as every
/// documented command runs).
pub const INSTALLER: &str = "loadtest/redis.sh";

/// What [`ensure_installed`] needs from the machine, so tests can fake it.
pub trait Machine {
    /// Whether the executable `name` is on PATH.
    fn has(&self, name: &str) -> bool;
    /// Runs the installer; the reason when it did not succeed.
    fn run_installer(&mut self) -> Result<(), String>;
}

/// The machine itself: PATH, and [`INSTALLER`] (or the copy in the
/// loadtest's source folder at build time) run with bash, its output on
/// stderr so stdout keeps only the report.
pub struct ThisMachine;

impl Machine for ThisMachine {
    fn has(&self, name: &str) -> bool {
        on_path(name)
    }

    fn run_installer(&mut self) -> Result<(), String> {
        let script = [
            PathBuf::from(INSTALLER),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("redis.sh"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("{INSTALLER} not found (run the loadtest from the repository root)")
        })?;
        // Not tied to our life (no PR_SET_PDEATHSIG): killing apt-get in the
        // middle of an install would leave dpkg half-configured. stdin stays
        // the terminal's, for sudo's password prompt.
        let status = Command::new("bash")
            .arg(&script)
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} failed ({status})", script.display()))
        }
    }
}

/// Makes sure redis-benchmark (and redis-server, when `server` is true: the
/// loadtest starts it) is on PATH, running the installer once when either
/// is missing and saying so on stderr. Fails, saying what is missing, when
/// the installer fails or the tools are still missing after it.
pub fn ensure_installed(machine: &mut impl Machine, server: bool) -> Result<(), String> {
    let needed: &[&str] = if server {
        &["redis-server", "redis-benchmark"]
    } else {
        &["redis-benchmark"]
    };
    let before = missing(machine, needed);
    if before.is_empty() {
        return Ok(());
    }
    eprintln!(
        "loadtest: {} not on PATH: running {INSTALLER} (apt-get install redis-server redis-tools)",
        before.join(" and ")
    );
    machine.run_installer().map_err(|e| {
        format!(
            "--compare-redis needs {}: {e}; install redis-server and redis-tools (built with TLS) yourself",
            before.join(" and ")
        )
    })?;
    let after = missing(machine, needed);
    if !after.is_empty() {
        return Err(format!(
            "--compare-redis needs {}: {INSTALLER} succeeded but it is still not on PATH",
            after.join(" and ")
        ));
    }
    Ok(())
}

/// One test of a redis-benchmark run (`SET`, `GET`, `PING_MBULK`, …).
#[derive(Debug, Clone)]
pub struct RedisTest {
    pub name: String,
    pub requests: u64,
    pub rps: f64,
    /// Microseconds. p99.9 is the first percentile line ≥ 99.9 % of
    /// redis-benchmark's distribution, an upper bound within its buckets.
    pub latency: Latency,
}

impl RedisTest {
    pub fn json(&self) -> Value {
        json!({"test": self.name, "requests": self.requests, "ops_per_sec": self.rps.round(), "latency_us": self.latency.json()})
    }
}

/// How to reach the TLS redis-server.
pub struct RedisTarget<'a> {
    pub addr: SocketAddr,
    pub ca: &'a Path,
}

/// Parses redis-benchmark's human output (not `-q`, not `--csv`: only the
/// full report has the percentile distribution).
pub fn parse_output(text: &str) -> Vec<RedisTest> {
    let mut tests: Vec<RedisTest> = Vec::new();
    let mut in_distribution = false;
    let mut expect_summary_values = 0;
    for raw in text.split(['\r', '\n']) {
        let line = raw.trim();
        if let Some(name) = line
            .strip_prefix("====== ")
            .and_then(|l| l.strip_suffix(" ======"))
        {
            tests.push(RedisTest {
                name: name.to_string(),
                requests: 0,
                rps: 0.0,
                latency: Latency::default(),
            });
            in_distribution = false;
            continue;
        }
        let Some(test) = tests.last_mut() else {
            continue;
        };
        if line.ends_with("seconds")
            && let Some((count, _)) = line.split_once(" requests completed in ")
        {
            test.requests = count.trim().parse().unwrap_or(0);
        } else if line.starts_with("Latency by percentile distribution") {
            in_distribution = true;
        } else if line.starts_with("Cumulative distribution") {
            in_distribution = false;
        } else if in_distribution {
            // `99.902% <= 41.279 milliseconds (cumulative count 19981)`
            let mut parts = line.split_whitespace();
            let pct = parts
                .next()
                .and_then(|p| p.strip_suffix('%'))
                .and_then(|p| p.parse::<f64>().ok());
            let ms = parts.nth(1).and_then(|v| v.parse::<f64>().ok());
            if let (Some(pct), Some(ms)) = (pct, ms)
                && pct >= 99.9
                && test.latency.p999 == 0.0
            {
                test.latency.p999 = ms * 1000.0;
            }
        } else if let Some(rest) = line.strip_prefix("throughput summary:") {
            test.rps = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        } else if line.starts_with("latency summary") {
            expect_summary_values = 2;
        } else if expect_summary_values > 0 {
            expect_summary_values -= 1;
            if expect_summary_values == 0 {
                // avg min p50 p95 p99 max (milliseconds)
                let values: Vec<f64> = line
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                if let [avg, _min, p50, _p95, p99, max] = values[..] {
                    test.latency.mean = avg * 1000.0;
                    test.latency.p50 = p50 * 1000.0;
                    test.latency.p99 = p99 * 1000.0;
                    test.latency.max = max * 1000.0;
                }
            }
        }
    }
    tests.retain(|t| t.rps > 0.0);
    tests
}

/// Those of `needed` that `machine` does not have.
fn missing<'n>(machine: &impl Machine, needed: &[&'n str]) -> Vec<&'n str> {
    needed.iter().copied().filter(|n| !machine.has(n)).collect()
}

/// Runs redis-benchmark with `args` (after the connection arguments),
/// killing it after `timeout` or on Ctrl-C.
pub fn run(
    target: &RedisTarget<'_>,
    args: &[String],
    timeout: Duration,
) -> Result<Vec<RedisTest>, String> {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["--tls", "--cacert"])
        .arg(target.ca)
        .args([
            "-h",
            &target.addr.ip().to_string(),
            "-p",
            &target.addr.port().to_string(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run redis-benchmark: {e}"))?;
    let reader = read_in_background(
        child
            .stdout
            .take()
            .ok_or("redis-benchmark stdout was not piped")?,
    );
    let err_reader = read_in_background(
        child
            .stderr
            .take()
            .ok_or("redis-benchmark stderr was not piped")?,
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("redis-benchmark: {e}")),
        }
        if interrupted() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if interrupted() {
                "interrupted".into()
            } else {
                format!(
                    "redis-benchmark did not finish within {} s",
                    timeout.as_secs()
                )
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    let err_text = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "redis-benchmark failed ({status}): {}",
            err_text.trim()
        ));
    }
    let tests = parse_output(&text);
    if tests.is_empty() {
        return Err(format!(
            "no result in redis-benchmark output: {}",
            err_text.trim()
        ));
    }
    Ok(tests)
}

/// Requests per second over a run doing `tests` one after the other with
/// the same request count each: total requests over total time.
pub fn combined_rate(tests: &[RedisTest]) -> f64 {
    let requests: f64 = tests.iter().map(|t| t.requests as f64).sum();
    let seconds: f64 = tests
        .iter()
        .filter(|t| t.rps > 0.0)
        .map(|t| t.requests as f64 / t.rps)
        .sum();
    if seconds > 0.0 {
        requests / seconds
    } else {
        0.0
    }
}

/// The worse (higher) of each percentile over `tests`.
pub fn worst_latency(tests: &[RedisTest]) -> Latency {
    tests.iter().fold(Latency::default(), |acc, t| Latency {
        p50: acc.p50.max(t.latency.p50),
        p99: acc.p99.max(t.latency.p99),
        p999: acc.p999.max(t.latency.p999),
        max: acc.max.max(t.latency.max),
        mean: acc.mean.max(t.latency.mean),
    })
}

/// Reads a child's pipe to its end on a thread, so a full pipe never blocks
/// the child while we wait for it.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "SET: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\r====== SET ======
  20000 requests completed in 0.63 seconds
  50 parallel clients

Latency by percentile distribution:
0.000% <= 0.063 milliseconds (cumulative count 1)
50.000% <= 0.703 milliseconds (cumulative count 10108)
99.805% <= 12.831 milliseconds (cumulative count 19961)
99.902% <= 41.279 milliseconds (cumulative count 19981)
100.000% <= 61.471 milliseconds (cumulative count 20000)

Cumulative distribution of latencies:
99.900% <= 34.111 milliseconds (cumulative count 19980)

Summary:
  throughput summary: 40983.61 requests per second
  latency summary (msec):
          avg       min       p50       p95       p99       max
        0.761     0.136     0.639     0.967     2.655    65.055
====== GET ======
  10000 requests completed in 0.10 seconds
  throughput summary: 100000.00 requests per second
";

    #[test]
    fn the_human_report_is_parsed() {
        let tests = parse_output(SAMPLE);
        assert_eq!(tests.len(), 2);
        let set = &tests[0];
        assert_eq!(set.name, "SET");
        assert_eq!(set.requests, 20000);
        assert!((set.rps - 40983.61).abs() < 0.01);
        assert!((set.latency.p50 - 639.0).abs() < 0.01);
        assert!((set.latency.p99 - 2655.0).abs() < 0.01);
        assert!((set.latency.p999 - 41279.0).abs() < 0.01);
        assert!((set.latency.max - 65055.0).abs() < 0.01);
        assert_eq!(tests[1].requests, 10000);
    }

    #[test]
    fn combined_rate_is_total_requests_over_total_time() {
        let t = |rps: f64| RedisTest {
            name: "x".into(),
            requests: 1000,
            rps,
            latency: Latency::default(),
        };
        let rate = combined_rate(&[t(1000.0), t(3000.0)]);
        assert!((rate - 1500.0).abs() < 1e-6);
    }

    /// A machine with some tools, whose installer adds others (or fails).
    struct FakeMachine {
        tools: Vec<&'static str>,
        installs: Vec<&'static str>,
        installer_fails: bool,
        installer_runs: u32,
    }

    impl FakeMachine {
        fn new(tools: &[&'static str], installs: &[&'static str]) -> FakeMachine {
            FakeMachine {
                tools: tools.to_vec(),
                installs: installs.to_vec(),
                installer_fails: false,
                installer_runs: 0,
            }
        }
    }

    impl Machine for FakeMachine {
        fn has(&self, name: &str) -> bool {
            self.tools.contains(&name)
        }

        fn run_installer(&mut self) -> Result<(), String> {
            self.installer_runs += 1;
            if self.installer_fails {
                return Err("loadtest/redis.sh failed (exit status: 100)".into());
            }
            self.tools.extend(self.installs.iter().copied());
            Ok(())
        }
    }

    const BOTH: [&str; 2] = ["redis-server", "redis-benchmark"];

    #[test]
    fn installed_tools_run_no_installer() {
        let mut machine = FakeMachine::new(&BOTH, &[]);
        assert_eq!(ensure_installed(&mut machine, true), Ok(()));
        assert_eq!(machine.installer_runs, 0);
    }

    #[test]
    fn missing_tools_are_installed_once() {
        let mut machine = FakeMachine::new(&[], &BOTH);
        assert_eq!(ensure_installed(&mut machine, true), Ok(()));
        assert_eq!(machine.installer_runs, 1);
    }

    #[test]
    fn a_given_redis_needs_only_the_benchmark() {
        let mut machine = FakeMachine::new(&["redis-benchmark"], &[]);
        assert_eq!(ensure_installed(&mut machine, false), Ok(()));
        assert_eq!(machine.installer_runs, 0);
        assert!(ensure_installed(&mut machine, true).is_err());
    }

    #[test]
    fn a_failed_installer_fails_the_run_naming_what_is_missing() {
        let mut machine = FakeMachine::new(&["redis-benchmark"], &BOTH);
        machine.installer_fails = true;
        let error = ensure_installed(&mut machine, true).expect_err("must fail");
        assert!(error.contains("needs redis-server:"), "{error}");
        assert!(error.contains("redis.sh failed"), "{error}");
        assert_eq!(machine.installer_runs, 1);
    }

    #[test]
    fn tools_still_missing_after_the_installer_fail_the_run() {
        let mut machine = FakeMachine::new(&[], &["redis-server"]);
        let error = ensure_installed(&mut machine, true).expect_err("must fail");
        assert!(
            error.contains(
                "redis-benchmark: loadtest/redis.sh succeeded but it is still not on PATH"
            ),
            "{error}"
        );
        assert!(!error.contains("redis-server"), "{error}");
    }

    #[test]
    fn everysec_appends_and_fsyncs_once_a_second_and_none_persists_nothing() {
        assert_eq!(
            Persistence::Everysec.server_args(),
            ["--appendonly", "yes", "--appendfsync", "everysec"]
        );
        assert_eq!(Persistence::None.server_args(), ["--appendonly", "no"]);
    }

    #[test]
    fn aof_bytes_sums_the_append_only_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(aof_bytes(dir.path()), 0);
        let aof = dir.path().join("appendonlydir");
        std::fs::create_dir(&aof).expect("mkdir");
        std::fs::write(aof.join("appendonly.aof.1.base.rdb"), [0u8; 100]).expect("write");
        std::fs::write(aof.join("appendonly.aof.1.incr.aof"), [0u8; 23]).expect("write");
        std::fs::write(dir.path().join("redis.log"), [0u8; 1000]).expect("write");
        assert_eq!(aof_bytes(dir.path()), 123);
    }
}
