//! `loadtest`: drives an atserver over real TLS on loopback and reports
//! throughput, latency percentiles, errors and the server's RSS and CPU;
//! optionally runs `redis-benchmark` against TLS redis-servers (without
//! persistence and/or with an AOF fsynced every second) with the same shape
//! of load and prints the ratios of throughput and of server CPU per
//! operation. See `loadtest/README.md`.

mod client;
mod evloop;
mod many;
mod notify;
mod procs;
mod redis;
mod remote;
mod report;
mod scenario;

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use atserver::client::auth::PkamKey;
use atserver::limits::OUTBOUND_IDLE_PER_PEER_MAX;
use client::Target;
use procs::{CertFiles, ChildGuard, ProcSample};
use report::{Latency, ProcUse, RunReport, RunShape, Shared};
use scenario::{Ctx, Gate, Mix};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Mix of `update:` and `llookup:` on pkam-authenticated connections.
    UpdateLlookup,
    /// Unauthenticated `lookup:` of public keys.
    Lookup,
    /// New connection + `from` + `pkam` per iteration.
    PkamStorm,
    /// N idle authenticated connections: server RSS per connection.
    Idle,
    /// @bob's owner's `lookup:` of keys on @alice's server through @bob's
    /// own server (server-to-server), warm and cold.
    RemoteLookup,
    /// End-to-end latency of @alice's `notify` to a monitor of @bob on
    /// another server, one notify in flight per connection.
    Notify,
    /// Notifications a second from @alice's server to @bob's monitors,
    /// pipelined.
    NotifyThroughput,
    /// N idle monitor connections: server RSS per monitor, and one
    /// notification reaching them all.
    MonitorsIdle,
    /// update-llookup on a server hosting `--atsigns` atSigns against the
    /// same load on one hosting one, for each of `--shard-counts`.
    ManyAtsigns,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::UpdateLlookup => "update-llookup",
            Scenario::Lookup => "lookup",
            Scenario::PkamStorm => "pkam-storm",
            Scenario::Idle => "idle",
            Scenario::RemoteLookup => "remote-lookup",
            Scenario::Notify => "notify",
            Scenario::NotifyThroughput => "notify-throughput",
            Scenario::MonitorsIdle => "monitors-idle",
            Scenario::ManyAtsigns => "many-atsigns",
        }
    }

    /// The scenarios that run in `notify` (their own servers and report).
    fn is_notifications(self) -> bool {
        matches!(
            self,
            Scenario::Notify | Scenario::NotifyThroughput | Scenario::MonitorsIdle
        )
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DurabilityArg {
    Fast,
    Durable,
}

/// `--redis-persistence`: which Redis baselines `--compare-redis` runs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RedisPersistenceArg {
    /// No RDB, no AOF: nothing survives a restart (the default, as before).
    None,
    /// `appendonly yes`, `appendfsync everysec`: fsynced once a second, as
    /// our `--durability fast`.
    Everysec,
    /// Both, `none` first, each on a fresh redis-server.
    Both,
}

impl RedisPersistenceArg {
    /// The baselines run, in order.
    fn baselines(self) -> &'static [redis::Persistence] {
        match self {
            RedisPersistenceArg::None => &[redis::Persistence::None],
            RedisPersistenceArg::Everysec => &[redis::Persistence::Everysec],
            RedisPersistenceArg::Both => &[redis::Persistence::None, redis::Persistence::Everysec],
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CertType {
    /// ECDSA P-256 CA and leaf made in-process (rcgen, as `atserver certs`).
    Ecdsa,
    /// RSA-2048 CA and leaf made with the `openssl` CLI at run time.
    Rsa,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PkamAlgo {
    /// RSA-2048 PKCS#1 v1.5 SHA-256 (the committed fixture key).
    Rsa,
    /// ECDSA P-256 (a key generated per run).
    Ecdsa,
}

/// Longest run accepted: every run is bounded.
const DURATION_MAX: Duration = Duration::from_secs(3600);
/// Connections of the thread-per-connection scenarios.
const ACTIVE_CONNECTIONS_MAX: usize = 2_000;
/// Event-loop threads of the request scenarios.
const CLIENT_THREADS_MAX: usize = 64;
/// Connections of `idle`.
const IDLE_CONNECTIONS_MAX: usize = 100_000;
/// The server refuses more than 200 unauthenticated commands per second on
/// one connection; `lookup` reconnects before reaching that.
const UNAUTH_COMMANDS_PER_CONNECTION_MAX: u64 = 200;

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {text:?}: use 500ms, 10s or 2m"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("duration must be positive: {text:?}"));
    }
    let d = Duration::from_secs_f64(value * scale);
    if d > DURATION_MAX {
        return Err(format!(
            "duration above the {} s maximum",
            DURATION_MAX.as_secs()
        ));
    }
    Ok(d)
}

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    about = "Load generator for atserver over TLS on loopback, with a Redis comparison"
)]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Scenario::UpdateLlookup)]
    scenario: Scenario,
    /// Concurrent connections (idle: held connections; notify and
    /// notify-throughput: @alice's sender connections; monitors-idle:
    /// monitor connections). Default 50; remote-lookup, notify and
    /// notify-throughput: 4; monitors-idle: 10000.
    #[arg(long = "connections")]
    connections_flag: Option<usize>,
    /// `--connections` or the scenario's default (see `resolve_defaults`).
    #[arg(skip)]
    connections: usize,
    /// Requests kept in flight per connection (update-llookup, lookup,
    /// remote-lookup, notify, notify-throughput). Default 1;
    /// notify-throughput: 16.
    #[arg(long = "pipeline")]
    pipeline_flag: Option<usize>,
    /// `--pipeline` or the scenario's default (see `resolve_defaults`).
    #[arg(skip)]
    pipeline: usize,
    /// How long to run (500ms, 10s, 2m); idle: how long to hold the connections.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many requests (iterations for pkam-storm), if earlier.
    #[arg(long)]
    requests: Option<u64>,
    /// Value size in bytes for update (and preloaded values).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys written and read. Default 1000; many-atsigns: 10 per
    /// atSign (`--atsigns` × 10), in each of its runs.
    #[arg(long = "keys")]
    keys_flag: Option<usize>,
    /// `--keys` or the scenario's default (see `resolve_defaults`).
    #[arg(skip)]
    keys: usize,
    /// Percentage of update requests in update-llookup (the rest are llookup).
    #[arg(long, default_value_t = 50)]
    update_percent: u32,
    /// lookup: requests per connection before reconnecting (the server
    /// allows 200 unauthenticated commands per second per connection).
    #[arg(long, default_value_t = 190)]
    lookups_per_connection: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run redis-benchmark against a TLS redis-server with the same load
    /// and report the ratios ours/redis of throughput and of server CPU per
    /// operation. Runs `loadtest/redis.sh` first if redis-server or
    /// redis-benchmark is not on PATH.
    #[arg(long)]
    compare_redis: bool,
    /// With --compare-redis: the persistence of the redis-server started
    /// for the baseline (default none); both runs two baselines, none then
    /// everysec, each on a fresh server. Not with --redis-addr.
    #[arg(long = "redis-persistence", value_enum)]
    redis_persistence: Option<RedisPersistenceArg>,
    /// The atserver binary to start (default target/release/atserver, else target/debug/atserver).
    #[arg(long)]
    atserver_bin: Option<PathBuf>,
    /// Use a running atserver at this address instead of starting one (needs --ca).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// CA certificate (PEM) of the server(s) given by --addr/--redis-addr.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// TLS server name to verify.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The atSign to authenticate as.
    #[arg(long, default_value = "@alice")]
    atsign: String,
    /// CRAM secret used once to install the pkam public key (generated when
    /// the loadtest starts the server; with --addr and none given, the key is
    /// assumed installed).
    #[arg(long)]
    cram_secret: Option<String>,
    /// Pid of the server given by --addr, to read its RSS and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Use a running TLS redis-server at this address (needs --ca).
    #[arg(long)]
    redis_addr: Option<SocketAddr>,
    /// Executor shards of the started atserver (its default: one per CPU).
    #[arg(long)]
    shards: Option<usize>,
    /// An extra argument for the started atserver (repeatable), e.g.
    /// `--server-arg=--shard-scheduling=normal`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Durability of the started atserver (fast: like redis without fsync).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Fast)]
    durability: DurabilityArg,
    /// Server certificate type for the started servers.
    #[arg(long, value_enum, default_value_t = CertType::Ecdsa)]
    cert_type: CertType,
    /// pkam signing algorithm (the client signs every challenge).
    #[arg(long, value_enum, default_value_t = PkamAlgo::Rsa)]
    pkam_algo: PkamAlgo,
    /// Allow TLS session resumption (default: every connection does a full handshake).
    #[arg(long)]
    tls_resume: bool,
    /// update-llookup and lookup: event-loop threads sharing the connections
    /// (redis-benchmark runs one).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// idle: threads opening and holding the connections.
    #[arg(long, default_value_t = 8)]
    idle_threads: usize,
    /// Folder for certificates, data and server logs (default: a temporary one, removed after).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// remote-lookup: cold lookups measured before the warm window, each by
    /// a fresh pair of atSigns (0 skips them; at most 64).
    #[arg(long, default_value_t = 20)]
    cold_lookups: usize,
    /// notify, notify-throughput: monitor connections of @bob (each gets
    /// every notification).
    #[arg(long, default_value_t = 1)]
    monitors: usize,
    /// notify, notify-throughput: notifications written and not yet read by
    /// every monitor that the senders allow before they wait, so a run
    /// measures what is delivered, not how fast @alice's outbox fills (the
    /// server refuses notify beyond 100,000 waiting deliveries). Default
    /// for notify: `--connections` (no notification queues behind more
    /// than the other connections' ones); notify-throughput: 10000.
    #[arg(long = "undelivered-max")]
    undelivered_max_flag: Option<u64>,
    /// `--undelivered-max` or the scenario's default.
    #[arg(skip)]
    undelivered_max: u64,
    /// notify, notify-throughput, monitors-idle: the monitors' regex (an
    /// empty one sends a bare `monitor`, which takes everything). The bench
    /// keys `n<i>.bench@alice` must match it.
    #[arg(long, default_value = notify::BENCH_KEYS_REGEX)]
    monitor_regex: String,
    /// many-atsigns: atSigns hosted by the server of the many-atSign runs
    /// (connections spread over them).
    #[arg(long, default_value_t = many::ATSIGNS_DEFAULT)]
    atsigns: usize,
    /// many-atsigns: the executor shard counts measured, each with one
    /// atSign and with `--atsigns` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    shard_counts: Vec<usize>,
    /// Exit 0 even when the run had errors or no throughput (a notification
    /// lost or duplicated still fails the run).
    #[arg(long)]
    allow_errors: bool,
}

