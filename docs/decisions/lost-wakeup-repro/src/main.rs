//! Reproducer for a lost executor wake-up in glommio 0.9.0.
//!
//! usage: wakeup-repro [variant=sock|foreign|timer] [preempt_ms=N|default] [tick_ms=N]
//!        [secs=N] [execs=N] [conns=N] [tasks=N] [tq=none|matters:MS|not] [batch=0|1]
//!        [spin_us=N] [ring_depth=N] [io_memory=N] [stall_ms=N] [gdb=0|1] [hogs=N]
//!        [wake=waker|doorbell] [mark=1]
//!
//! Exits 0 after `secs` with no stall; exits 2 when the watchdog sees an
//! operation make no progress for `stall_ms`, after printing what was pending.
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};

/// One operation loop the watchdog watches: a progress count and what it
/// is doing now.
struct Slot {
    name: String,
    count: AtomicU64,
    state: AtomicU8,
}
const STATES: [&str; 5] = ["idle", "awaiting", "server: awaiting request", "server: writing reply", "done"];

fn slot(slots: &Mutex<Vec<Arc<Slot>>>, name: String) -> Arc<Slot> {
    let s = Arc::new(Slot { name, count: AtomicU64::new(0), state: AtomicU8::new(0) });
    slots.lock().unwrap().push(s.clone());
    s
}

#[derive(Clone)]
struct Cfg {
    variant: String,
    preempt: Option<Duration>,
    tick: Option<Duration>,
    secs: u64,
    execs: usize,
    conns: usize,
    tasks: usize,
    tq: String,
    batch: bool,
    spin: Option<Duration>,
    ring_depth: Option<usize>,
    io_memory: Option<usize>,
    stall: Duration,
    gdb: bool,
    hogs: usize,
    doorbell: bool,
}

fn parse() -> Cfg {
    let a: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let g = |k: &str, d: &str| a.get(k).cloned().unwrap_or_else(|| d.to_string());
    let ms = |v: String| match v.as_str() {
        "default" | "0" | "none" => None,
        v => Some(Duration::from_micros((v.parse::<f64>().unwrap() * 1000.0) as u64)),
    };
    Cfg {
        variant: g("variant", "sock"),
        preempt: ms(g("preempt_ms", "2")),
        tick: ms(g("tick_ms", "0")),
        secs: g("secs", "10").parse().unwrap(),
        execs: g("execs", "2").parse().unwrap(),
        conns: g("conns", "2").parse().unwrap(),
        tasks: g("tasks", "1").parse().unwrap(),
        tq: g("tq", "none"),
        batch: g("batch", "0") == "1",
        spin: g("spin_us", "0").parse::<u64>().ok().filter(|&u| u > 0).map(Duration::from_micros),
        ring_depth: g("ring_depth", "0").parse().ok().filter(|&u| u > 0),
        io_memory: g("io_memory", "0").parse().ok().filter(|&u| u > 0),
        stall: Duration::from_millis(g("stall_ms", "1000").parse().unwrap()),
        gdb: g("gdb", "0") == "1",
        hogs: g("hogs", "0").parse().unwrap(),
        doorbell: g("wake", "waker") == "doorbell",
    }
}

// ---- (b) foreign wakes: a oneshot completed from a std thread (like src/storage/completion.rs)
#[derive(Default)]
struct OneShot {
    done: bool,
    waker: Option<Waker>,
}
type Shared = Arc<Mutex<OneShot>>;
struct Wait(Shared);
impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.lock().unwrap();
        if s.done {
            return Poll::Ready(());
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Spawns `fut` on the current executor, in the configured task queue.
fn spawn<F: Future<Output = ()> + 'static>(cfg: &Cfg, fut: F) {
    thread_local!(static TQ: std::cell::Cell<Option<glommio::TaskQueueHandle>> = const { std::cell::Cell::new(None) });
    let lat = match cfg.tq.as_str() {
        "none" => {
            glommio::spawn_local(fut).detach();
            return;
        }
        "not" => Latency::NotImportant,
        m => Latency::Matters(Duration::from_millis(m.trim_start_matches("matters:").parse().unwrap())),
    };
    let tq = TQ.with(|c| {
        let h = c.get().unwrap_or_else(|| glommio::executor().create_task_queue(Shares::default(), lat, "work"));
        c.set(Some(h));
        h
    });
    glommio::spawn_local_into(fut, tq).unwrap().detach();
}

/// With `mark=1` (and a trace being recorded, see trace.sh): a line in the kernel trace.
static MARKS: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
fn mark(what: std::fmt::Arguments<'_>) {
    if let Some(Some(f)) = MARKS.get() {
        let mut f: &std::fs::File = f;
        let _ = f.write_all(format!("{what}").as_bytes());
    }
}

