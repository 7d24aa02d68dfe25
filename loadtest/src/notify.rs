//! The notification scenarios: how long a notification takes from @alice's
//! atServer to a monitor on @bob's, how many a second the pair sustains, and
//! what ten thousand quiet monitors cost.
//!
//! `notify` and `notify-throughput` start the `remote-lookup` network (a
//! directory and two servers on loopback, [`remote::Network`]). @bob's owner
//! opens `--monitors` monitor connections whose regex only the bench keys
//! match; @alice's owner connections send
//! `notify:id:lt<seq>:update:isEncrypted:true:@bob:n<i>.bench@alice:<value>`
//! and read each `data:lt<seq>`. @alice's server stores the notification as
//! queued and answers; its courier pushes it to @bob's server over a pooled
//! pol-authenticated connection, which stores it and writes it to every
//! monitor of @bob.
//!
//! Each notification's write time is kept in a [`Ledger`] by its sequence
//! number. Each monitor thread reads the `"id"` of every line, takes its
//! arrival time and keeps the ids it has seen: end-to-end latency is arrival
//! minus write, both on this process's monotonic clock. After the senders
//! stop, the monitors get until every accepted notification has arrived, or
//! until nothing arrived for [`DRAIN_STALL`]: an accepted notification a
//! monitor never saw is lost, one it saw twice is duplicated, and either
//! makes the run invalid.
//!
//! `monitors-idle` starts one server for @alice, opens `--connections`
//! monitor connections (cram, `monitor <regex>`, then `noop:0`, whose reply
//! proves the monitor is registered because a connection's commands run in
//! order), holds them, samples the server's RSS, then sends one notification
//! from @alice to herself and checks that every monitor got it.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use atserver::client::blocking::Client;
use atserver::client::{ClientError, MonitorFrame};
use atserver::limits::REACTOR_TICK_MS;
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

use crate::client::Target;
use crate::procs::{self, AtServerSpec, CertFiles, ProcSample};
use crate::remote::{self, LOCAL_ATSIGN, REMOTE_ATSIGN};
use crate::report::{Latency, ProcUse, RunReport, Shared, new_histogram};
use crate::scenario::Gate;

/// The sender of every notification (and the monitored atSign of
/// `monitors-idle`).
const SENDER: &str = REMOTE_ATSIGN;
/// The recipient whose monitors read the notifications of `notify` and
/// `notify-throughput`.
const RECIPIENT: &str = LOCAL_ATSIGN;
/// Every bench notification's id is this and its sequence number.
const ID_PREFIX: &str = "lt";
/// The monitors' default regex: the bench keys (`@bob:n<i>.bench@alice`)
/// match it and nothing else a server writes does, as a real client
/// filters by its namespace (and, for `monitors-idle`, a compiled regex per
/// monitor is part of the memory measured).
pub const BENCH_KEYS_REGEX: &str = r"n[0-9]+\.bench@alice";

/// Notifications sent before the window opens: the first delivery on each
/// shard of @alice's server resolves @bob and opens a pol-authenticated
/// connection, which the measurement is not about.
const WARM_UP: Duration = Duration::from_secs(1);
/// The drain ends when no monitor has read a new notification for this
/// long (or when every accepted one has arrived). Five seconds is ten times
/// the first delivery retry pause (0.5 s), so a delivery that failed once
/// and was retried still counts as delivered, not lost.
const DRAIN_STALL: Duration = Duration::from_secs(5);
/// Longest drain, however slowly deliveries still trickle in.
const DRAIN_MAX: Duration = Duration::from_secs(120);
/// How long a monitor read waits before the thread looks at the stop flag.
const MONITOR_POLL: Duration = Duration::from_millis(50);
/// Longest wait of a sender held back by the undelivered cap before it
/// looks at the stop flag again (a monitor's read wakes it sooner).
const UNDELIVERED_WAIT: Duration = Duration::from_millis(10);
/// How long `monitors-idle` waits for its notification on every monitor.
const FANOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before sampling RSS, so buffers of the opening are freed.
const SETTLE: Duration = Duration::from_millis(500);
/// Unexpected monitor lines kept for the report.
const UNEXPECTED_SAMPLES_MAX: usize = 5;
/// The sequence number of `monitors-idle`'s one notification.
const FANOUT_SEQ: u64 = 0;

/// Which delivery scenario runs (they differ only in their defaults and in
/// what the report stresses).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// One notify in flight per connection: end-to-end latency.
    Latency,
    /// Pipelined notifies: notifications a second.
    Throughput,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Latency => "notify",
            Delivery::Throughput => "notify-throughput",
        }
    }
}

/// What the notification scenarios need from the command line.
pub struct NotifySpec<'a> {
    pub bin: &'a Path,
    pub certs: &'a CertFiles,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub work: &'a Path,
    pub durability: &'a str,
    pub shards: Option<usize>,
    pub extra_args: &'a [String],
    /// Sender connections (`monitors-idle`: monitor connections).
    pub connections: usize,
    /// Notifies in flight per sender connection.
    pub pipeline: usize,
    /// Monitor connections on @bob's server.
    pub monitors: usize,
    /// Notifications written and not yet read by every monitor that the
    /// senders allow before they wait.
    pub undelivered_max: u64,
    /// The measured window (`monitors-idle`: how long the monitors are held).
    pub duration: Duration,
    pub value: String,
    pub keys: usize,
    /// `monitors-idle`: threads opening and reading the monitors.
    pub threads: usize,
    /// The monitors' regex (empty: a bare `monitor`); the bench keys must
    /// match it, or every notification counts as lost.
    pub monitor_regex: &'a str,
}