/// Keys of every scenario but many-atsigns unless `--keys`.
const KEYS_DEFAULT: usize = 1000;
/// Connections of every scenario but remote-lookup and the notification
/// ones unless `--connections`.
const CONNECTIONS_DEFAULT: usize = 50;
/// Sender connections of notify and notify-throughput: few, so the
/// figure is the server's and not the client's threads competing for two
/// cores.
const NOTIFY_CONNECTIONS_DEFAULT: usize = 4;
/// Monitors of monitors-idle: the issue's goal.
const MONITORS_IDLE_DEFAULT: usize = 10_000;
/// notify-throughput's notifies in flight per connection.
const NOTIFY_PIPELINE_DEFAULT: usize = 16;
/// notify-throughput's cap of notifications written and not yet read by
/// every monitor: deep enough that @alice's courier never runs dry.
const UNDELIVERED_THROUGHPUT_DEFAULT: u64 = 10_000;
/// Monitors of one notify run: each is a thread reading every line.
const MONITORS_MAX: usize = 64;
/// Below the server's bound of waiting deliveries per atSign
/// (`NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX`), so the cap, not the server's
/// refusal, is what holds the senders back.
const UNDELIVERED_MAX_MAX: u64 = 90_000;

impl Args {
    /// Fills in the defaults that depend on the scenario.
    fn resolve_defaults(&mut self) {
        self.connections = self.connections_flag.unwrap_or(match self.scenario {
            // More concurrent lookups than the pool keeps idle per peer
            // would make some warm lookups open new connections.
            Scenario::RemoteLookup => OUTBOUND_IDLE_PER_PEER_MAX,
            Scenario::Notify | Scenario::NotifyThroughput => NOTIFY_CONNECTIONS_DEFAULT,
            Scenario::MonitorsIdle => MONITORS_IDLE_DEFAULT,
            _ => CONNECTIONS_DEFAULT,
        });
        self.keys = self.keys_flag.unwrap_or(match self.scenario {
            // One key per atSign would make every request of a
            // connection's pipeline name the same key (see many.rs).
            Scenario::ManyAtsigns => self.atsigns.saturating_mul(many::KEYS_PER_ATSIGN_DEFAULT),
            _ => KEYS_DEFAULT,
        });
        self.pipeline = self.pipeline_flag.unwrap_or(match self.scenario {
            Scenario::NotifyThroughput => NOTIFY_PIPELINE_DEFAULT,
            _ => 1,
        });
        self.undelivered_max = self.undelivered_max_flag.unwrap_or(match self.scenario {
            // A latency run must not measure a queue: @alice's server
            // accepts notifications several times faster than its courier
            // delivers them to one recipient, so senders that waited only
            // for `data:<id>` would fill the outbox and every notification
            // would wait seconds behind the others.
            Scenario::Notify => self.connections as u64,
            _ => UNDELIVERED_THROUGHPUT_DEFAULT,
        });
    }

    fn validate(&self) -> Result<(), String> {
        let max = if matches!(self.scenario, Scenario::Idle | Scenario::MonitorsIdle) {
            IDLE_CONNECTIONS_MAX
        } else {
            ACTIVE_CONNECTIONS_MAX
        };
        if self.connections == 0 || self.connections > max {
            return Err(format!(
                "--connections must be 1..={max} for {}",
                self.scenario.name()
            ));
        }
        if self.pipeline == 0 || self.pipeline > 1024 {
            return Err("--pipeline must be 1..=1024".into());
        }
        if self.value_size == 0 || self.value_size > 1_000_000 {
            return Err("--value-size must be 1..=1000000".into());
        }
        if self.keys == 0 || self.keys > 10_000_000 {
            return Err("--keys must be 1..=10000000".into());
        }
        if self.update_percent > 100 {
            return Err("--update-percent must be 0..=100".into());
        }
        if self.lookups_per_connection == 0
            || self.lookups_per_connection > UNAUTH_COMMANDS_PER_CONNECTION_MAX
        {
            return Err(format!(
                "--lookups-per-connection must be 1..={UNAUTH_COMMANDS_PER_CONNECTION_MAX}"
            ));
        }
        if self.client_threads == 0 || self.client_threads > CLIENT_THREADS_MAX {
            return Err(format!("--client-threads must be 1..={CLIENT_THREADS_MAX}"));
        }
        if self.idle_threads == 0 || self.idle_threads > 256 {
            return Err("--idle-threads must be 1..=256".into());
        }
        if self.scenario == Scenario::RemoteLookup {
            if self.connections > OUTBOUND_IDLE_PER_PEER_MAX {
                return Err(format!(
                    "--connections must be 1..={OUTBOUND_IDLE_PER_PEER_MAX} for remote-lookup: @bob's server keeps that many idle connections per peer, so more concurrent lookups would not all be warm"
                ));
            }
            if self.addr.is_some() {
                return Err("remote-lookup starts its own directory and two servers: --addr is not supported".into());
            }
            if self.cold_lookups > remote::COLD_LOOKUPS_MAX {
                return Err(format!(
                    "--cold-lookups must be 0..={}",
                    remote::COLD_LOOKUPS_MAX
                ));
            }
        }
        if self.scenario.is_notifications() {
            if self.addr.is_some() {
                return Err(format!(
                    "{} starts its own servers: --addr is not supported",
                    self.scenario.name()
                ));
            }
            if self.monitors == 0 || self.monitors > MONITORS_MAX {
                return Err(format!("--monitors must be 1..={MONITORS_MAX}"));
            }
            if self.undelivered_max == 0 || self.undelivered_max > UNDELIVERED_MAX_MAX {
                return Err(format!(
                    "--undelivered-max must be 1..={UNDELIVERED_MAX_MAX}"
                ));
            }
        }
        if self.scenario == Scenario::ManyAtsigns {
            if self.atsigns < 2 || self.atsigns > many::ATSIGNS_MAX {
                return Err(format!("--atsigns must be 2..={}", many::ATSIGNS_MAX));
            }
            if self.shard_counts.is_empty()
                || self
                    .shard_counts
                    .iter()
                    .any(|&n| n == 0 || n > many::SHARD_COUNT_MAX)
            {
                return Err(format!(
                    "--shard-counts must list 1..={} shards",
                    many::SHARD_COUNT_MAX
                ));
            }
            let mut counts = self.shard_counts.clone();
            counts.sort_unstable();
            counts.dedup();
            if counts.len() != self.shard_counts.len() {
                return Err("--shard-counts lists a count twice".into());
            }
            if self.shards.is_some() {
                return Err(
                    "many-atsigns runs each of --shard-counts: --shards is not supported".into(),
                );
            }
            if self.addr.is_some() {
                return Err("many-atsigns starts its own servers: --addr is not supported".into());
            }
        }
        if self.requests == Some(0) {
            return Err("--requests must be positive".into());
        }
        if (self.addr.is_some() || self.redis_addr.is_some()) && self.ca.is_none() {
            return Err(
                "--addr/--redis-addr need --ca (the CA that signed those servers' certificates)"
                    .into(),
            );
        }
        if self.compare_redis
            && !matches!(
                self.scenario,
                Scenario::UpdateLlookup | Scenario::Lookup | Scenario::PkamStorm
            )
        {
            return Err("--compare-redis supports update-llookup, lookup and pkam-storm".into());
        }
        if self.redis_persistence.is_some() {
            if !self.compare_redis {
                return Err("--redis-persistence needs --compare-redis".into());
            }
            if self.redis_addr.is_some() {
                return Err("--redis-persistence sets up the redis-server the loadtest starts: with --redis-addr that server's own configuration applies".into());
            }
        }
        Ok(())
    }