/// Polls `f`, marking each poll's outcome in the trace.
struct Traced<F>(&'static str, usize, F);
impl<F: Future + Unpin> Future for Traced<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (what, id) = (self.0, self.1);
        let r = Pin::new(&mut self.2).poll(cx);
        mark(format_args!("{what} {id} -> {}", if r.is_ready() { "ready" } else { "pending" }));
        r
    }
}

fn main() {
    let cfg = parse();
    let _ = MARKS.set(if std::env::args().any(|a| a == "mark=1") {
        std::fs::OpenOptions::new().write(true).open("/sys/kernel/tracing/trace_marker").ok()
    } else {
        None
    });
    let slots: Arc<Mutex<Vec<Arc<Slot>>>> = Arc::default();
    let (addr_tx, addr_rx) = mpsc::channel();
    let (job_tx, job_rx) = mpsc::channel::<(usize, Shared)>();
    // wake=doorbell: per executor, a queue of completed oneshots and a socketpair
    // whose read end a task of that executor reads (a POLL_ADD on the main ring).
    let mut bells = Vec::new();
    let mut bell_ends = Vec::new();
    for _ in 0..cfg.execs {
        let (w, r) = std::os::unix::net::UnixStream::pair().unwrap();
        let (q_tx, q_rx) = mpsc::channel::<Shared>();
        let rung = Arc::new(std::sync::atomic::AtomicBool::new(false));
        bells.push((w, q_tx, rung.clone()));
        bell_ends.push(Some((r, q_rx, rung)));
    }
    if cfg.variant == "foreign" {
        let doorbell = cfg.doorbell;
        // The "storage actor": completes each oneshot and wakes its task.
        std::thread::spawn(move || {
            while let Ok((e, s)) = job_rx.recv() {
                let w = {
                    let mut g = s.lock().unwrap();
                    g.done = true;
                    if doorbell { None } else { g.waker.take() }
                };
                if let Some(w) = w {
                    w.wake();
                }
                if doorbell {
                    let (bell, queue, rung) = &bells[e];
                    queue.send(s).unwrap();
                    if !rung.swap(true, SeqCst) {
                        (&*bell).write_all(&[1]).unwrap();
                    }
                }
            }
        });
    }
    // CPU contention, as on a box shared with other builds.
    for _ in 0..cfg.hogs {
        std::thread::spawn(|| loop {
            std::hint::black_box((0..1000u64).sum::<u64>());
        });
    }
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for e in 0..cfg.execs {
        let (cfg, slots, addr_tx, job_tx) = (cfg.clone(), slots.clone(), addr_tx.clone(), job_tx.clone());
        let bell_end = bell_ends[e].take().unwrap();
        let mut b = LocalExecutorBuilder::new(Placement::Fixed(e % ncpu)).name(&format!("exec{e}"));
        if let Some(p) = cfg.preempt {
            b = b.preempt_timer(p);
        }
        if let Some(s) = cfg.spin {
            b = b.spin_before_park(s);
        }
        if let Some(d) = cfg.ring_depth {
            b = b.ring_depth(d);
        }
        if let Some(m) = cfg.io_memory {
            b = b.io_memory(m);
        }
        b.spawn(move || async move {
            if cfg.batch {
                let p = libc::sched_param { sched_priority: 0 };
                unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &p) };
            }
            if let Some(t) = cfg.tick {
                glommio::spawn_local(async move {
                    loop {
                        glommio::timer::sleep(t).await;
                    }
                })
                .detach();
            }
            match cfg.variant.as_str() {
                "sock" => {
                    let l = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    addr_tx.send((e, l.local_addr().unwrap())).unwrap();
                    loop {
                        let mut s = l.accept().await.unwrap();
                        s.set_nodelay(true).unwrap();
                        let sl = slot(&slots, format!("exec{e} server conn"));
                        spawn(&cfg, async move {
                            let mut buf = [0u8; 64];
                            loop {
                                sl.state.store(2, SeqCst);
                                if Traced("server read", e, s.read_exact(&mut buf)).await.is_err() {
                                    break;
                                }
                                sl.state.store(3, SeqCst);
                                if Traced("server write", e, s.write_all(&buf)).await.is_err() {
                                    break;
                                }
                                sl.count.fetch_add(1, Relaxed);
                            }
                            sl.state.store(4, SeqCst);
                        });
                    }
                }
                "foreign" => {
                    if cfg.doorbell {
                        let (r, queue, rung) = bell_end;
                        let mut r = unsafe {
                            <glommio::net::UnixStream as std::os::fd::FromRawFd>::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(r))
                        };
                        glommio::spawn_local(async move {
                            let mut buf = [0u8; 64];
                            loop {
                                r.read(&mut buf).await.unwrap();
                                rung.store(false, SeqCst);
                                while let Ok(s) = queue.try_recv() {
                                    let w = s.lock().unwrap().waker.take();
                                    if let Some(w) = w {
                                        w.wake(); // on the executor's own thread: a local wake
                                    }
                                }
                            }
                        })
                        .detach();
                    }
                    for t in 0..cfg.tasks {
                        let sl = slot(&slots, format!("exec{e} foreign task{t}"));
                        let job_tx = job_tx.clone();
                        spawn(&cfg, async move {
                            loop {
                                let s: Shared = Arc::default();
                                sl.state.store(1, SeqCst);
                                job_tx.send((e, s.clone())).unwrap();
                                Wait(s).await;
                                sl.count.fetch_add(1, Relaxed);
                            }
                        });
                    }
                    futures_lite::future::pending::<()>().await
                }
                "timer" => {
                    for t in 0..cfg.tasks {
                        let sl = slot(&slots, format!("exec{e} timer task{t}"));
                        spawn(&cfg, async move {
                            let mut x = (e * 7919 + t * 104729 + 1) as u64;
                            loop {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                sl.state.store(1, SeqCst);
                                glommio::timer::sleep(Duration::from_micros(50 + x % 3000)).await;
                                sl.count.fetch_add(1, Relaxed);
                            }
                        });
                    }
                    futures_lite::future::pending::<()>().await
                }
                v => panic!("unknown variant {v}"),
            }
        })
        .unwrap();
    }
    if cfg.variant == "sock" {
        let mut addrs = vec![None; cfg.execs];
        for _ in 0..cfg.execs {
            let (e, a) = addr_rx.recv().unwrap();
            addrs[e] = Some(a);
        }
        for c in 0..cfg.conns {
            let addr = addrs[c % cfg.execs].unwrap();
            let sl = slot(&slots, format!("client conn{c} -> exec{}", c % cfg.execs));
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut buf = [c as u8; 64];
                loop {
                    sl.state.store(1, SeqCst);
                    s.write_all(&buf).unwrap();
                    if s.read_exact(&mut buf).is_err() {
                        sl.state.store(4, SeqCst);
                        return;
                    }
                    sl.count.fetch_add(1, Relaxed);
                }
            });
        }
    }
    watchdog(&cfg, &slots);
}

