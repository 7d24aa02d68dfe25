//! `notify` (notifications.md §2, §5).
//!
//! From the owner it sends: to itself, to another atSign of this process
//! (handed over directly), or to another atServer (stored as the outbox
//! entry and pushed by the shard's courier, `remote::courier`). From
//! another atServer, pol-authenticated as @alice, it delivers a
//! notification to the atSign this connection talks to: stored once by id
//! (a redelivery is acknowledged and changes nothing), with its effect on
//! this server's cached copy of the key, pushed to the monitors, answered
//! `data:success`.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use super::Reply;
use super::metadata::MetaUpdate;
use super::remote_cache;
use crate::connection::{Owner, Peer};
use crate::context::{ServerContext, Tenant};
use crate::error::{AtCode, AtError};
use crate::limits::{
    NOTIFICATION_EPHEMERAL_LIFETIME_MS, NOTIFICATION_LIFETIME_MS_DEFAULT,
    NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX,
};
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::{MessageType as WireMessageType, Notify, NotifyOp, NotifyTarget};
use crate::protocol::command::{NotifyStrategy, Priority as WirePriority};
use crate::protocol::time::parse_iso_utc;
use crate::storage::{
    DeliveryStrategy, MessageType, NotificationMeta, NotificationRecord, NotificationStatus,
    NotificationType, OpType, Priority, Stored, clamp_notification_expiry, notification_expires_at,
};

/// A notification from the peer's server to our atSign, checked and
/// built, ready to be stored: the session submits it without waiting (a
/// peer delivering many sends them back to back), answers `data:success`
/// once it is durable, and then runs [`apply_received`] unless it was a
/// redelivery. [`Received::Expired`] is answered at once and kept nowhere.
pub fn prepare_received(
    peer: &Peer,
    cmd: Notify<'_>,
    rng: &ring::rand::SystemRandom,
) -> Result<Received, AtError> {
    let me = peer.tenant();
    let recipient = recipient_of(&cmd)?;
    if recipient != me.atsign {
        // The reference would keep it as "sent" and never deliver it.
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("{recipient} is not hosted on this connection's atServer"),
        ));
    }
    let now = me.notification_time(super::now_ms());
    match build(&cmd, peer.atsign(), &me.atsign, peer.atsign(), now, rng)? {
        Some(record) => Ok(Received::Store(Box::new(received(me, &cmd, record, now)?))),
        // Already expired on arrival: acknowledged, not kept (changes §6.4).
        None => Ok(Received::Expired),
    }
}

/// What [`prepare_received`] made of a peer's notification.
#[derive(Debug)]
pub enum Received {
    Expired,
    Store(Box<ReceivedNotification>),
}

/// A notification for a hosted atSign, as it is stored, and what it does
/// to that atSign's cached copy of the key once stored.
#[derive(Debug)]
pub struct ReceivedNotification {
    pub tenant: Arc<Tenant>,
    pub record: NotificationRecord,
    /// For a key notification: the metadata of the cached copy, checked
    /// by `update`'s rules before anything is stored, so a refused
    /// notification leaves no trace and its redelivery is not taken for a
    /// duplicate.
    copy_meta: Option<MetaUpdate>,
}

/// The record of a notification `me` receives at `received_at` (from
/// `me`'s clock, [`Tenant::notification_time`]), from its sender's record.
fn received(
    me: &Arc<Tenant>,
    cmd: &Notify<'_>,
    mut record: NotificationRecord,
    received_at: i64,
) -> Result<ReceivedNotification, AtError> {
    let copy_meta = match record.message_type {
        MessageType::Key => Some(MetaUpdate::from_fragment(&cmd.meta)?),
        MessageType::Text => None,
    };
    record.notification_type = NotificationType::Received;
    record.notification_status = NotificationStatus::Delivered;
    record.notification_date_time = received_at;
    Ok(ReceivedNotification {
        tenant: me.clone(),
        record,
        copy_meta,
    })
}

impl ReceivedNotification {
    /// The cached copy this notification may write or delete.
    pub fn copy_key(&self) -> String {
        remote_cache::cached_key(&self.record.notification)
    }
}

/// What a received notification does once stored for the first time: the
/// cached copy written per `ttr` or cascade-deleted per `ccd`, then the
/// line to the recipient's monitors.
pub async fn apply_received(received: &ReceivedNotification) -> Result<(), AtError> {
    let record = &received.record;
    let result = match &received.copy_meta {
        Some(copy_meta) => {
            remote_cache::apply_notification(
                &received.tenant.store,
                &record.notification,
                record.op_type,
                record.at_value.as_deref(),
                copy_meta.clone(),
                record.notification_date_time,
            )
            .await
        }
        None => Ok(()),
    };
    // The monitors hear of it whatever became of the copy.
    super::monitor::publish_notification(&received.tenant, record);
    result
}