/// A scenario's report and, when it is not a valid measurement, why.
pub struct Outcome {
    pub report: RunReport,
    pub invalid: Option<String>,
}

// ---------------------------------------------------------------------------
// What senders and monitors share.

/// What became of a notify on its sender's connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// No reply yet (or the connection failed before it came).
    Waiting,
    /// `data:<id>`, at this moment.
    Accepted(Instant),
    /// An error reply: the server did not take it.
    Refused,
}

/// One notification as its sender wrote it.
struct Sent {
    written: Instant,
    /// Written inside the measured window, not in the warm-up.
    measured: bool,
    answer: Answer,
}

/// Every notification written, by sequence number (its id is `lt<seq>`):
/// the senders insert before they write, so a monitor never reads a line
/// the ledger does not know yet.
#[derive(Default)]
struct Ledger {
    sent: Mutex<HashMap<u64, Sent>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Sent>> {
        // A panicking thread leaves plain data behind; the run reports it.
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state of a delivery run, shared by its threads.
struct Run {
    ledger: Ledger,
    next_seq: AtomicU64,
    /// Set once the warm-up is over: notifications written from then on
    /// are measured.
    measuring: AtomicBool,
    /// Senders write nothing more once set (they still read their replies).
    stop_sending: AtomicBool,
    /// Monitor threads return once set.
    stop_reading: AtomicBool,
    written: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// Distinct bench notifications each monitor has read so far.
    delivered: Vec<AtomicU64>,
    /// Wakes the senders the undelivered cap holds back when a monitor
    /// reads a line: waiting on it, not sleeping in a loop, keeps idle
    /// senders from taking the cores the servers are measured on.
    read_signal: (Mutex<()>, Condvar),
    /// Errors and their samples.
    shared: Shared,
    pipeline: usize,
    undelivered_max: u64,
    value: String,
    keys: u64,
}

impl Run {
    /// What the slowest monitor has read.
    fn delivered_to_all(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn delivered_total(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum()
    }

    /// Written, not refused, and not yet read by every monitor.
    fn undelivered(&self) -> u64 {
        let live = self
            .written
            .load(Ordering::Relaxed)
            .saturating_sub(self.refused.load(Ordering::Relaxed));
        live.saturating_sub(self.delivered_to_all())
    }

    fn stopping(&self) -> bool {
        self.stop_sending.load(Ordering::Relaxed) || procs::interrupted()
    }

    /// Waits until the monitors are below the undelivered cap (or
    /// [`UNDELIVERED_WAIT`] passed).
    fn wait_for_reads(&self) {
        let (lock, signal) = &self.read_signal;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.undelivered() >= self.undelivered_max && !self.stopping() {
            let _ = signal.wait_timeout(guard, UNDELIVERED_WAIT);
        }
    }

    /// Counts a new line read by monitor `index` and wakes the senders.
    fn count_read(&self, index: usize) {
        if let Some(counter) = self.delivered.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // Taken after the count moved, so a sender that checked the cap
        // before it is already waiting and gets this wake-up.
        let (lock, signal) = &self.read_signal;
        drop(lock.lock().unwrap_or_else(|e| e.into_inner()));
        signal.notify_all();
    }
}

/// What a monitor line is, by its `"id"`.
#[derive(Debug, PartialEq, Eq)]
enum LineId {
    /// A bench notification: `lt<seq>`.
    Bench(u64),
    /// The stats notification (id `-1`), written to every monitor every
    /// 15 s whatever its regex.
    Stats,
    /// Anything else (the text, for the report).
    Other(String),
}

/// Finds the `"id":"…"` field of `notification: {json}` without parsing
/// the whole JSON: the id is the first field the server writes, and the
/// reader must keep up with tens of thousands of lines a second on a core
/// it shares with both servers.
fn line_id(line: &[u8]) -> LineId {
    const FIELD: &[u8] = b"\"id\":\"";
    let other = || LineId::Other(String::from_utf8_lossy(line).into_owned());
    let Some(at) = line.windows(FIELD.len()).position(|w| w == FIELD) else {
        return other();
    };
    let rest = line.get(at + FIELD.len()..).unwrap_or_default();
    let Some(end) = rest.iter().position(|&b| b == b'"') else {
        return other();
    };
    let id = rest.get(..end).unwrap_or_default();
    if id == b"-1" {
        return LineId::Stats;
    }
    id.strip_prefix(ID_PREFIX.as_bytes())
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse().ok())
        .map_or_else(other, LineId::Bench)
}

/// `monitor <regex>`, or a bare `monitor` (everything) for an empty regex.
fn monitor_line(regex: &str) -> String {
    if regex.is_empty() {
        "monitor".to_string()
    } else {
        format!("monitor {regex}")
    }
}

fn notify_line(seq: u64, recipient: &str, key_index: u64, value: &str) -> String {
    format!(
        "notify:id:{ID_PREFIX}{seq}:update:isEncrypted:true:{recipient}:n{key_index}.bench{SENDER}:{value}"
    )
}

/// Milliseconds a latency histogram is broken down into (the last bucket
/// takes everything longer): twice the reactor tick, so stalls that only
/// the tick ended show as a bump at its period.
const MS_BUCKETS: u64 = 2 * REACTOR_TICK_MS;

/// How many latencies fell in each whole millisecond `[k, k+1)` for `k`
/// below [`MS_BUCKETS`], then how many took longer.
fn ms_buckets(hist: &Histogram<u64>) -> Value {
    const MS: u64 = 1_000_000;
    let mut counts: Vec<u64> = (0..MS_BUCKETS)
        .map(|k| hist.count_between(k * MS, (k + 1) * MS - 1))
        .collect();
    counts.push(hist.count_between(MS_BUCKETS * MS, u64::MAX));
    json!(counts)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// A cram-authenticated owner connection turned monitor, confirmed
/// registered: `noop:0` after `monitor` is answered only once the monitor
/// command has run.
fn open_monitor(target: &Target, secret: &str, line: &str) -> Result<Client, String> {
    let mut conn = remote::cram_owner(target, &target.atsign, secret)?;
    conn.start_monitor(line)
        .map_err(|e| format!("monitor: {e}"))?;
    conn.send_line("noop:0")
        .map_err(|e| format!("noop on a monitor: {e}"))?;
    loop {
        match conn.read_monitor_frame() {
            Ok(MonitorFrame::Reply(reply)) if reply.data() == Some(b"ok") => return Ok(conn),
            Ok(MonitorFrame::Reply(reply)) => {
                return Err(format!(
                    "noop on a monitor: {}",
                    String::from_utf8_lossy(reply.payload())
                ));
            }
            // Only the stats line can come first: nothing was sent yet.
            Ok(MonitorFrame::Notification(line)) if line_id(&line) == LineId::Stats => {}
            Ok(MonitorFrame::Notification(line)) => {
                return Err(format!(
                    "a notification before anything was sent: {}",
                    String::from_utf8_lossy(&line)
                ));
            }
            Err(e) => return Err(format!("noop on a monitor: {e}")),
        }
    }
}

/// Starts a named thread of the scope; on failure stops the run so the
/// threads already started end.
fn spawn<'scope, T: Send + 'scope, F: FnOnce() -> T + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: String,
    on_failure: impl FnOnce(),
    f: F,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, String> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn_scoped(scope, f)
        .map_err(|e| {
            on_failure();
            format!("cannot start a client thread: {e}")
        })
}

// ---------------------------------------------------------------------------
// notify and notify-throughput.

/// One sender connection: keeps `pipeline` notifies in flight (fewer while
/// the undelivered cap holds), records each one in the ledger before it is
/// written, and its answer when it comes. Returns the accept latency (write
/// to `data:<id>`) of the measured ones.
fn send_notifications(run: &Run, mut conn: Client) -> Histogram<u64> {
    let mut accept_latency = new_histogram();
    let mut in_flight: VecDeque<(u64, Instant, bool)> = VecDeque::new();
    let mut batch = String::new();
    let mut fresh: Vec<u64> = Vec::with_capacity(run.pipeline);
    loop {
        batch.clear();
        fresh.clear();
        while in_flight.len() + fresh.len() < run.pipeline
            && !run.stopping()
            && run.undelivered() + (fresh.len() as u64) < run.undelivered_max
        {
            let seq = run.next_seq.fetch_add(1, Ordering::Relaxed);
            batch.push_str(&notify_line(seq, RECIPIENT, seq % run.keys, &run.value));
            batch.push('\n');
            fresh.push(seq);
        }
        if !fresh.is_empty() {
            let written = Instant::now();
            let measured = run.measuring.load(Ordering::Relaxed);
            {
                let mut sent = run.ledger.lock();
                for &seq in &fresh {
                    sent.insert(
                        seq,
                        Sent {
                            written,
                            measured,
                            answer: Answer::Waiting,
                        },
                    );
                }
            }
            run.written.fetch_add(fresh.len() as u64, Ordering::Relaxed);
            if let Err(e) = conn.write_raw(batch.as_bytes()) {
                run.shared.error(format!("writing notify: {e}"));
                break;
            }
            in_flight.extend(fresh.iter().map(|&seq| (seq, written, measured)));
        }
        let Some(&(seq, written, measured)) = in_flight.front() else {
            if run.stopping() {
                break;
            }
            // Every monitor is `undelivered_max` behind: let them catch up.
            run.wait_for_reads();
            continue;
        };
        let reply = match conn.read_reply() {
            Ok(reply) => reply,
            Err(e) => {
                run.shared
                    .error(format!("reading the reply to notify {ID_PREFIX}{seq}: {e}"));
                break;
            }
        };
        let answered = Instant::now();
        in_flight.pop_front();
        let id = format!("{ID_PREFIX}{seq}");
        let answer = if reply.data() == Some(id.as_bytes()) {
            run.accepted.fetch_add(1, Ordering::Relaxed);
            if measured {
                accept_latency.saturating_record(nanos(answered - written));
            }
            Answer::Accepted(answered)
        } else {
            run.refused.fetch_add(1, Ordering::Relaxed);
            run.shared.error(format!(
                "notify {id} refused: {}",
                String::from_utf8_lossy(reply.payload())
            ));
            Answer::Refused
        };
        if let Some(entry) = run.ledger.lock().get_mut(&seq) {
            entry.answer = answer;
        }
    }
    conn.close();
    accept_latency
}

/// What one monitor read.
struct MonitorRead {
    /// Bench notifications by sequence number, with their (first) arrival.
    seen: HashMap<u64, Instant>,
    /// Lines of a notification already seen on this monitor.
    duplicated: u64,
    /// Lines that are neither bench notifications this run wrote nor stats.
    unexpected: u64,
    unexpected_samples: Vec<String>,
    stats_lines: u64,
    /// End-to-end latency of the measured notifications.
    latency: Histogram<u64>,
}

impl MonitorRead {
    fn unexpected(&mut self, what: String) {
        self.unexpected += 1;
        if self.unexpected_samples.len() < UNEXPECTED_SAMPLES_MAX {
            self.unexpected_samples.push(what);
        }
    }
}

/// One monitor connection's reader: every line until the run says stop.
fn read_notifications(run: &Run, index: usize, mut conn: Client) -> MonitorRead {
    let mut read = MonitorRead {
        seen: HashMap::new(),
        duplicated: 0,
        unexpected: 0,
        unexpected_samples: Vec::new(),
        stats_lines: 0,
        latency: new_histogram(),
    };
    while !run.stop_reading.load(Ordering::Relaxed) && !procs::interrupted() {
        let line = match conn.read_monitor_frame_within(MONITOR_POLL) {
            Ok(MonitorFrame::Notification(line)) => line,
            Ok(MonitorFrame::Reply(reply)) => {
                read.unexpected(format!(
                    "a reply nothing asked for: {}",
                    String::from_utf8_lossy(reply.payload())
                ));
                continue;
            }
            Err(ClientError::Timeout { .. }) => continue,
            Err(e) => {
                run.shared
                    .error(format!("monitor {index} stopped reading: {e}"));
                break;
            }
        };
        let arrived = Instant::now();
        match line_id(&line) {
            LineId::Bench(seq) => {
                if read.seen.insert(seq, arrived).is_some() {
                    read.duplicated += 1;
                    continue;
                }
                run.count_read(index);
                let sent = run.ledger.lock().get(&seq).map(|s| (s.written, s.measured));
                match sent {
                    Some((written, true)) => {
                        read.latency
                            .saturating_record(nanos(arrived.saturating_duration_since(written)));
                    }
                    Some((_, false)) => {}
                    None => read.unexpected(format!("{ID_PREFIX}{seq}, never written")),
                }
            }
            LineId::Stats => read.stats_lines += 1,
            LineId::Other(text) => read.unexpected(text),
        }
    }
    conn.close();
    read
}

/// Prints accepted and delivered rates once a second on stderr until the
/// monitors stop reading.
fn delivery_progress(run: &Run, started: Instant) {
    let mut last = (Instant::now(), 0u64, 0u64);
    while !run.stop_reading.load(Ordering::Relaxed) && !procs::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
        let elapsed = last.0.elapsed();
        if elapsed < Duration::from_secs(1) {
            continue;
        }
        let accepted = run.accepted.load(Ordering::Relaxed);
        let delivered = run.delivered_to_all();
        let secs = elapsed.as_secs_f64();
        eprintln!(
            "[{:6.1}s] accepted {accepted:>9} ({:>7.0}/s)  delivered {delivered:>9} ({:>7.0}/s)  undelivered {:>6}  errors {}",
            started.elapsed().as_secs_f64(),
            accepted.saturating_sub(last.1) as f64 / secs,
            delivered.saturating_sub(last.2) as f64 / secs,
            run.undelivered(),
            run.shared.errors.load(Ordering::Relaxed),
        );
        last = (Instant::now(), accepted, delivered);
    }
}

/// Waits, after the senders stopped, until every monitor has read every
/// notification that was not refused, or until nothing new arrived for
/// [`DRAIN_STALL`]; returns when the last new line was counted.
fn drain(run: &Run) -> Instant {
    let expected = run
        .written
        .load(Ordering::Relaxed)
        .saturating_sub(run.refused.load(Ordering::Relaxed));
    let started = Instant::now();
    let mut last_total = run.delivered_total();
    let mut last_progress = Instant::now();
    while run.delivered_to_all() < expected
        && last_progress.elapsed() < DRAIN_STALL
        && started.elapsed() < DRAIN_MAX
        && !procs::interrupted()
    {
        std::thread::sleep(Duration::from_millis(5));
        let total = run.delivered_total();
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        }
    }
    last_progress
}

