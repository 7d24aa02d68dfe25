//! `delete[:dAt:…][:nc][:force][:priority:…][:cached][:public|:@for]:<key>[@owner]`.
//!
//! Reply: `data:<commit id>` — also when the key did not exist (a delete
//! entry is committed anyway, as the reference does) — or `data:-1` for keys
//! kept out of the commit log.

use super::checks::{check_key_length, check_owner};
use super::now_ms;
use super::write::{PreparedWrite, WriteOp};
use crate::connection::Owner;
use crate::error::{AtCode, AtError};
use crate::protocol::atkey::{self, canonical_key};
use crate::protocol::command::Delete;
use crate::storage::actor::MutateFn;
use crate::storage::{CommitOp, KeyWrite, Mutation, StoredRecord};

/// Written when the CRAM secret is deleted, in the same atomic write as the
/// delete, so a restart does not bring the secret back from the command
/// line whenever the process stopped.
pub const SECRET_DELETED_KEY: &str = "privatekey:at_secret_deleted";

pub fn prepare(owner: Owner, cmd: Delete<'_>) -> Result<PreparedWrite, AtError> {
    let tenant = owner.into_tenant();
    check_owner(cmd.key.owner, &tenant.atsign, "delete")?;
    let key = cmd.key.assemble();
    check_key_length(&key)?;
    let name_with_owner = canonical_key(&cmd.key.name_with_owner());
    if !cmd.key.cached && atkey::is_protected(&name_with_owner, &tenant.atsign) {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("Cannot delete protected key: '{name_with_owner}'"),
        ));
    }
    let commit = super::write::commit_log_of(&key, cmd.no_commit);
    let force = cmd.force;
    let shown = key.clone();
    let is_secret = key == super::cram::SECRET_KEY;
    let mutate: MutateFn = Box::new(move |old| {
        let now = now_ms();
        let immutable = old
            .as_ref()
            .is_some_and(|r| r.meta.immutable && r.is_active(now));
        if immutable && !force {
            return Err(AtError::new(
                AtCode::Unauthorized,
                format!("{shown} is immutable: delete it with delete:force"),
            ));
        }
        Ok(Mutation::Delete)
    });
    let mut write = PreparedWrite::new(tenant, key, commit, mutate).followed_by(WriteOp::Delete);
    if is_secret {
        // One request: the secret and its tombstone land in one batch, so
        // no crash can leave the secret deleted but restorable.
        let writer = write.tenant.atsign.clone();
        let tombstone: MutateFn = Box::new(move |_| {
            let record = StoredRecord::written_by(Some("true".into()), &writer, now_ms());
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        });
        write.companion = Some(KeyWrite::new(
            SECRET_DELETED_KEY.to_string(),
            false,
            tombstone,
        ));
    }
    Ok(write)
}
