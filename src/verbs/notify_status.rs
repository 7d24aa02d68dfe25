//! `notify:status:<id>` (notifications.md §7): `data:queued`,
//! `data:delivered`, `data:errored`, `data:expired` once past its expiry,
//! or `data:null` for a notification the caller may not see.
//!
//! The owner asks about any notification of its atSign. Another atServer,
//! pol-authenticated as @bob, asks only about what this atSign sent to @bob.
//! An unauthenticated connection always hears `null`: the reference answers
//! any connection about any id, which tells a stranger whether a
//! notification exists and whether its recipient got it.

use super::notify_list::sent_to_peer;
use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::error::AtError;
use crate::protocol::command::NotifyId;
use crate::storage::ReportedStatus;

pub fn apply(caller: &Caller, cmd: NotifyId<'_>, payload: &mut String) -> Result<Reply, AtError> {
    let status = match caller {
        Caller::Owner(owner) => owner.tenant().store.notification(cmd.id)?,
        Caller::Peer(peer) => {
            let tenant = peer.tenant();
            tenant
                .store
                .notification(cmd.id)?
                .filter(|record| sent_to_peer(record, &tenant.atsign, peer.atsign()))
        }
        Caller::Anonymous(_) => None,
    }
    .map(|record| record.reported_status(now_ms()));
    payload.push_str(status_word(status));
    Ok(Reply::Data)
}

/// The reply word for a status, `null` for none.
fn status_word(status: Option<ReportedStatus>) -> &'static str {
    match status {
        Some(ReportedStatus::Queued) => "queued",
        Some(ReportedStatus::Delivered) => "delivered",
        Some(ReportedStatus::Errored) => "errored",
        Some(ReportedStatus::Expired) => "expired",
        None => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NotificationStatus;
    use crate::storage::NotificationType::{Received, Sent};
    use crate::verbs::testing::{anonymous_to, notification, owner_of, peer_of, put};

    fn status(caller: &Caller, id: &str) -> String {
        let mut payload = String::new();
        apply(caller, NotifyId { id }, &mut payload).expect("answered");
        payload
    }

    #[test]
    fn every_status_has_its_word() {
        assert_eq!(status_word(Some(ReportedStatus::Queued)), "queued");
        assert_eq!(status_word(Some(ReportedStatus::Delivered)), "delivered");
        assert_eq!(status_word(Some(ReportedStatus::Errored)), "errored");
        assert_eq!(status_word(Some(ReportedStatus::Expired)), "expired");
        assert_eq!(status_word(None), "null");
    }

    #[test]
    fn the_owner_sees_every_status_and_an_expired_one_reads_expired() {
        let tenant = crate::context::testing::tenant("@statuses");
        let now = now_ms();
        let mut queued = notification("q", "@statuses", "@bob", Sent, now);
        queued.notification_status = NotificationStatus::Queued;
        let mut errored = notification("e", "@statuses", "@bob", Sent, now);
        errored.notification_status = NotificationStatus::Errored;
        let delivered = notification("d", "@bob", "@statuses", Received, now);
        // Past its expiry: reported expired until the sweep purges it.
        let mut expired = notification("x", "@statuses", "@bob", Sent, now - 10_000);
        expired.expires_at = now - 1;
        for record in [queued, errored, delivered, expired] {
            put(&tenant, record);
        }
        let owner = owner_of(&tenant);
        assert_eq!(status(&owner, "q"), "queued");
        assert_eq!(status(&owner, "e"), "errored");
        assert_eq!(status(&owner, "d"), "delivered");
        assert_eq!(status(&owner, "unknown"), "null");
        assert_eq!(status(&owner, "not an id!"), "null");
        // The sweep may already have purged it: both answers mean expired
        // to a client, and neither is a status it could act on.
        assert!(matches!(status(&owner, "x").as_str(), "expired" | "null"));
    }

    #[test]
    fn a_peer_sees_only_what_was_sent_to_it_and_a_stranger_nothing() {
        let tenant = crate::context::testing::tenant("@asked");
        let now = now_ms();
        put(&tenant, notification("to-bob", "@asked", "@bob", Sent, now));
        put(
            &tenant,
            notification("to-carol", "@asked", "@carol", Sent, now),
        );
        put(
            &tenant,
            notification("from-bob", "@bob", "@asked", Received, now),
        );
        let bob = peer_of(&tenant, "@bob");
        assert_eq!(status(&bob, "to-bob"), "delivered");
        assert_eq!(status(&bob, "to-carol"), "null");
        assert_eq!(
            status(&bob, "from-bob"),
            "null",
            "what it sent is not its to ask"
        );
        let stranger = anonymous_to(&tenant);
        assert_eq!(status(&stranger, "to-bob"), "null");
    }
}
