//! What every connection of an atServer process shares, read-only after
//! start-up: the hosted atSigns and their stores, TLS, counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use crate::admission::Admission;
use crate::auth::throttle::{FailureCounter, SourceFailures};
use std::time::Instant;

use crate::monitors::MonitorHub;
use crate::storage::TenantStore;

/// The protocol version this server answers `info` with: the reference
/// release whose owner-side behaviour it implements.
pub const PROTOCOL_VERSION: &str = "3.16.6";

/// One hosted atSign.
pub struct Tenant {
    /// Normalised, with the `@` (`@alice`).
    pub atsign: String,
    pub store: TenantStore,
    /// Epoch ms of the last successful owner login (cram or pkam), 0 = none
    /// since start (`stats:8`).
    pub last_login_ms: AtomicI64,
    /// Epoch ms of the last successful pkam, 0 = none since start (`stats:10`).
    pub last_pkam_ms: AtomicI64,
    /// Recent failed logins of this atSign, from anywhere.
    pub login_failures: FailureCounter,
    /// Whether the owner's writes of keys shared with another atSign notify
    /// it (`--no-auto-notify` turns it off).
    pub auto_notify: bool,
    /// Its monitor connections, on whatever shard they run.
    pub monitors: Arc<MonitorHub>,
    /// The creation time (epoch ms) of its latest notification: each new
    /// one gets a later one (see [`Tenant::notification_time`]).
    last_notification_ms: AtomicI64,
    /// Its notifications waiting for delivery to other atServers, on every
    /// shard (bounded by `NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX`).
    pub queued_deliveries: AtomicUsize,
    /// Wrong passcodes presented to its `enroll:request`, which slow the
    /// next ones down.
    pub passcodes: crate::auth::otp::PasscodeThrottle,
    /// The states its enrollments' connections depend on (see
    /// [`crate::auth::enrollment::EnrollmentStates`]).
    pub enrollments: crate::auth::enrollment::EnrollmentStates,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("atsign", &self.atsign)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// The creation time of a notification made now (`now_ms`): at least
    /// one millisecond after the atSign's previous one. Clients replay
    /// "strictly after the epochMillis of the last line I read", so two
    /// notifications in one millisecond would lose the second on a
    /// reconnect; strictly increasing times also keep the outbox in the
    /// order notifications were sent.
    pub fn notification_time(&self, now_ms: i64) -> i64 {
        let mut last = self.last_notification_ms.load(Ordering::Acquire);
        loop {
            let next = now_ms.max(last.saturating_add(1));
            match self.last_notification_ms.compare_exchange_weak(
                last,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    pub fn new(atsign: String, store: TenantStore) -> Tenant {
        Tenant {
            atsign,
            store,
            last_login_ms: AtomicI64::new(0),
            last_pkam_ms: AtomicI64::new(0),
            login_failures: FailureCounter::default(),
            auto_notify: true,
            monitors: Arc::default(),
            last_notification_ms: AtomicI64::new(0),
            queued_deliveries: AtomicUsize::new(0),
            passcodes: crate::auth::otp::PasscodeThrottle::default(),
            enrollments: crate::auth::enrollment::EnrollmentStates::default(),
        }
    }
}

pub use crate::admission::SessionLimits;

/// The outbound side's configuration, fixed at start.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// TLS for connections to the atDirectory and other atServers: trusts
    /// the `--tls-ca` bundle, presents this server's certificate.
    pub tls: Arc<rustls::ClientConfig>,
    /// The atDirectory (`host`, `port`) other atSigns are resolved through
    /// (`--root`; `dev` uses its own directory); `None` when not given, and
    /// then no other atSign can be reached.
    pub root: Option<(String, u16)>,
    /// Whether another atServer's `from:` must come with a TLS client
    /// certificate naming the host the directory gives for its atSign (the
    /// reference's `security.clientCertificateRequired`, default on).
    pub peer_certificates_required: bool,
    /// Deadline of each step of a request to another atServer.
    pub step: std::time::Duration,
    /// How often cached copies are looked at for a due refresh.
    pub cache_refresh: std::time::Duration,
}

pub struct ServerContext {
    pub tenants: HashMap<String, Arc<Tenant>>,
    pub tls: Arc<rustls::ServerConfig>,
    /// TLS of outbound connections, built once at start (see [`Outbound`]).
    pub outbound_tls: Arc<rustls::ClientConfig>,
    /// The atDirectory this server was told about, as (`host`, `port`).
    pub root: Option<(String, u16)>,
    /// See [`Outbound::peer_certificates_required`].
    pub peer_certificates_required: bool,
    /// See [`Outbound::step`].
    pub outbound_step: std::time::Duration,
    /// See [`Outbound::cache_refresh`].
    pub cache_refresh: std::time::Duration,
    pub started: Instant,
    pub rng: ring::rand::SystemRandom,
    /// Who gets a connection and for how long (atomics, not locks).
    pub admission: Arc<Admission>,
    /// Recent failed logins per source address bucket.
    pub login_failures_by_source: SourceFailures,
    /// Cleared when the process is stopping (a signal or a fatal failure):
    /// new connections are then refused.
    accepting: AtomicBool,
    pub data_dir: std::path::PathBuf,
}

impl ServerContext {
    pub fn new(
        tenants: Vec<Tenant>,
        tls: Arc<rustls::ServerConfig>,
        outbound: Outbound,
        limits: SessionLimits,
        data_dir: std::path::PathBuf,
    ) -> ServerContext {
        ServerContext {
            tenants: tenants
                .into_iter()
                .map(|t| (t.atsign.clone(), Arc::new(t)))
                .collect(),
            tls,
            outbound_tls: outbound.tls,
            root: outbound.root,
            peer_certificates_required: outbound.peer_certificates_required,
            outbound_step: outbound.step,
            cache_refresh: outbound.cache_refresh,
            started: Instant::now(),
            rng: ring::rand::SystemRandom::new(),
            admission: Admission::new(limits),
            login_failures_by_source: SourceFailures::new(crate::limits::SOURCE_BUCKETS),
            accepting: AtomicBool::new(true),
            data_dir,
        }
    }

    pub fn tenant(&self, atsign: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(atsign)
    }

    /// The tenant a connection talks to before it names one, when there is
    /// no doubt: the process hosts exactly one atSign.
    pub fn sole_tenant(&self) -> Option<&Arc<Tenant>> {
        if self.tenants.len() == 1 {
            self.tenants.values().next()
        } else {
            None
        }
    }

    /// Whether new connections are still taken.
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Refuses every connection from now on (the process is stopping).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    /// Open inbound connections (`stats:1`).
    pub fn active_connections(&self) -> usize {
        self.admission.connections()
    }
}

/// Tenants for unit tests: each is a view of one shared store in a temporary
/// folder that lives as long as the test process.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, OnceLock};

    use super::Tenant;
    use crate::storage::{Durability, Store};

    fn store() -> &'static Store {
        static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
        let (_, store) = STORE.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(
                dir.path(),
                Durability::Fast,
                crate::health::FatalSink::log_only(),
            )
            .expect("store");
            (dir, store)
        });
        store
    }

    /// A tenant for `atsign` backed by the shared test store.
    pub fn tenant(atsign: &str) -> Arc<Tenant> {
        Arc::new(Tenant::new(atsign.to_string(), store().tenant(atsign)))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::tenant;

    #[test]
    fn notification_times_strictly_increase_per_atsign() {
        let alice = tenant("@notification-times");
        let first = alice.notification_time(1_000);
        let second = alice.notification_time(1_000);
        let third = alice.notification_time(900);
        assert_eq!((first, second, third), (1_000, 1_001, 1_002));
        assert_eq!(alice.notification_time(5_000), 5_000);
    }
}
