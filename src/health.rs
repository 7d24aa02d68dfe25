//! Process health: where a component that cannot go on says so.
//!
//! A poisoned store, a dead write actor or a dead shard executor must not
//! leave a half-alive server that keeps accepting connections. Each such
//! component holds a [`FatalSink`] and reports once; the supervisor in
//! [`crate::app`] then stops accepting work, logs the reason, flushes what it
//! can and exits non-zero so that a process supervisor restarts the server.
//! This module knows nothing of who listens: tests and tools pass a sink that
//! only logs.

use std::fmt;
use std::sync::Arc;

/// Why the process cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// Which part failed, e.g. `store shard-0` or `shard 1`.
    pub component: String,
    /// What happened, in words for the log.
    pub reason: String,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.reason)
    }
}

/// Where fatal failures are reported; cheap to clone and `Send + Sync`.
#[derive(Clone)]
pub struct FatalSink {
    report: Arc<dyn Fn(Fatal) + Send + Sync>,
}

impl FatalSink {
    /// A sink that hands each report to `report` (the supervisor's channel).
    pub fn new(report: impl Fn(Fatal) + Send + Sync + 'static) -> FatalSink {
        FatalSink {
            report: Arc::new(report),
        }
    }

    /// A sink that only logs: for tests, benches and tools that run a store
    /// without a supervising process.
    pub fn log_only() -> FatalSink {
        FatalSink::new(|fatal| tracing::error!(%fatal, "fatal failure (no supervisor)"))
    }

    /// Reports a failure the process cannot recover from. Never blocks.
    pub fn report(&self, component: impl Into<String>, reason: impl Into<String>) {
        (self.report)(Fatal {
            component: component.into(),
            reason: reason.into(),
        });
    }
}

impl fmt::Debug for FatalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FatalSink")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_reach_the_sink_with_their_component() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = FatalSink::new(move |fatal| {
            let _ = tx.send(fatal);
        });
        sink.clone().report("store shard-0", "commit failed");
        let fatal = rx.recv().expect("reported");
        assert_eq!(fatal.to_string(), "store shard-0: commit failed");
    }
}
