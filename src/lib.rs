//! atserver: a wire-compatible atServer and atDirectory.
//!
//! Map of the crate:
//! - [`protocol`]: the wire protocol with no I/O: line framer, command
//!   normalisation and parser for every verb, atSign and key rules, the
//!   metadata fragment, reply encoding. Builds without the `runtime` feature.
//! - [`error`] and [`limits`]: the error codes and every enforced bound.
//! - `runtime` feature: `shard` (glommio executors and listeners, the only
//!   module that names the runtime), `session` (one connection's state machine
//!   and TLS), `storage` (fjall keyspaces, rkyv records, commit log, expiry),
//!   `auth` (cram, pkam, challenges), `verbs` (one file per verb and the gate),
//!   `directory` (the root server), `cli`/`config`/`telemetry`.
//! - `client` (`runtime`): the one client for tests, tools and outbound connections.
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
