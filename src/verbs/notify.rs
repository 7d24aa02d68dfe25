//! `notify` (notifications.md §2, §5). From another atServer,
//! pol-authenticated as @alice, it delivers a notification to the atSign
//! this connection talks to: stored once by id (a redelivery is
//! acknowledged and changes nothing), with its effect on this server's
//! cached copy of the key, answered `data:success`. The owner's own
//! `notify` (sending) arrives with the delivery side and is answered "not
//! supported yet" until then.

use super::Reply;
use super::metadata::MetaUpdate;
use super::remote_cache;
use crate::connection::Peer;
use crate::error::{AtCode, AtError};
use crate::limits::NOTIFICATION_LIFETIME_MS_DEFAULT;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::{MessageType as WireMessageType, Notify, NotifyOp, NotifyTarget};
use crate::protocol::command::{NotifyStrategy, Priority as WirePriority};
use crate::protocol::metadata::MetaFragment;
use crate::storage::{
    DeliveryStrategy, MessageType, NotificationMeta, NotificationRecord, NotificationStatus,
    NotificationType, OpType, Priority, Stored, clamp_notification_expiry, notification_expires_at,
};

/// A notification from the peer's server to our atSign.
pub async fn receive(
    peer: &Peer,
    cmd: Notify<'_>,
    rng: &ring::rand::SystemRandom,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let me = peer.tenant();
    let recipient = match cmd.target {
        NotifyTarget::AtSign(name) => normalize_atsign(name).map_err(AtError::from)?,
        NotifyTarget::Public => {
            return Err(AtError::new(
                AtCode::Unauthorized,
                "a notification from another atServer must name its recipient",
            ));
        }
    };
    if recipient != me.atsign {
        // The reference would keep it as "sent" and never deliver it.
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("{recipient} is not hosted on this connection's atServer"),
        ));
    }
    let message_type = match cmd.message_type.unwrap_or(WireMessageType::Key) {
        WireMessageType::Key => MessageType::Key,
        WireMessageType::Text => MessageType::Text,
    };
    let op_type = match cmd.operation.unwrap_or(NotifyOp::Update) {
        NotifyOp::Update => OpType::Update,
        NotifyOp::Delete => OpType::Delete,
    };
    let notification = match message_type {
        MessageType::Key => {
            // The sender may only notify about its own keys (the reference
            // does not check; a peer could otherwise plant copies of keys
            // it does not own).
            let owner = match cmd.owner {
                Some(owner) => normalize_atsign(owner).map_err(AtError::from)?,
                None => peer.atsign().to_string(),
            };
            if owner != peer.atsign() {
                return Err(AtError::new(
                    AtCode::Unauthorized,
                    format!(
                        "{} is not authorized to send notification as {owner}",
                        peer.atsign()
                    ),
                ));
            }
            key_of(&recipient, cmd.key, &owner)
        }
        MessageType::Text => format!("{recipient}:{}", cmd.key),
    };
    // The metadata that will describe the cached copy, checked by `update`'s
    // rules before anything is stored, so a refused notification leaves no
    // trace and its redelivery is not taken for a duplicate.
    let copy_meta = match message_type {
        MessageType::Key => Some(MetaUpdate::from_fragment(&cmd.meta)?),
        MessageType::Text => None,
    };
    let id = match cmd.id {
        Some(id) => id.to_string(),
        None => crate::auth::challenge::uuid_v4(rng)?,
    };
    let now = super::now_ms();
    let expires_at = match cmd.e_atn.and_then(|at| at.parse::<i64>().ok()) {
        Some(at) => clamp_notification_expiry(now, at),
        None => notification_expires_at(
            now,
            cmd.ttln.and_then(|t| i64::try_from(t).ok()),
            NOTIFICATION_LIFETIME_MS_DEFAULT,
        ),
    }
    .ok_or_else(|| {
        AtError::new(
            AtCode::InvalidSyntax,
            "the notification's lifetime overflows",
        )
    })?;
    if expires_at <= now {
        // Already expired on arrival: acknowledged, not kept (changes §6.4).
        payload.push_str("success");
        return Ok(Reply::Data);
    }
    let record = NotificationRecord {
        id,
        from_atsign: peer.atsign().to_string(),
        to_atsign: recipient,
        notification_date_time: now,
        notification: notification.clone(),
        notification_type: NotificationType::Received,
        op_type,
        message_type,
        priority: match cmd.priority.unwrap_or(WirePriority::Low) {
            WirePriority::Low => Priority::Low,
            WirePriority::Medium => Priority::Medium,
            WirePriority::High => Priority::High,
        },
        notification_status: NotificationStatus::Delivered,
        retry_count: 1,
        strategy: match cmd.strategy.unwrap_or(NotifyStrategy::All) {
            NotifyStrategy::All => DeliveryStrategy::All,
            NotifyStrategy::Latest => DeliveryStrategy::Latest,
        },
        notifier: cmd.notifier.unwrap_or("SYSTEM").to_string(),
        depth: u32::try_from(cmd.latest_n.unwrap_or(1)).unwrap_or(u32::MAX),
        at_value: cmd.value.map(str::to_string),
        at_metadata: Some(meta_of(&cmd.meta, message_type, &notification)),
        ttl: cmd.ttln.and_then(|t| i64::try_from(t).ok()),
        expires_at,
    };
    let stored = me.store.put_notification(record).await?;
    if stored == Stored::New
        && let Some(copy_meta) = copy_meta
    {
        remote_cache::apply_notification(
            &me.store,
            &notification,
            op_type,
            cmd.value,
            copy_meta,
            now,
        )
        .await?;
    }
    payload.push_str("success");
    Ok(Reply::Data)
}

