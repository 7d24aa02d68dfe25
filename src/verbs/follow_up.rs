//! What follows a durable owner write (notifications.md §4, §6.1, changes
//! §6.5), run by the connection after the write's reply is written: the
//! stats notification to the atSign's monitors, and the auto-notification
//! of a key shared with another atSign, queued after the keystore write
//! with the metadata actually stored (`cAt`/`uAt` included).

use super::notify;
use super::write::{FollowUp, WriteFollowUp, WriteOp};
use crate::context::ServerContext;
use crate::protocol::command::{MessageType, Notify, NotifyOp};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::time::format_iso_utc;
use crate::storage::{OpType, StoredRecord};

/// Runs `follow_up`. Failures are logged: the write they follow is done
/// and answered, and an auto-notification that cannot be queued (the
/// recipient's backlog is full, the store refuses) must not undo it.
pub async fn run(server: &ServerContext, follow_up: &FollowUp, rng: &ring::rand::SystemRandom) {
    if let FollowUp::Write(write) = follow_up {
        let op = match write.op {
            WriteOp::Delete => OpType::Delete,
            WriteOp::Update | WriteOp::UpdateMeta => OpType::Update,
        };
        super::monitor::publish_stats(&write.tenant, op);
    }
    run_without_stats(server, follow_up, rng).await;
}

/// [`run`] without the stats notification to the atSign's monitors: what
/// follows a write inside a `batch` (the reference sends stats only for
/// top-level commands).
pub async fn run_without_stats(
    server: &ServerContext,
    follow_up: &FollowUp,
    rng: &ring::rand::SystemRandom,
) {
    match follow_up {
        FollowUp::Write(write) => notify_recipient(server, write, rng).await,
        FollowUp::Sent(outgoing) => outgoing.hand_to_courier(),
        FollowUp::Received(received) => {
            if let Err(error) = notify::apply_received(received).await {
                tracing::warn!(%error, id = %received.record.id, "a received notification's cached copy was not written");
            }
        }
    }
}

/// The auto-notification of an owner's write of a key shared with another
/// atSign, carrying the new value and metadata (or the delete).
async fn notify_recipient(
    server: &ServerContext,
    follow_up: &WriteFollowUp,
    rng: &ring::rand::SystemRandom,
) {
    let tenant = &follow_up.tenant;
    let Some(recipient) = &follow_up.recipient else {
        return;
    };
    let Some((name, owner)) = name_and_owner(&follow_up.key, recipient) else {
        return;
    };
    let stored = match follow_up.op {
        WriteOp::Delete => None,
        WriteOp::Update | WriteOp::UpdateMeta => match tenant.store.get(&follow_up.key) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, key = %follow_up.key, "no auto-notification: the key cannot be read");
                return;
            }
        },
    };
    let created = stored.as_ref().map(|r| format_iso_utc(r.meta.created_at));
    let updated = stored.as_ref().map(|r| format_iso_utc(r.meta.updated_at));
    let meta = stored
        .as_ref()
        .map(|r| fragment_of(r, created.as_deref(), updated.as_deref()))
        .unwrap_or_default();
    let value = match follow_up.op {
        WriteOp::Update => stored.as_ref().and_then(|r| r.value.as_deref()),
        WriteOp::UpdateMeta | WriteOp::Delete => None,
    };
    let cmd = Notify {
        operation: Some(match follow_up.op {
            WriteOp::Delete => NotifyOp::Delete,
            WriteOp::Update | WriteOp::UpdateMeta => NotifyOp::Update,
        }),
        message_type: Some(MessageType::Key),
        meta,
        owner: Some(owner),
        value,
        ..Notify::to(recipient.trim_start_matches('@'), name)
    };
    if let Err(error) = notify::sent_to(server, tenant, recipient, &cmd, rng).await {
        tracing::warn!(%error, key = %follow_up.key, "the auto-notification was not queued");
    }
}

/// `phone.wavi` and `alice` of `@bob:phone.wavi@alice`.
fn name_and_owner<'a>(key: &'a str, recipient: &str) -> Option<(&'a str, &'a str)> {
    let rest = key.get(recipient.len()..)?.strip_prefix(':')?;
    let (name, owner) = rest.rsplit_once('@')?;
    Some((name, owner))
}

/// The stored metadata as the notify line's metadata block.
fn fragment_of<'a>(
    record: &'a StoredRecord,
    created: Option<&'a str>,
    updated: Option<&'a str>,
) -> MetaFragment<'a> {
    let meta = &record.meta;
    MetaFragment {
        ttl: meta.ttl,
        ttb: meta.ttb,
        ttr: meta.ttr,
        ccd: meta.ccd,
        c_at: created,
        u_at: updated,
        data_signature: meta.data_signature.as_deref(),
        is_binary: meta.is_binary.then_some(true),
        is_encrypted: Some(meta.is_encrypted),
        shared_key_enc: meta.shared_key_enc.as_deref(),
        pub_key_cs: meta.pub_key_cs.as_deref(),
        pub_key_hash: meta.pub_key_hash.as_deref(),
        hashing_algo: meta.hashing_algo.as_deref(),
        encoding: meta.encoding.as_deref(),
        enc_key_name: meta.enc_key_name.as_deref(),
        enc_algo: meta.enc_algo.as_deref(),
        iv_nonce: meta.iv_nonce.as_deref(),
        ske_enc_key_name: meta.ske_enc_key_name.as_deref(),
        ske_enc_algo: meta.ske_enc_algo.as_deref(),
        app_metadata: meta.app_metadata.as_deref(),
        ..MetaFragment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_key_splits_into_its_name_and_owner() {
        assert_eq!(
            name_and_owner("@bob:phone.wavi@alice", "@bob"),
            Some(("phone.wavi", "alice"))
        );
        assert_eq!(
            name_and_owner("@bob:shared_key@alice", "@bob"),
            Some(("shared_key", "alice"))
        );
        assert_eq!(name_and_owner("@bob", "@bob"), None);
    }
}
