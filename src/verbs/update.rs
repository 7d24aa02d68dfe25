//! `update[:nc]<meta>[:public|:@for]:<key>[@owner] <value>`.
//!
//! Reply: `data:<commit id>`, or `data:-1` for keys kept out of the commit
//! log (`privatekey:`, `private:`, `public:_x`, `local:`) or written with `:nc`.

use super::checks::{check_key_length, check_owner};
use super::metadata::MetaUpdate;
use super::now_ms;
use super::write::{PreparedWrite, WriteOp};
use crate::connection::Owner;
use crate::error::{AtCode, AtError};
use crate::protocol::atkey::{self, KeyType};
use crate::protocol::command::Update;
use crate::storage::actor::MutateFn;
use crate::storage::{CommitOp, Mutation, StoredRecord};

pub fn prepare(owner: Owner, cmd: Update<'_>) -> Result<PreparedWrite, AtError> {
    let tenant = owner.into_tenant();
    check_owner(cmd.key.owner, &tenant.atsign, "update")?;
    let key = cmd.key.assemble();
    check_writable_type(&key, &tenant.atsign)?;
    check_key_length(&key)?;
    let meta = MetaUpdate::from_fragment(&cmd.meta)?;
    let value = cmd.value.to_string();
    let commit = super::write::commit_log_of(&key, cmd.no_commit);
    let writer = tenant.atsign.clone();
    let shown = key.clone();
    let mutate: MutateFn = Box::new(move |old| {
        let now = now_ms();
        let old = live_or_unborn(old, now);
        refuse_immutable(old.as_ref(), &shown)?;
        let meta = meta.merge(old.map(|r| r.meta), &writer, now);
        Ok(Mutation::Put(
            Box::new(StoredRecord {
                value: Some(value),
                meta,
            }),
            CommitOp::UpdateAll,
        ))
    });
    Ok(PreparedWrite::new(tenant, key, commit, mutate).followed_by(WriteOp::Update))
}

/// An expired record that is not purged yet counts as absent for a write.
pub(super) fn live_or_unborn(old: Option<StoredRecord>, now: i64) -> Option<StoredRecord> {
    old.filter(|r| r.meta.expires_at.is_none_or(|at| at >= now))
}

/// `immutable` records refuse updates until they expire.
pub(super) fn refuse_immutable(old: Option<&StoredRecord>, key: &str) -> Result<(), AtError> {
    if old.is_some_and(|r| r.meta.immutable) {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("{key} is immutable"),
        ));
    }
    Ok(())
}

/// Owners may write self, shared, public and reserved keys; nothing else.
pub(super) fn check_writable_type(key: &str, owner: &str) -> Result<(), AtError> {
    let kind = atkey::key_type(key, Some(owner));
    let name = match kind {
        KeyType::SelfKey | KeyType::Shared | KeyType::Public | KeyType::Reserved => return Ok(()),
        KeyType::Private => "privateKey",
        KeyType::CachedPublic => "cachedPublicKey",
        KeyType::CachedShared => "cachedSharedKey",
        KeyType::Local => "localKey",
        KeyType::Invalid => "invalidKey",
    };
    Err(AtError::new(
        AtCode::InvalidKey,
        format!("You may not update keys of type KeyType.{name}"),
    ))
}