/// The samples of both servers and the client at one moment.
struct Samples {
    alice: ProcSample,
    bob: ProcSample,
    client: ProcSample,
}

fn sample_all(alice: u32, bob: u32) -> Samples {
    Samples {
        alice: procs::sample(Some(alice)).unwrap_or_default(),
        bob: procs::sample(Some(bob)).unwrap_or_default(),
        client: procs::sample(None).unwrap_or_default(),
    }
}

/// `notify` and `notify-throughput`: see the module's comment.
pub fn run_delivery(spec: &NotifySpec<'_>, which: Delivery) -> Result<Outcome, String> {
    let mut network = remote::Network::start(&remote::NetworkSpec {
        bin: spec.bin,
        certs: spec.certs,
        work: spec.work,
        durability: spec.durability,
        shards: spec.shards,
        extra_args: spec.extra_args,
        cold_lookups: 0,
        auto_notify: true,
    })?;
    eprintln!(
        "loadtest: started {} as @alice's server (pid {}) on {} and @bob's (pid {}) on {}, and a directory",
        spec.bin.display(),
        network.alice.pid(),
        network.alice_addr,
        network.bob.pid(),
        network.bob_addr
    );
    let target = |addr, atsign: &str| Target {
        addr,
        tls: Arc::clone(&spec.tls),
        server_name: spec.server_name.clone(),
        atsign: atsign.to_string(),
    };
    let alice = target(network.alice_addr, SENDER);
    let bob = target(network.bob_addr, RECIPIENT);
    // Monitors first, each confirmed registered, so that nothing sent can
    // miss them.
    let line = monitor_line(spec.monitor_regex);
    let monitors = (0..spec.monitors)
        .map(|_| open_monitor(&bob, network.bob_secret(), &line))
        .collect::<Result<Vec<_>, _>>()?;
    let senders = (0..spec.connections)
        .map(|_| remote::cram_owner(&alice, SENDER, network.alice_secret()))
        .collect::<Result<Vec<_>, _>>()?;
    let run = Run {
        ledger: Ledger::default(),
        next_seq: AtomicU64::new(1),
        measuring: AtomicBool::new(false),
        stop_sending: AtomicBool::new(false),
        stop_reading: AtomicBool::new(false),
        written: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        delivered: (0..spec.monitors).map(|_| AtomicU64::new(0)).collect(),
        read_signal: (Mutex::new(()), Condvar::new()),
        shared: Shared::new(None),
        pipeline: spec.pipeline,
        undelivered_max: spec.undelivered_max,
        value: spec.value.clone(),
        keys: spec.keys as u64,
    };
    let (alice_pid, bob_pid) = (network.alice.pid(), network.bob.pid());
    let stop_all = || {
        run.stop_sending.store(true, Ordering::Relaxed);
        run.stop_reading.store(true, Ordering::Relaxed);
    };
    let measured = std::thread::scope(|scope| -> Result<_, String> {
        let mut readers = Vec::new();
        for (index, conn) in monitors.into_iter().enumerate() {
            let run = &run;
            readers.push(spawn(
                scope,
                format!("monitor-{index}"),
                stop_all,
                move || read_notifications(run, index, conn),
            )?);
        }
        let mut writers = Vec::new();
        for (index, conn) in senders.into_iter().enumerate() {
            let run = &run;
            writers.push(spawn(
                scope,
                format!("notify-{index}"),
                stop_all,
                move || send_notifications(run, conn),
            )?);
        }
        let began = Instant::now();
        {
            let run = &run;
            scope.spawn(move || delivery_progress(run, began));
        }
        let warm_until = began + WARM_UP;
        while Instant::now() < warm_until && !procs::interrupted() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let start = sample_all(alice_pid, bob_pid);
        run.measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let until = started + spec.duration;
        while Instant::now() < until && !run.stopping() {
            std::thread::sleep(Duration::from_millis(10));
        }
        run.stop_sending.store(true, Ordering::Relaxed);
        let ended = Instant::now();
        let end = sample_all(alice_pid, bob_pid);
        let undelivered_at_end = run.undelivered();
        let mut accept_latency = new_histogram();
        for writer in writers {
            match writer.join() {
                Ok(h) => {
                    let _ = accept_latency.add(&h);
                }
                Err(_) => run.shared.error("a sender thread panicked"),
            }
        }
        let last_delivery = drain(&run);
        run.stop_reading.store(true, Ordering::Relaxed);
        let mut reads = Vec::new();
        for reader in readers {
            match reader.join() {
                Ok(read) => reads.push(read),
                Err(_) => run.shared.error("a monitor thread panicked"),
            }
        }
        Ok(Window {
            started,
            ended,
            start,
            end,
            undelivered_at_end,
            last_delivery,
            accept_latency,
            reads,
        })
    })?;
    network.check_alive()?;
    // The servers log their count once a second: let the last second of
    // the drain reach the logs.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let stranded = network.stranded_ticks();
    Ok(delivery_report(
        spec,
        which,
        &run,
        measured,
        (alice_pid, bob_pid),
        stranded,
    ))
}

