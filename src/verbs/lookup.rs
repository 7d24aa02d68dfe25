//! `lookup:[bypassCache:…:][meta:|all:]<key>@<owner>`.
//!
//! Unauthenticated: the owner's `public:<key>@<owner>`. Owner of this
//! atSign: `@alice:<key>@alice`. Owner asking for another atSign hosted in
//! this process: that atSign's `@alice:<key>@<other>` (what a remote lookup
//! would return, without a network hop). Other atSigns need server-to-server
//! lookups, which a later milestone brings.

use super::checks::check_key_length;
use super::llookup::read_local;
use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::atkey::canonical_key;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::Lookup;

/// Anonymous callers (and, until server-to-server lookups land, peers)
/// see public data only.
pub fn apply(
    server: &ServerContext,
    caller: &Caller,
    cmd: Lookup<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let owner = normalize_atsign(cmd.owner).map_err(AtError::from)?;
    let Caller::Owner(me) = caller else {
        let key = canonical_key(&format!("public:{}{}", cmd.name, owner));
        check_key_length(&key)?;
        let tenant = server
            .tenant(&owner)
            .cloned()
            .ok_or_else(|| AtError::key_not_found(&key))?;
        read_local(&tenant.store, &key, cmd.op, &key, payload)?;
        return Ok(Reply::Data);
    };
    let key = canonical_key(&format!("{}:{}{}", me.atsign(), cmd.name, owner));
    check_key_length(&key)?;
    if owner == me.atsign() {
        read_local(&me.tenant().store, &key, cmd.op, &key, payload)?;
        return Ok(Reply::Data);
    }
    let Some(other) = server.tenant(&owner).cloned() else {
        return Err(remote_not_supported(&owner));
    };
    // A remote owner's inactive record is "not found" (reference §5.2).
    let active = other.store.read(&key, |r| r.is_active(now_ms()))?;
    if active != Some(true) {
        return Err(AtError::key_not_found(&key));
    }
    read_local(&other.store, &key, cmd.op, &key, payload)?;
    Ok(Reply::Data)
}

pub(super) fn remote_not_supported(owner: &str) -> AtError {
    AtError::new(
        AtCode::SecondaryConnect,
        format!("{owner} is not hosted here and lookups on other atServers are not supported yet"),
    )
}
