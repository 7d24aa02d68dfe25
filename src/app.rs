//! Turns parsed command lines into running servers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{CertsArgs, DevArgs, DirectoryArgs, DurabilityArg, SchedulingArg, ServeArgs};
use crate::context::{ServerContext, SessionLimits, Tenant};
use crate::directory::{DirectoryConnections, Records};
use crate::protocol::atsign::normalize_atsign;
use crate::session::AtServerConnections;
use crate::session::tls::{TlsFiles, server_config};
use crate::storage::{CommitOp, Durability, Mutation, Store, StoredRecord};
use crate::{devcerts, shard};

/// Name of the file that pins how many storage shards a data folder has:
/// an atSign's home keyspace must not move when the executor count changes.
const STORAGE_SHARDS_FILE: &str = "storage-shards";

/// Everything `serve` needs, independent of where it came from.
pub struct ServerPlan {
    pub atsigns: Vec<(String, Option<String>)>,
    pub listen: SocketAddr,
    pub tls: TlsFiles,
    pub data_dir: PathBuf,
    pub shards: usize,
    pub durability: Durability,
    pub limits: SessionLimits,
    pub scheduling: shard::Scheduling,
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn serve(args: ServeArgs) -> Result<(), String> {
    if args.cram_secrets.len() > args.atsigns.len() {
        return Err("more --cram-secret than --atsign values".into());
    }
    let mut atsigns = Vec::new();
    for (i, atsign) in args.atsigns.iter().enumerate() {
        atsigns.push((atsign.clone(), args.cram_secrets.get(i).cloned()));
    }
    if let Some(root) = &args.root {
        tracing::info!(%root, "atDirectory for other atSigns (used once server-to-server lands)");
    }
    let plan = ServerPlan {
        atsigns,
        listen: SocketAddr::new(args.host, args.port),
        tls: TlsFiles {
            cert: args.tls_cert,
            key: args.tls_key,
            ca: args.tls_ca,
        },
        data_dir: args.data_dir,
        shards: args.shards.unwrap_or_else(online_cpus),
        durability: match args.durability {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::Fast => Durability::Fast,
        },
        limits: SessionLimits {
            inbound_connections_max: args.inbound_max,
            ..SessionLimits::default()
        },
        scheduling: match args.shard_scheduling {
            SchedulingArg::Batch => shard::Scheduling::Batch,
            SchedulingArg::Normal => shard::Scheduling::Normal,
        },
    };
    let signals = crate::signals::block()?;
    let running = start_server(plan, |addr| {
        tracing::info!(%addr, "atServer ready");
    })?;
    run_until_stopped(running, signals)
}

/// How long a clean stop may take to flush each store.
const STOP_FLUSH_MS: u64 = 30_000;

/// The running pieces of an atServer.
pub struct Running {
    pub shards: shard::ServeHandle,
    pub stores: Vec<Store>,
}

/// Waits for SIGTERM/SIGINT (then flushes the stores and exits cleanly) or
/// for the shards to stop on their own (a start-up failure).
fn run_until_stopped(running: Running, signals: crate::signals::StopSignals) -> Result<(), String> {
    enum Stop {
        Signal(i32),
        Shards(Result<(), String>),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let on_signal = tx.clone();
    std::thread::Builder::new()
        .name("atserver-signals".into())
        .spawn(move || {
            let _ = on_signal.send(Stop::Signal(signals.wait()));
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let Running { shards, stores } = running;
    std::thread::Builder::new()
        .name("atserver-join".into())
        .spawn(move || {
            let _ = tx.send(Stop::Shards(shards.join()));
        })
        .map_err(|e| format!("cannot start the join thread: {e}"))?;
    match rx.recv() {
        Ok(Stop::Signal(signal)) => {
            tracing::info!(signal, "stopping: flushing the stores");
            for store in &stores {
                if let Err(error) =
                    store.flush_blocking(std::time::Duration::from_millis(STOP_FLUSH_MS))
                {
                    tracing::error!(%error, "flush at stop failed");
                }
            }
            tracing::info!("stopped");
            std::process::exit(0);
        }
        Ok(Stop::Shards(result)) => result,
        Err(_) => Err("the server's supervisor channel closed".into()),
    }
}

/// FNV-1a: a stable home-shard function (std's hasher is randomised).
pub fn shard_for(atsign: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in atsign.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

fn storage_shard_count(data_dir: &Path, wanted: usize) -> Result<usize, String> {
    let path = data_dir.join(STORAGE_SHARDS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{} is corrupt: expected a shard count", path.display())),
        Err(_) => {
            std::fs::write(&path, format!("{wanted}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(wanted)
        }
    }
}

/// Opens the stores, provisions the atSigns and starts the shards.
pub fn start_server(
    plan: ServerPlan,
    on_bound: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<Running, String> {
    let memlock = shard::ensure_memlock()?;
    tracing::info!(memlock_kib = memlock / 1024, "locked-memory limit");
    let tls = server_config(&plan.tls)?;
    std::fs::create_dir_all(&plan.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", plan.data_dir.display()))?;
    let storage_shards = storage_shard_count(&plan.data_dir, plan.shards.max(1))?;
    let mut stores: Vec<Option<Store>> = vec![None; storage_shards];
    let mut tenants = Vec::new();
    for (raw, secret) in &plan.atsigns {
        let atsign =
            normalize_atsign(raw).map_err(|e| format!("invalid atSign {raw:?}: {}", e.message))?;
        let home = shard_for(&atsign, storage_shards);
        let store = match stores.get_mut(home) {
            Some(Some(store)) => store.clone(),
            Some(slot) => {
                let dir = plan.data_dir.join(format!("shard-{home}"));
                let store =
                    Store::open(&dir, plan.durability, crate::health::FatalSink::log_only())
                        .map_err(|e| crate::error::AtError::from(e).message)?;
                *slot = Some(store.clone());
                store
            }
            None => return Err("storage shard out of range".into()),
        };
        let tenant = Tenant::new(atsign.clone(), store.tenant(&atsign));
        provision_secret(&tenant, secret.as_deref())?;
        tracing::info!(%atsign, storage_shard = home, "hosting");
        tenants.push(tenant);
    }
    let ctx = Arc::new(ServerContext::new(tenants, tls, plan.limits, plan.data_dir));
    let shards = shard::serve(
        "atserver",
        plan.listen,
        plan.shards,
        plan.scheduling,
        AtServerConnections { ctx },
        on_bound,
    )?;
    Ok(Running {
        shards,
        stores: stores.into_iter().flatten().collect(),
    })
}

/// Stores the CRAM secret unless the atSign was onboarded (secret deleted).
fn provision_secret(tenant: &Tenant, secret: Option<&str>) -> Result<(), String> {
    let Some(secret) = secret else { return Ok(()) };
    if secret.is_empty() {
        return Err(format!("the CRAM secret of {} is empty", tenant.atsign));
    }
    let deleted = tenant
        .store
        .get(crate::verbs::SECRET_DELETED_KEY)
        .map_err(|e| crate::error::AtError::from(e).message)?;
    if deleted.is_some() {
        tracing::info!(atsign = %tenant.atsign, "already onboarded: the CRAM secret is not restored");
        return Ok(());
    }
    let current = tenant
        .store
        .get(crate::verbs::SECRET_KEY)
        .map_err(|e| crate::error::AtError::from(e).message)?;
    if current.and_then(|r| r.value).as_deref() == Some(secret) {
        return Ok(());
    }
    let writer = tenant.atsign.clone();
    let value = secret.to_string();
    let write = tenant
        .store
        .write(crate::verbs::SECRET_KEY.to_string(), false, move |_| {
            let now = crate::storage::actor::now_ms();
            let record = StoredRecord::written_by(Some(value), &writer, now);
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        });
    futures_lite::future::block_on(write)
        .map(|_| ())
        .map_err(|e| crate::error::AtError::from(e).message)
}

pub fn directory(args: DirectoryArgs) -> Result<(), String> {
    shard::ensure_memlock()?;
    let mut records = Records::default();
    if let Some(file) = &args.records_file {
        records.load_file(file)?;
    }
    for spec in &args.records {
        records.insert_spec(spec)?;
    }
    let tls = server_config(&TlsFiles {
        cert: args.tls_cert,
        key: args.tls_key,
        ca: None,
    })?;
    let count = records.len();
    let handler = DirectoryConnections {
        records: Arc::new(records),
        tls,
    };
    let handle = shard::serve(
        "directory",
        args.listen,
        args.shards,
        shard::Scheduling::Batch,
        handler,
        move |addr| {
            tracing::info!(%addr, records = count, "atDirectory ready");
        },
    )?;
    handle.join()
}

pub fn certs(args: CertsArgs) -> Result<(), String> {
    let certs = devcerts::ensure(&args.out)?;
    println!("ca {}", certs.ca.display());
    println!("cert {}", certs.cert.display());
    println!("key {}", certs.key.display());
    Ok(())
}

/// Reads or creates the dev secrets file (`@alice <secret>` per line).
fn dev_secrets(
    data_dir: &Path,
    atsigns: &[String],
    given: &[String],
) -> Result<Vec<String>, String> {
    let path = data_dir.join("dev-secrets");
    let known: Vec<(String, String)> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, s)| (a.to_string(), s.trim().to_string()))
        })
        .collect();
    let rng = ring::rand::SystemRandom::new();
    let mut secrets = Vec::new();
    for (i, atsign) in atsigns.iter().enumerate() {
        let secret = match given.get(i) {
            Some(s) => s.clone(),
            None => match known.iter().find(|(a, _)| a == atsign) {
                Some((_, s)) => s.clone(),
                None => crate::auth::challenge::uuid_v4(&rng).replace('-', ""),
            },
        };
        secrets.push(secret);
    }
    let text: String = atsigns
        .iter()
        .zip(&secrets)
        .map(|(a, s)| format!("{a} {s}\n"))
        .collect();
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(secrets)
}

pub fn dev(args: DevArgs) -> Result<(), String> {
    let signals = crate::signals::block()?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let certs = devcerts::ensure(&args.data_dir.join("certs"))?;
    let raw = if args.atsigns.is_empty() {
        vec!["@alice".into(), "@bob".into()]
    } else {
        args.atsigns.clone()
    };
    let mut atsigns = Vec::new();
    for a in &raw {
        atsigns
            .push(normalize_atsign(a).map_err(|e| format!("invalid atSign {a:?}: {}", e.message))?);
    }
    let secrets = dev_secrets(&args.data_dir, &atsigns, &args.cram_secrets)?;
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    let server_addr = SocketAddr::from((loopback, args.port));
    let directory_addr = SocketAddr::from((loopback, args.directory_port));

    let mut records = Records::default();
    for atsign in &atsigns {
        records.insert(atsign, &server_addr.to_string())?;
    }
    let directory_tls = server_config(&TlsFiles {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        ca: None,
    })?;
    shard::ensure_memlock()?;
    let directory = shard::serve(
        "directory",
        directory_addr,
        1,
        shard::Scheduling::Batch,
        DirectoryConnections {
            records: Arc::new(records),
            tls: directory_tls,
        },
        |_| {},
    )?;
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let plan = ServerPlan {
        atsigns: atsigns
            .iter()
            .cloned()
            .zip(secrets.iter().cloned().map(Some))
            .collect(),
        listen: server_addr,
        tls: TlsFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: Some(certs.ca.clone()),
        },
        data_dir: args.data_dir.join("data"),
        shards: args.shards.unwrap_or_else(online_cpus),
        durability: Durability::Durable,
        limits: SessionLimits::default(),
        scheduling: shard::Scheduling::Batch,
    };
    let server = start_server(plan, move |addr| {
        let _ = bound_tx.send(addr);
    })?;
    let bound = bound_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .map_err(|_| "the atServer did not start listening".to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "directory {directory_addr}");
    let _ = writeln!(out, "ca {}", certs.ca.display());
    for (atsign, secret) in atsigns.iter().zip(&secrets) {
        let _ = writeln!(out, "{atsign} {bound} cram-secret {secret}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    // The directory keeps running in its own threads; a signal or a failed
    // server ends the process, which ends the directory with it.
    std::mem::forget(directory);
    run_until_stopped(server, signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_shards_are_stable_and_in_range() {
        assert_eq!(shard_for("@alice", 4), shard_for("@alice", 4));
        for shards in 1..8 {
            assert!(shard_for("@bob", shards) < shards);
        }
    }

    #[test]
    fn the_storage_shard_count_is_pinned_at_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(storage_shard_count(dir.path(), 2), Ok(2));
        assert_eq!(storage_shard_count(dir.path(), 8), Ok(2));
    }
}
