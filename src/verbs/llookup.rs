//! `llookup[:meta|:all][:cached][:public|:@for]:<key>@<owner>`: the owner
//! reads its own store. Missing ⇒ AT0015; present but not born or expired ⇒
//! `data:null`; a null value ⇒ `data:null`.

use super::checks::check_key_length;
use super::metadata::{write_all_json, write_meta_json};
use super::{Reply, now_ms};
use crate::connection::Owner;
use crate::error::AtError;
use crate::protocol::command::LookupOp;
use crate::storage::TenantStore;

/// `key` is the assembled, canonical key (see [`super::read_key`]).
pub fn apply(
    owner: &Owner,
    key: &str,
    op: LookupOp,
    payload: &mut String,
) -> Result<Reply, AtError> {
    check_key_length(key)?;
    read_local(&owner.tenant().store, key, op, key, payload)?;
    Ok(Reply::Data)
}

/// Writes `key`'s value, metadata JSON or `all` JSON (showing `shown_key`)
/// into `payload`; inactive records and null values read as `null`.
pub(super) fn read_local(
    store: &TenantStore,
    key: &str,
    op: LookupOp,
    shown_key: &str,
    payload: &mut String,
) -> Result<(), AtError> {
    if write_found(store, key, op, shown_key, payload)? {
        Ok(())
    } else {
        Err(AtError::key_not_found(key))
    }
}

/// [`read_local`] without the error for a missing key: false (and nothing
/// written) when `key` does not exist, for answers that show a missing key
/// as something else (`to:` shows it as `null`).
pub(super) fn write_found(
    store: &TenantStore,
    key: &str,
    op: LookupOp,
    shown_key: &str,
    payload: &mut String,
) -> Result<bool, AtError> {
    let now = now_ms();
    let found = match op {
        LookupOp::Value => store.read(key, |record| {
            match record.value_str().filter(|_| record.is_active(now)) {
                Some(value) => payload.push_str(value),
                None => payload.push_str("null"),
            }
        })?,
        LookupOp::Meta | LookupOp::All => store.get(key)?.map(|record| {
            if !record.is_active(now) {
                payload.push_str("null");
            } else if op == LookupOp::Meta {
                write_meta_json(payload, &record.meta);
            } else {
                write_all_json(payload, shown_key, &record);
            }
        }),
    };
    Ok(found.is_some())
}