fn watchdog(cfg: &Cfg, slots: &Mutex<Vec<Arc<Slot>>>) {
    let start = Instant::now();
    let mut last: HashMap<usize, (u64, Instant)> = HashMap::new();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let all = slots.lock().unwrap().clone();
        for (i, s) in all.iter().enumerate() {
            let c = s.count.load(Relaxed);
            let e = last.entry(i).or_insert((c, now));
            if e.0 != c {
                *e = (c, now);
            } else if now - e.1 > cfg.stall && now - start > Duration::from_millis(500) {
                // Freeze the kernel trace (if one is being recorded) at the stall.
                let _ = std::fs::write("/sys/kernel/tracing/tracing_on", "0");
                println!("STALL after {:.1}s: {} made no progress for {:?} (count {c})", (now - start).as_secs_f64(), s.name, now - e.1);
                for s in &all {
                    println!("  {:<28} count {:>9} state {}", s.name, s.count.load(Relaxed), STATES[s.state.load(SeqCst) as usize]);
                }
                dump(cfg);
                std::process::exit(2);
            }
        }
        if now - start > Duration::from_secs(cfg.secs) {
            let total: u64 = all.iter().map(|s| s.count.load(Relaxed)).sum();
            println!("OK {}s, {} ops", cfg.secs, total);
            std::process::exit(0);
        }
    }
}

/// Evidence: io_uring fdinfo of every ring, the sockets' queues, and gdb backtraces.
fn dump(cfg: &Cfg) {
    let pid = std::process::id();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for f in dir.flatten() {
            let target = std::fs::read_link(f.path()).unwrap_or_default();
            if target.to_string_lossy().contains("io_uring") {
                let fd = f.file_name().into_string().unwrap();
                let mut info = String::new();
                let _ = std::fs::File::open(format!("/proc/self/fdinfo/{fd}")).and_then(|mut h| h.read_to_string(&mut info));
                let short: Vec<&str> = info.lines().filter(|l| !l.starts_with("pos") && !l.starts_with("flags") && !l.starts_with("mnt_id") && !l.starts_with("ino")).collect();
                println!("--- io_uring fd {fd}:\n{}", short.join("\n"));
            }
        }
    }
    let ss = std::process::Command::new("ss").args(["-tnp"]).output();
    if let Ok(o) = ss {
        let me = format!("pid={pid},");
        for l in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains(&me)) {
            println!("ss: {l}");
        }
    }
    if cfg.gdb {
        let o = std::process::Command::new("gdb")
            .args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt"])
            .output();
        if let Ok(o) = o {
            println!("--- gdb:\n{}", String::from_utf8_lossy(&o.stdout));
        }
    }
    std::io::stdout().flush().unwrap();
}
