//! `monitor` (notifications.md §6, changes §7): the connection becomes a
//! stream of the owner's notifications and goes on answering commands.
//!
//! [`start`] registers the connection with its atSign's
//! [`MonitorHub`](crate::monitors::MonitorHub) and returns the
//! [`Monitoring`] the session keeps. From then on the session writes, only
//! between whole replies: first the replay of stored notifications newer
//! than the asked epoch-ms, a page per turn; then every line published
//! live; and the stats notification every
//! [`STATS_NOTIFICATION_INTERVAL_MS`]. Lines published while the replay
//! runs are queued and skipped by the replay, so each is written once.
//!
//! [`publish_notification`] and [`publish_stats`] are how the rest of the
//! server hands a notification to the monitors: rendered once, shared by
//! all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notification_json;
use super::pattern;
use crate::connection::Owner;
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::limits::{MONITOR_REPLAY_PAGE_LEN, STATS_NOTIFICATION_INTERVAL_MS};
use crate::monitors::{Drained, Filter, Kind, MonitorHandle, MonitorSignal, Published};
use crate::protocol::command::Monitor;
use crate::storage::{NotificationCursor, NotificationRecord, NotificationType, OpType};

/// The line prefix the reference writes (a space after the colon, no
/// prompt after the line).
const LINE_PREFIX: &str = "notification: ";

/// A connection in monitor mode.
pub struct Monitoring {
    tenant: Arc<Tenant>,
    handle: MonitorHandle,
    /// The stored notifications still to replay, when asked for.
    replay: Option<Replay>,
    next_stats: Instant,
}

struct Replay {
    /// Created strictly after this (epoch ms).
    after_ms: i64,
    /// Where the next page starts; `None` before the first page.
    cursor: Option<NotificationCursor>,
}

/// Registers the owner's connection as a monitor.
pub fn start(owner: &Owner, cmd: Monitor<'_>, now: Instant) -> Result<Monitoring, AtError> {
    let regex = match cmd.regex {
        Some(text) if !matches_everything(text) => {
            Some(owner.tenant().monitors.regex(text, pattern::compile)?)
        }
        _ => None,
    };
    let filter = Filter {
        grant: owner
            .enrollment()
            .map(|enrolled| enrolled.clone() as Arc<dyn crate::monitors::KeyGrant>),
        regex,
        self_notifications: cmd.self_notifications,
        strict: cmd.strict,
    };
    let replay = cmd.epoch_ms.map(|after| Replay {
        after_ms: i64::try_from(after).unwrap_or(i64::MAX),
        cursor: None,
    });
    let handle = owner
        .tenant()
        .monitors
        .subscribe(filter, replay.is_some())
        .map_err(|refused| AtError::new(AtCode::InternalServerException, refused.to_string()))?;
    Ok(Monitoring {
        tenant: owner.tenant().clone(),
        handle,
        replay,
        next_stats: now + Duration::from_millis(STATS_NOTIFICATION_INTERVAL_MS),
    })
}

/// `.*` and friends: no regex to run on every line. (Memory matters too: a
/// compiled regex per monitor, times ten thousand monitors.)
fn matches_everything(text: &str) -> bool {
    matches!(text, ".*" | ".+" | "" | "^.*" | ".*$" | "^.*$")
}

impl Monitoring {
    /// Wakes the connection when a live line is queued.
    pub fn signal(&self) -> MonitorSignal {
        self.handle.signal()
    }

    /// Whether something can be written now without waiting.
    pub fn has_work(&self) -> bool {
        self.replay.is_some() || self.handle.has_lines()
    }

    /// When the next stats notification is due.
    pub fn next_stats(&self) -> Instant {
        self.next_stats
    }

