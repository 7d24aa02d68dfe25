//! Who sent a line, as proven on its connection.
//!
//! A [`Caller`] is built only by [`super::ConnectionState::caller`] from what
//! the connection has proven, and its parts have private fields: a handler
//! that receives an [`Owner`] holds proof of owner authentication and never
//! checks it again.

use std::sync::Arc;

pub use crate::auth::enrollment::Enrolled;
use crate::context::Tenant;

/// How an owner proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `cram:` with the shared secret (onboarding).
    Cram,
    /// `pkam:` with the legacy key in `privatekey:at_pkam_publickey`.
    Pkam,
    /// `pkam:…:enrollmentId:<id>:` with an approved APKAM enrollment's key:
    /// limited to the enrollment's namespaces.
    Apkam,
}

/// The kind of a caller, for the verb table's access classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    Anonymous,
    Owner,
    Peer,
}

/// Who sent the line being run.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Nothing proven yet.
    Anonymous(Anonymous),
    /// The owner of the connection's atSign, by cram or pkam.
    Owner(Owner),
    /// Another atServer, proven by `from:@other` + `pol`, talking to one of
    /// our atSigns.
    Peer(Peer),
}

impl Caller {
    pub fn kind(&self) -> CallerKind {
        match self {
            Caller::Anonymous(_) => CallerKind::Anonymous,
            Caller::Owner(_) => CallerKind::Owner,
            Caller::Peer(_) => CallerKind::Peer,
        }
    }
}

/// An unauthenticated caller.
#[derive(Debug, Clone)]
pub struct Anonymous {
    pub(super) tenant: Option<Arc<Tenant>>,
}

impl Anonymous {
    /// The hosted atSign the connection named with `from:` (or the only one
    /// this process hosts), if any.
    pub fn tenant(&self) -> Option<&Arc<Tenant>> {
        self.tenant.as_ref()
    }
}

/// Proof that the caller owns `tenant`.
#[derive(Debug, Clone)]
pub struct Owner {
    pub(super) tenant: Arc<Tenant>,
    pub(super) method: AuthMethod,
    pub(super) enrollment: Option<Arc<Enrolled>>,
}

impl Owner {
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The owner's atSign with its `@`.
    pub fn atsign(&self) -> &str {
        &self.tenant.atsign
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The APKAM enrollment this connection logged in with: `None` for cram
    /// and legacy pkam, which are unrestricted.
    pub fn enrollment(&self) -> Option<&Arc<Enrolled>> {
        self.enrollment.as_ref()
    }

    /// The tenant, giving up the proof (for a write that carries the tenant
    /// to the store without another reference count).
    pub fn into_tenant(self) -> Arc<Tenant> {
        self.tenant
    }
}

/// Proof that the caller is the atServer of `atsign`, talking to `tenant`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub(super) tenant: Arc<Tenant>,
    pub(super) atsign: String,
}

impl Peer {
    /// Our atSign the peer talks to.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The peer's atSign with its `@`.
    pub fn atsign(&self) -> &str {
        &self.atsign
    }
}
