//! `to:@alice`: the first command a peer atServer sends on a new
//! server-to-server connection (changes-since-2024-10.md §10.1). Open to
//! anyone, as both keys it returns are public.
//!
//! Reply: `data:{"publickey":<P>,"signing_publickey":<Q>}`, each the
//! `lookup:all` object of `public:publickey@alice` /
//! `public:signing_publickey@alice`, or `null` when the key is absent. An
//! atSign this process does not host ⇒ AT0007.
//!
//! A hosted atSign also becomes the connection's tenant (when it has none
//! yet), so that a later `from:@bob` knows which atSign the peer addresses.
//! Nothing is proven by it.

use super::Reply;
use super::llookup::write_found;
use crate::auth::signing;
use crate::connection::ConnectionState;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::{LookupOp, To};
use crate::storage::TenantStore;

pub fn apply(
    server: &ServerContext,
    state: &mut ConnectionState,
    cmd: To<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let atsign = normalize_atsign(cmd.atsign).map_err(AtError::from)?;
    let Some(tenant) = server.tenant(&atsign).cloned() else {
        return Err(AtError::new(
            AtCode::SecondaryNotFound,
            format!("{atsign} is not hosted on this atServer"),
        ));
    };
    payload.push_str(r#"{"publickey":"#);
    write_all_or_null(&tenant.store, &format!("public:publickey{atsign}"), payload)?;
    payload.push_str(r#","signing_publickey":"#);
    write_all_or_null(&tenant.store, &signing::public_key_name(&atsign), payload)?;
    payload.push('}');
    state.address_tenant(tenant);
    Ok(Reply::Data)
}

/// The `lookup:all` object of `key` (`null` when inactive, as `lookup:all`
/// shows it), or `null` when it does not exist.
fn write_all_or_null(store: &TenantStore, key: &str, payload: &mut String) -> Result<(), AtError> {
    if !write_found(store, key, LookupOp::All, key, payload)? {
        payload.push_str("null");
    }
    Ok(())
}
