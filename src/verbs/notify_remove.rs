//! `notify:remove:<id>` (notifications.md §7): the owner deletes one stored
//! notification (record and index entries together). Always
//! `data:success`, whether there was one or not, as in the reference: the
//! caller wants it gone, and it is. A notification already queued for
//! delivery may still be delivered.

use super::Reply;
use crate::connection::Owner;
use crate::error::AtError;
use crate::protocol::command::NotifyId;

pub async fn apply(
    owner: &Owner,
    cmd: NotifyId<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    // Whether one existed changes nothing in the answer.
    let _existed = owner.tenant().store.remove_notification(cmd.id).await?;
    payload.push_str("success");
    Ok(Reply::Data)
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;

    use super::*;
    use crate::connection::Caller;
    use crate::storage::NotificationType::Received;
    use crate::verbs::testing::{notification, owner_of, put};

    #[test]
    fn removing_deletes_the_record_and_always_succeeds() {
        let tenant = crate::context::testing::tenant("@removed");
        let now = super::super::now_ms();
        put(
            &tenant,
            notification("r1", "@bob", "@removed", Received, now),
        );
        put(
            &tenant,
            notification("r2", "@bob", "@removed", Received, now),
        );
        let Caller::Owner(owner) = owner_of(&tenant) else {
            panic!("an owner");
        };
        for id in ["r1", "r1", "never-was"] {
            let mut payload = String::new();
            block_on(apply(&owner, NotifyId { id }, &mut payload)).expect("removed");
            assert_eq!(payload, "success");
        }
        assert_eq!(tenant.store.notification("r1").expect("read"), None);
        let left = tenant.store.notifications_page(None, 10).expect("read");
        assert_eq!(
            left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r2"],
            "the index no longer names it"
        );
    }
}
