//! The JSON object of a notification as clients read it: one shape for a
//! monitor's live lines, its replay and `notify:list` (notifications.md §6,
//! changes-since §7), and the stats notification monitors get after writes.
//!
//! Monitor lines are framed by `\n`, so nothing here may write a raw
//! newline: every text goes through [`crate::protocol::json::write_str`], which escapes
//! control characters, and the rest are numbers, booleans and literals.

use crate::protocol::json::ObjectWriter;
use crate::protocol::time::format_dart_utc;
use crate::storage::{MessageType, NotificationMeta, NotificationRecord, OpType};

/// The JSON object of a notification, as monitor lines and notify:list write it.
///
/// `{"id","from","to","key","value","operation","epochMillis","messageType",
/// "isEncrypted","metadata":{…},"expiresAt"}`. `metadata` is the union of
/// every shape the reference has written (live, replay, list, later
/// versions), so each client finds the fields it looks for. The top-level
/// `expiresAt` is epoch milliseconds: the Dart client reads it as an `int`.
pub fn write_notification(record: &NotificationRecord, out: &mut String) {
    // A record stored without metadata still gets the full metadata object,
    // all null, as the reference writes it.
    let no_meta;
    let meta = match &record.at_metadata {
        Some(meta) => meta,
        None => {
            no_meta = NotificationMeta::default();
            &no_meta
        }
    };
    let mut metadata = String::new();
    write_client_metadata(meta, record.expires_at, &mut metadata);
    let mut obj = ObjectWriter::new(out);
    obj.field_str("id", &record.id)
        .field_str("from", &record.from_atsign)
        .field_str("to", &record.to_atsign)
        .field_str("key", &record.notification);
    field_opt_str(&mut obj, "value", record.at_value.as_deref());
    obj.field_str("operation", operation_name(record.op_type))
        .field_i64("epochMillis", record.notification_date_time)
        .field_str("messageType", message_type_name(record.message_type))
        .field_bool("isEncrypted", meta.is_encrypted)
        .field_raw("metadata", &metadata)
        .field_i64("expiresAt", record.expires_at);
    obj.finish();
}

/// The stats notification (id "-1") the reference writes to monitors: value = latest commit id or "-1".
///
/// The Dart client's sync service watches for its value to move. `op` is
/// [`OpType::Delete`] after a delete, else [`OpType::Update`]; `metadata`
/// is `null`.
pub fn write_stats_notification(
    atsign: &str,
    last_commit_id: Option<u64>,
    op: OpType,
    epoch_ms: i64,
    out: &mut String,
) {
    // Unlike `stats:3`, which says "null", an empty commit log is "-1" here.
    let value = match last_commit_id {
        Some(id) => id.to_string(),
        None => "-1".to_string(),
    };
    let mut obj = ObjectWriter::new(out);
    obj.field_str("id", "-1")
        .field_str("from", atsign)
        .field_str("to", atsign)
        .field_str("key", &format!("statsNotification.{atsign}"))
        .field_str("value", &value)
        .field_str("operation", operation_name(op))
        .field_i64("epochMillis", epoch_ms)
        .field_str("messageType", message_type_name(MessageType::Key))
        .field_bool("isEncrypted", false)
        .field_raw("metadata", "null");
    obj.finish();
}

