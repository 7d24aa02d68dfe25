//! `notify:list[:<from yyyy-mm-dd>[:<to yyyy-mm-dd>]][:<regex>]`
//! (notifications.md §7): stored, unexpired notifications as a JSON list in
//! the monitor's shape ([`super::notification_json`]), oldest first, or
//! `data:null` when there are none.
//!
//! Who sees what:
//! - the owner: what this atSign received (from peers, from itself, and
//!   the server's own notifications to it);
//! - another atServer, pol-authenticated as @bob: what this atSign sent to
//!   @bob (so @bob's server can see what is still queued for it);
//! - anybody else: nothing.
//!
//! `from` is the start of that UTC day, `to` the end of its day (now when
//! absent); the regex is searched, unanchored, in the notification's key
//! and in its sender without the `@`. A listing reads the store page by
//! page, giving the shard to other connections between pages, and stops
//! with AT0022 past [`NOTIFY_LIST_ENTRIES_MAX`] notifications listed,
//! [`NOTIFY_LIST_REPLY_BYTES_MAX`] bytes, or [`NOTIFY_LIST_READ_MAX`]
//! notifications read.

use super::notification_json::write_notification;
use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::error::{AtCode, AtError};
use crate::limits::{
    NOTIFY_LIST_ENTRIES_MAX, NOTIFY_LIST_PAGE_LEN, NOTIFY_LIST_READ_MAX,
    NOTIFY_LIST_REPLY_BYTES_MAX,
};
use crate::protocol::command::NotifyList;
use crate::protocol::time::{MS_PER_DAY, parse_utc_day};
use crate::storage::{NotificationCursor, NotificationRecord, NotificationType, TenantStore};

pub async fn apply(
    caller: &Caller,
    cmd: NotifyList<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let now = now_ms();
    // Dates are checked first, whoever asks, as the reference does.
    let window = window(cmd.from_date, cmd.to_date, now)?;
    let regex = match cmd.regex {
        Some(text) => Some(super::pattern::compile(text)?),
        None => None,
    };
    let (tenant, audience) = match caller {
        Caller::Owner(owner) => match owner.enrollment() {
            None => (owner.tenant(), Audience::Owner),
            Some(enrolled) => (owner.tenant(), Audience::Enrolled(enrolled)),
        },
        Caller::Peer(peer) => (peer.tenant(), Audience::Peer(peer.atsign())),
        Caller::Anonymous(_) => {
            payload.push_str("null");
            return Ok(Reply::Data);
        }
    };
    let filter = Filter {
        tenant: &tenant.atsign,
        audience,
        window,
        regex: regex.as_ref(),
        now,
    };
    write_list(&tenant.store, &filter, &Bounds::SERVED, payload).await?;
    Ok(Reply::Data)
}

/// Whether a peer pol-authenticated as `peer` may see `record` of the atSign
/// `tenant`: only a notification `tenant` sent to `peer`.
pub(super) fn sent_to_peer(record: &NotificationRecord, tenant: &str, peer: &str) -> bool {
    record.notification_type == NotificationType::Sent
        && record.from_atsign == tenant
        && record.to_atsign == peer
}

/// The creation times, inclusive, a listing with `from`/`to` dates covers,
/// or `None` for every time (no `from`: the reference then ignores dates).
fn window(from: Option<&str>, to: Option<&str>, now: i64) -> Result<Option<(i64, i64)>, AtError> {
    let day = |text: &str| {
        parse_utc_day(text)
            .ok_or_else(|| AtError::new(AtCode::IllegalArguments, "Invalid date format"))
    };
    let from_ms = from.map(day).transpose()?;
    let to_ms = match to {
        // The last millisecond of that day.
        Some(text) => day(text)? + (MS_PER_DAY - 1),
        None => now,
    };
    match from_ms {
        None => Ok(None),
        Some(from_ms) if to_ms < from_ms => Err(AtError::new(
            AtCode::IllegalArguments,
            "ToDate cannot be less than FromDate",
        )),
        Some(from_ms) => Ok(Some((from_ms, to_ms))),
    }
}

/// Whose notifications a listing shows.
#[derive(Debug, Clone, Copy)]
enum Audience<'a> {
    /// The owner: what its atSign received.
    Owner,
    /// An APKAM connection of the owner: what its atSign received about
    /// keys the enrollment may read.
    Enrolled(&'a crate::connection::Enrolled),
    /// The atServer of this atSign: what was sent to it.
    Peer(&'a str),
}

/// What one listing keeps.
struct Filter<'a> {
    /// The atSign whose store is read.
    tenant: &'a str,
    audience: Audience<'a>,
    window: Option<(i64, i64)>,
    regex: Option<&'a regex::Regex>,
    now: i64,
}

