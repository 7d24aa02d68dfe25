//! Turns parsed command lines into running servers: opens the stores,
//! provisions the atSigns, starts the shards and hands the process to the
//! [`Supervisor`].

mod error;
pub mod fuzzing;
mod scratch;
mod supervisor;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admission::Admission;
use crate::auth::signing;
use crate::cli::{
    CertsArgs, CheckStoreArgs, DevArgs, DirectoryArgs, DurabilityArg, SchedulingArg, ServeArgs,
};
use crate::context::{Outbound, ServerContext, SessionLimits, Tenant};
use crate::directory::Records;
use crate::health::FatalSink;
use crate::limits::DEV_START_MS;
use crate::protocol::atsign::normalize_atsign;
use crate::remote::courier::Courier;
use crate::remote::directory::{DirectoryCache, DirectoryClient, ServerAddress, parse_address};
use crate::shard::{
    self, ConnectionFuture, ConnectionHandler, ShardClock, ShardDialer, ShardTasks, Socket,
};
use crate::storage::{CommitOp, Durability, Mutation, Store, StoredRecord};
use crate::tls::{TlsFiles, outbound_config, server_config};
use crate::{devcerts, directory, session};
pub use error::{AppError, EXIT_FATAL};
pub use scratch::ScratchServer;
pub use supervisor::Supervisor;

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
    /// The atDirectory other atSigns are resolved through (`--root`).
    pub root: Option<ServerAddress>,
    /// Whether a peer's `from:` needs a client certificate naming its host.
    pub peer_certificates_required: bool,
    /// Whether owners' writes of shared keys notify the atSign they are
    /// shared with (`--no-auto-notify` turns it off).
    pub auto_notify: bool,
    /// Deadline of each step of a request to another atServer.
    pub outbound_step: std::time::Duration,
    /// How often cached copies are looked at for a due refresh.
    pub cache_refresh: std::time::Duration,
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The accepted connections of an atServer, for every shard.
#[derive(Clone)]
struct AtServerConnections {
    server: Arc<ServerContext>,
    /// Directory answers, shared by every shard.
    directory_cache: Arc<DirectoryCache>,
    /// Set by the shard that runs the refresh of cached copies.
    refresher_started: Arc<std::sync::atomic::AtomicBool>,
}

/// Every `cache_refresh`, fetches again each atSign's cached copies whose
/// refresh is due, on the shard it runs on, for the process's life.
async fn refresh_cached_copies(server: Arc<ServerContext>) {
    let peers = crate::remote::peers::of_this_shard();
    loop {
        crate::clock::Clock::sleep(&ShardClock, server.cache_refresh).await;
        for tenant in server.tenants.values() {
            let now = crate::storage::actor::now_ms();
            match crate::verbs::refresh_due_copies(tenant, peers.as_ref(), now).await {
                Ok(0) => {}
                Ok(fetched) => {
                    tracing::debug!(atsign = %tenant.atsign, fetched, "cached copies refreshed")
                }
                Err(error) => {
                    tracing::warn!(atsign = %tenant.atsign, %error, "cached copies not refreshed")
                }
            }
        }
    }
}

/// Hands every notification still waiting for delivery (a restart, a
/// crash) to this shard's courier.
async fn resume_outboxes(server: &ServerContext) {
    let Some(courier) = crate::remote::courier::of_this_shard() else {
        return;
    };
    for tenant in server.tenants.values() {
        let resumed = crate::remote::courier::resume(&courier, tenant).await;
        if resumed > 0 {
            tracing::info!(atsign = %tenant.atsign, resumed, "notifications queued for delivery again");
        }
    }
}