/// `@bob:<key>@<owner>`; a public key keeps its own form
/// (`public:<key>@<owner>`, notifications.md §2.2).
fn key_of(recipient: &str, key: &str, owner: &str) -> String {
    if key.starts_with("public:") {
        format!("{key}{owner}")
    } else {
        format!("{recipient}:{key}{owner}")
    }
}

/// The metadata a received notification keeps: for a text message only
/// whether it is encrypted; for a key, what tells the recipient how to
/// decrypt and cache it. `isEncrypted` is derived as the reference does
/// when the sender leaves it out: a key notification is encrypted unless
/// it says otherwise or names a public key; a text one only if it says so.
fn meta_of(meta: &MetaFragment<'_>, message_type: MessageType, key: &str) -> NotificationMeta {
    let is_encrypted = match message_type {
        MessageType::Key => meta.is_encrypted.unwrap_or(!key.starts_with("public:")),
        MessageType::Text => meta.is_encrypted.unwrap_or(false),
    };
    if message_type == MessageType::Text {
        return NotificationMeta {
            is_encrypted,
            ..NotificationMeta::default()
        };
    }
    let text = |v: Option<&str>| v.map(str::to_string);
    NotificationMeta {
        ttl: meta.ttl,
        ttb: meta.ttb,
        ttr: meta.ttr,
        ccd: meta.ccd,
        is_encrypted,
        shared_key_enc: text(meta.shared_key_enc),
        pub_key_cs: text(meta.pub_key_cs),
        enc_key_name: text(meta.enc_key_name),
        enc_algo: text(meta.enc_algo),
        iv_nonce: text(meta.iv_nonce),
        ske_enc_key_name: text(meta.ske_enc_key_name),
        ske_enc_algo: text(meta.ske_enc_algo),
        data_signature: text(meta.data_signature),
        pub_key_hash: text(meta.pub_key_hash),
        app_metadata: text(meta.app_metadata),
        is_binary: meta.is_binary.unwrap_or(false),
        encoding: text(meta.encoding),
        created_at: None,
        updated_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_for_the_recipient_unless_public() {
        assert_eq!(
            key_of("@alice", "phone.wavi", "@bob"),
            "@alice:phone.wavi@bob"
        );
        assert_eq!(
            key_of("@alice", "public:phone.wavi", "@bob"),
            "public:phone.wavi@bob"
        );
    }

    #[test]
    fn is_encrypted_is_derived_when_the_sender_leaves_it_out() {
        let none = MetaFragment::default();
        assert!(meta_of(&none, MessageType::Key, "@alice:k@bob").is_encrypted);
        assert!(!meta_of(&none, MessageType::Key, "public:k@bob").is_encrypted);
        assert!(!meta_of(&none, MessageType::Text, "@alice:hi").is_encrypted);
        let said = MetaFragment {
            is_encrypted: Some(true),
            ttr: Some(60),
            ..MetaFragment::default()
        };
        let text = meta_of(&said, MessageType::Text, "@alice:hi");
        assert!(text.is_encrypted);
        assert_eq!(text.ttr, None, "a text message keeps only isEncrypted");
        assert_eq!(
            meta_of(&said, MessageType::Key, "@alice:k@bob").ttr,
            Some(60)
        );
    }
}
