//! atserver: a wire-compatible atServer and atDirectory.
//!
//! Map of the crate, by layer from the bottom up (a module uses only the
//! layers below it; `tests/layering.rs` checks this, docs/ARCHITECTURE.md
//! walks a request through it):
//! - leaves: [`error`] (the AT00xx codes) and [`limits`] (every bound, with
//!   why); with the `runtime` feature also `clock` (timers as a trait, so
//!   nothing above `shard` names the runtime), `health` (where fatal failures
//!   are reported), `files` (secret files created 0600), `signals`,
//!   `telemetry`, and `devcerts` (development certificates).
//! - [`protocol`]: the wire protocol with no I/O — the framer, normalisation
//!   and one grammar file per verb, atSign and key rules, metadata, replies.
//!   Builds without the `runtime` feature (fuzzing, parser benches).
//! - `tls` (rustls configurations for both ends) and `admission` (who gets a
//!   connection and how long it may stay silent).
//! - `storage` (fjall keyspaces, rkyv records, commit log, expiry, the write
//!   actor, typed `StoreError`), `cli` (flags) and `monitors` (each atSign's
//!   registry of monitor connections and their bounded queues); just above them `auth`
//!   (challenges, cram, pkam, login throttling, and the server's own signing
//!   key pair, which it stores at first start).
//! - `client` (the one client: reply framing, cram/pkam lines, blocking and
//!   async) and `context` (the hosted atSigns and the shared server state).
//! - `remote`: the outbound side — the atDirectory client, the pool of
//!   authenticated connections to other atServers, `pol` in both roles.
//! - `connection`: one connection's state as a leaf type and the typed
//!   callers a verb receives as proof.
//! - `verbs`: the verb table, the gate, one file per verb handler.
//! - `session`: the request pipeline without I/O, the I/O task, the
//!   in-process transcript driver.
//! - `directory` (the root server's connection task) and `shard` (glommio
//!   executors and listeners, the only module that names the runtime).
//! - `app`: the commands (`serve`, `directory`, `dev`, `certs`), the
//!   supervisor that stops the process loudly on a fatal failure.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod limits;

#[cfg(feature = "runtime")]
pub mod admission;
pub mod protocol;

#[cfg(feature = "runtime")]
pub mod app;
#[cfg(feature = "runtime")]
pub mod auth;
#[cfg(feature = "runtime")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod clock;
#[cfg(feature = "runtime")]
pub mod connection;
#[cfg(feature = "runtime")]
pub mod context;
#[cfg(feature = "runtime")]
pub mod devcerts;
#[cfg(feature = "runtime")]
pub mod directory;
#[cfg(feature = "runtime")]
pub mod files;
#[cfg(feature = "runtime")]
pub mod health;
#[cfg(feature = "runtime")]
pub mod monitors;
#[cfg(feature = "runtime")]
pub mod remote;
#[cfg(feature = "runtime")]
pub mod session;
#[cfg(feature = "runtime")]
pub mod shard;
#[cfg(feature = "runtime")]
pub mod signals;
#[cfg(feature = "runtime")]
pub mod storage;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "runtime")]
pub mod tls;
#[cfg(feature = "runtime")]
pub mod verbs;
