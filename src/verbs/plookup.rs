//! `plookup:[bypassCache:…:][meta:|all:]<key>@<owner>`: public data of an
//! atSign. For atSigns hosted in this process the public record is read
//! directly (the reference goes over the network even to itself; the bytes
//! are the same). Inactive public records are "not found", as remotely.

use super::llookup::read_local;
use super::lookup::remote_not_supported;
use super::{Reply, now_ms};
use crate::error::AtError;
use crate::protocol::atkey::canonical_key;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::PLookup;
use crate::session::Session;

pub fn apply(
    session: &mut Session,
    cmd: PLookup<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let owner = normalize_atsign(cmd.owner).map_err(AtError::from)?;
    let key = canonical_key(&format!("public:{}{}", cmd.name, owner));
    let Some(tenant) = session.ctx.tenant(&owner).cloned() else {
        return Err(remote_not_supported(&owner));
    };
    let active = tenant.store.read(&key, |r| r.is_active(now_ms()))?;
    if active != Some(true) {
        return Err(AtError::key_not_found(&key));
    }
    read_local(&tenant.store, &key, cmd.op, &key, payload)?;
    Ok(Reply::Data)
}
