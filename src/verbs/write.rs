//! Owner writes as values: a validated write waiting to be handed to the
//! storage actor. Sessions submit them without waiting, keep several in
//! flight, and answer in request order (see `session::inflight`).

use std::sync::Arc;

use crate::context::Tenant;
use crate::error::AtError;
use crate::protocol::atkey;
use crate::storage::actor::MutateFn;
use crate::storage::{CommitLog, CommitOp, KeyWrite, Mutation, StoredRecord};

/// A write that passed every check; the actor runs `mutate` on the current
/// record. `companion` is a second key's write the actor applies in the
/// same batch, atomically with this one, whose own result is not reported
/// (the CRAM-secret tombstone of `delete:privatekey:at_secret`).
pub struct PreparedWrite {
    pub tenant: Arc<Tenant>,
    pub key: String,
    pub commit: CommitLog,
    pub mutate: MutateFn,
    pub companion: Option<KeyWrite>,
    /// What the write leads to once it is durable, if anything.
    pub follow_up: Option<Box<FollowUp>>,
}

impl PreparedWrite {
    pub fn new(
        tenant: Arc<Tenant>,
        key: String,
        commit: CommitLog,
        mutate: MutateFn,
    ) -> PreparedWrite {
        PreparedWrite {
            tenant,
            key,
            commit,
            mutate,
            companion: None,
            follow_up: None,
        }
    }

    /// Marks the write as one that monitors hear of and, for a key shared
    /// with another atSign, that notifies it (see [`FollowUp`]).
    pub fn followed_by(mut self, op: WriteOp) -> PreparedWrite {
        self.follow_up = FollowUp::of(&self.tenant, &self.key, op);
        self
    }
}

/// Writes `value` at `key` of `tenant` as the owner, uncommitted (the
/// server's own bookkeeping: enrollment keys, keys-verb keys), and waits
/// until it is durable.
pub async fn put_uncommitted(tenant: &Tenant, key: String, value: String) -> Result<(), AtError> {
    let writer = tenant.atsign.clone();
    tenant
        .store
        .write(key, false, move |_| {
            let now = crate::storage::actor::now_ms();
            let record = StoredRecord::written_by(Some(value), &writer, now);
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        })
        .await?;
    Ok(())
}

/// How an owner's write of `key` treats the commit log: `:nc`
/// (`no_commit`) removes the key's entry and logs nothing; keys the
/// reference never logs (`private:`, `local:`, hidden public keys) leave
/// the log alone; every other write is logged.
pub fn commit_log_of(key: &str, no_commit: bool) -> CommitLog {
    if no_commit {
        CommitLog::Forget
    } else if atkey::is_committed(key) {
        CommitLog::Append
    } else {
        CommitLog::Skip
    }
}

/// What a write did, for what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Update,
    UpdateMeta,
    Delete,
}

/// What follows a durable write, run by the connection after the write's
/// reply is written.
#[derive(Debug)]
pub enum FollowUp {
    /// An owner's write (notifications.md §4, §6.1): the stats notification
    /// to the atSign's monitors, and for a key shared with another atSign
    /// (`@bob:k@alice`) the auto-notification that carries the new value and
    /// metadata (or the delete) to @bob.
    Write(WriteFollowUp),
    /// A notification another atServer delivered, stored for the first
    /// time: its effect on the cached copy, and its line to the monitors.
    Received(Box<super::notify::ReceivedNotification>),
    /// An owner's notification to another atServer, stored for the first
    /// time: handed to the shard's courier.
    Sent(Box<super::notify::OutgoingNotification>),
}

/// See [`FollowUp::Write`].
#[derive(Debug, Clone)]
pub struct WriteFollowUp {
    pub tenant: Arc<Tenant>,
    pub key: String,
    pub op: WriteOp,
    /// The atSign the key is shared with, when it is another one.
    pub recipient: Option<String>,
}

impl FollowUp {
    /// `None` when nothing would follow an owner's write: a key shared with
    /// nobody else, on an atSign nobody monitors.
    pub fn of(tenant: &Arc<Tenant>, key: &str, op: WriteOp) -> Option<Box<FollowUp>> {
        let recipient = shared_with_other(key, &tenant.atsign)
            .filter(|_| tenant.auto_notify)
            .map(str::to_string);
        if recipient.is_none() && !tenant.monitors.has_monitors() {
            return None;
        }
        Some(Box::new(FollowUp::Write(WriteFollowUp {
            tenant: tenant.clone(),
            key: key.to_string(),
            op,
            recipient,
        })))
    }

    /// Whether it runs after a write whose record `existed` before: a
    /// delete of nothing notifies nobody, and a notification received a
    /// second time (same id) has had its effect already.
    pub fn wanted(&self, existed: bool) -> bool {
        match self {
            FollowUp::Write(write) => existed || write.op != WriteOp::Delete,
            FollowUp::Received(_) | FollowUp::Sent(_) => !existed,
        }
    }
}

/// The recipient of a shared key `@bob:<name>@<owner>`, unless it is the
/// owner itself.
pub fn shared_with_other<'a>(key: &'a str, owner: &str) -> Option<&'a str> {
    let (recipient, _) = key.strip_prefix('@')?.split_once(':')?;
    let recipient = &key[..recipient.len() + 1];
    (!recipient.eq_ignore_ascii_case(owner)).then_some(recipient)
}

/// `data:<commit id>` or `data:-1` for writes kept out of the commit log.
pub fn write_commit_id(payload: &mut String, commit_id: Option<u64>) {
    use std::fmt::Write as _;
    match commit_id {
        Some(id) => {
            let _ = write!(payload, "{id}");
        }
        None => payload.push_str("-1"),
    }
}

#[cfg(test)]
mod follow_up_tests {
    use super::*;
    use crate::context::testing::tenant;

    #[test]
    fn shared_keys_notify_their_recipient_unless_auto_notify_is_off() {
        let alice = tenant("@follow-alice");
        let follow_up = FollowUp::of(&alice, "@bob:k.wavi@follow-alice", WriteOp::Update);
        match follow_up.as_deref() {
            Some(FollowUp::Write(w)) => assert_eq!(w.recipient.as_deref(), Some("@bob")),
            other => panic!("{other:?}"),
        }
        // Keys nobody else sees, on an atSign nobody monitors: nothing.
        assert!(FollowUp::of(&alice, "k.wavi@follow-alice", WriteOp::Update).is_none());
        assert!(
            FollowUp::of(&alice, "@follow-alice:k.wavi@follow-alice", WriteOp::Update).is_none()
        );
        let mut quiet = tenant("@follow-quiet");
        Arc::get_mut(&mut quiet)
            .expect("only reference")
            .auto_notify = false;
        assert!(FollowUp::of(&quiet, "@bob:k.wavi@follow-quiet", WriteOp::Delete).is_none());
    }
}