impl AtServerConnections {
    /// Gives the calling shard its outbound side (directory client and
    /// connection pool), once, when the shard starts.
    fn equip_shard(&self) {
        let Some((host, port)) = &self.server.root else {
            return;
        };
        let text = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let root = match parse_address(&text) {
            Ok(root) => root,
            Err(error) => {
                tracing::error!(%error, "the directory address cannot be used; other atSigns are unreachable");
                return;
            }
        };
        let directory = match DirectoryClient::new(
            root,
            self.server.outbound_tls.clone(),
            self.directory_cache.clone(),
            ShardDialer,
            ShardClock,
        ) {
            Ok(directory) => directory,
            Err(error) => {
                tracing::error!(%error, "the directory address cannot be used; other atSigns are unreachable");
                return;
            }
        };
        let outbound = crate::remote::outbound::Outbound::new(
            ShardDialer,
            ShardClock,
            directory,
            self.server.outbound_tls.clone(),
            self.server.outbound_step,
        );
        let peers: std::rc::Rc<dyn crate::remote::peers::PeerAccess> = std::rc::Rc::new(outbound);
        crate::remote::peers::install(peers.clone());
        let courier = Courier::new(peers, std::rc::Rc::new(ShardTasks));
        crate::remote::courier::install(courier);
    }
}

impl ConnectionHandler for AtServerConnections {
    fn on_shard_start(&self, _shard: usize) -> Option<ConnectionFuture> {
        self.equip_shard();
        let first = !self
            .refresher_started
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        (first && self.server.root.is_some()).then(|| {
            let server = self.server.clone();
            let future: ConnectionFuture = Box::pin(async move {
                resume_outboxes(&server).await;
                refresh_cached_copies(server).await;
            });
            future
        })
    }

    fn handle(&self, _shard: usize, stream: Socket) -> ConnectionFuture {
        let peer = stream.peer_addr().ok();
        Box::pin(session::serve(
            self.server.clone(),
            stream,
            peer,
            ShardClock,
        ))
    }
}

/// The accepted connections of an atDirectory, for every shard.
#[derive(Clone)]
struct DirectoryConnections {
    records: Arc<Records>,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
}

impl DirectoryConnections {
    fn new(records: Records, tls: Arc<rustls::ServerConfig>) -> DirectoryConnections {
        DirectoryConnections {
            records: Arc::new(records),
            tls,
            admission: Admission::new(directory::limits()),
        }
    }
}

impl ConnectionHandler for DirectoryConnections {
    fn handle(&self, _shard: usize, stream: Socket) -> ConnectionFuture {
        let peer = stream.peer_addr().ok();
        Box::pin(directory::serve(
            self.records.clone(),
            self.tls.clone(),
            self.admission.clone(),
            stream,
            peer,
            ShardClock,
        ))
    }
}

pub fn serve(args: ServeArgs) -> Result<(), AppError> {
    if args.cram_secrets.len() > args.atsigns.len() {
        return Err(AppError::Usage(
            "more --cram-secret than --atsign values".into(),
        ));
    }
    let from_file = match &args.cram_secret_file {
        Some(path) => read_secret_file(path)?,
        None => Vec::new(),
    };
    let mut atsigns = Vec::new();
    for (i, atsign) in args.atsigns.iter().enumerate() {
        let secret = args.cram_secrets.get(i).cloned().or_else(|| {
            let wanted = normalize_atsign(atsign).ok()?;
            from_file
                .iter()
                .find(|(named, _)| *named == wanted)
                .map(|(_, secret)| secret.clone())
        });
        atsigns.push((atsign.clone(), secret));
    }
    let root = match &args.root {
        Some(text) => Some(
            parse_address(text)
                .map_err(|e| AppError::Usage(format!("--root {text:?} is not host:port: {e}")))?,
        ),
        None => None,
    };
    match &root {
        Some(root) => tracing::info!(%root, "atDirectory for other atSigns"),
        None => tracing::warn!("no --root: other atSigns cannot be resolved"),
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
        root,
        peer_certificates_required: !args.no_peer_certificate_check,
        auto_notify: !args.no_auto_notify,
        outbound_step: std::time::Duration::from_millis(args.outbound_step_ms.max(1)),
        cache_refresh: std::time::Duration::from_millis(args.cache_refresh_ms.max(1)),
    };
    let signals = crate::signals::block().map_err(AppError::Signals)?;
    let supervisor = Supervisor::new();
    supervisor.report_panics();
    let running = start_server(plan, supervisor.fatal_sink(), |addr| {
        tracing::info!(%addr, "atServer ready");
    })?;
    let Running {
        shards,
        server,
        stores,
    } = running;
    supervisor.run(signals, vec![shards], Some(server), stores)
}

