//! Owner writes as values: a validated write waiting to be handed to the
//! storage actor. Sessions submit them without waiting, keep several in
//! flight, and answer in request order (see `session::inflight`).

use std::sync::Arc;

use crate::context::Tenant;
use crate::storage::KeyWrite;
use crate::storage::actor::MutateFn;

/// A write that passed every check; the actor runs `mutate` on the current
/// record. `companion` is a second key's write the actor applies in the
/// same batch, atomically with this one, whose own result is not reported
/// (the CRAM-secret tombstone of `delete:privatekey:at_secret`).
pub struct PreparedWrite {
    pub tenant: Arc<Tenant>,
    pub key: String,
    pub commit: bool,
    pub mutate: MutateFn,
    pub companion: Option<KeyWrite>,
}

impl PreparedWrite {
    pub fn new(tenant: Arc<Tenant>, key: String, commit: bool, mutate: MutateFn) -> PreparedWrite {
        PreparedWrite {
            tenant,
            key,
            commit,
            mutate,
            companion: None,
        }
    }
}

/// `data:<commit id>` or `data:-1` for writes kept out of the commit log.
pub fn write_commit_id(payload: &mut String, commit_id: Option<u64>) {
    use std::fmt::Write as _;
    match commit_id {
        Some(id) => {
            let _ = write!(payload, "{id}");
        }
        None => payload.push_str("-1"),
    }
}
