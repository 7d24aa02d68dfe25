//! `delete[:dAt:…][:nc][:force][:priority:…][:cached][:public|:@for]:<key>[@owner]`.
//!
//! Reply: `data:<commit id>` — also when the key did not exist (a delete
//! entry is committed anyway, as the reference does) — or `data:-1` for keys
//! kept out of the commit log.

use super::update::write_commit_id;
use super::{Reply, check_owner, now_ms, owner_tenant};
use crate::error::{AtCode, AtError};
use crate::protocol::atkey::{self, canonical_key};
use crate::protocol::command::Delete;
use crate::session::Session;
use crate::storage::{CommitOp, Mutation, StoredMeta, StoredRecord};

/// Written when the CRAM secret is deleted, so a restart does not bring the
/// secret back from the command line.
pub const SECRET_DELETED_KEY: &str = "privatekey:at_secret_deleted";

pub async fn apply(
    session: &mut Session,
    cmd: Delete<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let tenant = owner_tenant(session)?;
    check_owner(cmd.key.owner, &tenant.atsign, "delete")?;
    let key = cmd.key.assemble();
    let name_with_owner = canonical_key(&match cmd.key.owner {
        Some(owner) => format!("{}@{}", cmd.key.name, owner.trim_start_matches('@')),
        None => cmd.key.name.to_string(),
    });
    if !cmd.key.cached && atkey::is_protected(&name_with_owner, &tenant.atsign) {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("Cannot delete protected key: '{name_with_owner}'"),
        ));
    }
    let commit = atkey::is_committed(&key) && !cmd.no_commit;
    let force = cmd.force;
    let shown = key.clone();
    let is_secret = key == super::cram::SECRET_KEY;
    let outcome = tenant
        .store
        .write(key, commit, move |old| {
            let now = now_ms();
            if !force
                && old
                    .as_ref()
                    .is_some_and(|r| r.meta.immutable && r.is_active(now))
            {
                return Err(AtError::new(
                    AtCode::Unauthorized,
                    format!("{shown} is immutable: delete it with delete:force"),
                ));
            }
            Ok(Mutation::Delete)
        })
        .await?;
    if is_secret {
        let writer = tenant.atsign.clone();
        tenant
            .store
            .write(SECRET_DELETED_KEY.to_string(), false, move |_| {
                let now = now_ms();
                let meta = StoredMeta {
                    created_by: Some(writer.clone()),
                    updated_by: Some(writer),
                    created_at: now,
                    updated_at: now,
                    ..StoredMeta::default()
                };
                Ok(Mutation::Put(
                    Box::new(StoredRecord {
                        value: Some("true".into()),
                        meta,
                    }),
                    CommitOp::Update,
                ))
            })
            .await?;
    }
    write_commit_id(payload, outcome);
    Ok(Reply::Data)
}