    /// The persistence of each Redis baseline `--compare-redis` starts, in order.
    fn redis_baselines(&self) -> &'static [redis::Persistence] {
        self.redis_persistence
            .unwrap_or(RedisPersistenceArg::None)
            .baselines()
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.resolve_defaults();
    if let Err(e) = args.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    procs::install_signal_handlers();
    match run(&args) {
        Ok(clean) if clean || args.allow_errors => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("loadtest: the run had errors or no throughput");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_atserver_bin() -> Result<PathBuf, String> {
    let mut candidates = vec![
        PathBuf::from("target/release/atserver"),
        PathBuf::from("target/debug/atserver"),
    ];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        candidates.push(dir.join("atserver"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "no atserver binary: build it (cargo build --release --workspace --bins) or pass --atserver-bin".into())
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "no randomness available".to_string())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn tls_config(ca: &Path, resume: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = atserver::tls::client_config(ca, None).map_err(|e| e.to_string())?;
    if resume {
        return Ok(config);
    }
    let mut config = (*config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The work folder: given, or a temporary one removed when the run ends.
enum WorkDir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Given(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let nofile = procs::raise_nofile();
    if matches!(args.scenario, Scenario::Idle | Scenario::MonitorsIdle)
        && (nofile as usize) < args.connections + 64
    {
        return Err(format!(
            "open-files limit {nofile} is too low for {} connections: run `ulimit -n 65536` first",
            args.connections
        ));
    }
    // Before our run, so a machine without Redis fails (or installs it)
    // before spending the run's duration.
    if args.compare_redis {
        redis::ensure_installed(&mut redis::ThisMachine, args.redis_addr.is_none())?;
    }
    let work = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            WorkDir::Given(dir.clone())
        }
        None => WorkDir::Temp(
            tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?,
        ),
    };
    let certs = match args.cert_type {
        CertType::Ecdsa => procs::ecdsa_certs(&work.path().join("certs"))?,
        CertType::Rsa => procs::rsa_certs(&work.path().join("certs-rsa"))?,
    };
    let ca = args.ca.clone().unwrap_or_else(|| certs.ca.clone());
    // remote-lookup's owner connections are @bob's, on @bob's server.
    let atsign = if args.scenario == Scenario::RemoteLookup {
        remote::LOCAL_ATSIGN.to_string()
    } else {
        atserver::protocol::atsign::normalize_atsign(&args.atsign)
            .map_err(|e| format!("invalid --atsign {:?}: {}", args.atsign, e.message))?
    };
    let durability = match args.durability {
        DurabilityArg::Fast => "fast",
        DurabilityArg::Durable => "durable",
    };
    if args.scenario.is_notifications() {
        return run_notifications(args, &certs, &ca, work.path(), durability);
    }
    if args.scenario == Scenario::ManyAtsigns {
        return run_many(args, &certs, &ca, work.path(), durability, &atsign);
    }

    // Our server: started here unless --addr; remote-lookup starts a
    // directory and two servers and measures @bob's.
    let mut secret = args.cram_secret.clone();
    let mut server: Option<ChildGuard> = None;
    let mut network: Option<remote::Network> = None;
    let addr = match args.addr {
        Some(addr) => addr,
        None if args.scenario == Scenario::RemoteLookup => {
            let bin = match &args.atserver_bin {
                Some(b) => b.clone(),
                None => default_atserver_bin()?,
            };
            let started = remote::Network::start(&remote::NetworkSpec {
                bin: &bin,
                certs: &certs,
                work: work.path(),
                durability,
                shards: args.shards,
                extra_args: &args.server_args,
                cold_lookups: args.cold_lookups,
                auto_notify: false,
            })?;
            eprintln!(
                "loadtest: started {} as @alice's server (pid {}) on {} and @bob's (pid {}) on {}, and a directory",
                bin.display(),
                started.alice.pid(),
                started.alice_addr,
                started.bob.pid(),
                started.bob_addr
            );
            secret = Some(started.bob_secret().to_string());
            let addr = started.bob_addr;
            network = Some(started);
            addr
        }
        None => {
            let bin = match &args.atserver_bin {
                Some(b) => b.clone(),
                None => default_atserver_bin()?,
            };
            let generated = random_hex(16)?;
            let hosted = [(atsign.clone(), generated.clone())];
            let spec = procs::AtServerSpec {
                bin: &bin,
                hosted: &hosted,
                secret_file: None,
                certs: &certs,
                data_dir: work.path().join("atserver-data"),
                log: work.path().join("atserver.log"),
                shards: args.shards,
                extra_args: &args.server_args,
                durability,
            };
            let (guard, addr) = procs::start_atserver(&spec)?;
            eprintln!(
                "loadtest: started {} (pid {}) on {addr}",
                bin.display(),
                guard.pid()
            );
            secret = Some(generated);
            server = Some(guard);
            addr
        }
    };
    let server_pid = server
        .as_ref()
        .or(network.as_ref().map(|n| &n.bob))
        .map(ChildGuard::pid)
        .or(args.server_pid);
    let name = rustls::pki_types::ServerName::try_from(args.server_name.clone())
        .map_err(|e| format!("bad --server-name: {e}"))?;
    let target = Target {
        addr,
        tls: tls_config(&ca, args.tls_resume)?,
        server_name: name,
        atsign: atsign.clone(),
    };
    let key = match args.pkam_algo {
        PkamAlgo::Rsa => client::rsa_fixture_key(),
        PkamAlgo::Ecdsa => PkamKey::generate_ecdsa(),
    }
    .map_err(|e| format!("pkam key: {e}"))?;
    if let Some(secret) = &secret {
        install_pkam_key(&target, &key, secret)?;
    }
    let ctx = Ctx {
        target,
        key,
        shared: Arc::new(Shared::new(args.requests)),
        pipeline: args.pipeline,
        value: "v".repeat(args.value_size),
        keys: args.keys,
        update_percent: args.update_percent,
        lookups_per_connection: args.lookups_per_connection,
    };
    let mut cold = None;
    match args.scenario {
        Scenario::UpdateLlookup => scenario::preload(&ctx, Mix::UpdateLlookup)?,
        Scenario::Lookup => scenario::preload(&ctx, Mix::Lookup)?,
        Scenario::RemoteLookup => {
            let network = network
                .as_ref()
                .ok_or("remote-lookup without its network")?;
            let alice = Target {
                addr: network.alice_addr,
                atsign: remote::REMOTE_ATSIGN.to_string(),
                ..ctx.target.clone()
            };
            remote::share(network, &alice, args.keys, &ctx.value)?;
            let report = remote::cold_lookups(network, &ctx.target, &ctx.value);
            eprintln!(
                "loadtest: {} cold lookups, p50 {:.0} µs, p99 {:.0} µs, {} errors",
                report.lookups,
                report.latency.p50,
                report.latency.p99,
                report.errors.len()
            );
            for e in &report.errors {
                ctx.shared.error(e.clone());
            }
            cold = Some(report);
        }
        _ => {}
    }

    let peer = network.as_ref().map(|n| PeerServer {
        pid: n.alice.pid(),
        port: n.alice_addr.port(),
    });
    let mut ours = run_scenario(args, &ctx, server_pid, peer)?;
    if let Some(cold) = &cold {
        ours.extra.extend(cold.extras());
    }
    if let Some(guard) = server.as_mut() {
        guard.check_alive()?;
    }
    if let Some(network) = network.as_mut() {
        network.check_alive()?;
    }
    // A server started here logs its stranded-tick total once a second
    // when it moved: let the run's last second reach the log, then report
    // it (the goal is zero; see OPERATIONS "Reactor ticks that found
    // stranded work").
    let measured_log = match (&server, &network) {
        (Some(_), _) => Some(work.path().join("atserver.log")),
        (None, Some(network)) => Some(network.bob_log().to_path_buf()),
        (None, None) => None,
    };
    if let Some(log) = measured_log {
        std::thread::sleep(Duration::from_millis(1_100));
        ours.extra.extend(remote::TickTotals::in_log(&log).extras());
    }
    println!("{}", ours.table());
    let clean = ours.errors == 0 && ours.ops > 0 && !procs::interrupted();
    // The server is stopped before redis runs so it takes no CPU from it.
    drop(server);
    drop(network);

    let document = if args.compare_redis && !procs::interrupted() {
        let comparison = compare_redis(args, &certs, &ca, work.path(), &ours)?;
        println!("{}", comparison.1);
        comparison.0
    } else {
        ours.json()
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&document).map_err(|e| format!("JSON: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if procs::interrupted() {
        return Err("interrupted".into());
    }
    Ok(clean)
}

/// notify, notify-throughput and monitors-idle: they start their own
/// servers and check every notification (see `notify.rs`). A notification
/// lost or duplicated fails the run whatever `--allow-errors` says: such a
/// run measured a broken server, not a slow one.
fn run_notifications(
    args: &Args,
    certs: &CertFiles,
    ca: &Path,
    work: &Path,
    durability: &str,
) -> Result<bool, String> {
    let bin = match &args.atserver_bin {
        Some(b) => b.clone(),
        None => default_atserver_bin()?,
    };
    let server_name = rustls::pki_types::ServerName::try_from(args.server_name.clone())
        .map_err(|e| format!("bad --server-name: {e}"))?;
    let spec = notify::NotifySpec {
        bin: &bin,
        certs,
        tls: tls_config(ca, args.tls_resume)?,
        server_name,
        work,
        durability,
        shards: args.shards,
        extra_args: &args.server_args,
        connections: args.connections,
        pipeline: args.pipeline,
        monitors: args.monitors,
        undelivered_max: args.undelivered_max,
        duration: args.duration,
        value: "v".repeat(args.value_size),
        keys: args.keys,
        threads: args.idle_threads,
        monitor_regex: &args.monitor_regex,
    };
    let outcome = match args.scenario {
        Scenario::Notify => notify::run_delivery(&spec, notify::Delivery::Latency)?,
        Scenario::NotifyThroughput => notify::run_delivery(&spec, notify::Delivery::Throughput)?,
        _ => notify::run_monitors_idle(&spec)?,
    };
    let report = &outcome.report;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&report.json()).map_err(|e| format!("JSON: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if procs::interrupted() {
        return Err("interrupted".into());
    }
    if let Some(why) = &outcome.invalid {
        return Err(format!(
            "INVALID RUN ({}): {why}; the figures above do not count",
            report.scenario
        ));
    }
    Ok(report.errors == 0 && report.ops > 0)
}

/// many-atsigns: four runs (one atSign and `--atsigns`, for each of
/// `--shard-counts`) on servers it starts; see `many.rs`.
fn run_many(
    args: &Args,
    certs: &CertFiles,
    ca: &Path,
    work: &Path,
    durability: &str,
    one_atsign: &str,
) -> Result<bool, String> {
    let bin = match &args.atserver_bin {
        Some(b) => b.clone(),
        None => default_atserver_bin()?,
    };
    let spec = many::ManySpec {
        bin: &bin,
        certs,
        tls: tls_config(ca, args.tls_resume)?,
        server_name: rustls::pki_types::ServerName::try_from(args.server_name.clone())
            .map_err(|e| format!("bad --server-name: {e}"))?,
        work,
        durability,
        extra_args: &args.server_args,
        shard_counts: &args.shard_counts,
        atsigns: args.atsigns,
        one_atsign: one_atsign.to_string(),
        connections: args.connections,
        pipeline: args.pipeline,
        client_threads: args.client_threads,
        duration: args.duration,
        requests: args.requests,
        value: "v".repeat(args.value_size),
        keys: args.keys,
        update_percent: args.update_percent,
    };
    let nofile = procs::raise_nofile();
    if (nofile as usize) < spec.connections_open() + 64 {
        return Err(format!(
            "open-files limit {nofile} is too low for {} connections: run `ulimit -n 65536` first",
            spec.connections_open()
        ));
    }
    let key = match args.pkam_algo {
        PkamAlgo::Rsa => client::rsa_fixture_key(),
        PkamAlgo::Ecdsa => PkamKey::generate_ecdsa(),
    }
    .map_err(|e| format!("pkam key: {e}"))?;
    let outcome = many::run(&spec, key)?;
    println!("{}", outcome.table);
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&outcome.document).map_err(|e| format!("JSON: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if procs::interrupted() {
        return Err("interrupted".into());
    }
    Ok(outcome.clean)
}

/// Onboards with cram and stores the pkam public key.
fn install_pkam_key(target: &Target, key: &PkamKey, secret: &str) -> Result<(), String> {
    let mut conn = target
        .connect()
        .map_err(|e| format!("setup connection: {e}"))?;
    conn.cram(&target.atsign, secret)
        .map_err(|e| format!("cram: {e}"))?;
    let reply = conn
        .request(&format!(
            "update:privatekey:at_pkam_publickey {}",
            key.public_key_text()
        ))
        .map_err(|e| format!("installing the pkam public key: {e}"))?;
    if reply.data().is_none() {
        return Err(format!(
            "installing the pkam public key: {}",
            String::from_utf8_lossy(reply.payload())
        ));
    }
    conn.close();
    Ok(())
}

/// Prints one progress line a second on stderr until `done`.
fn progress(shared: &Shared, started: Instant, done: &std::sync::atomic::AtomicBool) {
    let tty = std::io::stderr().is_terminal();
    let mut last_ops = 0;
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let ops = shared.ops.load(Ordering::Relaxed);
        let rate = (ops - last_ops) as f64 / last.elapsed().as_secs_f64();
        last_ops = ops;
        last = Instant::now();
        let line = format!(
            "[{:6.1}s] ops {ops:>10}  {rate:>9.0}/s  errors {}  connections {}",
            started.elapsed().as_secs_f64(),
            shared.errors.load(Ordering::Relaxed),
            shared.connections.load(Ordering::Relaxed),
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
    }
    if tty {
        eprintln!();
    }
}

/// Sleeps until `until`, the run stops or Ctrl-C; then sets `stop`.
fn wait_until(shared: &Shared, until: Instant) {
    while Instant::now() < until && !shared.stopped() && !procs::interrupted() {
        std::thread::sleep(Duration::from_millis(20));
    }
    shared.stop.store(true, Ordering::Relaxed);
}

/// The measured window of a run and the process samples around it.
struct Measured {
    started: Instant,
    ended: Instant,
    server0: ProcSample,
    client0: ProcSample,
    /// Server and client samples at the end, when the scenario takes them
    /// itself (idle); otherwise they are taken once the workers drained.
    ends: Option<(ProcSample, ProcSample)>,
}

/// Prints the progress line until the run's duration is over (or it is
/// stopped), stops the run and returns when it ended.
fn show_progress_until_over<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    shared: &'scope Shared,
    started: Instant,
    done: &'scope std::sync::atomic::AtomicBool,
    duration: Duration,
) -> Instant {
    scope.spawn(move || progress(shared, started, done));
    wait_until(shared, started + duration);
    Instant::now()
}

/// remote-lookup's other server (@alice's), whose CPU and accepted
/// connections the report shows.
struct PeerServer {
    pid: u32,
    port: u16,
}

fn run_scenario(
    args: &Args,
    ctx: &Ctx,
    server_pid: Option<u32>,
    peer: Option<PeerServer>,
) -> Result<RunReport, String> {
    let shared = &ctx.shared;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut extra: Vec<(String, Value)> = Vec::new();
    let mut measured: Option<Measured> = None;
    let mut peer_connections_start = None;
    let mut peer0 = None;
    let (ready, opened, probe) = (Gate::default(), Gate::default(), Gate::default());
    let (ready, opened, probe) = (&ready, &opened, &probe);
    std::thread::scope(|scope| -> Result<(), String> {
        let mut workers = Vec::new();
        match args.scenario {
            Scenario::UpdateLlookup | Scenario::Lookup | Scenario::RemoteLookup => {
                let mix = match args.scenario {
                    Scenario::Lookup => Mix::Lookup,
                    Scenario::RemoteLookup => Mix::RemoteLookup,
                    _ => Mix::UpdateLlookup,
                };
                let threads = args.client_threads.min(args.connections);
                for t in 0..threads {
                    let ids =
                        (args.connections * t / threads)..(args.connections * (t + 1) / threads);
                    workers.push(spawn_worker(
                        scope,
                        shared,
                        format!("loop-{t}"),
                        move || evloop::request_loop(ctx, mix, ids, ready),
                    )?);
                }
                ready.wait_arrivals(workers.len(), shared);
                // After the warm-up: @bob's pooled connections into @alice's server.
                peer_connections_start =
                    peer.as_ref().and_then(|p| procs::established_into(p.port));
                peer0 = peer.as_ref().and_then(|p| procs::sample(Some(p.pid)));
                ready.open();
                let (server0, client0) = samples(server_pid);
                let started = Instant::now();
                let ended = show_progress_until_over(scope, shared, started, &done, args.duration);
                measured = Some(Measured {
                    started,
                    ended,
                    server0,
                    client0,
                    ends: None,
                });
            }
            Scenario::PkamStorm => {
                let (server0, client0) = samples(server_pid);
                let started = Instant::now();
                for id in 0..args.connections {
                    workers.push(spawn_worker(
                        scope,
                        shared,
                        format!("storm-{id}"),
                        move || scenario::pkam_storm_worker(ctx),
                    )?);
                }
                let ended = show_progress_until_over(scope, shared, started, &done, args.duration);
                measured = Some(Measured {
                    started,
                    ended,
                    server0,
                    client0,
                    ends: None,
                });
            }
            Scenario::Idle => {
                let threads = args.idle_threads.min(args.connections);
                let (server0, client0) = samples(server_pid);
                let started = Instant::now();
                let done = &done;
                scope.spawn(move || progress(shared, started, done));
                for t in 0..threads {
                    let count =
                        args.connections / threads + usize::from(t < args.connections % threads);
                    workers.push(spawn_worker(
                        scope,
                        shared,
                        format!("idle-{t}"),
                        move || scenario::idle_worker(ctx, count, opened, probe),
                    )?);
                }
                opened.wait_arrivals(workers.len(), shared);
                opened.open();
                let open_done = Instant::now();
                // Let the server settle (buffers freed, allocator caches) before sampling.
                std::thread::sleep(Duration::from_millis(500));
                let (server1, client1) = samples(server_pid);
                let hold_until = Instant::now() + args.duration;
                while Instant::now() < hold_until && !procs::interrupted() && !shared.stopped() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let (server2, _) = samples(server_pid);
                let held = shared.connections.load(Ordering::Relaxed);
                let per_conn = |end: &ProcSample| {
                    if held == 0 {
                        0.0
                    } else {
                        (end.rss_kib as f64 - server0.rss_kib as f64) * 1024.0 / held as f64
                    }
                };
                extra.push(("idle_connections_held".into(), json!(held)));
                extra.push(("server_rss_kib_before_open".into(), json!(server0.rss_kib)));
                extra.push(("server_rss_kib_all_open".into(), json!(server1.rss_kib)));
                extra.push(("server_rss_kib_after_hold".into(), json!(server2.rss_kib)));
                extra.push((
                    "server_rss_bytes_per_connection".into(),
                    json!(per_conn(&server2).round()),
                ));
                extra.push(("client_rss_kib_all_open".into(), json!(client1.rss_kib)));
                extra.push((
                    "open_seconds".into(),
                    json!((open_done - started).as_secs_f64()),
                ));
                probe.wait_arrivals(workers.len(), shared);
                probe.open();
                // Throughput of idle = connections opened (and authenticated) per second.
                measured = Some(Measured {
                    started,
                    ended: open_done,
                    server0,
                    client0,
                    ends: Some((server2, client1)),
                });
            }
            Scenario::Notify
            | Scenario::NotifyThroughput
            | Scenario::MonitorsIdle
            | Scenario::ManyAtsigns => {
                return Err(format!(
                    "{} runs on its own servers (run_notifications, run_many)",
                    args.scenario.name()
                ));
            }
        }
        for worker in workers {
            if worker.join().is_err() {
                shared.error("a client thread panicked");
            }
        }
        done.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    let Some(Measured {
        started,
        ended,
        server0,
        client0,
        ends,
    }) = measured
    else {
        return Err("the run did not start".into());
    };
    let (server_end, client_end) = ends.unwrap_or_else(|| samples(server_pid));
    if let Some(peer) = &peer {
        let elapsed = ended.duration_since(started);
        let peer_end = procs::sample(Some(peer.pid));
        if let (Some(start), Some(end)) = (peer0, peer_end) {
            let used = ProcUse {
                pid: Some(peer.pid),
                start,
                end,
            };
            extra.push(("peer_server".into(), used.json(elapsed)));
        }
        // Equal counts: no lookup of the window opened a connection, so
        // every measured lookup was warm.
        extra.push((
            "warm_peer_connections_start".into(),
            json!(peer_connections_start),
        ));
        extra.push((
            "warm_peer_connections_end".into(),
            json!(procs::established_into(peer.port)),
        ));
    }
    let pipelined = matches!(
        args.scenario,
        Scenario::UpdateLlookup | Scenario::Lookup | Scenario::RemoteLookup
    );
    let shape = RunShape {
        scenario: args.scenario.name().to_string(),
        connections: args.connections,
        pipeline: if pipelined { args.pipeline } else { 1 },
        value_size: args.value_size,
    };
    let server = server_pid.map(|pid| ProcUse::between(Some(pid), server0, server_end));
    let client = ProcUse::between(None, client0, client_end);
    let mut report = shared.report(shape, ended.duration_since(started), server, Some(client));
    report.extra = extra;
    Ok(report)
}

/// Starts a named client thread with a small stack (storm runs use many);
/// on failure stops the run so no thread waits at a gate forever.
fn spawn_worker<'scope, F: FnOnce() + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    shared: &Shared,
    name: String,
    f: F,
) -> Result<std::thread::ScopedJoinHandle<'scope, ()>, String> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn_scoped(scope, f)
        .map_err(|e| {
            // Releases the threads already waiting at a gate.
            shared.stop.store(true, Ordering::Relaxed);
            format!("cannot start a client thread: {e}")
        })
}

fn samples(server_pid: Option<u32>) -> (ProcSample, ProcSample) {
    let server = server_pid
        .and_then(|pid| procs::sample(Some(pid)))
        .unwrap_or_default();
    (server, procs::sample(None).unwrap_or_default())
}

/// How redis-benchmark mirrors our scenario: which tests, with or without
/// keep-alive, and the pipelining.
struct RedisPlan {
    /// `-t`: the tests measured.
    tests: &'static str,
    /// The pilot's tests (it also writes the keys GET reads).
    pilot_tests: &'static str,
    /// `-k`: 1 keeps connections, 0 opens one per request.
    keepalive: &'static str,
    /// `-P`.
    pipeline: usize,
}

impl RedisPlan {
    fn new(args: &Args) -> RedisPlan {
        let (tests, keepalive) = match args.scenario {
            Scenario::UpdateLlookup => ("set,get", "1"),
            Scenario::Lookup => ("get", "1"),
            _ => ("ping_mbulk", "0"),
        };
        RedisPlan {
            tests,
            pilot_tests: if args.scenario == Scenario::Lookup {
                "set,get"
            } else {
                tests
            },
            keepalive,
            pipeline: if args.scenario == Scenario::PkamStorm {
                1
            } else {
                args.pipeline
            },
        }
    }

    /// redis-benchmark's arguments after the connection ones: `n` requests
    /// of each of `tests`.
    fn bench_args(&self, args: &Args, n: u64, tests: &str) -> Vec<String> {
        [
            "-c",
            &args.connections.to_string(),
            "-n",
            &n.to_string(),
            "-d",
            &args.value_size.to_string(),
            "-P",
            &self.pipeline.to_string(),
            "-r",
            &args.keys.to_string(),
            "-k",
            self.keepalive,
            "-t",
            tests,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// The redis-server of one baseline.
#[derive(Clone, Copy)]
enum RedisServer {
    /// Started here, with this persistence, in its own folder of the run's
    /// work folder (data, AOF, log), and stopped after the baseline.
    Start(redis::Persistence),
    /// `--redis-addr`: running already, configured by whoever started it.
    Given(SocketAddr),
}

/// One Redis baseline: redis-benchmark against one redis-server.
struct Baseline {
    /// `none` or `everysec` (the persistence of the server started), or
    /// `given` (`--redis-addr`).
    name: &'static str,
    /// How the server persists, as its arguments.
    config: String,
    results: Vec<redis::RedisTest>,
    /// The measured redis-benchmark command, to rerun it by hand.
    command: String,
    /// The redis-server process over the measured run (not the pilot);
    /// `None` for `--redis-addr` (no pid to sample).
    server: Option<ProcUse>,
    elapsed: Duration,
    /// Bytes of append-only files when the run ended (started servers).
    aof_bytes: Option<u64>,
}

impl Baseline {
    fn rate(&self) -> f64 {
        redis::combined_rate(&self.results)
    }

    fn ops(&self) -> u64 {
        self.results.iter().map(|t| t.requests).sum()
    }

    /// redis-server's CPU over the run, counting its AOF-rewrite children
    /// reaped in the window: they do the compaction our server does on its
    /// own threads, which its figure includes.
    fn server_cpu_seconds(&self) -> Option<f64> {
        self.server
            .map(|s| s.cpu_seconds() + s.reaped_children_cpu_seconds())
    }

    fn server_cpu_us_per_op(&self) -> Option<f64> {
        report::cpu_us_per_op(self.server_cpu_seconds(), self.ops())
    }

    fn latency(&self) -> Latency {
        redis::worst_latency(&self.results)
    }

    /// Ours over this baseline: (throughput, server CPU per operation).
    fn ratios(&self, ours: &RunReport) -> (Option<f64>, Option<f64>) {
        (
            report::ratio(Some(ours.ops_per_sec()), Some(self.rate())),
            report::ratio(ours.server_cpu_us_per_op(), self.server_cpu_us_per_op()),
        )
    }

    /// One entry of `redis_baselines`.
    fn json(&self, ours: &RunReport) -> Value {
        let (ratio, cpu_ratio) = self.ratios(ours);
        json!({
            "persistence": self.name,
            "redis_config": self.config,
            "ops_per_sec": self.rate().round(),
            "ops": self.ops(),
            "ratio": ratio.map(|r| report::rounded(r, 3)),
            "server_cpu_us_per_op": self.server_cpu_us_per_op().map(|c| report::rounded(c, 2)),
            "cpu_ratio": cpu_ratio.map(|r| report::rounded(r, 3)),
            "aof_rewrite_cpu_seconds": self.server.map(|s| report::rounded(s.reaped_children_cpu_seconds(), 3)),
            "aof_bytes_end": self.aof_bytes,
            "latency_us": self.latency().json(),
            "tests": self.results.iter().map(redis::RedisTest::json).collect::<Vec<_>>(),
            "command": self.command,
            "server": self.server.map(|u| u.json(self.elapsed)),
        })
    }
}

/// Runs one baseline: starts its redis-server (unless given), sizes the
/// request count with a pilot so the run lasts about `--duration`, runs
/// redis-benchmark with the same connections, value size and pipelining,
/// and stops the server.
fn run_baseline(
    args: &Args,
    plan: &RedisPlan,
    certs: &CertFiles,
    ca: &Path,
    work: &Path,
    server: RedisServer,
) -> Result<Baseline, String> {
    let (guard, addr, dir, name, config) = match server {
        RedisServer::Given(addr) => (
            None,
            addr,
            None,
            "given",
            format!("the configuration of the server at {addr}"),
        ),
        RedisServer::Start(persistence) => {
            let dir = work.join(format!("redis-{}", persistence.name()));
            let args = persistence.server_args();
            let (guard, addr) = procs::start_redis(certs, &dir, args)?;
            eprintln!(
                "loadtest: started redis-server (pid {}) on {addr} with {} in {}",
                guard.pid(),
                args.join(" "),
                dir.display()
            );
            (
                Some(guard),
                addr,
                Some(dir),
                persistence.name(),
                format!("--save \"\" {}", args.join(" ")),
            )
        }
    };
    let redis_pid = guard.as_ref().map(ChildGuard::pid);
    let target = redis::RedisTarget { addr, ca };
    let test_count = plan.tests.split(',').count() as u64;
    let timeout = args.duration * 3 + Duration::from_secs(60);
    // redis-benchmark counts requests, it has no duration option.
    let pilot_n = (args.connections as u64 * 100 * plan.pipeline as u64).clamp(2_000, 200_000);
    let pilot = redis::run(
        &target,
        &plan.bench_args(args, pilot_n, plan.pilot_tests),
        timeout,
    )?;
    let pilot_rate = redis::combined_rate(&pilot);
    let per_test = match args.requests {
        Some(r) => (r / test_count).max(1),
        None => ((pilot_rate * args.duration.as_secs_f64()) as u64 / test_count)
            .clamp(1_000, 200_000_000),
    };
    eprintln!(
        "loadtest: redis ({name}) redis-benchmark -t {} -n {per_test} (pilot {pilot_rate:.0} ops/s)",
        plan.tests
    );
    let bench_args = plan.bench_args(args, per_test, plan.tests);
    let before = redis_pid
        .and_then(|p| procs::sample(Some(p)))
        .unwrap_or_default();
    let started = Instant::now();
    let results = redis::run(&target, &bench_args, timeout)?;
    let elapsed = started.elapsed();
    let after = redis_pid
        .and_then(|p| procs::sample(Some(p)))
        .unwrap_or_default();
    let aof_bytes = dir.as_deref().map(redis::aof_bytes);
    // Stops the server we started (its AOF goes with the work folder).
    drop(guard);
    Ok(Baseline {
        name,
        config,
        results,
        command: format!(
            "redis-benchmark --tls --cacert {} -h {} -p {} {}",
            ca.display(),
            addr.ip(),
            addr.port(),
            bench_args.join(" ")
        ),
        server: redis_pid.map(|pid| ProcUse {
            pid: Some(pid),
            start: before,
            end: after,
        }),
        elapsed,
        aof_bytes,
    })
}

/// Runs every Redis baseline (`--redis-persistence`, or the server of
/// `--redis-addr`) one after the other and builds the comparison document
/// and table.
fn compare_redis(
    args: &Args,
    certs: &CertFiles,
    ca: &Path,
    work: &Path,
    ours: &RunReport,
) -> Result<(Value, String), String> {
    let plan = RedisPlan::new(args);
    let servers: Vec<RedisServer> = match args.redis_addr {
        Some(addr) => vec![RedisServer::Given(addr)],
        None => args
            .redis_baselines()
            .iter()
            .map(|&p| RedisServer::Start(p))
            .collect(),
    };
    let mut baselines = Vec::new();
    for server in servers {
        if procs::interrupted() {
            break;
        }
        baselines.push(run_baseline(args, &plan, certs, ca, work, server)?);
    }
    let doc = comparison_doc(args, &plan, ours, &baselines)?;
    Ok((doc, comparison_table(args.scenario, ours, &baselines)))
}

/// The comparison as JSON (documented in `loadtest/README.md`).
fn comparison_doc(
    args: &Args,
    plan: &RedisPlan,
    ours: &RunReport,
    baselines: &[Baseline],
) -> Result<Value, String> {
    let first = baselines
        .first()
        .ok_or("interrupted before any Redis baseline ran")?;
    let (ratio, cpu_ratio) = first.ratios(ours);
    // The flat redis_* fields (read by older scripts) describe the first
    // baseline; redis_baselines has every one.
    Ok(json!({
        "scenario": ours.scenario,
        "connections": args.connections,
        "pipeline": plan.pipeline,
        "value_size": args.value_size,
        "ours_ops_per_sec": ours.ops_per_sec().round(),
        "ours_server_cpu_us_per_op": ours.server_cpu_us_per_op().map(|c| report::rounded(c, 2)),
        "redis_persistence": first.name,
        "redis_ops_per_sec": first.rate().round(),
        "redis_server_cpu_us_per_op": first.server_cpu_us_per_op().map(|c| report::rounded(c, 2)),
        "ratio": report::rounded(ratio.unwrap_or(0.0), 3),
        "cpu_ratio": cpu_ratio.map(|r| report::rounded(r, 3)),
        "ours_latency_us": ours.latency.json(),
        "redis_latency_us": first.latency().json(),
        "redis_latency_note": "worst of the redis-benchmark tests per percentile; p999 is redis-benchmark's first bucket >= 99.9 %",
        "redis_tests": first.results.iter().map(redis::RedisTest::json).collect::<Vec<_>>(),
        "redis_command": first.command,
        "redis_server": first.server.map(|u| u.json(first.elapsed)),
        "redis_baselines": baselines.iter().map(|b| b.json(ours)).collect::<Vec<_>>(),
        "ours": ours.json(),
    }))
}

/// The comparison as printed: one row per server, then each Redis test
/// and the ratios against each baseline.
fn comparison_table(scenario: Scenario, ours: &RunReport, baselines: &[Baseline]) -> String {
    let mut table = String::from("\ncomparison (ours / redis)\n");
    let what = match scenario {
        Scenario::UpdateLlookup => "update+llookup vs SET+GET",
        Scenario::Lookup => "lookup vs GET",
        _ => "pkam logins/s vs redis -k 0 (new connection per PING)",
    };
    table.push_str(&format!("{what}\n"));
    table.push_str(&format!(
        "{:<16} {:>12} {:>10} {:>10} {:>10} {:>10} {:>16}\n",
        "", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "server CPU µs/op"
    ));
    let cpu = |c: Option<f64>| c.map_or_else(|| "—".to_string(), |c| format!("{c:.2}"));
    let mut rows = vec![(
        "ours".to_string(),
        ours.ops_per_sec(),
        ours.latency,
        ours.server_cpu_us_per_op(),
    )];
    for b in baselines {
        rows.push((
            format!("redis {}", b.name),
            b.rate(),
            b.latency(),
            b.server_cpu_us_per_op(),
        ));
    }
    for (label, rate, l, c) in rows {
        table.push_str(&format!(
            "{label:<16} {rate:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>16}\n",
            l.p50,
            l.p99,
            l.p999,
            l.max,
            cpu(c)
        ));
    }
    for b in baselines {
        for t in &b.results {
            table.push_str(&format!(
                "  redis {:<8} {:<10} {:>10.0} ops/s ({} requests)\n",
                b.name, t.name, t.rps, t.requests
            ));
        }
        if let Some(bytes) = b.aof_bytes.filter(|&n| n > 0) {
            table.push_str(&format!(
                "  redis {:<8} AOF {:.1} MiB at the end\n",
                b.name,
                bytes as f64 / (1024.0 * 1024.0)
            ));
        }
    }
    let shown = |r: Option<f64>| r.map_or_else(|| "—".to_string(), |r| format!("{r:.3}"));
    for b in baselines {
        let (ratio, cpu_ratio) = b.ratios(ours);
        table.push_str(&format!(
            "ratio ours/redis {}: {} ops/s, {} server CPU per op\n",
            b.name,
            shown(ratio),
            shown(cpu_ratio)
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &[&str]) -> Args {
        let mut args =
            Args::try_parse_from(std::iter::once("loadtest").chain(line.iter().copied()))
                .expect("parses");
        args.resolve_defaults();
        args
    }

    #[test]
    fn connections_default_by_scenario() {
        assert_eq!(parsed(&[]).connections, CONNECTIONS_DEFAULT);
        let remote = parsed(&["--scenario", "remote-lookup"]);
        assert_eq!(remote.connections, OUTBOUND_IDLE_PER_PEER_MAX);
        assert_eq!(remote.validate(), Ok(()));
        assert_eq!(
            parsed(&["--scenario", "lookup", "--connections", "7"]).connections,
            7
        );
    }

    #[test]
    fn notification_scenarios_have_their_own_defaults_and_bounds() {
        let latency = parsed(&["--scenario", "notify"]);
        assert_eq!(
            (latency.connections, latency.pipeline),
            (NOTIFY_CONNECTIONS_DEFAULT, 1)
        );
        assert_eq!(latency.validate(), Ok(()));
        let throughput = parsed(&["--scenario", "notify-throughput"]);
        assert_eq!(
            (throughput.connections, throughput.pipeline),
            (NOTIFY_CONNECTIONS_DEFAULT, NOTIFY_PIPELINE_DEFAULT)
        );
        assert_eq!(throughput.validate(), Ok(()));
        let idle = parsed(&["--scenario", "monitors-idle"]);
        assert_eq!(idle.connections, MONITORS_IDLE_DEFAULT);
        assert_eq!(idle.validate(), Ok(()));
        let too_many_monitors = (MONITORS_MAX + 1).to_string();
        let too_much_backlog = (UNDELIVERED_MAX_MAX + 1).to_string();
        for line in [
            &["--scenario", "notify", "--monitors", "0"][..],
            &[
                "--scenario",
                "notify",
                "--monitors",
                too_many_monitors.as_str(),
            ][..],
            &[
                "--scenario",
                "notify-throughput",
                "--undelivered-max",
                too_much_backlog.as_str(),
            ][..],
            &[
                "--scenario",
                "notify",
                "--addr",
                "127.0.0.1:6464",
                "--ca",
                "ca.pem",
            ][..],
        ] {
            assert!(parsed(line).validate().is_err(), "{line:?}");
        }
    }

    #[test]
    fn remote_lookup_refuses_what_it_cannot_measure_warm_or_start() {
        let too_many = (OUTBOUND_IDLE_PER_PEER_MAX + 1).to_string();
        let too_cold = (remote::COLD_LOOKUPS_MAX + 1).to_string();
        for line in [
            &[
                "--scenario",
                "remote-lookup",
                "--connections",
                too_many.as_str(),
            ][..],
            &[
                "--scenario",
                "remote-lookup",
                "--cold-lookups",
                too_cold.as_str(),
            ][..],
            &[
                "--scenario",
                "remote-lookup",
                "--addr",
                "127.0.0.1:6464",
                "--ca",
                "ca.pem",
            ][..],
        ] {
            assert!(parsed(line).validate().is_err(), "{line:?}");
        }
        assert_eq!(
            parsed(&["--scenario", "remote-lookup", "--cold-lookups", "0"]).validate(),
            Ok(())
        );
    }

    #[test]
    fn many_atsigns_defaults_to_1000_atsigns_on_one_and_two_shards() {
        let args = parsed(&["--scenario", "many-atsigns"]);
        assert_eq!(args.validate(), Ok(()));
        assert_eq!(
            (args.atsigns, args.shard_counts.as_slice(), args.connections),
            (many::ATSIGNS_DEFAULT, &[1, 2][..], CONNECTIONS_DEFAULT)
        );
        assert_eq!(args.keys, 10_000);
        assert_eq!(
            parsed(&["--scenario", "many-atsigns", "--atsigns", "20"]).keys,
            200
        );
        assert_eq!(
            parsed(&["--scenario", "many-atsigns", "--keys", "5"]).keys,
            5
        );
        assert_eq!(parsed(&[]).keys, KEYS_DEFAULT);
        let counts = parsed(&["--scenario", "many-atsigns", "--shard-counts", "1,2,4"]);
        assert_eq!(counts.shard_counts, [1, 2, 4]);
        assert_eq!(counts.validate(), Ok(()));
        for line in [
            &["--scenario", "many-atsigns", "--atsigns", "1"][..],
            &["--scenario", "many-atsigns", "--shard-counts", "1,1"][..],
            &["--scenario", "many-atsigns", "--shard-counts", "0"][..],
            &["--scenario", "many-atsigns", "--shards", "2"][..],
            &["--scenario", "many-atsigns", "--compare-redis"][..],
            &[
                "--scenario",
                "many-atsigns",
                "--addr",
                "127.0.0.1:6464",
                "--ca",
                "ca.pem",
            ][..],
        ] {
            assert!(parsed(line).validate().is_err(), "{line:?}");
        }
    }

    #[test]
    fn redis_persistence_defaults_to_none_and_both_runs_none_then_everysec() {
        use redis::Persistence;
        let plain = parsed(&["--compare-redis"]);
        assert_eq!(plain.validate(), Ok(()));
        assert_eq!(plain.redis_baselines(), [Persistence::None]);
        for (flag, expected) in [
            ("none", &[Persistence::None][..]),
            ("everysec", &[Persistence::Everysec][..]),
            ("both", &[Persistence::None, Persistence::Everysec][..]),
        ] {
            let args = parsed(&["--compare-redis", "--redis-persistence", flag]);
            assert_eq!(args.validate(), Ok(()), "{flag}");
            assert_eq!(args.redis_baselines(), expected, "{flag}");
        }
        assert!(
            Args::try_parse_from([
                "loadtest",
                "--compare-redis",
                "--redis-persistence",
                "always"
            ])
            .is_err()
        );
    }

    #[test]
    fn redis_persistence_needs_compare_redis_and_a_started_server() {
        for line in [
            &["--redis-persistence", "both"][..],
            &[
                "--compare-redis",
                "--redis-persistence",
                "none",
                "--redis-addr",
                "127.0.0.1:6379",
                "--ca",
                "ca.pem",
            ][..],
        ] {
            assert!(parsed(line).validate().is_err(), "{line:?}");
        }
        let given = parsed(&[
            "--compare-redis",
            "--redis-addr",
            "127.0.0.1:6379",
            "--ca",
            "ca.pem",
        ]);
        assert_eq!(given.validate(), Ok(()));
    }

    fn used(cpu_seconds: f64, reaped_children_cpu_seconds: f64) -> ProcUse {
        ProcUse {
            pid: Some(1),
            start: ProcSample::default(),
            end: ProcSample {
                cpu_seconds,
                reaped_children_cpu_seconds,
                ..ProcSample::default()
            },
        }
    }

    /// 100,000 operations in 1 s with 1 s of server CPU: 10 µs per op.
    fn ours_report() -> RunReport {
        RunReport {
            scenario: "update-llookup".into(),
            connections: 50,
            pipeline: 1,
            value_size: 100,
            elapsed: Duration::from_secs(1),
            ops: 100_000,
            errors: 0,
            reconnects: 0,
            latency: Latency::default(),
            server: Some(used(1.0, 0.0)),
            client: None,
            error_samples: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// SET and GET, 100,000 requests each at 200,000/s: 200,000 operations.
    fn baseline(name: &'static str, server: Option<ProcUse>) -> Baseline {
        let test = |name: &str| redis::RedisTest {
            name: name.into(),
            requests: 100_000,
            rps: 200_000.0,
            latency: Latency::default(),
        };
        Baseline {
            name,
            config: String::new(),
            results: vec![test("SET"), test("GET")],
            command: String::new(),
            server,
            elapsed: Duration::from_secs(1),
            aof_bytes: None,
        }
    }

    #[test]
    fn the_comparison_reports_server_cpu_per_op_and_its_ratio_for_every_baseline() {
        let args = parsed(&["--compare-redis", "--redis-persistence", "both"]);
        let plan = RedisPlan::new(&args);
        let ours = ours_report();
        let baselines = [
            // 1 s over 200,000 operations: 5 µs.
            baseline("none", Some(used(1.0, 0.0))),
            // 1.5 s, plus 0.5 s in reaped AOF-rewrite children: 10 µs.
            baseline("everysec", Some(used(1.5, 0.5))),
        ];
        let doc = comparison_doc(&args, &plan, &ours, &baselines).expect("a document");
        assert_eq!(doc["ours_server_cpu_us_per_op"], json!(10.0));
        assert_eq!(doc["redis_server_cpu_us_per_op"], json!(5.0));
        assert_eq!(doc["cpu_ratio"], json!(2.0));
        assert_eq!(doc["redis_persistence"], json!("none"));
        // The fields other scripts read are still there.
        assert_eq!(doc["ours_ops_per_sec"], json!(100_000.0));
        assert_eq!(doc["redis_ops_per_sec"], json!(200_000.0));
        assert_eq!(doc["ratio"], json!(0.5));
        let listed = doc["redis_baselines"].as_array().expect("an array");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["persistence"], json!("none"));
        assert_eq!(listed[0]["cpu_ratio"], json!(2.0));
        assert_eq!(listed[1]["persistence"], json!("everysec"));
        assert_eq!(listed[1]["server_cpu_us_per_op"], json!(10.0));
        assert_eq!(listed[1]["cpu_ratio"], json!(1.0));
        assert_eq!(listed[1]["ratio"], json!(0.5));
        assert_eq!(listed[1]["aof_rewrite_cpu_seconds"], json!(0.5));
        let table = comparison_table(args.scenario, &ours, &baselines);
        assert!(
            table.contains("ratio ours/redis everysec: 0.500 ops/s, 1.000 server CPU per op"),
            "{table}"
        );
    }

    #[test]
    fn an_unsampled_server_has_no_cpu_figure_rather_than_zero() {
        let args = parsed(&["--compare-redis"]);
        let plan = RedisPlan::new(&args);
        let doc = comparison_doc(&args, &plan, &ours_report(), &[baseline("given", None)])
            .expect("a document");
        assert_eq!(doc["redis_server_cpu_us_per_op"], Value::Null);
        assert_eq!(doc["cpu_ratio"], Value::Null);
        assert_eq!(doc["ours_server_cpu_us_per_op"], json!(10.0));
        assert!(comparison_doc(&args, &plan, &ours_report(), &[]).is_err());
    }
}