impl Filter<'_> {
    fn keeps(&self, record: &NotificationRecord) -> bool {
        let seen = match self.audience {
            Audience::Owner => matches!(
                record.notification_type,
                NotificationType::Received | NotificationType::SelfNotification
            ),
            Audience::Enrolled(enrolled) => {
                use crate::monitors::KeyGrant;
                matches!(
                    record.notification_type,
                    NotificationType::Received | NotificationType::SelfNotification
                ) && enrolled.sees(&record.notification)
            }
            Audience::Peer(peer) => sent_to_peer(record, self.tenant, peer),
        };
        let in_window = self
            .window
            .is_none_or(|(from, to)| (from..=to).contains(&record.notification_date_time));
        seen && in_window && !record.is_expired(self.now) && self.matches(record)
    }

    /// The regex is found in the key, or in the sender without its `@`.
    fn matches(&self, record: &NotificationRecord) -> bool {
        let Some(regex) = self.regex else {
            return true;
        };
        regex.is_match(&record.notification) || regex.is_match(&record.from_atsign.replace('@', ""))
    }
}

/// The bounds of one listing ([`Bounds::SERVED`] on the wire; tests make
/// them small).
struct Bounds {
    entries_max: usize,
    bytes_max: usize,
    read_max: usize,
    page_len: usize,
}

impl Bounds {
    const SERVED: Bounds = Bounds {
        entries_max: NOTIFY_LIST_ENTRIES_MAX,
        bytes_max: NOTIFY_LIST_REPLY_BYTES_MAX,
        read_max: NOTIFY_LIST_READ_MAX,
        page_len: NOTIFY_LIST_PAGE_LEN,
    };
}

