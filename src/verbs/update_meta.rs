//! `update:meta[:nc][:public|:@for]:<key>@<owner><meta>`: metadata only.
//! A missing key gets a record with a null value (`llookup` ⇒ `data:null`).

use super::checks::{check_key_length, check_owner};
use super::metadata::MetaUpdate;
use super::now_ms;
use super::update::{check_writable_type, live_or_unborn, refuse_immutable};
use super::write::{PreparedWrite, WriteOp};
use crate::connection::Owner;
use crate::error::{AtCode, AtError};
use crate::protocol::command::UpdateMeta;
use crate::storage::actor::MutateFn;
use crate::storage::{CommitOp, Mutation, StoredRecord};

pub fn prepare(owner: Owner, cmd: UpdateMeta<'_>) -> Result<PreparedWrite, AtError> {
    let tenant = owner.into_tenant();
    check_owner(cmd.key.owner, &tenant.atsign, "update")?;
    let key = cmd.key.assemble();
    if key.starts_with("privatekey:") {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("update:meta of {key} is not allowed"),
        ));
    }
    check_writable_type(&key, &tenant.atsign)?;
    check_key_length(&key)?;
    let meta = MetaUpdate::from_fragment(&cmd.meta)?;
    let commit = super::write::commit_log_of(&key, cmd.no_commit);
    let writer = tenant.atsign.clone();
    let shown = key.clone();
    let mutate: MutateFn = Box::new(move |old| {
        let now = now_ms();
        let old = live_or_unborn(old, now);
        refuse_immutable(old.as_ref(), &shown)?;
        let (value, old_meta) = match old {
            Some(r) => (r.value, Some(r.meta)),
            None => (None, None),
        };
        let meta = meta.merge(old_meta, &writer, now);
        Ok(Mutation::Put(
            Box::new(StoredRecord { value, meta }),
            CommitOp::UpdateMeta,
        ))
    });
    Ok(PreparedWrite::new(tenant, key, commit, mutate).followed_by(WriteOp::UpdateMeta))
}
