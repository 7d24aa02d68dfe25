//! `notify:fetch:<id>` (notifications.md §7): the owner reads one stored
//! notification, whole, under the reference's field names.
//!
//! The reference prints every value with Dart's `toString()`; so does this
//! server for values that exist (`"retryCount":"1"`,
//! `"type":"NotificationType.received"`, dates as Dart prints them), since
//! those are what a client of the reference parses. Where it improves the
//! shape: an absent value is JSON `null` rather than the string `"null"`,
//! `atMetadata` is a JSON object (native types, absent fields left out)
//! rather than a Dart map printout, and `notificationStatus` says `expired`
//! once the notification is past its expiry, as `notify:status` does. An
//! unknown id reads as expired, as in the reference.

use super::notification_json::message_type_name;
use super::{Reply, now_ms};
use crate::connection::Owner;
use crate::error::AtError;
use crate::protocol::command::NotifyId;
use crate::protocol::json::ObjectWriter;
use crate::protocol::time::format_dart_utc;
use crate::storage::{
    DeliveryStrategy, NotificationMeta, NotificationRecord, NotificationType, OpType, Priority,
    ReportedStatus,
};

pub fn apply(owner: &Owner, cmd: NotifyId<'_>, payload: &mut String) -> Result<Reply, AtError> {
    match owner.tenant().store.notification(cmd.id)? {
        Some(record) => write_record(&record, record.reported_status(now_ms()), payload),
        None => {
            let mut obj = ObjectWriter::new(payload);
            obj.field_str("id", cmd.id)
                .field_str("notificationStatus", status_name(ReportedStatus::Expired));
            obj.finish();
        }
    }
    Ok(Reply::Data)
}

/// The stored record under the reference's names, in its order.
fn write_record(record: &NotificationRecord, status: ReportedStatus, out: &mut String) {
    let mut obj = ObjectWriter::new(out);
    obj.field_str("id", &record.id)
        .field_str("fromAtSign", &record.from_atsign)
        .field_str(
            "notificationDateTime",
            &format_dart_utc(record.notification_date_time),
        )
        .field_str("toAtSign", &record.to_atsign)
        .field_str("notification", &record.notification)
        .field_str("type", type_name(record.notification_type))
        .field_str("opType", op_name(record.op_type))
        .field_str("messageType", message_type_name(record.message_type))
        .field_str("priority", priority_name(record.priority))
        .field_str("notificationStatus", status_name(status))
        .field_str("retryCount", &record.retry_count.to_string())
        .field_str("strategy", strategy_name(record.strategy))
        .field_str("depth", &record.depth.to_string())
        .field_str("notifier", &record.notifier)
        .field_str("expiresAt", &format_dart_utc(record.expires_at));
    match &record.at_value {
        Some(value) => obj.field_str("atValue", value),
        None => obj.field_raw("atValue", "null"),
    };
    match &record.at_metadata {
        Some(meta) => {
            let mut metadata = String::new();
            write_meta(meta, &mut metadata);
            obj.field_raw("atMetadata", &metadata)
        }
        None => obj.field_raw("atMetadata", "null"),
    };
    match record.ttl {
        Some(ttl) => obj.field_str("ttl", &ttl.to_string()),
        None => obj.field_raw("ttl", "null"),
    };
    obj.finish();
}

/// The notified key's metadata as a JSON object under the names
/// `llookup:meta` uses, absent fields left out (as the reference removes
/// its nulls).
fn write_meta(meta: &NotificationMeta, out: &mut String) {
    let mut obj = ObjectWriter::new(out);
    for (name, at) in [
        ("createdAt", meta.created_at),
        ("updatedAt", meta.updated_at),
    ] {
        if let Some(at) = at {
            obj.field_str(name, &format_dart_utc(at));
        }
    }
    for (name, value) in [("ttl", meta.ttl), ("ttb", meta.ttb), ("ttr", meta.ttr)] {
        if let Some(value) = value {
            obj.field_i64(name, value);
        }
    }
    if let Some(ccd) = meta.ccd {
        obj.field_bool("ccd", ccd);
    }
    obj.field_bool("isBinary", meta.is_binary)
        .field_bool("isEncrypted", meta.is_encrypted);
    let texts = [
        ("dataSignature", &meta.data_signature),
        ("sharedKeyEnc", &meta.shared_key_enc),
        ("pubKeyCS", &meta.pub_key_cs),
        ("pubKeyHash", &meta.pub_key_hash),
        ("encoding", &meta.encoding),
        ("encKeyName", &meta.enc_key_name),
        ("encAlgo", &meta.enc_algo),
        ("ivNonce", &meta.iv_nonce),
        ("skeEncKeyName", &meta.ske_enc_key_name),
        ("skeEncAlgo", &meta.ske_enc_algo),
        ("appMetadata", &meta.app_metadata),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            obj.field_str(name, value);
        }
    }
    obj.finish();
}

// The Dart enum names the reference prints.

fn type_name(notification_type: NotificationType) -> &'static str {
    match notification_type {
        NotificationType::Sent => "NotificationType.sent",
        NotificationType::Received => "NotificationType.received",
        NotificationType::SelfNotification => "NotificationType.self",
    }
}

