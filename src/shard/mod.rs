//! Thread-per-core shards: the only module that names the runtime (glommio).
//!
//! Each shard is one glommio `LocalExecutor` pinned to a core, with its own
//! `SO_REUSEPORT` listener on the same address: the kernel spreads new
//! connections over the shards, and a connection lives and dies on the shard
//! that accepted it. Nothing mutable is shared between shards. Outbound
//! connections leave through [`ShardDialer`].

mod dial;
mod tick;

pub use tick::{late_ticks, stranded_ticks, woken_late_ticks};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::clock::Clock;
use crate::health::FatalSink;
use crate::limits::{
    ACCEPT_RETRY_MS, IO_MEMORY_BYTES, IO_YIELD_US, MEMLOCK_BYTES_MIN, PREEMPT_TIMER_MS,
};

/// How the kernel schedules the shard threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: a shard woken by a socket or by the storage actor does
    /// not preempt the thread that is running; it runs when a core frees up
    /// (or at the next scheduler tick). On a box with fewer cores than busy
    /// threads this keeps the actor from being cut off mid-batch and lets a
    /// shard gather more work per wake-up (decision 0003).
    Batch,
    /// `SCHED_OTHER`: the kernel default, with wake-up preemption.
    Normal,
}

/// Applies `policy` to the calling thread. Switching between the two
/// normal-priority policies needs no privilege, so failure is only logged.
fn apply_scheduling(policy: Scheduling) {
    let id = match policy {
        Scheduling::Batch => libc::SCHED_BATCH,
        Scheduling::Normal => return,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid struct we
    // own for the duration of the call.
    if unsafe { libc::sched_setscheduler(0, id, &param) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot set SCHED_BATCH on a shard thread; running with the default policy");
    }
}

/// The shards' timers: glommio's timer wheel of the calling shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardClock;

impl Clock for ShardClock {
    type Sleep = ShardSleep;

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        ShardSleep(glommio::timer::Timer::new(duration))
    }

    /// A timer not yet due parks the task until the reactor next processes
    /// its timers, which it does when it polls its rings: every connection
    /// whose input arrived meanwhile is woken first. (With the preempt timer
    /// at 10 s, decision 0010, a `yield_now` alone would let one streaming
    /// client hold its shard for that long.)
    fn yield_to_io(&self) -> impl Future<Output = ()> {
        ShardSleep(glommio::timer::Timer::new(Duration::from_micros(
            IO_YIELD_US,
        )))
    }
}

/// What a shard's notification courier needs of the runtime: detached
/// tasks on the calling shard and its timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardTasks;

impl crate::remote::courier::Tasks for ShardTasks {
    fn spawn(&self, task: crate::remote::peers::LocalFuture<'static, ()>) {
        glommio::spawn_local(task).detach();
    }

    fn sleep(&self, duration: Duration) -> crate::remote::peers::LocalFuture<'static, ()> {
        Box::pin(ShardClock.sleep(duration))
    }
}

/// A glommio timer that resolves to `()`.
pub struct ShardSleep(glommio::timer::Timer);

impl Future for ShardSleep {
    type Output = ();

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Why shards could not start or stopped.
#[derive(Debug)]
pub enum ShardError {
    /// `getrlimit(RLIMIT_MEMLOCK)` failed.
    MemlockUnreadable(std::io::Error),
    /// The locked-memory limit is below what glommio needs.
    MemlockTooLow { limit_kib: u64 },
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A shard thread panicked while the listeners were being bound.
    StartupLockPoisoned,
    /// glommio could not create the executors.
    Start { name: String, reason: String },
    /// An executor thread ended abnormally.
    Executor { reason: String },
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardError::MemlockUnreadable(error) => {
                write!(
                    f,
                    "cannot read the locked-memory limit (RLIMIT_MEMLOCK): {error}"
                )
            }
            ShardError::MemlockTooLow { limit_kib } => write!(
                f,
                "locked-memory limit is {limit_kib} KiB; glommio needs at least {} KiB: run `ulimit -l 65536` (or set LimitMEMLOCK in systemd)",
                MEMLOCK_BYTES_MIN / 1024
            ),
            ShardError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            ShardError::StartupLockPoisoned => f.write_str("start-up lock poisoned"),
            ShardError::Start { name, reason } => {
                write!(f, "cannot start {name} executors: {reason}")
            }
            ShardError::Executor { reason } => write!(f, "executor failed: {reason}"),
        }
    }
}

