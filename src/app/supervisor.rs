//! The supervisor of a running server: waits for a stop signal, for the
//! shards to end, or for a fatal failure, and ends the process accordingly.
//!
//! On SIGTERM/SIGINT it stops accepting, flushes every store and exits 0.
//! On a fatal failure (a poisoned or dead store, a dead shard, a panic on
//! any thread) it stops accepting, logs why, flushes the stores that are
//! still healthy and returns [`AppError::Fatal`], which exits with
//! [`super::error::EXIT_FATAL`] so a process supervisor restarts the server.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvError, RecvTimeoutError, Sender};
use std::time::Duration;

use super::error::AppError;
use crate::context::ServerContext;
use crate::health::{Fatal, FatalSink};
use crate::limits::{FATAL_GRACE_MS, STALL_CHECK_MS, STOP_FLUSH_MS, STORE_STALL_MS};
use crate::shard::{ServeHandle, ShardError};
use crate::storage::Store;

/// Why the supervisor woke.
enum Stop {
    Signal(i32),
    Shards(Result<(), ShardError>),
    Fatal(Fatal),
}

/// What the supervisor watches.
pub struct Supervisor {
    tx: Sender<Stop>,
    rx: Receiver<Stop>,
    /// A store step running this long is a stall ([`STORE_STALL_MS`]).
    stall_limit: Duration,
    /// How often stores are checked for a stall ([`STALL_CHECK_MS`]).
    stall_check: Duration,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        let (tx, rx) = std::sync::mpsc::channel();
        Supervisor {
            tx,
            rx,
            stall_limit: Duration::from_millis(STORE_STALL_MS),
            stall_check: Duration::from_millis(STALL_CHECK_MS),
        }
    }

    /// Where the server's components report fatal failures.
    pub fn fatal_sink(&self) -> FatalSink {
        let tx = self.tx.clone();
        FatalSink::new(move |fatal| {
            let _ = tx.send(Stop::Fatal(fatal));
        })
    }

    /// Makes a panic on any thread fatal: the default report is printed,
    /// then the supervisor stops the process (a shard or actor that
    /// panicked is gone, and a half-alive server must not go on serving).
    pub fn report_panics(&self) {
        let sink = self.fatal_sink();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed").to_string();
            sink.report(format!("thread {name}"), format!("panicked: {info}"));
        }));
    }

    /// Blocks until a signal, the shards' end or a fatal failure.
    pub fn run(
        self,
        signals: crate::signals::StopSignals,
        shards: Vec<ServeHandle>,
        server: Option<Arc<ServerContext>>,
        stores: Vec<Store>,
    ) -> Result<(), AppError> {
        let on_signal = self.tx.clone();
        std::thread::Builder::new()
            .name("atserver-signals".into())
            .spawn(move || {
                let _ = on_signal.send(Stop::Signal(signals.wait()));
            })
            .map_err(|source| AppError::Thread {
                what: "signal",
                source,
            })?;
        for handle in shards {
            let on_end = self.tx.clone();
            std::thread::Builder::new()
                .name("atserver-join".into())
                .spawn(move || {
                    let _ = on_end.send(Stop::Shards(handle.join()));
                })
                .map_err(|source| AppError::Thread {
                    what: "join",
                    source,
                })?;
        }
        let stop = self.wait_watching(&stores);
        if let Some(server) = &server {
            server.stop_accepting();
        }
        match stop {
            Ok(Stop::Signal(signal)) => {
                tracing::info!(signal, "stopping: flushing the stores");
                flush(&stores).map_err(AppError::Fatal)?;
                tracing::info!("stopped");
                Ok(())
            }
            Ok(Stop::Fatal(fatal)) => {
                tracing::error!(%fatal, "stopping after a fatal failure");
                std::thread::sleep(Duration::from_millis(FATAL_GRACE_MS));
                let _ = flush(&stores);
                Err(AppError::Fatal(fatal))
            }
            Ok(Stop::Shards(Err(error))) => Err(AppError::Shard(error)),
            Ok(Stop::Shards(Ok(()))) => Err(AppError::Fatal(Fatal {
                component: "shards".into(),
                reason: "stopped".into(),
            })),
            Err(_) => Err(AppError::Fatal(Fatal {
                component: "supervisor".into(),
                reason: "every report channel closed".into(),
            })),
        }
    }
}

impl Supervisor {
    /// Waits for the next stop, checking every [`STALL_CHECK_MS`] that no
    /// store has been stuck in one step (a batch, a sync) for
    /// [`STORE_STALL_MS`]: a hung disk is reported as fatal rather than
    /// leaving the process up with every writer timing out.
    fn wait_watching(&self, stores: &[Store]) -> Result<Stop, RecvError> {
        loop {
            match self.rx.recv_timeout(self.stall_check) {
                Ok(stop) => return Ok(stop),
                Err(RecvTimeoutError::Disconnected) => return Err(RecvError),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let limit = self.stall_limit;
            if let Some((index, busy)) = stores
                .iter()
                .enumerate()
                .find_map(|(i, store)| store.busy_for().filter(|b| *b >= limit).map(|b| (i, b)))
            {
                return Ok(Stop::Fatal(Fatal {
                    component: format!("store {index}"),
                    reason: format!(
                        "stalled: one step of its writer has run for {} s (a hung disk?)",
                        busy.as_secs()
                    ),
                }));
            }
        }
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

/// Flushes every store that can still take it (a poisoned one is skipped:
/// its writer refuses work and what it acknowledged is already durable).
/// Reports the first store that could not be flushed.
fn flush(stores: &[Store]) -> Result<(), Fatal> {
    let mut failed = None;
    for store in stores {
        if store.is_poisoned() {
            continue;
        }
        if let Err(error) = store.flush_blocking(Duration::from_millis(STOP_FLUSH_MS)) {
            tracing::error!(%error, "flush at stop failed");
            failed.get_or_insert(Fatal {
                component: "store".into(),
                reason: format!("flush at stop failed: {error}"),
            });
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, Mutation};

    #[test]
    fn a_store_stuck_in_one_step_is_reported_as_stalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let tenant = store.tenant("@stuck");
        let (release, held) = std::sync::mpsc::channel::<()>();
        // A write whose closure blocks the actor, as a hung fsync would.
        let waiter = std::thread::spawn(move || {
            let write = tenant.write("k".into(), false, move |_| {
                let _ = held.recv_timeout(Duration::from_secs(30));
                Ok(Mutation::Unchanged)
            });
            futures_lite::future::block_on(write).is_ok()
        });
        let mut supervisor = Supervisor::new();
        supervisor.stall_limit = Duration::from_millis(200);
        supervisor.stall_check = Duration::from_millis(20);
        match supervisor.wait_watching(std::slice::from_ref(&store)) {
            Ok(Stop::Fatal(fatal)) => {
                assert_eq!(fatal.component, "store 0");
                assert!(fatal.reason.starts_with("stalled"), "{fatal}");
            }
            _ => panic!("a stall is reported"),
        }
        let _ = release.send(());
        let _ = waiter.join();
    }
}