/// What a delivery run measured, for its report.
struct Window {
    started: Instant,
    ended: Instant,
    start: Samples,
    end: Samples,
    undelivered_at_end: u64,
    last_delivery: Instant,
    accept_latency: Histogram<u64>,
    reads: Vec<MonitorRead>,
}

fn delivery_report(
    spec: &NotifySpec<'_>,
    which: Delivery,
    run: &Run,
    window: Window,
    (alice_pid, bob_pid): (u32, u32),
    stranded: (u64, u64),
) -> Outcome {
    let Window {
        started,
        ended,
        start,
        end,
        undelivered_at_end,
        last_delivery,
        accept_latency,
        reads,
    } = window;
    let elapsed = ended.duration_since(started);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let in_window = |at: Instant| at >= started && at < ended;
    let sent = run.ledger.lock();
    let accepted_in_window = sent
        .values()
        .filter(|s| matches!(s.answer, Answer::Accepted(at) if in_window(at)))
        .count() as u64;
    let unanswered = sent
        .values()
        .filter(|s| s.answer == Answer::Waiting)
        .count() as u64;
    // Lost: accepted by @alice's server and never read by a monitor.
    let mut lost = 0u64;
    let mut lost_samples = Vec::new();
    for (index, read) in reads.iter().enumerate() {
        for (seq, s) in sent.iter() {
            if matches!(s.answer, Answer::Accepted(_)) && !read.seen.contains_key(seq) {
                lost += 1;
                if lost_samples.len() < UNEXPECTED_SAMPLES_MAX {
                    lost_samples.push(format!("{ID_PREFIX}{seq} on monitor {index}"));
                }
            }
        }
    }
    drop(sent);
    let duplicated: u64 = reads.iter().map(|r| r.duplicated).sum();
    let unexpected: u64 = reads.iter().map(|r| r.unexpected).sum();
    let stats_lines: u64 = reads.iter().map(|r| r.stats_lines).sum();
    let delivered_in_window: Vec<u64> = reads
        .iter()
        .map(|r| r.seen.values().filter(|&&at| in_window(at)).count() as u64)
        .collect();
    // Notifications delivered: what the first monitor read in the window
    // (every monitor gets every one).
    let delivered = delivered_in_window.first().copied().unwrap_or(0);
    let mut latency = new_histogram();
    for read in &reads {
        let _ = latency.add(&read.latency);
    }
    let over = |ms: u64| latency.count_between(ms * 1_000_000, u64::MAX);
    let alice = ProcUse {
        pid: Some(alice_pid),
        start: start.alice,
        end: end.alice,
    };
    let bob = ProcUse {
        pid: Some(bob_pid),
        start: start.bob,
        end: end.bob,
    };
    let per_delivered = |u: &ProcUse| {
        if delivered == 0 {
            Value::Null
        } else {
            json!((u.cpu_seconds() * 1e6 / delivered as f64 * 10.0).round() / 10.0)
        }
    };
    let unexpected_samples: Vec<String> = reads
        .iter()
        .flat_map(|r| r.unexpected_samples.iter().cloned())
        .take(UNEXPECTED_SAMPLES_MAX)
        .collect();
    let extra: Vec<(String, Value)> = vec![
        ("monitors".into(), json!(spec.monitors)),
        (
            "monitor_command".into(),
            json!(monitor_line(spec.monitor_regex)),
        ),
        (
            "notifications_written".into(),
            json!(run.written.load(Ordering::Relaxed)),
        ),
        (
            "notifications_accepted".into(),
            json!(run.accepted.load(Ordering::Relaxed)),
        ),
        (
            "notifications_refused".into(),
            json!(run.refused.load(Ordering::Relaxed)),
        ),
        ("notifications_unanswered".into(), json!(unanswered)),
        (
            "accepted_per_sec".into(),
            json!((accepted_in_window as f64 / secs).round()),
        ),
        (
            "delivered_per_sec".into(),
            json!((delivered as f64 / secs).round()),
        ),
        (
            "monitor_lines_per_sec".into(),
            json!((delivered_in_window.iter().sum::<u64>() as f64 / secs).round()),
        ),
        ("lost".into(), json!(lost)),
        ("lost_samples".into(), json!(lost_samples)),
        ("duplicated".into(), json!(duplicated)),
        ("unexpected_lines".into(), json!(unexpected)),
        ("unexpected_samples".into(), json!(unexpected_samples)),
        ("stats_lines".into(), json!(stats_lines)),
        ("undelivered_max".into(), json!(spec.undelivered_max)),
        (
            "undelivered_at_window_end".into(),
            json!(undelivered_at_end),
        ),
        (
            "drain_seconds".into(),
            json!(
                (last_delivery.saturating_duration_since(ended).as_secs_f64() * 1000.0).round()
                    / 1000.0
            ),
        ),
        (
            "accept_latency_us".into(),
            Latency::from_histogram(&accept_latency).json(),
        ),
        ("latency_ms_buckets".into(), ms_buckets(&latency)),
        (
            "stranded_ticks".into(),
            json!({"alice": stranded.0, "bob": stranded.1, "note": "reactor ticks each server logged as finding work no wake-up had started, since it started (an upper bound: an event arriving in the tick's instant counts too)"}),
        ),
        (
            "accept_latency_ms_buckets".into(),
            ms_buckets(&accept_latency),
        ),
        (
            "latency_note".into(),
            json!(
                "end to end: from the write of notify on @alice's connection to the arrival of its line on @bob's monitor, for notifications written in the window (after a 1 s warm-up), arriving in it or in the drain; accept_latency_us: write to data:<id> on @alice's connection"
            ),
        ),
        ("latency_count".into(), json!(latency.len())),
        ("latency_over_2ms".into(), json!(over(2))),
        (
            format!("latency_over_reactor_tick_{REACTOR_TICK_MS}ms"),
            json!(over(REACTOR_TICK_MS)),
        ),
        ("peer_server".into(), bob.json(elapsed)),
        ("alice_cpu_us_per_delivered".into(), per_delivered(&alice)),
        ("bob_cpu_us_per_delivered".into(), per_delivered(&bob)),
    ];
    let mut invalid = Vec::new();
    if lost > 0 {
        invalid.push(format!(
            "{lost} accepted notifications never reached a monitor"
        ));
    }
    if duplicated > 0 {
        invalid.push(format!(
            "{duplicated} notifications reached a monitor twice"
        ));
    }
    if unexpected > 0 {
        invalid.push(format!("{unexpected} unexpected monitor lines"));
    }
    if run.accepted.load(Ordering::Relaxed) == 0 {
        invalid.push("no notification was accepted".to_string());
    }
    let report = RunReport {
        scenario: which.name().to_string(),
        connections: spec.connections,
        pipeline: spec.pipeline,
        value_size: spec.value.len(),
        elapsed,
        ops: delivered,
        errors: run.shared.errors.load(Ordering::Relaxed),
        reconnects: 0,
        latency: Latency::from_histogram(&latency),
        server: Some(alice),
        client: Some(ProcUse {
            pid: None,
            start: start.client,
            end: end.client,
        }),
        error_samples: run
            .shared
            .error_samples
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default(),
        extra,
    };
    Outcome {
        report,
        invalid: (!invalid.is_empty()).then(|| invalid.join("; ")),
    }
}