/// The owner's `notify`: to itself (stored as received and pushed to its
/// monitors), to another atSign of this process (handed over directly, as
/// a peer's delivery would be), or to another atServer (stored as
/// `sent`/`queued` and handed to this shard's courier, which pushes it at
/// once). Answers `data:<id>` once the notification is durable.
pub async fn send(
    server: &ServerContext,
    owner: &Owner,
    cmd: Notify<'_>,
    rng: &ring::rand::SystemRandom,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let me = owner.tenant();
    let recipient = match cmd.target {
        NotifyTarget::AtSign(_) => recipient_of(&cmd)?,
        // The reference's empty recipient is an invalid atSign (AT0011,
        // and the connection closes).
        NotifyTarget::Public => {
            return Err(AtError::new(
                AtCode::InternalServerException,
                "a notification needs a recipient: notify:…:@<atSign>:<key>",
            )
            .closing());
        }
    };
    let id = sent_to(server, me, &recipient, &cmd, rng).await?;
    payload.push_str(&id);
    Ok(Reply::Data)
}

/// Sends one notification from `me` to `recipient` (see [`send`]) and
/// returns its id; shared with `notify:multi` and `notify:all`.
pub(super) async fn sent_to(
    server: &ServerContext,
    me: &Arc<Tenant>,
    recipient: &str,
    cmd: &Notify<'_>,
    rng: &ring::rand::SystemRandom,
) -> Result<String, AtError> {
    if goes_out(server, me, recipient) {
        return match outgoing(me, recipient.to_string(), cmd, rng)? {
            Outgoing::Answered(id) => Ok(id),
            Outgoing::Queue(outgoing) => {
                if me.store.put_notification(outgoing.record.clone()).await? == Stored::New {
                    outgoing.hand_to_courier();
                }
                Ok(outgoing.record.id.clone())
            }
        };
    }
    check_sending_fields(cmd)?;
    let now = me.notification_time(super::now_ms());
    let Some(mut record) = build(cmd, &me.atsign, recipient, &me.atsign, now, rng)? else {
        return answered_id(cmd, rng);
    };
    let id = record.id.clone();
    if recipient == me.atsign {
        record.notification_type = NotificationType::Received;
        record.notification_status = NotificationStatus::Delivered;
        if me.store.put_notification(record.clone()).await? == Stored::New {
            super::monitor::publish_notification(me, &record);
        }
        return Ok(id);
    }
    if let Some(local) = server.tenant(recipient) {
        // Hosted here too: no TLS to ourselves. The recipient's side is
        // what a delivery from another server would make of it.
        ingest_record(local, cmd, record.clone()).await?;
        record.notification_status = NotificationStatus::Delivered;
        me.store.put_notification(record).await?;
    }
    Ok(id)
}

/// Whether a notification from `me` to `recipient` leaves this process:
/// neither to itself nor to another atSign hosted here.
fn goes_out(server: &ServerContext, me: &Tenant, recipient: &str) -> bool {
    recipient != me.atsign && server.tenant(recipient).is_none()
}

/// The id answered for a notification that had expired before it was
/// made: the client's, or a fresh one; nothing is kept (changes §6.4).
fn answered_id(cmd: &Notify<'_>, rng: &ring::rand::SystemRandom) -> Result<String, AtError> {
    match cmd.id {
        Some(id) => Ok(id.to_string()),
        None => uuid(rng),
    }
}

/// An owner's `notify` to another atServer, checked and built, ready to
/// be stored: the session submits it without waiting (a client sending
/// many pipelines them), answers `data:<id>` once it is durable, then hands
/// it to the shard's courier unless it was a repeat of a stored id. `None`
/// for notifications this does not take: to itself or to another atSign of
/// this process, which [`send`] handles.
pub fn prepare_outgoing(
    server: &ServerContext,
    owner: &Owner,
    cmd: &Notify<'_>,
    rng: &ring::rand::SystemRandom,
) -> Option<Result<Outgoing, AtError>> {
    let NotifyTarget::AtSign(_) = cmd.target else {
        return None;
    };
    let me = owner.tenant();
    let recipient = recipient_of(cmd).ok()?;
    goes_out(server, me, &recipient).then(|| outgoing(me, recipient, cmd, rng))
}

