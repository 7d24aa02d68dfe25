//! `stats[:<id>[,<id>…]][:<regex>]`: server metrics, answered as
//! `data: [{"id":"3","name":"lastCommitID","value":"42"}, …]` (note the
//! space after `data:` and the `", "` separators).

use std::fmt::Write as _;

use super::{Reply, owner_tenant};
use crate::error::{AtCode, AtError};
use crate::protocol::command::Stats;
use crate::protocol::json::{self, ObjectWriter};
use crate::session::Session;

/// The metric ids this server reports, in the order plain `stats` lists them.
const AVAILABLE_IDS: [u32; 5] = [1, 2, 3, 4, 7];

pub fn apply(
    session: &mut Session,
    cmd: Stats<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let tenant = owner_tenant(session)?;
    let ids: &[u32] = if cmd.ids.is_empty() {
        &AVAILABLE_IDS
    } else {
        &cmd.ids
    };
    let regex = match cmd.regex {
        Some(text) => Some(regex::Regex::new(text).map_err(|e| {
            AtError::new(
                AtCode::InvalidSyntax,
                format!("Invalid regex: {e}").replace('\n', " "),
            )
        })?),
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
                json::write_str(&mut value, &session.ctx.active_connections().to_string());
                "activeInboundConnections"
            }
            2 => {
                json::write_str(&mut value, "0");
                "activeOutboundConnections"
            }
            3 => {
                let last = match &regex {
                    Some(r) => tenant.store.latest_commit_where(|key| r.is_match(key))?,
                    None => tenant.store.last_commit_id()?,
                };
                // 3.16.6: an empty log answers "-1" (clients accept "null" too).
                let text = last.map_or_else(|| "-1".to_string(), |id| id.to_string());
                json::write_str(&mut value, &text);
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
            other => {
                return Err(AtError::new(
                    AtCode::InvalidSyntax,
                    format!(
                        "stats id {other} is not available on this server (available: 1, 2, 3, 4, 7)"
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