/// Reads `--cram-secret-file`: `@atsign secret` per line, `#` comments and
/// blank lines ignored. A file others can read is used, with a warning.
fn read_secret_file(path: &Path) -> Result<Vec<(String, String)>, AppError> {
    let io = |source| AppError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    };
    if !crate::files::is_private(path).map_err(io)? {
        tracing::warn!(path = %path.display(), "the CRAM secret file is readable by others: chmod 600 it");
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut secrets = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((atsign, secret)) = line.split_once(char::is_whitespace) else {
            return Err(AppError::Usage(format!(
                "{}: expected `@atsign secret` lines",
                path.display()
            )));
        };
        let atsign = normalize_atsign(atsign).map_err(|e| {
            AppError::Usage(format!("{}: invalid atSign: {}", path.display(), e.message))
        })?;
        secrets.push((atsign, secret.trim().to_string()));
    }
    Ok(secrets)
}

/// The running pieces of an atServer.
pub struct Running {
    pub shards: shard::ServeHandle,
    pub server: Arc<ServerContext>,
    pub stores: Vec<Store>,
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

fn storage_shard_count(data_dir: &Path, wanted: usize) -> Result<usize, AppError> {
    let path = data_dir.join(STORAGE_SHARDS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(AppError::Corrupt {
                path,
                detail: "expected a storage shard count",
            }),
        Err(_) => {
            std::fs::write(&path, format!("{wanted}\n")).map_err(|source| AppError::Io {
                what: "write",
                path,
                source,
            })?;
            Ok(wanted)
        }
    }
}

/// Opens the stores and provisions the atSigns of `plan`: everything a
/// server needs but its listeners. Transcripts and tests use this directly.
pub fn open_server(
    plan: &ServerPlan,
    fatal: &FatalSink,
) -> Result<(Arc<ServerContext>, Vec<Store>), AppError> {
    let tls = server_config(&plan.tls)?;
    if plan.tls.ca.is_none() {
        tracing::warn!(
            "no --tls-ca: peer certificates are not asked for and no outbound TLS connection is trusted"
        );
    }
    let outbound = Outbound {
        tls: outbound_config(&plan.tls)?,
        root: plan
            .root
            .as_ref()
            .map(|root| (root.host().to_string(), root.port())),
        peer_certificates_required: plan.peer_certificates_required,
        step: plan.outbound_step,
        cache_refresh: plan.cache_refresh,
    };
    std::fs::create_dir_all(&plan.data_dir).map_err(|source| AppError::Io {
        what: "create",
        path: plan.data_dir.clone(),
        source,
    })?;
    let storage_shards = storage_shard_count(&plan.data_dir, plan.shards.max(1))?;
    let mut stores: Vec<Option<Store>> = vec![None; storage_shards];
    let mut tenants = Vec::new();
    for (raw, secret) in &plan.atsigns {
        let atsign = normalize_atsign(raw)
            .map_err(|e| AppError::Usage(format!("invalid atSign {raw:?}: {}", e.message)))?;
        let home = shard_for(&atsign, storage_shards);
        let store = match stores.get_mut(home) {
            Some(Some(store)) => store.clone(),
            Some(slot) => {
                let dir = plan.data_dir.join(format!("shard-{home}"));
                let store = Store::open(&dir, plan.durability, fatal.clone())?;
                *slot = Some(store.clone());
                store
            }
            None => {
                return Err(AppError::Usage(format!(
                    "storage shard {home} out of range"
                )));
            }
        };
        let mut tenant = Tenant::new(atsign.clone(), store.tenant(&atsign));
        tenant.auto_notify = plan.auto_notify;
        provision_secret(&tenant, secret.as_deref())?;
        tracing::info!(%atsign, storage_shard = home, "hosting");
        tenants.push(tenant);
    }
    provision_signing_keys_of_all(&tenants)?;
    let server = Arc::new(ServerContext::new(
        tenants,
        tls,
        outbound,
        plan.limits.clone(),
        plan.data_dir.clone(),
    ));
    Ok((server, stores.into_iter().flatten().collect()))
}

/// Opens the stores, provisions the atSigns and starts the shards.
pub fn start_server(
    plan: ServerPlan,
    fatal: FatalSink,
    on_bound: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<Running, AppError> {
    let memlock = shard::ensure_memlock()?;
    tracing::info!(memlock_kib = memlock / 1024, "locked-memory limit");
    let (server, stores) = open_server(&plan, &fatal)?;
    let shards = shard::serve(
        "atserver",
        plan.listen,
        plan.shards,
        plan.scheduling,
        AtServerConnections {
            server: server.clone(),
            directory_cache: Arc::new(DirectoryCache::default()),
            refresher_started: Arc::default(),
        },
        fatal,
        on_bound,
    )?;
    Ok(Running {
        shards,
        server,
        stores,
    })
}

/// Stores the CRAM secret unless the atSign was onboarded (secret deleted).
fn provision_secret(tenant: &Tenant, secret: Option<&str>) -> Result<(), AppError> {
    let Some(secret) = secret else { return Ok(()) };
    if secret.is_empty() {
        return Err(AppError::Usage(format!(
            "the CRAM secret of {} is empty",
            tenant.atsign
        )));
    }
    let deleted = tenant.store.get(crate::verbs::SECRET_DELETED_KEY)?;
    if deleted.is_some() {
        tracing::info!(atsign = %tenant.atsign, "already onboarded: the CRAM secret is not restored");
        return Ok(());
    }
    let current = tenant.store.get(crate::verbs::SECRET_KEY)?;
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
    futures_lite::future::block_on(write)?;
    Ok(())
}

/// Provisions every atSign's signing key pair, on as many threads as the
/// machine has cores: an RSA-2048 key pair takes 0.1–0.4 s to generate,
/// so 1,000 new atSigns one after the other kept the server from listening
/// for minutes (PERFORMANCE "Many atSigns"). The first error stops the start.
fn provision_signing_keys_of_all(tenants: &[Tenant]) -> Result<(), AppError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(tenants.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<Result<(), AppError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(tenant) = tenants.get(i) else {
                            return Ok(());
                        };
                        if let Err(error) = provision_signing_keys(tenant) {
                            // Let the other workers stop at their next atSign.
                            next.store(tenants.len(), std::sync::atomic::Ordering::Relaxed);
                            return Err(error);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                // A panic in key generation is the generator failing.
                handle
                    .join()
                    .unwrap_or(Err(AppError::Signing(signing::SigningError::Generation)))
            })
            .collect()
    });
    outcomes.into_iter().collect()
}