fn outgoing(
    me: &Arc<Tenant>,
    recipient: String,
    cmd: &Notify<'_>,
    rng: &ring::rand::SystemRandom,
) -> Result<Outgoing, AtError> {
    check_sending_fields(cmd)?;
    let now = me.notification_time(super::now_ms());
    let Some(record) = build(cmd, &me.atsign, &recipient, &me.atsign, now, rng)? else {
        return answered_id(cmd, rng).map(Outgoing::Answered);
    };
    check_delivery_quota(me)?;
    Ok(Outgoing::Queue(Box::new(OutgoingNotification {
        tenant: me.clone(),
        latest: crate::remote::courier::latest_of(&record),
        record,
        recipient,
    })))
}

/// What [`prepare_outgoing`] made of an owner's notification.
#[derive(Debug)]
pub enum Outgoing {
    /// Nothing to store (it had expired already): answer this id.
    Answered(String),
    Queue(Box<OutgoingNotification>),
}

/// A notification to another atServer, as its outbox entry is stored.
#[derive(Debug)]
pub struct OutgoingNotification {
    pub tenant: Arc<Tenant>,
    pub record: NotificationRecord,
    pub recipient: String,
    latest: Option<crate::remote::courier::Latest>,
}

impl OutgoingNotification {
    /// Hands the stored notification to this shard's courier (none in
    /// processes without a directory: it then stays queued in the store).
    pub fn hand_to_courier(&self) {
        if let Some(courier) = crate::remote::courier::of_this_shard() {
            courier.enqueue(
                &self.tenant,
                &self.recipient,
                self.record.id.clone(),
                self.latest.clone(),
            );
        }
    }
}

/// AT0011 once `me` has [`NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX`]
/// notifications waiting for delivery.
fn check_delivery_quota(me: &Tenant) -> Result<(), AtError> {
    if me.queued_deliveries.load(AtomicOrdering::Acquire) >= NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX {
        return Err(AtError::new(
            AtCode::InternalServerException,
            format!(
                "{} has {NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX} notifications waiting for delivery; try again later",
                me.atsign
            ),
        ));
    }
    Ok(())
}

/// The recipient named by the command, normalised.
fn recipient_of(cmd: &Notify<'_>) -> Result<String, AtError> {
    match cmd.target {
        NotifyTarget::AtSign(name) => normalize_atsign(name).map_err(AtError::from),
        NotifyTarget::Public => Err(AtError::new(
            AtCode::Unauthorized,
            "a notification from another atServer must name its recipient",
        )),
    }
}

/// What the sender's command may not combine (changes §6.1, notifications
/// §2.1).
fn check_sending_fields(cmd: &Notify<'_>) -> Result<(), AtError> {
    let syntax = |message: &str| AtError::new(AtCode::InvalidSyntax, message);
    if cmd.strategy == Some(NotifyStrategy::Latest) && cmd.notifier.is_none() {
        return Err(syntax("For Strategy latest, notifier cannot be null"));
    }
    if cmd.e_atn.is_some() && cmd.ttln.is_some() {
        return Err(syntax("notify takes eAtn or ttln, not both"));
    }
    if cmd.eph {
        if cmd.operation == Some(NotifyOp::Delete) {
            return Err(syntax("an ephemeral notification cannot be a delete"));
        }
        if cmd.meta.ttr.is_some() {
            return Err(syntax("an ephemeral notification cannot carry ttr"));
        }
        if cmd.meta.ccd.is_some() {
            return Err(syntax("an ephemeral notification cannot carry ccd"));
        }
    }
    Ok(())
}

/// Stores a notification another atSign of this process sent to `me`
/// (its record as its sender built it), idempotently by id, then applies
/// it as a peer's delivery would be.
async fn ingest_record(
    me: &Arc<Tenant>,
    cmd: &Notify<'_>,
    record: NotificationRecord,
) -> Result<(), AtError> {
    // The recipient's own clock, strictly increasing per atSign.
    let received_at = me.notification_time(super::now_ms());
    let received = received(me, cmd, record, received_at)?;
    if me.store.put_notification(received.record.clone()).await? == Stored::New {
        apply_received(&received).await?;
    }
    Ok(())
}

fn uuid(rng: &ring::rand::SystemRandom) -> Result<String, AtError> {
    Ok(crate::auth::challenge::uuid_v4(rng)?)
}