/// The `metadata` object. Absent texts and numbers are JSON `null`;
/// `availableAt` and `expiresAt` are Dart date strings or the string
/// `"null"`, as the reference prints them. A notification carries no
/// availability time of its own, so `availableAt` is always `"null"`, and
/// `expiresAt` is the notification's own expiry (the reference's fallback
/// when the metadata has none, which ours never has).
fn write_client_metadata(meta: &NotificationMeta, expires_at: i64, out: &mut String) {
    let mut obj = ObjectWriter::new(out);
    let texts = [
        ("sharedKeyEnc", &meta.shared_key_enc),
        ("pubKeyCS", &meta.pub_key_cs),
        ("dataSignature", &meta.data_signature),
        ("encKeyName", &meta.enc_key_name),
        ("encAlgo", &meta.enc_algo),
        ("ivNonce", &meta.iv_nonce),
        ("skeEncKeyName", &meta.ske_enc_key_name),
        ("skeEncAlgo", &meta.ske_enc_algo),
    ];
    for (name, value) in texts {
        field_opt_str(&mut obj, name, value.as_deref());
    }
    obj.field_str("availableAt", "null")
        .field_str("expiresAt", &format_dart_utc(expires_at));
    match &meta.pub_key_hash {
        // The client decodes this field a second time: it is a JSON object
        // inside a string. The store keeps the hash alone (the algorithm
        // is not carried with a notification), so the object has one field.
        Some(hash) => {
            let mut inner = String::new();
            let mut hash_obj = ObjectWriter::new(&mut inner);
            hash_obj.field_str("hash", hash);
            hash_obj.finish();
            obj.field_str("pubKeyHash", &inner);
        }
        None => {
            obj.field_raw("pubKeyHash", "null");
        }
    }
    // Base64 of a JSON object, as `update` keeps it; the client decodes
    // either that or a map.
    field_opt_str(&mut obj, "appMetadata", meta.app_metadata.as_deref());
    for (name, value) in [("ttl", meta.ttl), ("ttb", meta.ttb), ("ttr", meta.ttr)] {
        match value {
            Some(v) => obj.field_i64(name, v),
            None => obj.field_raw(name, "null"),
        };
    }
    match meta.ccd {
        Some(ccd) => obj.field_bool("ccd", ccd),
        None => obj.field_raw("ccd", "null"),
    };
    obj.field_bool("isBinary", meta.is_binary);
    field_opt_str(&mut obj, "encoding", meta.encoding.as_deref());
    obj.finish();
}

/// A string field, or `null` when there is none.
fn field_opt_str(obj: &mut ObjectWriter<'_>, name: &str, value: Option<&str>) {
    match value {
        Some(v) => obj.field_str(name, v),
        None => obj.field_raw(name, "null"),
    };
}

/// `operation` as clients compare it.
fn operation_name(op: OpType) -> &'static str {
    match op {
        OpType::Update => "update",
        OpType::Delete => "delete",
    }
}