// ---------------------------------------------------------------------------
// monitors-idle.

/// What one `monitors-idle` thread did.
struct Held {
    monitors: usize,
    delivered: usize,
    /// Connect, cram, `monitor`, `noop:0` answered.
    open_latency: Histogram<u64>,
    /// From the write of the notification to its line read on a monitor.
    fanout_latency: Histogram<u64>,
}

/// Opens `count` monitors, waits at `gate`, then reads the one
/// notification on each (its write time is in `fanout_at` by then).
fn hold_monitors(
    target: &Target,
    secret: &str,
    line: &str,
    count: usize,
    shared: &Shared,
    gate: &Gate,
    fanout_at: &Mutex<Option<Instant>>,
) -> Held {
    let mut held = Held {
        monitors: 0,
        delivered: 0,
        open_latency: new_histogram(),
        fanout_latency: new_histogram(),
    };
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        if shared.stopped() || procs::interrupted() {
            break;
        }
        let started = Instant::now();
        match open_monitor(target, secret, line) {
            Ok(conn) => {
                held.open_latency
                    .saturating_record(nanos(started.elapsed()));
                shared.connections.fetch_add(1, Ordering::Relaxed);
                conns.push(conn);
            }
            Err(e) => shared.error(format!("monitor connection: {e}")),
        }
    }
    held.monitors = conns.len();
    gate.arrive_and_wait(shared);
    let written = fanout_at.lock().ok().and_then(|at| *at);
    if let Some(written) = written.filter(|_| !shared.stopped()) {
        let deadline = written + FANOUT_TIMEOUT;
        for conn in &mut conns {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match conn.read_monitor_frame_within(left) {
                    Ok(MonitorFrame::Notification(line)) => match line_id(&line) {
                        LineId::Bench(FANOUT_SEQ) => {
                            held.delivered += 1;
                            held.fanout_latency
                                .saturating_record(nanos(written.elapsed()));
                            break;
                        }
                        LineId::Stats => {}
                        _ => shared.error(format!(
                            "unexpected monitor line: {}",
                            String::from_utf8_lossy(&line)
                        )),
                    },
                    Ok(MonitorFrame::Reply(reply)) => {
                        shared.error(format!(
                            "a reply nothing asked for: {}",
                            String::from_utf8_lossy(reply.payload())
                        ));
                        break;
                    }
                    Err(e) => {
                        shared.error(format!("monitor waiting for the notification: {e}"));
                        break;
                    }
                }
            }
        }
    }
    for conn in conns {
        conn.close();
    }
    held
}