fn op_name(op: OpType) -> &'static str {
    match op {
        OpType::Update => "OperationType.update",
        OpType::Delete => "OperationType.delete",
    }
}

fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "NotificationPriority.low",
        Priority::Medium => "NotificationPriority.medium",
        Priority::High => "NotificationPriority.high",
    }
}

fn status_name(status: ReportedStatus) -> &'static str {
    match status {
        ReportedStatus::Queued => "NotificationStatus.queued",
        ReportedStatus::Delivered => "NotificationStatus.delivered",
        ReportedStatus::Errored => "NotificationStatus.errored",
        ReportedStatus::Expired => "NotificationStatus.expired",
    }
}

/// The reference's strategy texts (it stores them as strings).
fn strategy_name(strategy: DeliveryStrategy) -> &'static str {
    match strategy {
        DeliveryStrategy::All => "all",
        DeliveryStrategy::Latest => "latest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Caller;
    use crate::storage::{MessageType, NotificationStatus};
    use crate::verbs::testing::{notification, owner_of, put};

    /// 2024-10-24 10:00:00.123 UTC.
    const CREATED: i64 = 1_729_764_000_123;

    fn rendered(record: &NotificationRecord, status: ReportedStatus) -> String {
        let mut out = String::new();
        write_record(record, status, &mut out);
        out
    }

    #[test]
    fn a_record_has_the_reference_names_and_dart_printed_values() {
        let mut record = notification("n1", "@bob", "@alice", NotificationType::Received, CREATED);
        record.ttl = Some(900_000);
        record.at_metadata = Some(NotificationMeta {
            ttr: Some(-1),
            ccd: Some(false),
            is_encrypted: true,
            enc_key_name: Some("k\"1".into()),
            ..NotificationMeta::default()
        });
        assert_eq!(
            rendered(&record, ReportedStatus::Delivered),
            concat!(
                r#"{"id":"n1","fromAtSign":"@bob","notificationDateTime":"2024-10-24 10:00:00.123Z","#,
                r#""toAtSign":"@alice","notification":"@alice:phone.wavi@bob","#,
                r#""type":"NotificationType.received","opType":"OperationType.update","#,
                r#""messageType":"MessageType.key","priority":"NotificationPriority.low","#,
                r#""notificationStatus":"NotificationStatus.delivered","retryCount":"1","#,
                r#""strategy":"all","depth":"1","notifier":"SYSTEM","#,
                r#""expiresAt":"2024-10-24 11:00:00.123Z","atValue":"v","#,
                r#""atMetadata":{"ttr":-1,"ccd":false,"isBinary":false,"isEncrypted":true,"encKeyName":"k\"1"},"#,
                r#""ttl":"900000"}"#
            )
        );
    }

    #[test]
    fn absent_values_are_null_and_other_enums_print_their_dart_names() {
        let mut record = notification("n2", "@alice", "@bob", NotificationType::Sent, CREATED);
        record.at_value = None;
        record.op_type = OpType::Delete;
        record.message_type = MessageType::Text;
        record.priority = Priority::High;
        record.strategy = DeliveryStrategy::Latest;
        record.notification_status = NotificationStatus::Queued;
        let out = rendered(&record, ReportedStatus::Expired);
        for part in [
            r#""type":"NotificationType.sent""#,
            r#""opType":"OperationType.delete""#,
            r#""messageType":"MessageType.text""#,
            r#""priority":"NotificationPriority.high""#,
            r#""notificationStatus":"NotificationStatus.expired""#,
            r#""strategy":"latest""#,
            r#""atValue":null,"atMetadata":null,"ttl":null}"#,
        ] {
            assert!(out.contains(part), "{part} in {out}");
        }
        let self_made = NotificationRecord {
            notification_type: NotificationType::SelfNotification,
            priority: Priority::Medium,
            ..record
        };
        let out = rendered(&self_made, ReportedStatus::Errored);
        assert!(out.contains(r#""type":"NotificationType.self""#), "{out}");
        assert!(out.contains(r#""priority":"NotificationPriority.medium""#));
        assert!(out.contains(r#""notificationStatus":"NotificationStatus.errored""#));
    }

    #[test]
    fn the_owner_fetches_a_stored_record_and_an_unknown_id_reads_expired() {
        let tenant = crate::context::testing::tenant("@fetched");
        let record = notification(
            "f1",
            "@bob",
            "@fetched",
            NotificationType::Received,
            now_ms(),
        );
        put(&tenant, record.clone());
        let Caller::Owner(owner) = owner_of(&tenant) else {
            panic!("an owner");
        };
        let mut payload = String::new();
        apply(&owner, NotifyId { id: "f1" }, &mut payload).expect("fetched");
        assert_eq!(payload, rendered(&record, ReportedStatus::Delivered));
        payload.clear();
        apply(&owner, NotifyId { id: "gone" }, &mut payload).expect("answered");
        assert_eq!(
            payload,
            r#"{"id":"gone","notificationStatus":"NotificationStatus.expired"}"#
        );
        payload.clear();
        apply(&owner, NotifyId { id: "a\"b" }, &mut payload).expect("answered");
        assert_eq!(
            payload, r#"{"id":"a\"b","notificationStatus":"NotificationStatus.expired"}"#,
            "the id is escaped"
        );
    }
}
