//! Verbs: the verb table, the gate, and one file per verb.
//!
//! A line reaches a handler only through the gate ([`gate::admit`]), which
//! applies the table ([`table`]) and hands over a [`Planned`] command with
//! the typed caller as proof. The session then runs it by the row's
//! ordering class: [`prepare_write`] for writes (handed to the storage actor
//! without waiting), [`run_keyed_read`] for reads of one key, [`run`] for
//! the rest. Handlers see the connection only as a
//! [`ConnectionState`] and never touch a
//! socket.

mod authorization;
mod batch;
mod checks;
mod cram;
mod delete;
mod enroll;
mod follow_up;
mod from;
pub mod gate;
mod info;
mod keys;
mod llookup;
mod lookup;
pub mod metadata;
mod monitor;
mod noop;
pub mod notification_json;
mod notify;
mod notify_all;
mod notify_fetch;
mod notify_list;
mod notify_multi;
mod notify_remove;
mod notify_status;
mod otp;
mod pattern;
mod pkam;
mod plookup;
mod pol;
mod remote_cache;
mod remote_lookup;
mod scan;
mod stats;
mod sync_from;
pub mod table;
#[cfg(test)]
mod testing;
mod to;
mod update;
mod update_meta;
pub mod write;

use crate::clock::Clock;
use crate::connection::{Caller, ConnectionState};
use crate::context::ServerContext;
use crate::error::AtError;
use crate::protocol::command::{Command, KeyRef};
use crate::remote::peers::PeerAccess;
pub use follow_up::run as run_follow_up;
pub use gate::{Planned, Verdict};
pub use monitor::{Monitoring, publish_notification, publish_stats};
pub use notify::{Outgoing, OutgoingNotification, Received, ReceivedNotification};
pub use remote_cache::refresh_due_copies;
use table::VerbRow;
pub use write::{FollowUp, PreparedWrite};

/// What a handler produced, besides the payload it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `data:<payload>` and the prompt.
    Data,
    /// `data: <payload>` and the prompt (the reference's `stats` shape).
    DataSpaced,
    /// The prompt alone, no payload and no newline: a successful `pol`.
    BarePrompt,
}

/// Runs a planned command of the [`table::Ordering::Barrier`] class,
/// writing its payload into `payload`.
pub async fn run<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    planned: Planned<'_>,
    clock: &C,
    peers: &dyn PeerAccess,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let row = planned.row;
    match (planned.command, planned.caller) {
        (Command::From(c), _) => from::apply(server, state, peers, c, payload).await,
        (Command::Cram(c), _) => cram::apply(server, state, clock, c, payload).await,
        (Command::Pkam(c), _) => pkam::apply(server, state, clock, c, payload).await,
        (Command::Info(c), caller) => info::apply(server, &caller, c, payload),
        (Command::Pol, _) => pol::apply(state, peers).await,
        (Command::Notify(c), Caller::Owner(owner)) => {
            notify::send(server, &owner, c, &server.rng, payload).await
        }
        (Command::NotifyMulti(c), Caller::Owner(owner)) => {
            notify_multi::apply(server, &owner, c, &server.rng, payload).await
        }
        (Command::NotifyAll(c), Caller::Owner(owner)) => {
            notify_all::apply(server, &owner, c, &server.rng, payload).await
        }
        (Command::NotifyStatus(c), caller) => notify_status::apply(&caller, c, payload),
        (Command::NotifyList(c), caller) => notify_list::apply(&caller, c, payload).await,
        (Command::NotifyFetch(c), Caller::Owner(owner)) => notify_fetch::apply(&owner, c, payload),
        (Command::NotifyRemove(c), Caller::Owner(owner)) => {
            notify_remove::apply(&owner, c, payload).await
        }
        (Command::Noop(c), _) => noop::apply(clock, c, payload).await,
        (Command::Otp(c), Caller::Owner(owner)) => otp::apply(server, &owner, c, payload).await,
        (Command::To(c), _) => to::apply(server, state, c, payload),
        (Command::Lookup(c), caller) => lookup::apply(server, peers, &caller, c, payload).await,
        (Command::Scan(c), caller) => scan::apply(server, peers, &caller, c, payload).await,
        (Command::PLookup(c), Caller::Owner(owner)) => {
            plookup::apply(server, peers, &owner, c, payload).await
        }
        (Command::Stats(c), Caller::Owner(owner)) => stats::apply(server, &owner, c, payload),
        (Command::SyncFrom(c), Caller::Owner(owner)) => sync_from::apply(&owner, c, payload),
        (Command::Enroll(c), _) => enroll::apply(server, state, clock, c, payload).await,
        (Command::Keys(c), Caller::Owner(owner)) => keys::apply(&owner, c, payload).await,
        // Boxed: a batch runs its commands through this function.
        (Command::Batch(c), Caller::Owner(_)) => {
            Box::pin(batch::apply(server, state, clock, peers, c, payload)).await
        }
        (command, _) => Err(unserved(row, &command)),
    }
}

