//! The scenarios' shared pieces (context, start gate, key choice, preload)
//! and the thread-per-connection workers of `pkam-storm` and `idle`. The
//! request scenarios run on event loops (`evloop`). Each worker keeps its own
//! latency histogram, merged when it ends.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atserver::client::ClientError;
use atserver::client::auth::PkamKey;
use atserver::client::blocking::Client;

use crate::client::Target;
use crate::report::{Shared, new_histogram, record_op};

/// Pause between reconnect attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Keys written per request batch while preloading.
const PRELOAD_BATCH: usize = 64;

/// A start line: workers arrive and wait until the main thread opens it (or
/// the run stops). Unlike `std::sync::Barrier` it cannot deadlock when a
/// thread fails to start.
#[derive(Default)]
pub struct Gate {
    arrived: AtomicUsize,
    open: AtomicBool,
}

impl Gate {
    pub fn arrive_and_wait(&self, shared: &Shared) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) && !shared.stopped() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `n` workers arrived; false if the run stopped first.
    pub fn wait_arrivals(&self, n: usize, shared: &Shared) -> bool {
        while self.arrived.load(Ordering::SeqCst) < n {
            if shared.stopped() || crate::procs::interrupted() {
                shared.stop.store(true, Ordering::Relaxed);
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// What the workers of a run share (read-only besides `shared`).
pub struct Ctx {
    pub target: Target,
    pub key: PkamKey,
    pub shared: Arc<Shared>,
    pub pipeline: usize,
    pub value: String,
    pub keys: usize,
    pub update_percent: u32,
    pub lookups_per_connection: u64,
}

/// Request mix of a request/response scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mix {
    /// Authenticated `update:` and `llookup:` of self keys.
    UpdateLlookup,
    /// Unauthenticated `lookup:` of public keys.
    Lookup,
    /// @bob's owner's `lookup:` of keys @alice shared with @bob, which
    /// @bob's server fetches from @alice's.
    RemoteLookup,
}

/// A small, fast PRNG (xorshift64*) so key choice costs nothing.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The self key the update-llookup scenario writes and reads.
pub fn self_key(i: u64, atsign: &str) -> String {
    format!("lt{i}.bench{atsign}")
}

/// Opens an owner connection authenticated by pkam.
pub fn open_owner(ctx: &Ctx) -> Result<Client, ClientError> {
    open_owner_as(ctx, &ctx.target.atsign)
}

/// Opens a connection of `atsign`'s owner, authenticated by pkam with the
/// run's key (`many-atsigns` installs it for every atSign it hosts).
pub fn open_owner_as(ctx: &Ctx, atsign: &str) -> Result<Client, ClientError> {
    let mut conn = ctx.target.connect()?;
    conn.pkam(atsign, &ctx.key)?;
    Ok(conn)
}

/// Writes the keys the scenario reads, so reads never miss (pipelined).
pub fn preload(ctx: &Ctx, mix: Mix) -> Result<(), String> {
    let mut conn = open_owner(ctx).map_err(|e| format!("preload: {e}"))?;
    let atsign = &ctx.target.atsign;
    let mut written = 0;
    while written < ctx.keys {
        let batch = PRELOAD_BATCH.min(ctx.keys - written);
        let mut out = Vec::new();
        for i in written..written + batch {
            let line = match mix {
                Mix::UpdateLlookup => {
                    format!("update:{} {}\n", self_key(i as u64, atsign), ctx.value)
                }
                Mix::Lookup => format!("update:public:lk{i}.bench{atsign} {}\n", ctx.value),
                Mix::RemoteLookup => {
                    return Err("remote-lookup keys are shared by @alice (remote::share)".into());
                }
            };
            out.extend_from_slice(line.as_bytes());
        }
        conn.write_raw(&out).map_err(|e| format!("preload: {e}"))?;
        for _ in 0..batch {
            let reply = conn.read_reply().map_err(|e| format!("preload: {e}"))?;
            if reply.data().is_none() {
                return Err(format!(
                    "preload: update refused: {}",
                    String::from_utf8_lossy(reply.payload())
                ));
            }
        }
        written += batch;
    }
    Ok(())
}

/// Appends one request line of the scenario's mix to `out`; the
/// update-llookup keys are `atsign`'s (the connection's owner).
pub fn build_request(ctx: &Ctx, mix: Mix, atsign: &str, rng: &mut Rng, out: &mut Vec<u8>) {
    let i = rng.below(ctx.keys as u64);
    // Writing into a Vec<u8> cannot fail.
    let _ = match mix {
        Mix::UpdateLlookup if rng.below(100) < u64::from(ctx.update_percent) => {
            writeln!(out, "update:lt{i}.bench{atsign} {}", ctx.value)
        }
        Mix::UpdateLlookup => writeln!(out, "llookup:lt{i}.bench{atsign}"),
        Mix::Lookup => writeln!(out, "lookup:lk{i}.bench{atsign}"),
        Mix::RemoteLookup => writeln!(out, "lookup:{}", crate::remote::shared_key(i)),
    };
}

/// `pkam-storm`: each iteration is a new TCP+TLS connection, `from`,
/// `pkam`, `@exit`. Latency is the whole iteration.
pub fn pkam_storm_worker(ctx: &Ctx) {
    let shared = &ctx.shared;
    let mut hist = new_histogram();
    while shared.claim() {
        let started = Instant::now();
        match open_owner(ctx) {
            Ok(conn) => {
                conn.close();
                record_op(shared, &mut hist, started.elapsed());
                shared.connections.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                shared.error(format!("pkam login: {e}"));
                std::thread::sleep(RECONNECT_PAUSE);
            }
        }
    }
    shared.merge(&hist);
}

/// `idle`: opens `count` authenticated connections (one op each, latency
/// = connect + pkam), waits at `opened`, holds them until `probe`, then
/// sends `noop:0` on each (a dead one is an error) and closes them.
pub fn idle_worker(ctx: &Ctx, count: usize, opened: &Gate, probe: &Gate) {
    let shared = &ctx.shared;
    let mut hist = new_histogram();
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        if shared.stopped() {
            break;
        }
        let started = Instant::now();
        match open_owner(ctx) {
            Ok(conn) => {
                record_op(shared, &mut hist, started.elapsed());
                shared.connections.fetch_add(1, Ordering::Relaxed);
                conns.push(conn);
            }
            Err(e) => shared.error(format!("idle connection: {e}")),
        }
    }
    opened.arrive_and_wait(shared);
    probe.arrive_and_wait(shared);
    for mut conn in conns {
        match conn.request("noop:0") {
            Ok(reply) if reply.data().is_some() => {}
            Ok(reply) => shared.error(format!(
                "noop on an idle connection: {}",
                String::from_utf8_lossy(reply.payload())
            )),
            Err(e) => shared.error(format!("idle connection died: {e}")),
        }
        conn.close();
    }
    shared.merge(&hist);
}