impl std::error::Error for ShardError {}

/// What a shard runs for each accepted connection.
pub type ConnectionFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A factory, cloned into every shard, that turns an accepted socket into the
/// connection's task. The `usize` is the shard id.
pub trait ConnectionHandler: Clone + Send + 'static {
    fn handle(&self, shard: usize, stream: TcpStream) -> ConnectionFuture;

    /// Called once on each shard, on its thread, before it accepts: sets up
    /// what the shard's connections share. A returned future runs in the
    /// background for the shard's life (periodic work).
    fn on_shard_start(&self, _shard: usize) -> Option<ConnectionFuture> {
        None
    }
}

/// Raises the soft RLIMIT_MEMLOCK to the hard limit and checks it is enough.
pub fn ensure_memlock() -> Result<u64, ShardError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; the resource id is valid.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if got != 0 {
        return Err(ShardError::MemlockUnreadable(
            std::io::Error::last_os_error(),
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising soft to hard is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < MEMLOCK_BYTES_MIN {
        return Err(ShardError::MemlockTooLow {
            limit_kib: limit.rlim_cur / 1024,
        });
    }
    Ok(limit.rlim_cur)
}

/// Runs `shards` executors, each accepting on `listen` with SO_REUSEPORT,
/// until the process ends. `on_bound` gets the bound address once (useful
/// with port 0). A shard that dies (a panic, a failed listener) reports to
/// `fatal`, so a half-alive process does not go on serving.
pub fn serve<H: ConnectionHandler>(
    name: &str,
    listen: SocketAddr,
    shards: usize,
    scheduling: Scheduling,
    handler: H,
    fatal: FatalSink,
    on_bound: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<ServeHandle, ShardError> {
    let shards = shards.max(1);
    // Shard 0 binds first (resolving port 0); the others then bind the same
    // address. This start-up rendezvous is the only lock, and it is never
    // touched again.
    let rendezvous: Arc<Rendezvous> = Arc::new((Mutex::new(BindState::Pending), Condvar::new()));
    let on_bound = Arc::new(Mutex::new(Some(on_bound)));
    let online = glommio::CpuSet::online().map(|set| set.len()).unwrap_or(1);
    let placement = if shards <= online {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let label = name.to_string();
    // A preempt timeout that expires while the shard thread is off its core
    // makes glommio 0.9 park with the woken task still queued (decision
    // 0010, reproduced with short timers): the timer is set far longer than
    // any descheduling. No task here loops on `yield_if_needed`.
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name(name)
        .io_memory(IO_MEMORY_BYTES)
        .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
        .on_all_shards(move || async move {
            apply_scheduling(scheduling);
            let shard = glommio::executor().id();
            // Reports this shard's end, however it comes: its accept loop
            // never returns while the shard is healthy.
            let _alive = ShardAlive {
                name: format!("{label} shard {shard}"),
                fatal: fatal.clone(),
            };
            let listener = match bind_in_order(listen, &rendezvous) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, shard, "{label}: cannot listen");
                    return Err(error);
                }
            };
            if let Ok(addr) = listener.local_addr()
                && let Some(callback) = on_bound.lock().ok().and_then(|mut c| c.take())
            {
                callback(addr);
            }
            if let Some(background) = handler.on_shard_start(shard) {
                glommio::spawn_local(background).detach();
            }
            tracing::debug!(shard, "{label}: accepting");
            // Safety net for a task glommio left queued while it parked: a
            // timer that fires every few milliseconds makes the reactor look
            // again (decisions 0002, 0010). It counts the times it found such
            // work (`stranded_ticks`; the goal is zero).
            glommio::spawn_local(tick::reactor_tick(shard)).detach();

            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        glommio::spawn_local(handler.handle(shard, stream)).detach();
                    }
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, shard, "{label}: accept failed");
                        ShardClock
                            .sleep(Duration::from_millis(ACCEPT_RETRY_MS))
                            .await;
                    }
                }
            }
        })
        .map_err(|e| ShardError::Start {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(ServeHandle { handles })
}

/// Lives as long as a shard's accept loop; reports the shard's end.
struct ShardAlive {
    name: String,
    fatal: FatalSink,
}

impl Drop for ShardAlive {
    fn drop(&mut self) {
        let reason = if std::thread::panicking() {
            "panicked"
        } else {
            "stopped"
        };
        self.fatal.report(self.name.clone(), reason);
    }
}

/// Start-up rendezvous: where shard 0 bound, once it has.
enum BindState {
    Pending,
    Binding,
    /// Where shard 0 bound, or why it could not (as text: the error itself
    /// went back from shard 0).
    Bound(Result<SocketAddr, String>),
}

type Rendezvous = (Mutex<BindState>, Condvar);

fn bind_in_order(listen: SocketAddr, rendezvous: &Rendezvous) -> Result<TcpListener, ShardError> {
    let (slot, ready) = rendezvous;
    let poisoned = |_| ShardError::StartupLockPoisoned;
    let mut state = slot.lock().map_err(poisoned)?;
    if matches!(*state, BindState::Pending) {
        *state = BindState::Binding;
        drop(state);
        let result = TcpListener::bind(listen).map_err(|e| bind_error(listen, e));
        let addr = match &result {
            Ok(listener) => listener.local_addr().map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        *slot.lock().map_err(poisoned)? = BindState::Bound(addr);
        ready.notify_all();
        return result;
    }
    loop {
        match &*state {
            BindState::Bound(Ok(addr)) => {
                let addr = *addr;
                drop(state);
                return TcpListener::bind(addr).map_err(|e| bind_error(addr, e));
            }
            BindState::Bound(Err(error)) => {
                return Err(ShardError::Bind {
                    addr: listen,
                    source: std::io::Error::other(error.clone()),
                });
            }
            BindState::Pending | BindState::Binding => {
                state = ready.wait(state).map_err(poisoned)?;
            }
        }
    }
}

fn bind_error(addr: SocketAddr, source: glommio::GlommioError<()>) -> ShardError {
    ShardError::Bind {
        addr,
        source: source.into(),
    }
}

/// The running executors of one `serve` call.
pub struct ServeHandle {
    handles: glommio::PoolThreadHandles<Result<(), ShardError>>,
}

impl ServeHandle {
    /// Blocks until every shard has stopped; reports the first failure.
    pub fn join(self) -> Result<(), ShardError> {
        for result in self.handles.join_all() {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(error) => {
                    return Err(ShardError::Executor {
                        reason: error.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

pub use dial::ShardDialer;
pub use glommio::net::TcpStream as Socket;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the future `make` builds on a fresh glommio executor in its own
    /// thread, and returns its output.
    pub(crate) fn on_a_shard<T, F>(make: impl FnOnce() -> F + Send + 'static) -> T
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let _ = ensure_memlock();
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(IO_MEMORY_BYTES)
            .spawn(make)
            .expect("executor");
        executor.join().expect("executor ran")
    }

    /// A task that is always runnable and yields through `yield_to_io`
    /// lets the reactor run: a timer of another task fires while it is
    /// still busy. (With `yield_now`, glommio runs such a task until the
    /// queue empties or the 10 s preempt timer expires; a streaming client
    /// would hold its shard that long.)
    #[test]
    fn yielding_to_io_lets_the_reactor_fire_timers_while_a_task_stays_busy() {
        use std::cell::Cell;
        use std::rc::Rc;
        const TURNS: u64 = 20_000;
        let _ = ensure_memlock();
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(IO_MEMORY_BYTES)
            .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
            .spawn(|| async {
                let turns = Rc::new(Cell::new(0u64));
                let busy = {
                    let turns = turns.clone();
                    glommio::spawn_local(async move {
                        for _ in 0..TURNS {
                            turns.set(turns.get() + 1);
                            ShardClock.yield_to_io().await;
                        }
                    })
                };
                ShardClock.sleep(Duration::from_millis(1)).await;
                let at_timer = turns.get();
                busy.await;
                at_timer
            })
            .expect("executor");
        let turns_when_the_timer_fired = executor.join().expect("executor ran");
        assert!(
            turns_when_the_timer_fired < TURNS,
            "the timer fired only after the busy task's {TURNS} turns"
        );
    }

    #[test]
    fn a_client_certificate_reaches_the_session_and_an_untrusted_one_is_refused() {
        use crate::session::io;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(&dir.path().join("ours")).expect("certs");
        let strangers = crate::devcerts::ensure(&dir.path().join("theirs")).expect("certs");
        let server_tls = crate::tls::server_config(&crate::tls::TlsFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: Some(certs.ca.clone()),
        })
        .expect("server config");
        let leaf = CertificateDer::pem_file_iter(&certs.cert)
            .expect("chain")
            .next()
            .expect("leaf")
            .expect("pem");
        // The server's own outbound identity, a client without one, and a
        // client whose certificate comes from a CA the server does not trust.
        let clients = [
            crate::tls::outbound_config(&crate::tls::TlsFiles {
                cert: certs.cert.clone(),
                key: certs.key.clone(),
                ca: Some(certs.ca.clone()),
            })
            .expect("outbound"),
            crate::tls::client_config(&certs.ca, None).expect("plain"),
            crate::tls::client_config(&certs.ca, Some((&strangers.cert, &strangers.key)))
                .expect("stranger"),
        ];
        let (bound, address) = std::sync::mpsc::channel();
        let connecting = std::thread::spawn(move || {
            let address: SocketAddr = address
                .recv_timeout(Duration::from_secs(10))
                .expect("bound");
            for tls in clients {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let _ = crate::client::blocking::Client::connect(
                    address,
                    tls,
                    name,
                    Duration::from_secs(10),
                );
            }
        });
        let seen = on_a_shard(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            bound
                .send(listener.local_addr().expect("address"))
                .expect("send");
            let mut seen = Vec::new();
            for _ in 0..3 {
                let stream = listener.accept().await.expect("accept");
                let limit = Duration::from_secs(10);
                match io::accept_tls(&ShardClock, server_tls.clone(), stream, limit).await {
                    Ok(mut tls) => {
                        seen.push(Some(io::peer_certificate(&tls)));
                        let _ = io::write_all(&ShardClock, &mut tls, b"@").await;
                        io::close(&ShardClock, &mut tls).await;
                    }
                    Err(_) => seen.push(None),
                }
            }
            seen
        });
        connecting.join().expect("clients");
        assert_eq!(seen, [Some(Some(leaf.clone())), Some(None), None]);
        assert!(crate::remote::certificate::certificate_names_host(
            &leaf,
            "localhost"
        ));
    }

    fn policy_after(scheduling: Scheduling) -> i32 {
        std::thread::spawn(move || {
            apply_scheduling(scheduling);
            // SAFETY: pid 0 names the calling thread; no pointers are passed.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .expect("thread")
    }

    /// A handler whose connection task panics, as a bug in a verb would.
    #[derive(Clone)]
    struct Panicking;

    impl ConnectionHandler for Panicking {
        fn handle(&self, _shard: usize, _stream: TcpStream) -> ConnectionFuture {
            Box::pin(async { panic!("a connection task panicked on purpose") })
        }
    }

    #[test]
    fn a_shard_whose_task_panics_reports_itself_dead() {
        let (reports, received) = std::sync::mpsc::channel();
        let fatal = FatalSink::new(move |fatal| {
            let _ = reports.send(fatal);
        });
        let (bound, addr) = std::sync::mpsc::channel();
        let _handle = serve(
            "panicking",
            "127.0.0.1:0".parse().expect("address"),
            1,
            Scheduling::Normal,
            Panicking,
            fatal,
            move |address| {
                let _ = bound.send(address);
            },
        )
        .expect("serve");
        let address = addr.recv_timeout(Duration::from_secs(10)).expect("bound");
        let _stream = std::net::TcpStream::connect(address).expect("connect");
        let report = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the dead shard is reported");
        assert!(report.component.starts_with("panicking shard "), "{report}");
        assert_eq!(report.reason, "panicked");
    }

    #[test]
    fn batch_scheduling_applies_to_the_calling_thread_only() {
        // SAFETY: pid 0 names the calling thread; no pointers are passed.
        let inherited = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(policy_after(Scheduling::Batch), libc::SCHED_BATCH);
        assert_eq!(policy_after(Scheduling::Normal), inherited);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, inherited);
    }
}