/// The record of `cmd` from `from` to `to` (as `sent`/`queued`; callers
/// adjust its side), or `None` when it has already expired. Key
/// notifications must be about the keys of `owner_required`.
fn build(
    cmd: &Notify<'_>,
    from: &str,
    to: &str,
    owner_required: &str,
    now: i64,
    rng: &ring::rand::SystemRandom,
) -> Result<Option<NotificationRecord>, AtError> {
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
            // Only about the sender's own keys (the reference does not
            // check on receipt; a peer could otherwise plant copies of keys
            // it does not own).
            let owner = match cmd.owner {
                Some(owner) => normalize_atsign(owner).map_err(AtError::from)?,
                None => owner_required.to_string(),
            };
            if owner != owner_required {
                return Err(AtError::new(
                    AtCode::Unauthorized,
                    format!("{from} is not authorized to send notification as {owner}"),
                ));
            }
            key_of(to, cmd.key, &owner)
        }
        MessageType::Text => format!("{to}:{}", cmd.key),
    };
    let expires_at = match cmd.e_atn {
        Some(at) => {
            let at = parse_iso_utc(at).ok_or_else(|| {
                AtError::new(
                    AtCode::InvalidSyntax,
                    "eAtn must be an ISO-8601 UTC timestamp",
                )
            })?;
            clamp_notification_expiry(now, at)
        }
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
    // Ephemeral notifications live two minutes at most (changes §6.1).
    let expires_at = if cmd.eph {
        expires_at.min(now.saturating_add(NOTIFICATION_EPHEMERAL_LIFETIME_MS))
    } else {
        expires_at
    };
    if expires_at <= now {
        return Ok(None);
    }
    let id = match cmd.id {
        Some(id) => id.to_string(),
        None => uuid(rng)?,
    };
    Ok(Some(NotificationRecord {
        id,
        from_atsign: from.to_string(),
        to_atsign: to.to_string(),
        notification_date_time: now,
        notification: notification.clone(),
        notification_type: NotificationType::Sent,
        op_type,
        message_type,
        priority: match cmd.priority.unwrap_or(WirePriority::Low) {
            WirePriority::Low => Priority::Low,
            WirePriority::Medium => Priority::Medium,
            WirePriority::High => Priority::High,
        },
        notification_status: NotificationStatus::Queued,
        retry_count: 1,
        strategy: match cmd.strategy.unwrap_or(NotifyStrategy::All) {
            NotifyStrategy::All => DeliveryStrategy::All,
            NotifyStrategy::Latest => DeliveryStrategy::Latest,
        },
        notifier: cmd.notifier.unwrap_or("SYSTEM").to_string(),
        depth: u32::try_from(cmd.latest_n.unwrap_or(1)).unwrap_or(u32::MAX),
        at_value: cmd.value.map(str::to_string),
        at_metadata: Some(meta_of(cmd, message_type, op_type, &notification)),
        ttl: cmd.ttln.and_then(|t| i64::try_from(t).ok()),
        expires_at,
    }))
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
fn meta_of(
    cmd: &Notify<'_>,
    message_type: MessageType,
    op_type: OpType,
    key: &str,
) -> NotificationMeta {
    let meta = &cmd.meta;
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
    // ttr and ccd tell the recipient how to cache the key: kept for an
    // update that carries a value, or a delete (notifications.md §2.1).
    let caches = meta.ttr.is_some()
        && match op_type {
            OpType::Update => cmd.value.is_some(),
            OpType::Delete => true,
        };
    NotificationMeta {
        ttl: meta.ttl,
        ttb: meta.ttb,
        ttr: meta.ttr.filter(|_| caches),
        ccd: caches.then(|| meta.ccd.unwrap_or(false)),
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
        created_at: meta.c_at.and_then(parse_iso_utc),
        updated_at: meta.u_at.and_then(parse_iso_utc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(line: &str) -> Notify<'_> {
        let verb = crate::protocol::parse::identify(line).unwrap();
        match crate::protocol::parse::parse(verb, line).unwrap() {
            crate::protocol::command::Command::Notify(n) => n,
            other => panic!("{other:?}"),
        }
    }

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
        let none = notify("notify:@alice:kk@bob:v");
        let update = OpType::Update;
        assert!(meta_of(&none, MessageType::Key, update, "@alice:k@bob").is_encrypted);
        assert!(!meta_of(&none, MessageType::Key, update, "public:k@bob").is_encrypted);
        assert!(!meta_of(&none, MessageType::Text, update, "@alice:hi").is_encrypted);
        let said = notify("notify:ttr:60:isEncrypted:true:@alice:kk@bob:v");
        let text = meta_of(&said, MessageType::Text, update, "@alice:hi");
        assert!(text.is_encrypted);
        assert_eq!(text.ttr, None, "a text message keeps only isEncrypted");
        let key = meta_of(&said, MessageType::Key, update, "@alice:k@bob");
        assert_eq!((key.ttr, key.ccd), (Some(60), Some(false)));
        // Without a value an update does not tell the recipient to cache.
        let bare = notify("notify:ttr:60:@alice:kk@bob");
        let key = meta_of(&bare, MessageType::Key, update, "@alice:k@bob");
        assert_eq!((key.ttr, key.ccd), (None, None));
        let key = meta_of(&bare, MessageType::Key, OpType::Delete, "@alice:k@bob");
        assert_eq!(key.ttr, Some(60));
    }
}