/// Writes the JSON list of what `filter` keeps, or `null` for none. With a
/// date window, reading starts at its first millisecond and stops past its
/// last, as the store is read in creation order.
async fn write_list(
    store: &TenantStore,
    filter: &Filter<'_>,
    bounds: &Bounds,
    payload: &mut String,
) -> Result<(), AtError> {
    let start = payload.len();
    payload.push('[');
    let mut listed = 0usize;
    let mut read = 0usize;
    let mut cursor: Option<NotificationCursor> = None;
    'pages: loop {
        let page = match (&cursor, filter.window) {
            (Some(cursor), _) => store.notifications_page(Some(cursor), bounds.page_len)?,
            (None, Some((from, _))) => {
                store.notifications_after(from.saturating_sub(1), bounds.page_len)?
            }
            (None, None) => store.notifications_page(None, bounds.page_len)?,
        };
        for record in &page {
            if filter
                .window
                .is_some_and(|(_, to)| record.notification_date_time > to)
            {
                break 'pages;
            }
            read += 1;
            if read > bounds.read_max {
                return Err(AtError::new(
                    AtCode::IllegalArguments,
                    format!(
                        "notify:list would read more than {} stored notifications: narrow it with dates",
                        bounds.read_max
                    ),
                ));
            }
            if !filter.keeps(record) {
                continue;
            }
            if listed > 0 {
                payload.push(',');
            }
            write_notification(record, payload);
            listed += 1;
            if listed > bounds.entries_max || payload.len() - start > bounds.bytes_max {
                return Err(AtError::new(
                    AtCode::IllegalArguments,
                    format!(
                        "notify:list would list more than {} notifications or {} bytes: narrow it with dates or a regex",
                        bounds.entries_max, bounds.bytes_max
                    ),
                ));
            }
        }
        // A short page is the last: the store fills every page it can.
        match page.last() {
            Some(last) if page.len() >= bounds.page_len => {
                cursor = Some(NotificationCursor::after(last));
            }
            _ => break,
        }
        // Give the shard to other connections between pages.
        futures_lite::future::yield_now().await;
    }
    if listed == 0 {
        payload.truncate(start);
        payload.push_str("null");
    } else {
        payload.push(']');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;

    use super::*;
    use crate::protocol::command::{Command, VerbId};
    use crate::protocol::parse::parse;
    use crate::storage::{NotificationType::*, OpType};
    use crate::verbs::notification_json::write_notification;
    use crate::verbs::testing::{anonymous_to, notification, owner_of, peer_of, put};

    /// 2024-10-24 00:00:00.000 UTC.
    const DAY: i64 = 1_729_728_000_000;

    #[test]
    fn dates_cover_whole_utc_days_and_must_be_real_and_in_order() {
        let now = DAY + 5;
        assert_eq!(window(None, None, now), Ok(None));
        assert_eq!(
            window(Some("2024-10-24"), None, now),
            Ok(Some((DAY, now))),
            "to defaults to now"
        );
        assert_eq!(
            window(Some("2024-10-23"), Some("2024-10-24"), now),
            Ok(Some((DAY - MS_PER_DAY, DAY + MS_PER_DAY - 1)))
        );
        assert_eq!(
            window(Some("2024-10-24"), Some("2024-10-24"), now),
            Ok(Some((DAY, DAY + MS_PER_DAY - 1))),
            "one day"
        );
        for (from, to) in [
            (Some("2024-1-5"), None),
            (Some("2024-02-30"), None),
            (Some("2024-10-24"), Some("2024-13-01")),
        ] {
            let error = window(from, to, now).expect_err("invalid");
            assert_eq!(error.code, AtCode::IllegalArguments);
            assert_eq!(error.message, "Invalid date format");
        }
        let error = window(Some("2024-10-24"), Some("2024-10-23"), now).expect_err("reversed");
        assert_eq!(
            (error.code, error.message.as_str()),
            (
                AtCode::IllegalArguments,
                "ToDate cannot be less than FromDate"
            )
        );
        let error = window(Some("2024-10-25"), None, now).expect_err("from after now");
        assert_eq!(error.message, "ToDate cannot be less than FromDate");
    }

    fn filter<'a>(audience: Audience<'a>, regex: Option<&'a regex::Regex>) -> Filter<'a> {
        Filter {
            tenant: "@alice",
            audience,
            window: None,
            regex,
            now: DAY,
        }
    }

    #[test]
    fn the_owner_sees_what_it_received_and_a_peer_what_was_sent_to_it() {
        let received = notification("r", "@bob", "@alice", Received, DAY);
        let from_self = notification("s", "@alice", "@alice", SelfNotification, DAY);
        let sent_to_bob = notification("b", "@alice", "@bob", Sent, DAY);
        let sent_to_carol = notification("c", "@alice", "@carol", Sent, DAY);
        let owner = filter(Audience::Owner, None);
        let bob = filter(Audience::Peer("@bob"), None);
        let kept = |f: &Filter<'_>| {
            [&received, &from_self, &sent_to_bob, &sent_to_carol]
                .into_iter()
                .filter(|r| f.keeps(r))
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(kept(&owner), ["r", "s"]);
        assert_eq!(kept(&bob), ["b"]);
        let forged = notification("f", "@dave", "@bob", Sent, DAY);
        assert!(!bob.keeps(&forged), "only what this atSign sent");
    }

    #[test]
    fn expired_and_out_of_window_notifications_are_not_kept() {
        let mut expired = notification("e", "@bob", "@alice", Received, DAY - 10);
        expired.expires_at = DAY - 1;
        assert!(!filter(Audience::Owner, None).keeps(&expired));
        let windowed = Filter {
            window: Some((DAY, DAY + 10)),
            ..filter(Audience::Owner, None)
        };
        let at = |t: i64| notification("w", "@bob", "@alice", Received, t);
        assert!(windowed.keeps(&at(DAY)) && windowed.keeps(&at(DAY + 10)));
        assert!(!windowed.keeps(&at(DAY - 1)) && !windowed.keeps(&at(DAY + 11)));
    }

    #[test]
    fn the_regex_is_found_in_the_key_or_in_the_sender_without_its_at() {
        let record = notification("r", "@bob", "@alice", Received, DAY);
        let keeps = |pattern: &str| {
            let regex = super::super::pattern::compile(pattern).expect("regex");
            filter(Audience::Owner, Some(&regex)).keeps(&record)
        };
        assert!(keeps("wavi"), "in the key");
        assert!(keeps("^bob$"), "the sender without @");
        assert!(
            keeps(r"phone\.wavi@bob$"),
            "unanchored search, anchors honoured"
        );
        assert!(!keeps("^phone"));
        assert!(!keeps("carol"));
    }

    fn listing(caller: &Caller, line: &str) -> Result<String, AtError> {
        let Ok(Command::NotifyList(cmd)) = parse(VerbId::NotifyList, line) else {
            panic!("{line} parses");
        };
        let mut payload = String::new();
        block_on(apply(caller, cmd, &mut payload))?;
        Ok(payload)
    }

    fn json_of(records: &[&NotificationRecord]) -> String {
        let mut out = String::from("[");
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_notification(record, &mut out);
        }
        out.push(']');
        out
    }

    #[test]
    fn each_caller_gets_its_list_oldest_first_or_null() {
        let tenant = crate::context::testing::tenant("@listed");
        let now = now_ms();
        let second = notification("n2", "@bob", "@listed", Received, now - 1_000);
        let first = notification("n1", "@carol", "@listed", Received, now - 2_000);
        let sent = notification("n3", "@listed", "@bob", Sent, now - 1_500);
        let mut update = notification("n4", "@bob", "@listed", Received, now - 500);
        update.op_type = OpType::Delete;
        for record in [&second, &first, &sent, &update] {
            put(&tenant, record.clone());
        }
        let owner = owner_of(&tenant);
        assert_eq!(
            listing(&owner, "notify:list").expect("listed"),
            json_of(&[&first, &second, &update])
        );
        assert_eq!(
            listing(&owner, "notify:list:carol").expect("listed"),
            json_of(&[&first])
        );
        assert_eq!(
            listing(&owner, "notify:list:nothing-matches").expect("listed"),
            "null"
        );
        assert_eq!(
            listing(&peer_of(&tenant, "@bob"), "notify:list").expect("listed"),
            json_of(&[&sent])
        );
        assert_eq!(
            listing(&peer_of(&tenant, "@carol"), "notify:list").expect("listed"),
            "null"
        );
        assert_eq!(
            listing(&anonymous_to(&tenant), "notify:list").expect("listed"),
            "null"
        );
        let error = listing(&owner, "notify:list:(").expect_err("bad regex");
        assert_eq!(error.code, AtCode::InvalidSyntax);
        assert!(
            error.message.starts_with("Invalid regex"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_date_window_reads_only_its_days() {
        let tenant = crate::context::testing::tenant("@windowed");
        let now = now_ms();
        let today = now - now.rem_euclid(MS_PER_DAY);
        // Yesterday's would have expired for real; the filter sees them
        // as stored, so keep them alive for the test.
        let mut yesterday = notification("y", "@bob", "@windowed", Received, today - 1);
        yesterday.expires_at = now + 3_600_000;
        let this_day = notification("t", "@bob", "@windowed", Received, now - 1);
        put(&tenant, yesterday.clone());
        put(&tenant, this_day.clone());
        let filter = Filter {
            tenant: "@windowed",
            audience: Audience::Owner,
            window: Some((today, now)),
            regex: None,
            now,
        };
        let mut payload = String::new();
        block_on(write_list(
            &tenant.store,
            &filter,
            &Bounds::SERVED,
            &mut payload,
        ))
        .expect("ok");
        assert_eq!(payload, json_of(&[&this_day]));
    }

    fn bounded(store: &TenantStore, bounds: Bounds) -> Result<String, AtError> {
        let filter = Filter {
            tenant: "@paged",
            audience: Audience::Owner,
            window: None,
            regex: None,
            now: now_ms(),
        };
        let mut payload = String::new();
        block_on(write_list(store, &filter, &bounds, &mut payload))?;
        Ok(payload)
    }

    #[test]
    fn small_pages_list_every_notification_once_and_the_bounds_are_at0022() {
        let tenant = crate::context::testing::tenant("@paged");
        let now = now_ms();
        let records: Vec<_> = (0..5)
            .map(|i| notification(&format!("p{i}"), "@bob", "@paged", Received, now - 100 + i))
            .collect();
        for record in &records {
            put(&tenant, record.clone());
        }
        // A sent one is read but not listed.
        put(&tenant, notification("s", "@paged", "@bob", Sent, now - 50));
        let bounds = |entries_max, read_max| Bounds {
            entries_max,
            bytes_max: usize::MAX,
            read_max,
            page_len: 2,
        };
        let all: Vec<&NotificationRecord> = records.iter().collect();
        assert_eq!(
            bounded(&tenant.store, bounds(5, 6)).expect("fits"),
            json_of(&all)
        );
        let error = bounded(&tenant.store, bounds(4, 6)).expect_err("too many listed");
        assert_eq!(error.code, AtCode::IllegalArguments);
        assert!(
            error.message.contains("more than 4 notifications"),
            "{}",
            error.message
        );
        let error = bounded(&tenant.store, bounds(5, 5)).expect_err("too many read");
        assert!(
            error.message.contains("read more than 5"),
            "{}",
            error.message
        );
        let error = bounded(
            &tenant.store,
            Bounds {
                bytes_max: 10,
                ..bounds(5, 6)
            },
        )
        .expect_err("too many bytes");
        assert!(error.message.contains("or 10 bytes"), "{}", error.message);
    }
}