/// `messageType` as Dart prints its enum; clients test `contains('text')`.
pub(super) fn message_type_name(message_type: MessageType) -> &'static str {
    match message_type {
        MessageType::Key => "MessageType.key",
        MessageType::Text => "MessageType.text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::{self, JsonValue};
    use proptest::prelude::*;

    /// 2024-10-24 10:00:00.123 UTC.
    const CREATED: i64 = 1_729_764_000_123;

    fn record() -> NotificationRecord {
        NotificationRecord {
            at_value: Some("QmFzZTY0".into()),
            at_metadata: Some(NotificationMeta {
                ttr: Some(-1),
                ccd: Some(true),
                is_encrypted: true,
                shared_key_enc: Some("skE".into()),
                enc_key_name: Some("k1".into()),
                pub_key_hash: Some("ab12".into()),
                ..NotificationMeta::default()
            }),
            ttl: Some(60_000),
            ..NotificationRecord::received(
                "n1",
                "@bob",
                "@alice",
                "@alice:phone.wavi@bob".into(),
                CREATED,
                CREATED + 60_000,
            )
        }
    }

    fn rendered(record: &NotificationRecord) -> String {
        let mut out = String::new();
        write_notification(record, &mut out);
        out
    }

    #[test]
    fn a_notification_has_the_client_shape_with_the_union_of_metadata() {
        assert_eq!(
            rendered(&record()),
            concat!(
                r#"{"id":"n1","from":"@bob","to":"@alice","key":"@alice:phone.wavi@bob","#,
                r#""value":"QmFzZTY0","operation":"update","epochMillis":1729764000123,"#,
                r#""messageType":"MessageType.key","isEncrypted":true,"metadata":{"#,
                r#""sharedKeyEnc":"skE","pubKeyCS":null,"dataSignature":null,"encKeyName":"k1","#,
                r#""encAlgo":null,"ivNonce":null,"skeEncKeyName":null,"skeEncAlgo":null,"#,
                r#""availableAt":"null","expiresAt":"2024-10-24 10:01:00.123Z","#,
                r#""pubKeyHash":"{\"hash\":\"ab12\"}","appMetadata":null,"ttl":null,"ttb":null,"#,
                r#""ttr":-1,"ccd":true,"isBinary":false,"encoding":null},"#,
                r#""expiresAt":1729764060123}"#
            )
        );
    }

    #[test]
    fn a_text_without_metadata_or_value_has_null_fields() {
        let text = NotificationRecord {
            notification: "@alice:aGVsbG8=".into(),
            op_type: OpType::Delete,
            message_type: MessageType::Text,
            at_value: None,
            at_metadata: None,
            ..record()
        };
        assert_eq!(
            rendered(&text),
            concat!(
                r#"{"id":"n1","from":"@bob","to":"@alice","key":"@alice:aGVsbG8=","#,
                r#""value":null,"operation":"delete","epochMillis":1729764000123,"#,
                r#""messageType":"MessageType.text","isEncrypted":false,"metadata":{"#,
                r#""sharedKeyEnc":null,"pubKeyCS":null,"dataSignature":null,"encKeyName":null,"#,
                r#""encAlgo":null,"ivNonce":null,"skeEncKeyName":null,"skeEncAlgo":null,"#,
                r#""availableAt":"null","expiresAt":"2024-10-24 10:01:00.123Z","#,
                r#""pubKeyHash":null,"appMetadata":null,"ttl":null,"ttb":null,"#,
                r#""ttr":null,"ccd":null,"isBinary":false,"encoding":null},"#,
                r#""expiresAt":1729764060123}"#
            )
        );
    }

    #[test]
    fn stats_notifications_have_the_reference_shape() {
        let mut out = String::new();
        write_stats_notification("@alice", Some(42), OpType::Update, CREATED, &mut out);
        assert_eq!(
            out,
            concat!(
                r#"{"id":"-1","from":"@alice","to":"@alice","key":"statsNotification.@alice","#,
                r#""value":"42","operation":"update","epochMillis":1729764000123,"#,
                r#""messageType":"MessageType.key","isEncrypted":false,"metadata":null}"#
            )
        );
        out.clear();
        write_stats_notification("@alice", None, OpType::Delete, 5, &mut out);
        assert_eq!(
            out,
            concat!(
                r#"{"id":"-1","from":"@alice","to":"@alice","key":"statsNotification.@alice","#,
                r#""value":"-1","operation":"delete","epochMillis":5,"#,
                r#""messageType":"MessageType.key","isEncrypted":false,"metadata":null}"#
            )
        );
    }

    #[test]
    fn quotes_backslashes_and_control_characters_are_escaped() {
        let odd = NotificationRecord {
            notification: "@alice:a\"b\\c\nd\re\u{1}@bob".into(),
            at_value: Some("line1\nline2\u{2028}é".into()),
            ..record()
        };
        let out = rendered(&odd);
        assert!(
            out.contains(r#""key":"@alice:a\"b\\c\nd\re\u0001@bob""#),
            "{out}"
        );
        assert!(
            out.contains("\"value\":\"line1\\nline2\u{2028}é\""),
            "{out}"
        );
        assert!(!out.contains('\n') && !out.contains('\r'));
    }

    /// Any text, control characters and all.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect())
    }

    fn any_record() -> impl Strategy<Value = NotificationRecord> {
        (
            (text(), text(), text(), text()),
            proptest::option::of(text()),
            proptest::option::of((
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(any::<i64>()),
                proptest::option::of(any::<bool>()),
                any::<bool>(),
            )),
            (any::<i64>(), any::<i64>(), any::<bool>()),
        )
            .prop_map(
                |((id, from, to, key), value, meta, (created, expires, text_message))| {
                    let at_metadata = meta.map(|(enc, app, ttr, ccd, binary)| NotificationMeta {
                        shared_key_enc: enc.clone(),
                        iv_nonce: enc,
                        app_metadata: app.clone(),
                        pub_key_hash: app,
                        ttr,
                        ccd,
                        is_binary: binary,
                        ..NotificationMeta::default()
                    });
                    NotificationRecord {
                        id,
                        from_atsign: from,
                        to_atsign: to,
                        notification: key,
                        at_value: value,
                        at_metadata,
                        notification_date_time: created,
                        expires_at: expires,
                        message_type: if text_message {
                            MessageType::Text
                        } else {
                            MessageType::Key
                        },
                        ..record()
                    }
                },
            )
    }

    fn text_at<'v>(value: &'v JsonValue, key: &str) -> Option<&'v str> {
        match value.get(key) {
            Some(JsonValue::String(s)) => Some(s),
            _ => None,
        }
    }

    proptest! {
        /// Every record renders to one line of JSON that parses back to
        /// the texts and numbers it was made from.
        #[test]
        fn any_record_renders_to_one_line_of_json_that_reads_back(record in any_record()) {
            let out = rendered(&record);
            prop_assert!(!out.contains('\n') && !out.contains('\r'), "{}", out);
            let parsed = json::parse(&out).map_err(|e| TestCaseError::fail(format!("{e:?}: {out}")))?;
            prop_assert_eq!(text_at(&parsed, "id"), Some(record.id.as_str()));
            prop_assert_eq!(text_at(&parsed, "from"), Some(record.from_atsign.as_str()));
            prop_assert_eq!(text_at(&parsed, "to"), Some(record.to_atsign.as_str()));
            prop_assert_eq!(text_at(&parsed, "key"), Some(record.notification.as_str()));
            prop_assert_eq!(text_at(&parsed, "value"), record.at_value.as_deref());
            prop_assert_eq!(
                parsed.get("epochMillis"),
                Some(&JsonValue::Int(record.notification_date_time))
            );
            prop_assert_eq!(parsed.get("expiresAt"), Some(&JsonValue::Int(record.expires_at)));
            let metadata = parsed.get("metadata");
            let meta = record.at_metadata.clone().unwrap_or_default();
            prop_assert_eq!(
                metadata.and_then(|m| text_at(m, "sharedKeyEnc")),
                meta.shared_key_enc.as_deref()
            );
            prop_assert_eq!(
                metadata.and_then(|m| text_at(m, "appMetadata")),
                meta.app_metadata.as_deref()
            );
            // The hash is a JSON object inside a string, read twice.
            let hash = metadata
                .and_then(|m| text_at(m, "pubKeyHash"))
                .and_then(|inner| json::parse(inner).ok());
            prop_assert_eq!(
                hash.as_ref().and_then(|h| text_at(h, "hash")),
                meta.pub_key_hash.as_deref()
            );
        }

        #[test]
        fn any_stats_notification_renders_to_one_line_of_json(
            atsign in text(),
            last in proptest::option::of(any::<u64>()),
            at in any::<i64>(),
        ) {
            let mut out = String::new();
            write_stats_notification(&atsign, last, OpType::Update, at, &mut out);
            prop_assert!(!out.contains('\n'), "{}", out);
            let parsed = json::parse(&out).map_err(|e| TestCaseError::fail(format!("{e:?}: {out}")))?;
            let value = last.map_or("-1".to_string(), |id| id.to_string());
            prop_assert_eq!(text_at(&parsed, "value"), Some(value.as_str()));
            prop_assert_eq!(parsed.get("metadata"), Some(&JsonValue::Null));
        }
    }
}
