//! Test helpers shared by the verb handlers' unit tests: callers proven the
//! way a connection proves them, and notification records to seed a store.

use std::sync::Arc;
use std::time::Instant;

use crate::connection::{AuthMethod, Caller, ConnectionState};
use crate::context::Tenant;
use crate::storage::{NotificationRecord, NotificationType};

/// The owner of `tenant`, authenticated by cram.
pub fn owner_of(tenant: &Arc<Tenant>) -> Caller {
    let mut state = ConnectionState::new("_s".into(), None, None, Instant::now());
    state.issue_challenge(tenant.clone(), "n", Instant::now());
    state.authenticate_owner(AuthMethod::Cram);
    state.caller()
}

/// The atServer of `atsign`, pol-authenticated to `tenant`.
pub fn peer_of(tenant: &Arc<Tenant>, atsign: &str) -> Caller {
    let mut state = ConnectionState::new("_s".into(), None, Some(tenant.clone()), Instant::now());
    state.authenticate_peer(atsign.to_string());
    state.caller()
}

/// A connection that names `tenant` and has proven nothing.
pub fn anonymous_to(tenant: &Arc<Tenant>) -> Caller {
    ConnectionState::new("_s".into(), None, Some(tenant.clone()), Instant::now()).caller()
}

/// A delivered key notification of `id` from `from` to `to`, created at
/// `created` and living an hour.
pub fn notification(
    id: &str,
    from: &str,
    to: &str,
    notification_type: NotificationType,
    created: i64,
) -> NotificationRecord {
    NotificationRecord {
        notification_type,
        at_value: Some("v".into()),
        ..NotificationRecord::received(
            id,
            from,
            to,
            format!("{to}:phone.wavi{from}"),
            created,
            created + 3_600_000,
        )
    }
}

/// Stores `record` in `tenant`'s notification store.
pub fn put(tenant: &Arc<Tenant>, record: NotificationRecord) {
    futures_lite::future::block_on(tenant.store.put_notification(record)).expect("stored");
}