/// Generates the atSign's signing key pair at its first start (auth.md §0);
/// see [`signing::provision`] for what a crash in the middle leaves.
fn provision_signing_keys(tenant: &Tenant) -> Result<(), AppError> {
    let provisioned = futures_lite::future::block_on(signing::provision(&tenant.store))?;
    if provisioned == signing::Provisioned::Generated {
        tracing::info!(atsign = %tenant.atsign, "generated the signing key pair");
    }
    Ok(())
}

fn load_records(args: &DirectoryArgs) -> Result<Records, AppError> {
    let mut records = Records::default();
    if let Some(file) = &args.records_file {
        records.load_file(file).map_err(AppError::Records)?;
    }
    for spec in &args.records {
        records.insert_spec(spec).map_err(AppError::Records)?;
    }
    Ok(records)
}

pub fn directory(args: DirectoryArgs) -> Result<(), AppError> {
    let signals = crate::signals::block().map_err(AppError::Signals)?;
    shard::ensure_memlock()?;
    let records = load_records(&args)?;
    let tls = server_config(&TlsFiles {
        cert: args.tls_cert,
        key: args.tls_key,
        ca: None,
    })?;
    let count = records.len();
    let supervisor = Supervisor::new();
    supervisor.report_panics();
    let handle = shard::serve(
        "directory",
        args.listen,
        args.shards,
        shard::Scheduling::Batch,
        DirectoryConnections::new(records, tls),
        supervisor.fatal_sink(),
        move |addr| {
            tracing::info!(%addr, records = count, "atDirectory ready");
        },
    )?;
    supervisor.run(signals, vec![handle], None, Vec::new())
}

