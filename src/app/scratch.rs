//! A throwaway server for in-process transcripts, fuzzing and benches: the
//! real stores and provisioning in a fresh temporary folder, no listeners.

use std::path::PathBuf;
use std::sync::Arc;

use super::{AppError, ServerPlan, open_server};
use crate::context::{ServerContext, SessionLimits};
use crate::health::FatalSink;
use crate::storage::{Durability, Store};
use crate::tls::TlsFiles;

/// A provisioned server context whose folder is removed when dropped.
/// Fields drop in order: the context (it holds store handles), then the
/// stores (each closed, its actor flushed and joined), then the folder.
pub struct ScratchServer {
    pub server: Arc<ServerContext>,
    _stores: ClosedOnDrop,
    _dir: RemovedOnDrop,
}

impl ScratchServer {
    /// Hosts `atsigns` (each with its CRAM secret) in a new folder under the
    /// system's temporary directory, with development certificates and
    /// fast durability (nothing here needs to survive a crash).
    pub fn open(atsigns: &[(&str, &str)]) -> Result<ScratchServer, AppError> {
        let dir = RemovedOnDrop(unique_dir());
        std::fs::create_dir_all(&dir.0).map_err(|source| AppError::Io {
            what: "create",
            path: dir.0.clone(),
            source,
        })?;
        let certs = crate::devcerts::ensure(&dir.0.join("certs")).map_err(AppError::Certs)?;
        let plan = ServerPlan {
            atsigns: atsigns
                .iter()
                .map(|(atsign, secret)| (atsign.to_string(), Some(secret.to_string())))
                .collect(),
            listen: std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            tls: TlsFiles {
                cert: certs.cert,
                key: certs.key,
                ca: Some(certs.ca),
            },
            data_dir: dir.0.join("data"),
            shards: 1,
            durability: Durability::Fast,
            limits: SessionLimits::default(),
            scheduling: crate::shard::Scheduling::Normal,
            root: None,
            peer_certificates_required: true,
            auto_notify: true,
            outbound_step: std::time::Duration::from_millis(10_000),
            cache_refresh: std::time::Duration::from_secs(3_600),
        };
        let (server, stores) = open_server(&plan, &FatalSink::log_only())?;
        Ok(ScratchServer {
            server,
            _stores: ClosedOnDrop(stores),
            _dir: dir,
        })
    }
}

/// Closes each store when dropped: its actor persists and is joined.
struct ClosedOnDrop(Vec<Store>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        for store in std::mem::take(&mut self.0) {
            // Another handle still alive (a transcript kept the context)
            // just means this one is not the last: nothing to do.
            let _ = store.close();
        }
    }
}

/// Removes its folder when dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A folder name no other scratch server of any process uses.
fn unique_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "atserver-scratch-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}