/// `monitors-idle`: see the module's comment.
pub fn run_monitors_idle(spec: &NotifySpec<'_>) -> Result<Outcome, String> {
    let secret = crate::random_hex(16)?;
    let hosted = [(SENDER.to_string(), secret.clone())];
    let (mut server, addr) = procs::start_atserver(&AtServerSpec {
        bin: spec.bin,
        hosted: &hosted,
        secret_file: None,
        certs: spec.certs,
        data_dir: spec.work.join("atserver-data"),
        log: spec.work.join("atserver.log"),
        shards: spec.shards,
        extra_args: spec.extra_args,
        durability: spec.durability,
    })?;
    let pid = server.pid();
    eprintln!(
        "loadtest: started {} (pid {pid}) on {addr}",
        spec.bin.display()
    );
    let target = Target {
        addr,
        tls: Arc::clone(&spec.tls),
        server_name: spec.server_name.clone(),
        atsign: SENDER.to_string(),
    };
    // The sender's connection is open before the baseline, so the RSS
    // difference is the monitors' alone.
    let mut sender = remote::cram_owner(&target, SENDER, &secret)?;
    let sample = || procs::sample(Some(pid)).unwrap_or_default();
    let before = sample();
    let client0 = procs::sample(None).unwrap_or_default();
    let shared = Shared::new(None);
    let gate = Gate::default();
    let fanout_at = Mutex::new(None);
    let threads = spec.threads.min(spec.connections).max(1);
    let line = monitor_line(spec.monitor_regex);
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let measured = std::thread::scope(|scope| -> Result<_, String> {
        {
            let (shared, done) = (&shared, &done);
            scope.spawn(move || opening_progress(shared, started, done));
        }
        let mut workers = Vec::new();
        for t in 0..threads {
            let count = spec.connections / threads + usize::from(t < spec.connections % threads);
            let (target, secret, line, shared, gate, fanout_at) =
                (&target, &secret, &line, &shared, &gate, &fanout_at);
            workers.push(spawn(
                scope,
                format!("monitors-{t}"),
                || shared.stop.store(true, Ordering::Relaxed),
                move || hold_monitors(target, secret, line, count, shared, gate, fanout_at),
            )?);
        }
        gate.wait_arrivals(workers.len(), &shared);
        let all_open = Instant::now();
        done.store(true, Ordering::Relaxed);
        std::thread::sleep(SETTLE);
        let settled = sample();
        let hold_until = all_open + spec.duration;
        while Instant::now() < hold_until && !procs::interrupted() && !shared.stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let held = sample();
        let client1 = procs::sample(None).unwrap_or_default();
        // One notification from @alice to herself: every monitor must get it.
        let line = notify_line(FANOUT_SEQ, SENDER, 0, &spec.value);
        if let Ok(mut at) = fanout_at.lock() {
            *at = Some(Instant::now());
        }
        let answer = sender.request(&line);
        let accepted = matches!(&answer, Ok(reply) if reply.data() == Some(format!("{ID_PREFIX}{FANOUT_SEQ}").as_bytes()));
        if !accepted {
            // The monitors would wait for a notification that never comes.
            shared.stop.store(true, Ordering::Relaxed);
            shared.error(format!(
                "the notification to the monitors was not accepted: {}",
                match &answer {
                    Ok(reply) => String::from_utf8_lossy(reply.payload()).into_owned(),
                    Err(e) => e.to_string(),
                }
            ));
        }
        gate.open();
        let mut outcomes = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(h) => outcomes.push(h),
                Err(_) => shared.error("a monitor thread panicked"),
            }
        }
        let after_fanout = sample();
        Ok((all_open, settled, held, client1, after_fanout, outcomes))
    })?;
    let (all_open, settled, held, client1, after_fanout, outcomes) = measured;
    server.check_alive()?;
    sender.close();
    let monitors: usize = outcomes.iter().map(|h| h.monitors).sum();
    let delivered: usize = outcomes.iter().map(|h| h.delivered).sum();
    let mut open_latency = new_histogram();
    let mut fanout_latency = new_histogram();
    for h in &outcomes {
        let _ = open_latency.add(&h.open_latency);
        let _ = fanout_latency.add(&h.fanout_latency);
    }
    let per_monitor = |end: &ProcSample| {
        if monitors == 0 {
            0.0
        } else {
            ((end.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / monitors as f64).round()
        }
    };
    let mib = |s: &ProcSample| (s.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0;
    let fanout_cpu_ms = (after_fanout.cpu_seconds - held.cpu_seconds).max(0.0) * 1000.0;
    let extra: Vec<(String, Value)> = vec![
        ("monitors_registered".into(), json!(monitors)),
        ("monitor_command".into(), json!(line)),
        ("server_rss_kib_before_open".into(), json!(before.rss_kib)),
        ("server_rss_kib_all_open".into(), json!(settled.rss_kib)),
        ("server_rss_kib_after_hold".into(), json!(held.rss_kib)),
        (
            "server_rss_kib_after_fanout".into(),
            json!(after_fanout.rss_kib),
        ),
        ("server_rss_mib_after_hold".into(), json!(mib(&held))),
        (
            "server_rss_bytes_per_monitor".into(),
            json!(per_monitor(&held)),
        ),
        ("server_rss_hwm_kib".into(), json!(after_fanout.hwm_kib)),
        ("server_threads".into(), json!(held.threads)),
        ("fanout_delivered".into(), json!(delivered)),
        (
            "fanout_latency_us".into(),
            Latency::from_histogram(&fanout_latency).json(),
        ),
        (
            "fanout_server_cpu_ms".into(),
            json!((fanout_cpu_ms * 10.0).round() / 10.0),
        ),
        (
            "fanout_note".into(),
            json!(format!(
                "one notification from @alice to herself; each of {threads} client threads reads its monitors in turn, so a monitor's figure includes waiting for the ones read before it: an upper bound"
            )),
        ),
        (
            "open_seconds".into(),
            json!((all_open.duration_since(started).as_secs_f64() * 1000.0).round() / 1000.0),
        ),
        ("client_rss_kib_all_open".into(), json!(client1.rss_kib)),
    ];
    let mut invalid = Vec::new();
    if monitors != spec.connections {
        invalid.push(format!(
            "{monitors} of {} monitors registered",
            spec.connections
        ));
    }
    if delivered != monitors {
        invalid.push(format!(
            "the notification reached {delivered} of {monitors} monitors"
        ));
    }
    let report = RunReport {
        scenario: "monitors-idle".to_string(),
        connections: spec.connections,
        pipeline: 1,
        value_size: spec.value.len(),
        elapsed: all_open.duration_since(started),
        ops: monitors as u64,
        errors: shared.errors.load(Ordering::Relaxed),
        reconnects: 0,
        latency: Latency::from_histogram(&open_latency),
        server: Some(ProcUse {
            pid: Some(pid),
            start: before,
            end: held,
        }),
        client: Some(ProcUse {
            pid: None,
            start: client0,
            end: client1,
        }),
        error_samples: shared
            .error_samples
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default(),
        extra,
    };
    Ok(Outcome {
        report,
        invalid: (!invalid.is_empty()).then(|| invalid.join("; ")),
    })
}

/// Prints the monitors opened once a second on stderr until `done` (or
/// the run stops).
fn opening_progress(shared: &Shared, started: Instant, done: &AtomicBool) {
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) && !shared.stopped() && !procs::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        eprintln!(
            "[{:6.1}s] monitors {:>6}  errors {}",
            started.elapsed().as_secs_f64(),
            shared.connections.load(Ordering::Relaxed),
            shared.errors.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_are_told_apart_by_their_id() {
        assert_eq!(
            line_id(br#"notification: {"id":"lt42","from":"@alice","to":"@bob"}"#),
            LineId::Bench(42)
        );
        assert_eq!(
            line_id(br#"notification: {"id":"-1","from":"@bob","to":"@bob"}"#),
            LineId::Stats
        );
        assert!(matches!(
            line_id(br#"notification: {"id":"ltx","from":"@alice"}"#),
            LineId::Other(_)
        ));
        assert!(matches!(line_id(b"notification: {}"), LineId::Other(_)));
        assert!(matches!(
            line_id(br#"notification: {"id":"lt1"#),
            LineId::Other(_)
        ));
    }

    #[test]
    fn an_empty_regex_monitors_everything() {
        assert_eq!(monitor_line(""), "monitor");
        assert_eq!(
            monitor_line(BENCH_KEYS_REGEX),
            r"monitor n[0-9]+\.bench@alice"
        );
    }

    #[test]
    fn the_notify_line_names_its_id_recipient_and_bench_key() {
        assert_eq!(
            notify_line(7, "@bob", 3, "vv"),
            "notify:id:lt7:update:isEncrypted:true:@bob:n3.bench@alice:vv"
        );
    }
}