pub fn certs(args: CertsArgs) -> Result<(), AppError> {
    let certs = devcerts::ensure(&args.out).map_err(AppError::Certs)?;
    println!("ca {}", certs.ca.display());
    println!("cert {}", certs.cert.display());
    println!("key {}", certs.key.display());
    Ok(())
}

/// `atserver check-store`: validates every storage shard (`shard-N`) under
/// the data folder, printing one line per corrupt entry and a summary.
/// Fails (exit 1) when anything is corrupt, or when a shard cannot be
/// opened: while a server runs, fjall's lock on the folder refuses it.
pub fn check_store(args: CheckStoreArgs) -> Result<(), AppError> {
    let shards = storage_shard_dirs(&args.data_dir)?;
    if shards.is_empty() {
        return Err(AppError::Usage(format!(
            "{} holds no storage shard (shard-N folder)",
            args.data_dir.display()
        )));
    }
    let mut out = std::io::stdout().lock();
    let mut total = crate::storage::check::CheckSummary::default();
    for (name, dir) in &shards {
        let summary = crate::storage::check::check_shard(dir, |finding| {
            let _ = writeln!(out, "corrupt {name} {finding}");
        })
        .map_err(|error| {
            if error.is_folder_locked() {
                AppError::Usage(format!(
                    "{} is in use: stop the server before checking its store",
                    dir.display()
                ))
            } else {
                AppError::Store(error)
            }
        })?;
        let _ = writeln!(out, "checked {name}: {summary}");
        total.add(&summary);
    }
    let _ = writeln!(out, "checked {} storage shards: {total}", shards.len());
    let _ = out.flush();
    if total.corrupt > 0 {
        return Err(AppError::Corrupt {
            path: args.data_dir,
            detail: "stored entries failed validation (listed above)",
        });
    }
    Ok(())
}

/// The `shard-N` folders under `data_dir`, by N.
fn storage_shard_dirs(data_dir: &Path) -> Result<Vec<(String, PathBuf)>, AppError> {
    let entries = std::fs::read_dir(data_dir).map_err(|source| AppError::Io {
        what: "read",
        path: data_dir.to_path_buf(),
        source,
    })?;
    let mut shards: Vec<(u64, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let number = name.strip_prefix("shard-")?.parse::<u64>().ok()?;
            Some((number, name, entry.path()))
        })
        .collect();
    shards.sort();
    Ok(shards
        .into_iter()
        .map(|(_, name, path)| (name, path))
        .collect())
}

/// Reads or creates the dev secrets file (`@alice <secret>` per line).
fn dev_secrets(
    data_dir: &Path,
    atsigns: &[String],
    given: &[String],
) -> Result<Vec<String>, AppError> {
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
                None => crate::auth::challenge::uuid_v4(&rng)
                    .map_err(|_| AppError::Usage("the system random-number source failed".into()))?
                    .replace('-', ""),
            },
        };
        secrets.push(secret);
    }
    let text: String = atsigns
        .iter()
        .zip(&secrets)
        .map(|(a, s)| format!("{a} {s}\n"))
        .collect();
    crate::files::write_private(&path, text.as_bytes()).map_err(|source| AppError::Io {
        what: "write",
        path,
        source,
    })?;
    Ok(secrets)
}

