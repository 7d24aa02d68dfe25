//! The command line. Every flag is documented here and in the README.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "atserver",
    version,
    about = "A wire-compatible atServer and atDirectory (root server) for the atProtocol"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an atServer hosting one or more atSigns.
    Serve(ServeArgs),
    /// Run an atDirectory (root server) answering `alice` with `host:port`.
    Directory(DirectoryArgs),
    /// One command for development: makes a dev CA and certificates, starts a
    /// directory and an atServer for demo atSigns on loopback, and prints how
    /// to connect.
    Dev(DevArgs),
    /// Write a development CA and a loopback server certificate into a folder.
    Certs(CertsArgs),
    /// Validate every record and commit entry of a stopped server's data
    /// folder, list each corrupt one, and exit non-zero if any is. Stop the
    /// server first: fjall locks the folder while it runs.
    CheckStore(CheckStoreArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityArg {
    /// Acknowledge writes after fsync: they survive kill -9 and power loss.
    Durable,
    /// Acknowledge after the journal write reached the OS: survives kill -9,
    /// not power loss.
    Fast,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// An atSign to host (repeatable). `-a` as in the Dart server.
    #[arg(short = 'a', long = "atsign", required = true)]
    pub atsigns: Vec<String>,
    /// The CRAM secret of each atSign, paired in order with --atsign
    /// (repeatable). Needed until the atSign is onboarded. `-s` as in Dart.
    #[arg(short = 's', long = "cram-secret")]
    pub cram_secrets: Vec<String>,
    /// A file of `@atsign secret` lines giving CRAM secrets without putting
    /// them on the command line (where `ps` shows them). Keep it mode 0600.
    #[arg(long = "cram-secret-file")]
    pub cram_secret_file: Option<PathBuf>,
    /// TLS port to listen on. `-p` as in the Dart server.
    #[arg(short = 'p', long, default_value_t = 6464)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: std::net::IpAddr,
    /// The atDirectory used to find other atSigns' servers (host:port, e.g.
    /// root.atsign.org:64). Its certificate must chain to --tls-ca.
    #[arg(long)]
    pub root: Option<String>,
    /// Let another atServer start `pol` without a TLS client certificate
    /// naming the host the directory gives for its atSign (the reference's
    /// `security.clientCertificateRequired: false`). Off by default: the
    /// check is what stops a server from claiming an atSign it does not
    /// host before any signature is asked for.
    #[arg(long)]
    pub no_peer_certificate_check: bool,
    /// Do not notify the atSign a key is shared with when the owner
    /// updates or deletes it (the reference's `notification.autoNotify:
    /// false`). On by default, as in the reference: that is how the
    /// recipient's server learns of the change and refreshes its cached copy.
    #[arg(long)]
    pub no_auto_notify: bool,
    /// Deadline of each step of a request to another atServer (connect,
    /// TLS, greeting, one request and its reply), in milliseconds.
    #[arg(long, default_value_t = crate::limits::OUTBOUND_STEP_MS)]
    pub outbound_step_ms: u64,
    /// How often cached copies of other atSigns' data are looked at for a
    /// refresh that is due, in milliseconds.
    #[arg(long, default_value_t = crate::limits::CACHE_REFRESH_INTERVAL_MS)]
    pub cache_refresh_ms: u64,
    /// Server certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// Server private key (PEM, PKCS#8 or SEC1 or PKCS#1).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// CA bundle (PEM) trusted in both directions: for the client
    /// certificates of other atServers connecting here (asked for, not
    /// required) and for the server certificates of the atDirectory and the
    /// atServers this server connects to. Without it no outbound connection
    /// is trusted.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Folder for the data (created if missing).
    #[arg(long, default_value = "atserver-data")]
    pub data_dir: PathBuf,
    /// Executor shards (one per core). Defaults to the number of online CPUs.
    #[arg(long)]
    pub shards: Option<usize>,
    /// When a write is acknowledged.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable)]
    pub durability: DurabilityArg,
    /// Inbound connections accepted at once; more get AT0012.
    #[arg(long, default_value_t = crate::limits::INBOUND_CONNECTIONS_MAX)]
    pub inbound_max: usize,
    /// Kernel scheduling policy of the shard threads (see docs/OPERATIONS.md).
    #[arg(long, value_enum, default_value_t = SchedulingArg::Batch)]
    pub shard_scheduling: SchedulingArg,
}

/// `--shard-scheduling`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingArg {
    /// SCHED_BATCH: a woken shard waits for a free core instead of preempting.
    Batch,
    /// SCHED_OTHER, the kernel default.
    Normal,
}

#[derive(Args, Debug, Clone)]
pub struct DirectoryArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:64")]
    pub listen: SocketAddr,
    /// A record `name=host:port` (repeatable; `@` optional on the name).
    #[arg(long = "record")]
    pub records: Vec<String>,
    /// A file of records, one `name=host:port` per line, `#` comments.
    #[arg(long)]
    pub records_file: Option<PathBuf>,
    /// Server certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// Server private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// Executor shards. Defaults to 1: a directory is light.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
}

#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// Folder for certificates and data.
    #[arg(long, default_value = "atserver-dev")]
    pub data_dir: PathBuf,
    /// Loopback port of the directory.
    #[arg(long, default_value_t = 6400)]
    pub directory_port: u16,
    /// Loopback port of the atServer.
    #[arg(long, default_value_t = 6464)]
    pub port: u16,
    /// Demo atSigns (repeatable). Defaults to @alice and @bob.
    #[arg(long = "atsign")]
    pub atsigns: Vec<String>,
    /// CRAM secrets paired with --atsign; random (and kept in the data
    /// folder) when not given.
    #[arg(long = "cram-secret")]
    pub cram_secrets: Vec<String>,
    /// Executor shards of the atServer.
    #[arg(long)]
    pub shards: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct CheckStoreArgs {
    /// The server's data folder (its --data-dir, holding shard-N folders).
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct CertsArgs {
    /// Folder to write ca.pem, server.pem and server.key into.
    #[arg(long, default_value = "atserver-certs")]
    pub out: PathBuf,
}