    /// Appends what is due: one page of the replay while it lasts, then the
    /// queued live lines. An error closes the connection: a monitor that
    /// fell too far behind (it reconnects and replays), or a store that
    /// cannot be read.
    pub fn write_due(&mut self, out: &mut Vec<u8>, now_ms: i64) -> Result<(), AtError> {
        if let Some(replay) = self.replay.as_mut() {
            let page = match &replay.cursor {
                None => self
                    .tenant
                    .store
                    .notifications_after(replay.after_ms, MONITOR_REPLAY_PAGE_LEN),
                Some(cursor) => self
                    .tenant
                    .store
                    .notifications_page(Some(cursor), MONITOR_REPLAY_PAGE_LEN),
            }
            .map_err(AtError::from)?;
            let filter = self.handle.filter();
            let mut json = String::new();
            for record in &page {
                if replays(filter, record, now_ms) && !self.handle.arrived_live(&record.id) {
                    json.clear();
                    render_line(record, &mut json);
                    out.extend_from_slice(json.as_bytes());
                }
            }
            match page.last() {
                Some(last) if page.len() == MONITOR_REPLAY_PAGE_LEN => {
                    replay.cursor = Some(NotificationCursor::after(last));
                    return Ok(());
                }
                _ => {
                    self.replay = None;
                    self.handle.replay_done();
                }
            }
        }
        match self.handle.drain(out) {
            Drained::Lines(_) => Ok(()),
            Drained::Overflowed => Err(AtError::new(
                AtCode::BufferLimit,
                "the monitor fell too far behind its notifications; reconnect and replay from the last epochMillis read",
            )
            .closing()),
        }
    }

    /// Appends the stats notification (unless a strict monitor's regex
    /// does not take it) and schedules the next one.
    pub fn write_stats(&mut self, out: &mut Vec<u8>, now: Instant, now_ms: i64) {
        self.next_stats = now + Duration::from_millis(STATS_NOTIFICATION_INTERVAL_MS);
        let atsign = &self.tenant.atsign;
        if !self.handle.filter().takes_stats(&stats_key(atsign), atsign) {
            return;
        }
        // An unreadable commit log shows as "-1" here; stats:3 reports it.
        let last = self.tenant.store.last_commit_id().ok().flatten();
        out.extend_from_slice(stats_line(atsign, last, OpType::Update, now_ms).as_bytes());
    }
}

/// Whether a stored notification belongs in a replay: received (or made by
/// the server, when asked for), not expired, its key matching (the replay
/// matches keys only, changes §7).
fn replays(filter: &Filter, record: &NotificationRecord, now_ms: i64) -> bool {
    let kind_wanted = match record.notification_type {
        NotificationType::Received => true,
        NotificationType::SelfNotification => filter.self_notifications,
        NotificationType::Sent => false,
    };
    kind_wanted
        && filter.sees(&record.notification)
        && !record.is_expired(now_ms)
        && filter
            .regex
            .as_ref()
            .is_none_or(|r| r.is_match(&record.notification))
}

fn render_line(record: &NotificationRecord, out: &mut String) {
    out.push_str(LINE_PREFIX);
    notification_json::write_notification(record, out);
    out.push('\n');
}

fn stats_key(atsign: &str) -> String {
    format!("statsNotification.{atsign}")
}

fn stats_line(atsign: &str, last: Option<u64>, op: OpType, now_ms: i64) -> String {
    let mut line = String::from(LINE_PREFIX);
    notification_json::write_stats_notification(atsign, last, op, now_ms, &mut line);
    line.push('\n');
    line
}

/// Hands a notification just stored for `tenant` to its monitors.
pub fn publish_notification(tenant: &Tenant, record: &NotificationRecord) {
    if !tenant.monitors.has_monitors() {
        return;
    }
    let kind = match record.notification_type {
        NotificationType::Received => Kind::Received,
        NotificationType::SelfNotification => Kind::SelfNotification,
        NotificationType::Sent => return,
    };
    let mut line = String::new();
    render_line(record, &mut line);
    tenant.monitors.publish(&Published {
        id: &record.id,
        kind,
        key: &record.notification,
        from: &record.from_atsign,
        line: Arc::from(line.into_bytes()),
    });
}

/// Tells `tenant`'s monitors the latest commit id after a write (`op` is
/// what the write did), as the reference does after every update and
/// delete.
pub fn publish_stats(tenant: &Tenant, op: OpType) {
    if !tenant.monitors.has_monitors() {
        return;
    }
    let last = tenant.store.last_commit_id().ok().flatten();
    let line = stats_line(&tenant.atsign, last, op, super::now_ms());
    let key = stats_key(&tenant.atsign);
    tenant.monitors.publish(&Published {
        id: "-1",
        kind: Kind::Stats,
        key: &key,
        from: &tenant.atsign,
        line: Arc::from(line.into_bytes()),
    });
}
