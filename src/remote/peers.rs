//! What verbs may ask of other atServers, behind one object-safe trait so
//! that verbs and sessions stay free of the outbound side's type
//! parameters. A remote call costs a network round trip, so the boxed
//! future each method returns costs nothing that shows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::outbound::{Address, RemoteError, ResolveError};
use crate::client::Reply;
use crate::context::Tenant;

/// A future that stays on its shard.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Requests to other atServers, for one shard.
pub trait PeerAccess {
    /// `line` to `remote`'s server on a connection pol-authenticated as
    /// `me`.
    fn request_as<'a>(
        &'a self,
        me: &'a Arc<Tenant>,
        remote: &'a str,
        line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>>;

    /// `lines` to `remote`'s server in one write on one connection
    /// pol-authenticated as `me`, and their replies in order; all fail
    /// together (see `Outbound::request_many_as`).
    fn request_many_as<'a>(
        &'a self,
        me: &'a Arc<Tenant>,
        remote: &'a str,
        lines: &'a [&'a str],
    ) -> LocalFuture<'a, Result<Vec<Reply>, RemoteError>>;

    /// `line` to `remote`'s server on an unauthenticated connection.
    fn request_anonymous<'a>(
        &'a self,
        remote: &'a str,
        line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>>;

    /// Where `atsign`'s server is.
    fn resolve<'a>(&'a self, atsign: &'a str) -> LocalFuture<'a, Result<Address, ResolveError>>;
}

/// No way out: transcripts, fuzzing and processes without a directory
/// (`--root`). Every other atSign is unreachable (AT0021).
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl PeerAccess for Offline {
    fn request_as<'a>(
        &'a self,
        _me: &'a Arc<Tenant>,
        remote: &'a str,
        _line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>> {
        Box::pin(std::future::ready(Err(no_directory(remote))))
    }

    fn request_many_as<'a>(
        &'a self,
        _me: &'a Arc<Tenant>,
        remote: &'a str,
        _lines: &'a [&'a str],
    ) -> LocalFuture<'a, Result<Vec<Reply>, RemoteError>> {
        Box::pin(std::future::ready(Err(no_directory(remote))))
    }

    fn request_anonymous<'a>(
        &'a self,
        remote: &'a str,
        _line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>> {
        Box::pin(std::future::ready(Err(no_directory(remote))))
    }

    fn resolve<'a>(&'a self, _atsign: &'a str) -> LocalFuture<'a, Result<Address, ResolveError>> {
        Box::pin(std::future::ready(Err(ResolveError::Unavailable(
            NO_DIRECTORY.to_string(),
        ))))
    }
}

const NO_DIRECTORY: &str = "this server has no atDirectory to find other atSigns (--root)";

fn no_directory(remote: &str) -> RemoteError {
    RemoteError::DirectoryUnavailable {
        atsign: remote.to_string(),
        why: NO_DIRECTORY.to_string(),
    }
}

thread_local! {
    /// The outbound side of the shard running on this thread.
    static SHARD_PEERS: std::cell::RefCell<Option<std::rc::Rc<dyn PeerAccess>>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes `peers` the outbound side of every connection this thread (a
/// shard's executor) serves from now on. Shards are threads that each own
/// their connections and their outbound sockets, so the shard installs its
/// own once at start.
pub fn install(peers: std::rc::Rc<dyn PeerAccess>) {
    SHARD_PEERS.with(|slot| *slot.borrow_mut() = Some(peers));
}

/// The outbound side of this thread's shard, or [`Offline`] where none is
/// installed (transcripts, fuzzing, tests without a directory).
pub fn of_this_shard() -> std::rc::Rc<dyn PeerAccess> {
    SHARD_PEERS
        .with(|slot| slot.borrow().clone())
        .unwrap_or_else(|| std::rc::Rc::new(Offline))
}

impl<D, C, R> PeerAccess for super::outbound::Outbound<D, C, R>
where
    D: super::Dial,
    C: crate::clock::Clock,
    R: super::outbound::Resolve,
{
    fn request_as<'a>(
        &'a self,
        me: &'a Arc<Tenant>,
        remote: &'a str,
        line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>> {
        Box::pin(async move {
            let prover = super::prover::TenantProver::load(me);
            super::outbound::Outbound::request_as(self, &prover, remote, line).await
        })
    }

    fn request_many_as<'a>(
        &'a self,
        me: &'a Arc<Tenant>,
        remote: &'a str,
        lines: &'a [&'a str],
    ) -> LocalFuture<'a, Result<Vec<Reply>, RemoteError>> {
        Box::pin(async move {
            let prover = super::prover::TenantProver::load(me);
            super::outbound::Outbound::request_many_as(self, &prover, remote, lines).await
        })
    }

    fn request_anonymous<'a>(
        &'a self,
        remote: &'a str,
        line: &'a str,
    ) -> LocalFuture<'a, Result<Reply, RemoteError>> {
        Box::pin(super::outbound::Outbound::request_anonymous(
            self, remote, line,
        ))
    }

    fn resolve<'a>(&'a self, atsign: &'a str) -> LocalFuture<'a, Result<Address, ResolveError>> {
        Box::pin(self.resolver().resolve(atsign))
    }
}
