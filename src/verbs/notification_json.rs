//! Placeholder until the notification JSON shapes land (branch notify-query).

use crate::storage::{NotificationRecord, OpType};

pub fn write_notification(record: &NotificationRecord, out: &mut String) {
    let mut w = crate::protocol::json::ObjectWriter::new(out);
    w.field_str("id", &record.id)
        .field_str("from", &record.from_atsign)
        .field_str("to", &record.to_atsign)
        .field_str("key", &record.notification)
        .field_i64("epochMillis", record.notification_date_time);
    w.finish();
}

pub fn write_stats_notification(
    atsign: &str,
    last_commit_id: Option<u64>,
    op: OpType,
    epoch_ms: i64,
    out: &mut String,
) {
    let _ = (last_commit_id, op, epoch_ms);
    let mut w = crate::protocol::json::ObjectWriter::new(out);
    w.field_str("id", "-1").field_str("from", atsign);
    w.finish();
}
