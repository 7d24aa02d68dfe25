//! The per-shard reactor tick: a counted safety net for work glommio left
//! queued while it parked (decisions 0002 and 0010).
//!
//! glommio 0.9 can park an executor with a woken task still in its run
//! queue (when a latency-ring completion that wakes nothing is pending as
//! the run loop starts a pass). A timer that fires every
//! [`REACTOR_TICK_MS`] makes the reactor look again, bounding such a stall to
//! one period. Each tick also says what it found, so an operator (and the
//! loadtest) can see whether the net is ever needed:
//!
//! * **stranded**: the thread slept through the whole period, no connection
//!   made progress, and progress came only once the tick fired. The thread
//!   was not waiting for a core before the deadline (its run-queue wait,
//!   from `/proc/thread-self/schedstat`, all falls after it), so nothing but
//!   the tick woke it: work sat queued while the shard was parked.
//! * **woken late**: the same quiet period, but the thread had been woken
//!   before the deadline and was waiting for a core (SCHED_BATCH shards wait
//!   for a free one): a wake-up that worked, delayed by the kernel.
//! * **late**: the tick itself fired more than [`TICK_LATE_AFTER`] past its
//!   deadline: the thread was kept off its core that long.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::limits::REACTOR_TICK_MS;

use super::ShardClock;

/// Ticks, over every shard of the process, that found stranded work (see
/// the module comment). The goal is zero.
static STRANDED_TICKS: AtomicU64 = AtomicU64::new(0);

/// Ticks that found work whose wake-up came before the deadline but whose
/// thread waited for a core until after it.
static WOKEN_LATE_TICKS: AtomicU64 = AtomicU64::new(0);

/// Ticks that fired more than [`TICK_LATE_AFTER`] past their deadline.
static LATE_TICKS: AtomicU64 = AtomicU64::new(0);

/// How far past its deadline a tick may fire and still count as on time.
const TICK_LATE_AFTER: Duration = Duration::from_millis(REACTOR_TICK_MS / 2);

/// Run-queue wait before the deadline below which a quiet period still
/// counts as slept through (the kernel's accounting granularity and the
/// timer's own wake-up).
const RUNQUEUE_WAIT_SLACK: Duration = Duration::from_micros(200);

/// How many reactor ticks found stranded work since the process started.
pub fn stranded_ticks() -> u64 {
    STRANDED_TICKS.load(Ordering::Relaxed)
}

/// How many reactor ticks found work woken in time but kept off its core
/// past the deadline.
pub fn woken_late_ticks() -> u64 {
    WOKEN_LATE_TICKS.load(Ordering::Relaxed)
}

/// How many reactor ticks fired late since the process started.
pub fn late_ticks() -> u64 {
    LATE_TICKS.load(Ordering::Relaxed)
}

/// What one tick saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickFinding {
    /// Progress happened during the period, or none after it.
    Nothing,
    /// The tick fired late: the thread could not run.
    Late,
    /// Quiet, and progress only after the tick, but the thread had been
    /// woken before the deadline and was waiting for a core.
    WokenLate,
    /// Quiet, the thread slept through, progress only once the tick fired.
    Stranded,
}

/// The instants and waits one tick measured.
#[derive(Debug, Clone, Copy)]
struct TickSample {
    slept_from: Instant,
    period: Duration,
    woke: Instant,
    /// The thread's run-queue wait during the sleep; `None` when the kernel
    /// does not report it.
    runqueue_wait: Option<Duration>,
    /// The thread's last progress before the sleep, right after it, and
    /// once the tasks woken with the tick had run.
    before: Option<Instant>,
    at_wake: Option<Instant>,
    after: Option<Instant>,
}

fn classify_tick(tick: &TickSample) -> TickFinding {
    let deadline = tick.slept_from + tick.period;
    if tick.woke > deadline + TICK_LATE_AFTER {
        return TickFinding::Late;
    }
    let quiet = tick.at_wake == tick.before;
    let moved_after_tick = tick.after != tick.before && tick.after.is_some_and(|at| at >= deadline);
    if !(quiet && moved_after_tick) {
        return TickFinding::Nothing;
    }
    // Waiting that all falls after the deadline is the tick's own wake-up;
    // more than that began before it: something else had woken the thread.
    let late_by = tick.woke.saturating_duration_since(deadline);
    match tick.runqueue_wait {
        Some(wait) if wait > late_by + RUNQUEUE_WAIT_SLACK => TickFinding::WokenLate,
        _ => TickFinding::Stranded,
    }
}

/// The calling thread's run-queue wait so far, from
/// `/proc/thread-self/schedstat` (on-CPU ns, run-queue wait ns, slices).
struct RunqueueWait {
    file: Option<File>,
}

impl RunqueueWait {
    fn of_this_thread() -> RunqueueWait {
        RunqueueWait {
            file: File::open("/proc/thread-self/schedstat").ok(),
        }
    }

    fn total(&self) -> Option<Duration> {
        let file = self.file.as_ref()?;
        let mut buf = [0u8; 96];
        let read = file.read_at(&mut buf, 0).ok()?;
        parse_runqueue_wait(buf.get(..read)?)
    }
}

