//! `plookup:[bypassCache:…:][meta:|all:]<key>@<owner>`: public data of an
//! atSign. For atSigns hosted in this process the public record is read
//! directly (the reference goes over the network even to itself; the bytes
//! are the same). Inactive public records are "not found", as remotely.
//! Other atSigns' servers are asked with an unauthenticated
//! `lookup:all:<key>@<owner>`.

use super::checks::check_key_length;
use super::llookup::read_local;
use super::remote_lookup::{self, RemoteRead};
use super::{Reply, now_ms};
use crate::connection::Owner;
use crate::context::ServerContext;
use crate::error::AtError;
use crate::protocol::atkey::canonical_key;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::PLookup;
use crate::remote::peers::PeerAccess;

/// Only owners look up public data through their own server; the proof is
/// all this needs of the caller.
pub async fn apply(
    server: &ServerContext,
    peers: &dyn PeerAccess,
    me: &Owner,
    cmd: PLookup<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let owner = normalize_atsign(cmd.owner).map_err(AtError::from)?;
    let key = canonical_key(&format!("public:{}{}", cmd.name, owner));
    check_key_length(&key)?;
    let Some(tenant) = server.tenant(&owner).cloned() else {
        let read = RemoteRead {
            me: me.tenant(),
            op: cmd.op,
            remote_key: &key,
            bypass_cache: cmd.bypass_cache == Some(true),
        };
        return remote_lookup::lookup(peers, read, payload).await;
    };
    let active = tenant.store.read(&key, |r| r.is_active(now_ms()))?;
    if active != Some(true) {
        return Err(AtError::key_not_found(&key));
    }
    read_local(&tenant.store, &key, cmd.op, &key, payload)?;
    Ok(Reply::Data)
}
