//! `lookup:[bypassCache:…:][meta:|all:]<key>@<owner>`, by who asks
//! (verbs.md §8):
//! - unauthenticated: the owner's `public:<key>@<owner>`;
//! - another atServer, pol-authenticated as @bob: `@bob:<key>@<owner>`,
//!   what the owner shared with @bob (inactive ⇒ `data:null`);
//! - the owner of this atSign: `@alice:<key>@alice`;
//! - the owner asking about another atSign: that atSign's server is asked
//!   for `@alice:<key>@<other>` (server-to-server.md §5). When the other
//!   atSign is hosted in this process, its store is read directly: the
//!   bytes are those a remote lookup would return, without a network hop.

use super::checks::check_key_length;
use super::llookup::read_local;
use super::remote_lookup::{self, RemoteRead};
use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::atkey::canonical_key;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::Lookup;
use crate::remote::peers::PeerAccess;

pub async fn apply(
    server: &ServerContext,
    peers: &dyn PeerAccess,
    caller: &Caller,
    cmd: Lookup<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let owner = normalize_atsign(cmd.owner).map_err(AtError::from)?;
    let me = match caller {
        Caller::Owner(me) => me,
        Caller::Peer(peer) => {
            let key = canonical_key(&format!("{}:{}{}", peer.atsign(), cmd.name, owner));
            check_key_length(&key)?;
            read_local(&peer.tenant().store, &key, cmd.op, &key, payload)?;
            return Ok(Reply::Data);
        }
        Caller::Anonymous(_) => {
            let key = canonical_key(&format!("public:{}{}", cmd.name, owner));
            check_key_length(&key)?;
            let tenant = server
                .tenant(&owner)
                .cloned()
                .ok_or_else(|| AtError::key_not_found(&key))?;
            read_local(&tenant.store, &key, cmd.op, &key, payload)?;
            return Ok(Reply::Data);
        }
    };
    let key = canonical_key(&format!("{}:{}{}", me.atsign(), cmd.name, owner));
    check_key_length(&key)?;
    if owner == me.atsign() {
        read_local(&me.tenant().store, &key, cmd.op, &key, payload)?;
        return Ok(Reply::Data);
    }
    let Some(other) = server.tenant(&owner).cloned() else {
        let read = RemoteRead {
            me: me.tenant(),
            op: cmd.op,
            remote_key: &key,
            bypass_cache: cmd.bypass_cache == Some(true),
        };
        return remote_lookup::lookup(peers, read, payload).await;
    };
    // The errors a remote lookup would relay (server-to-server.md §5.2):
    // the other server's own "not found", and an inactive record's `null`.
    let active = other.store.read(&key, |r| r.is_active(now_ms()))?;
    match active {
        None => Err(AtError::new(
            AtCode::KeyNotFound,
            format!("Exception: {key} does not exist in keystore"),
        )),
        Some(false) => Err(remote_lookup::inactive_remote_record(&key)),
        Some(true) => {
            read_local(&other.store, &key, cmd.op, &key, payload)?;
            Ok(Reply::Data)
        }
    }
}
