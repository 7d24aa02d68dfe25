//! `stats[:<id>[,<id>…]][:<regex>]`: server metrics, answered as
//! `data: [{"id":"3","name":"lastCommitID","value":"42"}, …]` (note the
//! space after `data:` and the `", "` separators).

use std::fmt::Write as _;

use super::Reply;
use crate::connection::Owner;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::limits::STATS_IDS_MAX;
use crate::protocol::command::Stats;
use crate::protocol::json::{self, ObjectWriter};
use crate::protocol::time::format_dart_utc;
use std::sync::atomic::Ordering;

/// The metric ids this server reports, in the order plain `stats` lists them.
/// 5 and 6 (top atSigns and keys) need the access log, which comes later;
/// 11 counts notifications, which come later too.
const AVAILABLE_IDS: [u32; 11] = [1, 2, 3, 4, 7, 8, 9, 10, 12, 13, 14];

/// Ids answered only when asked for: `stats:15` walks the whole commit log.
const ON_REQUEST_IDS: [u32; 1] = [15];

pub fn apply(
    server: &ServerContext,
    owner: &Owner,
    cmd: Stats<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let tenant = owner.tenant();
    let ids = requested_ids(&cmd.ids)?;
    let regex = match cmd.regex {
        Some(text) => Some(super::pattern::compile(text)?),
        None => None,
    };
    payload.push('[');
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            payload.push_str(", ");
        }
        let mut value = String::new();
        let name = match id {
            1 => {
                json::write_str(&mut value, &server.active_connections().to_string());
                "activeInboundConnections"
            }
            2 => {
                json::write_str(&mut value, "0");
                "activeOutboundConnections"
            }
            3 => {
                // With a regex: the newest entry a sync with that regex
                // would send (always-synced keys included); without, the
                // last id issued, which never goes down.
                let restricted = cmd.regex.is_some() || owner.enrollment().is_some();
                let last = if restricted {
                    let filter = super::sync_from::SyncFilter::new(cmd.regex)?.for_owner(owner);
                    tenant.store.latest_commit_where(|key| filter.syncs(key))?
                } else {
                    tenant.store.last_commit_id()?
                };
                json::write_str(&mut value, &last_commit_text(last));
                "lastCommitID"
            }
            4 => {
                let _ = write!(value, "{}", tenant.store.disk_bytes());
                "secondaryStorageSize"
            }
            7 => {
                json::write_str(&mut value, crate::context::PROTOCOL_VERSION);
                "secondaryServerVersion"
            }
            8 => {
                let at = tenant.last_login_ms.load(Ordering::Relaxed);
                json::write_str(&mut value, &date_or_not_available(at));
                "LastLoggedInDatetime"
            }
            9 => {
                json::write_str(&mut value, &disk_size_json(tenant.store.disk_bytes()));
                "diskSize"
            }
            10 => {
                let at = tenant.last_pkam_ms.load(Ordering::Relaxed);
                json::write_str(&mut value, &date_or_not_available(at));
                "LastPkam"
            }
            12 => {
                json::write_str(&mut value, "{}");
                "CommitLogCompactionStats"
            }
            13 => {
                json::write_str(&mut value, "{}");
                "AccessLogCompactionStats"
            }
            14 => {
                json::write_str(&mut value, "{}");
                "NotificationCompactionStats"
            }
            15 => {
                let entries = match &regex {
                    Some(r) => tenant.store.latest_commit_per_key(|key| r.is_match(key))?,
                    None => tenant.store.latest_commit_per_key(|_| true)?,
                };
                let mut map = String::new();
                let mut obj = ObjectWriter::new(&mut map);
                for (key, id, op) in &entries {
                    let mut pair = String::new();
                    let _ = write!(pair, "[{id},");
                    json::write_str(&mut pair, op.symbol());
                    pair.push(']');
                    obj.field_raw(key, &pair);
                }
                obj.finish();
                json::write_str(&mut value, &map);
                "LatestCommitEntryOfEachKey"
            }
            other => {
                return Err(AtError::new(
                    AtCode::InvalidSyntax,
                    format!(
                        "stats id {other} is not available on this server (available: {AVAILABLE_IDS:?} and, on request, {ON_REQUEST_IDS:?})"
                    ),
                ));
            }
        };
        let mut obj = ObjectWriter::new(payload);
        obj.field_str("id", &id.to_string());
        obj.field_str("name", name);
        obj.field_raw("value", &value);
        obj.finish();
    }
    payload.push(']');
    Ok(Reply::DataSpaced)
}

/// The ids to answer, in the order first asked for, each once: a request
/// repeating an id (`stats:3,3,3,…` fills a 10 MB line) gets one answer per
/// distinct id. No ids means every available one.
fn requested_ids(asked: &[u32]) -> Result<Vec<u32>, AtError> {
    if asked.is_empty() {
        return Ok(AVAILABLE_IDS.to_vec());
    }
    let mut ids: Vec<u32> = Vec::new();
    for &id in asked {
        if !ids.contains(&id) {
            if ids.len() == STATS_IDS_MAX {
                return Err(AtError::new(
                    AtCode::InvalidSyntax,
                    format!("stats takes at most {STATS_IDS_MAX} distinct ids"),
                ));
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A Dart UTC date, or the reference's `Not Available` when nothing happened
/// since start.
fn date_or_not_available(epoch_ms: i64) -> String {
    if epoch_ms > 0 {
        format_dart_utc(epoch_ms)
    } else {
        "Not Available".to_string()
    }
}

/// The `lastCommitID` value: the id, or for an empty log (or none matching)
/// "-1", as 3.16.6 answers (clients accept "null" too). A started server's
/// log is never empty: every atSign's first start commits its signing key
/// pair.
fn last_commit_text(last: Option<u64>) -> String {
    last.map_or_else(|| "-1".to_string(), |id| id.to_string())
}

/// `{"size":"1.20","units":"MB"}`, or `{"size":"0","unit":"B"}` when empty
/// (the reference's two spellings).
fn disk_size_json(bytes: u64) -> String {
    if bytes == 0 {
        return r#"{"size":"0","unit":"B"}"#.to_string();
    }
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!(r#"{{"size":"{size:.2}","units":"{}"}}"#, units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_are_answered_once_and_distinct_ids_are_capped() {
        assert_eq!(requested_ids(&[3, 3, 1, 3, 1]).ok(), Some(vec![3, 1]));
        assert_eq!(requested_ids(&[]).ok(), Some(AVAILABLE_IDS.to_vec()));
        assert_eq!(requested_ids(&[7; 100_000]).ok(), Some(vec![7]));
        let many: Vec<u32> = (0..=STATS_IDS_MAX as u32).collect();
        assert_eq!(
            requested_ids(&many).map_err(|e| e.code),
            Err(AtCode::InvalidSyntax)
        );
    }

    #[test]
    fn an_empty_log_answers_minus_one() {
        assert_eq!(last_commit_text(None), "-1");
        assert_eq!(last_commit_text(Some(0)), "0");
        assert_eq!(last_commit_text(Some(17)), "17");
    }

    #[test]
    fn disk_sizes_use_two_decimals_and_binary_units() {
        assert_eq!(disk_size_json(0), r#"{"size":"0","unit":"B"}"#);
        assert_eq!(disk_size_json(512), r#"{"size":"512.00","units":"B"}"#);
        assert_eq!(disk_size_json(1_258_291), r#"{"size":"1.20","units":"MB"}"#);
    }
}