/// Starts monitor mode for a planned `monitor` (the session keeps the
/// returned [`Monitoring`] and writes its lines between replies).
pub fn start_monitor(planned: Planned<'_>, now: std::time::Instant) -> Result<Monitoring, AtError> {
    let row = planned.row;
    match (planned.command, planned.caller) {
        (Command::Monitor(c), Caller::Owner(owner)) => monitor::start(&owner, c, now),
        (command, _) => Err(unserved(row, &command)),
    }
}

/// For an owner's `notify` to another atServer: the notification checked
/// and built, for the session to submit without waiting (see
/// [`notify::prepare_outgoing`]); `None` for every other line.
pub fn prepare_outgoing_notification(
    server: &ServerContext,
    planned: &Planned<'_>,
    rng: &ring::rand::SystemRandom,
) -> Option<Result<Outgoing, AtError>> {
    match (&planned.command, &planned.caller) {
        (Command::Notify(c), Caller::Owner(owner)) => {
            notify::prepare_outgoing(server, owner, c, rng)
        }
        _ => None,
    }
}

/// For a notification another atServer delivers: checked and built, for
/// the session to submit without waiting, as a write (see
/// [`notify::prepare_received`]); `None` for every other line.
pub fn prepare_received_notification(
    planned: &Planned<'_>,
    rng: &ring::rand::SystemRandom,
) -> Option<Result<Received, AtError>> {
    match (&planned.command, &planned.caller) {
        (Command::Notify(c), Caller::Peer(peer)) => Some(notify::prepare_received(peer, *c, rng)),
        _ => None,
    }
}

/// Validates a planned command of the [`table::Ordering::Write`] class into
/// a write for the storage actor.
pub fn prepare_write(planned: Planned<'_>) -> Result<PreparedWrite, AtError> {
    let row = planned.row;
    match (planned.command, planned.caller) {
        (Command::Update(c), Caller::Owner(owner)) => update::prepare(owner, c),
        (Command::UpdateMeta(c), Caller::Owner(owner)) => update_meta::prepare(owner, c),
        (Command::Delete(c), Caller::Owner(owner)) => delete::prepare(owner, c),
        (command, _) => Err(unserved(row, &command)),
    }
}

/// The key a command of the [`table::Ordering::KeyedRead`] class reads, so
/// the session can tell whether an in-flight write touches it.
pub fn read_key<'a>(command: &Command<'a>) -> Option<KeyRef<'a>> {
    match command {
        Command::LLookup(c) => Some(c.key),
        _ => None,
    }
}

/// Runs a planned keyed read of `key` (assembled from [`read_key`]).
pub fn run_keyed_read(
    planned: Planned<'_>,
    key: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let row = planned.row;
    match (planned.command, planned.caller) {
        (Command::LLookup(c), Caller::Owner(owner)) => llookup::apply(&owner, key, c.op, payload),
        (command, _) => Err(unserved(row, &command)),
    }
}

/// A command the gate let through that no handler arm takes: a form of a
/// verb this server does not serve yet (`update:json`), answered AT0011 as
/// any verb that is not served.
fn unserved(row: &VerbRow, command: &Command<'_>) -> AtError {
    debug_assert!(
        matches!(command, Command::UpdateJson(_)) || !row.implemented,
        "{} is implemented but has no handler for {command:?}",
        row.name
    );
    gate::not_supported_yet(row)
}

/// Current time in epoch milliseconds.
fn now_ms() -> i64 {
    crate::storage::actor::now_ms()
}

pub use cram::SECRET_KEY;
pub use delete::SECRET_DELETED_KEY;