/// The second field of a schedstat line, in nanoseconds.
fn parse_runqueue_wait(line: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(line).ok()?;
    let nanos = text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The tick of one shard, counting what it finds; one shard (the first to
/// start its tick) logs the process's totals once a second when they moved,
/// at `info`, so a run's log (the loadtest reads it) holds the latest ones.
pub(super) async fn reactor_tick(shard: usize) {
    let period = Duration::from_millis(REACTOR_TICK_MS);
    static REPORTER_CLAIMED: AtomicBool = AtomicBool::new(false);
    let reports = !REPORTER_CLAIMED.swap(true, Ordering::AcqRel);
    let report_every = (1_000 / REACTOR_TICK_MS).max(1);
    let runqueue = RunqueueWait::of_this_thread();
    let mut ticks: u64 = 0;
    let mut reported = (0, 0, 0);
    loop {
        ticks = ticks.wrapping_add(1);
        if reports && ticks % report_every == 0 {
            let totals = (stranded_ticks(), woken_late_ticks(), late_ticks());
            if totals != reported {
                tracing::info!(
                    stranded_ticks = totals.0,
                    woken_late_ticks = totals.1,
                    late_ticks = totals.2,
                    "reactor ticks that found work no wake-up had started, found work woken but kept off its core, fired late"
                );
                reported = totals;
            }
        }
        let before = crate::clock::last_progress();
        let waited_before = runqueue.total();
        let slept_from = Instant::now();
        ShardClock.sleep(period).await;
        let woke = Instant::now();
        let at_wake = crate::clock::last_progress();
        // Only a quiet period needs the wait (the classification looks at
        // it for nothing else): a busy shard skips the second read.
        let runqueue_wait = match waited_before {
            Some(earlier) if at_wake == before => {
                runqueue.total().map(|now| now.saturating_sub(earlier))
            }
            _ => None,
        };
        if at_wake == before {
            // Let whatever this wake made runnable run first, then look.
            futures_lite::future::yield_now().await;
        }
        let sample = TickSample {
            slept_from,
            period,
            woke,
            runqueue_wait,
            before,
            at_wake,
            after: crate::clock::last_progress(),
        };
        match classify_tick(&sample) {
            TickFinding::Nothing => {}
            TickFinding::Late => {
                LATE_TICKS.fetch_add(1, Ordering::Relaxed);
            }
            TickFinding::WokenLate => {
                WOKEN_LATE_TICKS.fetch_add(1, Ordering::Relaxed);
            }
            TickFinding::Stranded => {
                let total = STRANDED_TICKS.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    shard,
                    total,
                    ?runqueue_wait,
                    "the reactor tick found work no wake-up had started"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        woke_after_ms: u64,
        runqueue_wait_us: Option<u64>,
        progress: [Option<u64>; 3],
    ) -> TickSample {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        TickSample {
            slept_from: t0,
            period: Duration::from_millis(REACTOR_TICK_MS),
            woke: at(woke_after_ms),
            runqueue_wait: runqueue_wait_us.map(Duration::from_micros),
            before: progress[0].map(at),
            at_wake: progress[1].map(at),
            after: progress[2].map(at),
        }
    }

    const P: u64 = REACTOR_TICK_MS;

    #[test]
    fn quiet_then_progress_only_after_an_on_time_tick_is_stranded() {
        let tick = sample(P, Some(0), [Some(0), Some(0), Some(P)]);
        assert_eq!(classify_tick(&tick), TickFinding::Stranded);
        // The first progress ever, only after the tick: stranded too.
        let first = sample(P, Some(50), [None, None, Some(P)]);
        assert_eq!(classify_tick(&first), TickFinding::Stranded);
        // No run-queue figure from the kernel: the upper bound stands.
        let unknown = sample(P, None, [Some(0), Some(0), Some(P)]);
        assert_eq!(classify_tick(&unknown), TickFinding::Stranded);
    }

    #[test]
    fn a_thread_woken_before_the_deadline_and_kept_waiting_is_woken_late() {
        // 3 ms of run-queue wait on a tick 1 ms late: woken 2 ms before it.
        let tick = sample(P + 1, Some(3_000), [Some(0), Some(0), Some(P + 1)]);
        assert_eq!(classify_tick(&tick), TickFinding::WokenLate);
        // The same wait on a tick 3 ms late is its own wake-up waiting.
        let own = sample(P + 3, Some(3_000), [Some(0), Some(0), Some(P + 3)]);
        assert_eq!(classify_tick(&own), TickFinding::Stranded);
    }

    #[test]
    fn ordinary_traffic_and_idleness_find_nothing() {
        let busy = sample(P, Some(0), [Some(0), Some(3), Some(3)]);
        assert_eq!(classify_tick(&busy), TickFinding::Nothing);
        let idle = sample(P, Some(0), [Some(0), Some(0), Some(0)]);
        assert_eq!(classify_tick(&idle), TickFinding::Nothing);
    }

    #[test]
    fn a_tick_past_its_allowance_is_late_whatever_else_it_saw() {
        let edge_ms = P + TICK_LATE_AFTER.as_millis() as u64;
        let on_edge = sample(edge_ms, Some(0), [Some(0), Some(0), Some(edge_ms)]);
        assert_eq!(classify_tick(&on_edge), TickFinding::Stranded);
        let past = sample(edge_ms + 1, Some(0), [Some(0), Some(0), Some(edge_ms + 1)]);
        assert_eq!(classify_tick(&past), TickFinding::Late);
        let busy_and_late = sample(edge_ms + 1, Some(0), [Some(0), Some(2), Some(2)]);
        assert_eq!(classify_tick(&busy_and_late), TickFinding::Late);
    }

    #[test]
    fn schedstat_gives_its_second_field_and_refuses_garbage() {
        assert_eq!(
            parse_runqueue_wait(b"1185284 1189269 3\n"),
            Some(Duration::from_nanos(1_189_269))
        );
        assert_eq!(parse_runqueue_wait(b"1185284\n"), None);
        assert_eq!(parse_runqueue_wait(b"a b c"), None);
        assert_eq!(parse_runqueue_wait(&[0xff, 0x20, 0x31]), None);
        // This thread's own figure is readable on Linux.
        assert!(RunqueueWait::of_this_thread().total().is_some());
    }
}