pub fn dev(args: DevArgs) -> Result<(), AppError> {
    let signals = crate::signals::block().map_err(AppError::Signals)?;
    std::fs::create_dir_all(&args.data_dir).map_err(|source| AppError::Io {
        what: "create",
        path: args.data_dir.clone(),
        source,
    })?;
    let certs = devcerts::ensure(&args.data_dir.join("certs")).map_err(AppError::Certs)?;
    let raw = if args.atsigns.is_empty() {
        vec!["@alice".into(), "@bob".into()]
    } else {
        args.atsigns.clone()
    };
    let mut atsigns = Vec::new();
    for a in &raw {
        atsigns.push(
            normalize_atsign(a)
                .map_err(|e| AppError::Usage(format!("invalid atSign {a:?}: {}", e.message)))?,
        );
    }
    let secrets = dev_secrets(&args.data_dir, &atsigns, &args.cram_secrets)?;
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    let server_addr = SocketAddr::from((loopback, args.port));
    let directory_addr = SocketAddr::from((loopback, args.directory_port));

    let mut records = Records::default();
    for atsign in &atsigns {
        records
            .insert(atsign, &server_addr.to_string())
            .map_err(AppError::Records)?;
    }
    let directory_tls = server_config(&TlsFiles {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        ca: None,
    })?;
    shard::ensure_memlock()?;
    let supervisor = Supervisor::new();
    supervisor.report_panics();
    let directory = shard::serve(
        "directory",
        directory_addr,
        1,
        shard::Scheduling::Batch,
        DirectoryConnections::new(records, directory_tls),
        supervisor.fatal_sink(),
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
        root: Some(
            parse_address(&directory_addr.to_string())
                .map_err(|e| AppError::Usage(format!("directory address: {e}")))?,
        ),
        peer_certificates_required: true,
        auto_notify: true,
        outbound_step: std::time::Duration::from_millis(crate::limits::OUTBOUND_STEP_MS),
        cache_refresh: std::time::Duration::from_millis(crate::limits::CACHE_REFRESH_INTERVAL_MS),
    };
    let server = start_server(plan, supervisor.fatal_sink(), move |addr| {
        let _ = bound_tx.send(addr);
    })?;
    let bound = bound_rx
        .recv_timeout(std::time::Duration::from_millis(DEV_START_MS))
        .map_err(|_| {
            AppError::Usage(format!(
                "the atServer did not start listening within {DEV_START_MS} ms"
            ))
        })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "directory {directory_addr}");
    let _ = writeln!(out, "ca {}", certs.ca.display());
    for (atsign, secret) in atsigns.iter().zip(&secrets) {
        let _ = writeln!(out, "{atsign} {bound} cram-secret {secret}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    let Running {
        shards,
        server,
        stores,
    } = server;
    supervisor.run(signals, vec![shards, directory], Some(server), stores)
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
    fn secret_files_pair_secrets_with_atsigns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets");
        crate::files::write_private(&path, b"# comment\n\n@Alice  s3cret\nbob other\n")
            .expect("write");
        let secrets = read_secret_file(&path).expect("read");
        assert_eq!(
            secrets,
            [
                ("@alice".to_string(), "s3cret".to_string()),
                ("@bob".to_string(), "other".to_string())
            ]
        );
        crate::files::write_private(&path, b"just-a-secret\n").expect("write");
        assert!(matches!(read_secret_file(&path), Err(AppError::Usage(_))));
    }

    #[test]
    fn a_tombstone_keeps_provisioning_from_restoring_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let tenant = Tenant::new("@alice".into(), store.tenant("@alice"));
        let secret_of = |tenant: &Tenant| {
            tenant
                .store
                .get(crate::verbs::SECRET_KEY)
                .expect("get")
                .and_then(|r| r.value)
        };
        provision_secret(&tenant, Some("first")).expect("provisioned");
        assert_eq!(secret_of(&tenant).as_deref(), Some("first"));
        let retire =
            tenant
                .store
                .write(crate::verbs::SECRET_DELETED_KEY.to_string(), false, |_| {
                    let record = StoredRecord::written_by(Some("true".into()), "@alice", 1);
                    Ok(Mutation::Put(Box::new(record), CommitOp::Update))
                });
        futures_lite::future::block_on(retire).expect("tombstone");
        let delete = tenant
            .store
            .write(crate::verbs::SECRET_KEY.to_string(), false, |_| {
                Ok(Mutation::Delete)
            });
        futures_lite::future::block_on(delete).expect("deleted");
        provision_secret(&tenant, Some("first")).expect("a restart with -s");
        assert_eq!(secret_of(&tenant), None, "not restored");
    }

    #[test]
    fn the_storage_shard_count_is_pinned_at_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(storage_shard_count(dir.path(), 2).ok(), Some(2));
        assert_eq!(storage_shard_count(dir.path(), 8).ok(), Some(2));
    }
}
