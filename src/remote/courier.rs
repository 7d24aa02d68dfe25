//! Delivery of the owner's notifications to other atServers
//! (notifications.md §3, changes §6.4, §16).
//!
//! The outbox is the notification store itself: a notification to another
//! atSign is stored as `sent`/`queued` before `notify` answers, and stays
//! so until it is delivered or expires. The [`Courier`] of the shard that
//! took the `notify` is then handed its id and pushes it at once — no timer
//! polls a queue. It keeps one lane per (sender, recipient): a task that
//! sends the lane's notifications one at a time, oldest first, over the
//! shard's pool of warm pol-authenticated connections, and exits when the
//! lane is empty. A failed attempt is retried after a jittered, doubling
//! pause ([`DELIVERY_RETRY_BASE_MS`] up to [`DELIVERY_RETRY_MAX_MS`]) until
//! the notification expires, when it is marked `errored`. Lanes are
//! independent tasks, so a slow or dead peer holds up only its own lane.
//! At start the app hands every stored `queued` notification back to a
//! courier ([`resume`]), so a restarted server finishes its outbox.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::peers::{LocalFuture, PeerAccess};
use crate::context::Tenant;
use crate::limits::{
    DELIVERY_RETRY_BASE_MS, DELIVERY_RETRY_MAX_MS, DELIVERY_WINDOW_MAX, NOTIFICATION_PAGE_LEN_MAX,
};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::time::format_iso_utc;
use crate::storage::{
    DeliveryStrategy, MessageType, NotificationCursor, NotificationRecord, NotificationStatus,
    NotificationType, OpType,
};

/// What a courier needs from the runtime of its shard: to start a task and
/// to sleep.
pub trait Tasks {
    fn spawn(&self, task: LocalFuture<'static, ()>);
    fn sleep(&self, duration: Duration) -> LocalFuture<'static, ()>;
}

/// A notification waiting in a lane.
struct Waiting {
    id: String,
    /// `strategy:latest` with its notifier and `latestN`: superseded once
    /// that many newer ones of the same notifier wait behind it.
    latest: Option<Latest>,
}

/// What `strategy:latest` keeps: the newest `keep` of one notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub notifier: String,
    pub keep: u32,
}

/// One (sender, recipient) pair's queue of notification ids.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Waiting>,
}

impl Lane {
    /// Whether `first` is superseded: with `strategy:latest`, at least
    /// `keep` newer notifications of its notifier wait behind it
    /// (notifications.md §3.3; the reference leaves it `queued` in the
    /// store, never delivered).
    fn supersedes(&self, first: &Waiting) -> bool {
        let Some(latest) = &first.latest else {
            return false;
        };
        let newer = self
            .waiting
            .iter()
            .filter(|w| {
                w.latest
                    .as_ref()
                    .is_some_and(|l| l.notifier == latest.notifier)
            })
            .count();
        newer >= latest.keep.max(1) as usize
    }
}

type LaneKey = (String, String);

/// The notification deliveries of one shard.
pub struct Courier {
    peers: Rc<dyn PeerAccess>,
    tasks: Rc<dyn Tasks>,
    /// Lanes with a task running; a lane is removed when its task finds it
    /// empty.
    lanes: RefCell<HashMap<LaneKey, Lane>>,
}

impl Courier {
    pub fn new(peers: Rc<dyn PeerAccess>, tasks: Rc<dyn Tasks>) -> Rc<Courier> {
        Rc::new(Courier {
            peers,
            tasks,
            lanes: RefCell::new(HashMap::new()),
        })
    }

    /// Hands notification `id` of `sender` (stored as `sent`/`queued`) to
    /// its lane to `recipient`, starting the lane's task if it has none.
    /// The notification counts against the sender's queued deliveries until
    /// its lane is done with it.
    pub fn enqueue(
        self: &Rc<Self>,
        sender: &Arc<Tenant>,
        recipient: &str,
        id: String,
        latest: Option<Latest>,
    ) {
        sender.queued_deliveries.fetch_add(1, Ordering::AcqRel);
        let key = (sender.atsign.clone(), recipient.to_string());
        let waiting = Waiting { id, latest };
        let mut lanes = self.lanes.borrow_mut();
        if let Some(lane) = lanes.get_mut(&key) {
            lane.waiting.push_back(waiting);
            return;
        }
        lanes.insert(
            key.clone(),
            Lane {
                waiting: VecDeque::from([waiting]),
            },
        );
        drop(lanes);
        let courier = self.clone();
        let sender = sender.clone();
        self.tasks
            .spawn(Box::pin(async move { courier.run_lane(sender, key).await }));
    }

    /// The lane's next window: up to [`DELIVERY_WINDOW_MAX`] waiting ids
    /// and how many were taken (superseded ones included, which are not
    /// sent); `None` (and the lane is gone) when it is empty.
    fn next_window(&self, key: &LaneKey) -> Option<(Vec<String>, usize)> {
        let mut lanes = self.lanes.borrow_mut();
        let lane = lanes.get_mut(key)?;
        if lane.waiting.is_empty() {
            lanes.remove(key);
            return None;
        }
        let mut ids = Vec::new();
        let mut taken = 0;
        while ids.len() < DELIVERY_WINDOW_MAX {
            let Some(first) = lane.waiting.pop_front() else {
                break;
            };
            taken += 1;
            if lane.supersedes(&first) {
                tracing::debug!(id = %first.id, recipient = %key.1, "superseded by newer notifications of its notifier");
            } else {
                ids.push(first.id);
            }
        }
        Some((ids, taken))
    }

    async fn run_lane(self: Rc<Self>, sender: Arc<Tenant>, key: LaneKey) {
        while let Some((ids, taken)) = self.next_window(&key) {
            self.deliver(&sender, &key.1, ids).await;
            sender.queued_deliveries.fetch_sub(taken, Ordering::AcqRel);
        }
    }

    /// Delivers a window of notifications in one write on one connection,
    /// retrying what was not delivered until each is delivered, expired,
    /// removed or no longer queued. A failed exchange sends its whole
    /// window again: the receiver ingests by id, so a notification it did
    /// take is acknowledged again and not stored twice.
    async fn deliver(&self, sender: &Arc<Tenant>, recipient: &str, mut ids: Vec<String>) {
        let mut failures: u32 = 0;
        loop {
            let now = crate::storage::actor::now_ms();
            let records = self.still_queued(sender, recipient, &ids, now);
            if records.is_empty() {
                return;
            }
            let lines: Vec<String> = records.iter().map(|r| forward_line(r, now)).collect();
            let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let outcome = self
                .peers
                .request_many_as(sender, recipient, &line_refs)
                .await;
            let mut left = Vec::new();
            match outcome {
                Ok(replies) => {
                    for (record, reply) in records.iter().zip(&replies) {
                        if reply.data() == Some(b"success") {
                            let retries = record.retry_count.max(1).saturating_add(failures);
                            self.record_status(
                                sender,
                                &record.id,
                                NotificationStatus::Delivered,
                                retries,
                            );
                        } else {
                            tracing::debug!(
                                id = %record.id,
                                recipient,
                                reply = %String::from_utf8_lossy(reply.payload()),
                                "notification refused; will retry"
                            );
                            left.push(record.id.clone());
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(recipient, %error, waiting = records.len(), "notifications not delivered; will retry");
                    left = records.iter().map(|r| r.id.clone()).collect();
                }
            }
            if left.is_empty() {
                return;
            }
            ids = left;
            failures = failures.saturating_add(1);
            let soonest_expiry = records.iter().map(|r| r.expires_at).min().unwrap_or(now);
            let pause = retry_pause(failures, jitter_seed(recipient, failures));
            let until_expiry = u64::try_from(soonest_expiry.saturating_sub(now)).unwrap_or(0);
            // Try once more right at expiry rather than never.
            self.tasks
                .sleep(Duration::from_millis(pause.min(until_expiry.max(1))))
                .await;
        }
    }

    /// The records of `ids` that are still to be sent; expired ones are
    /// marked `errored`, removed or no longer queued ones are dropped.
    fn still_queued(
        &self,
        sender: &Arc<Tenant>,
        recipient: &str,
        ids: &[String],
        now: i64,
    ) -> Vec<NotificationRecord> {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            match sender.store.notification(id) {
                Ok(Some(record)) if record.notification_status != NotificationStatus::Queued => {}
                Ok(Some(record)) if record.is_expired(now) => {
                    tracing::debug!(%id, recipient, "notification expired before delivery");
                    self.record_status(sender, id, NotificationStatus::Errored, record.retry_count);
                }
                Ok(Some(record)) => records.push(record),
                // `notify:remove` took it: nothing to deliver.
                Ok(None) => {}
                Err(error) => {
                    // The store reports (and, if it is broken, stops the
                    // process); the notification stays queued for a restart.
                    tracing::error!(%error, %id, "a queued notification cannot be read");
                }
            }
        }
        records
    }

    /// Stores a delivery status in the background: the lane goes on at
    /// once. If the process stops before it is durable, the notification
    /// is still `queued` and is sent again after the restart, which the
    /// receiver acknowledges without storing it twice.
    fn record_status(
        &self,
        sender: &Arc<Tenant>,
        id: &str,
        status: NotificationStatus,
        retries: u32,
    ) {
        let sender = sender.clone();
        let id = id.to_string();
        self.tasks.spawn(Box::pin(async move {
            if let Err(error) = sender
                .store
                .set_notification_status(&id, status, retries)
                .await
            {
                tracing::error!(%error, %id, "a notification's delivery status was not stored");
            }
        }));
    }
}

/// The pause before attempt `failures + 1`: doubling from
/// [`DELIVERY_RETRY_BASE_MS`], capped at [`DELIVERY_RETRY_MAX_MS`], with
/// up to half of it taken off at random so that many lanes failing
/// together (a peer restarting) do not retry in lock step.
pub fn retry_pause(failures: u32, seed: u64) -> u64 {
    let doubled = DELIVERY_RETRY_BASE_MS.saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    let capped = doubled.min(DELIVERY_RETRY_MAX_MS);
    let jitter = seed % (capped / 2 + 1);
    capped - jitter
}

/// A cheap, well-spread number per (notification, attempt): jitter needs
/// no cryptographic randomness.
fn jitter_seed(id: &str, failures: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(failures);
    for byte in id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ (crate::storage::actor::now_ms() as u64)
}

/// The server-to-server `notify` line for `record` (notifications.md §3.2):
/// its id, operation, message type and notifier, the **remaining** lifetime
/// as `ttln` (changes §6.4), its metadata block, then the key and value.
/// Priority, strategy and latestN stay on this server, as the reference's.
pub fn forward_line(record: &NotificationRecord, now_ms: i64) -> String {
    let op = match record.op_type {
        OpType::Update => "update",
        OpType::Delete => "delete",
    };
    let message_type = match record.message_type {
        MessageType::Key => "key",
        MessageType::Text => "text",
    };
    let remaining = record.expires_at.saturating_sub(now_ms).max(1);
    let mut line = format!(
        "notify:id:{}:{op}:messageType:{message_type}:notifier:{}:ttln:{remaining}",
        record.id, record.notifier
    );
    if let Some(meta) = &record.at_metadata {
        let created = meta.created_at.map(format_iso_utc);
        let updated = meta.updated_at.map(format_iso_utc);
        let fragment = MetaFragment {
            ttl: meta.ttl,
            ttb: meta.ttb,
            ttr: meta.ttr,
            ccd: meta.ccd,
            c_at: created.as_deref(),
            u_at: updated.as_deref(),
            data_signature: text(&meta.data_signature),
            is_binary: meta.is_binary.then_some(true),
            is_encrypted: Some(meta.is_encrypted),
            shared_key_enc: text(&meta.shared_key_enc),
            pub_key_cs: text(&meta.pub_key_cs),
            pub_key_hash: text(&meta.pub_key_hash),
            encoding: text(&meta.encoding),
            enc_key_name: text(&meta.enc_key_name),
            enc_algo: text(&meta.enc_algo),
            iv_nonce: text(&meta.iv_nonce),
            ske_enc_key_name: text(&meta.ske_enc_key_name),
            ske_enc_algo: text(&meta.ske_enc_algo),
            app_metadata: text(&meta.app_metadata),
            ..MetaFragment::default()
        };
        line.push_str(&fragment.to_string());
    }
    line.push(':');
    // A key notification about a public key is stored without the
    // recipient (`public:k@alice`); the line names it in front.
    if !record.notification.starts_with('@') {
        line.push('@');
        line.push_str(record.to_atsign.trim_start_matches('@'));
        line.push(':');
    }
    line.push_str(&record.notification);
    if let Some(value) = &record.at_value {
        line.push(':');
        line.push_str(value);
    }
    line
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

/// Hands every stored, unexpired `sent`/`queued` notification of `tenant`
/// to `courier` (and marks the expired ones `errored`), oldest first.
/// Returns how many were queued again.
pub async fn resume(courier: &Rc<Courier>, tenant: &Arc<Tenant>) -> usize {
    let mut cursor: Option<NotificationCursor> = None;
    let mut resumed = 0;
    loop {
        let page = match tenant
            .store
            .notifications_page(cursor.as_ref(), NOTIFICATION_PAGE_LEN_MAX)
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(atsign = %tenant.atsign, %error, "the outbox cannot be read");
                return resumed;
            }
        };
        let now = crate::storage::actor::now_ms();
        for record in &page {
            if record.notification_type != NotificationType::Sent
                || record.notification_status != NotificationStatus::Queued
            {
                continue;
            }
            if record.is_expired(now) {
                if let Err(error) = tenant
                    .store
                    .set_notification_status(
                        &record.id,
                        NotificationStatus::Errored,
                        record.retry_count,
                    )
                    .await
                {
                    tracing::error!(%error, id = %record.id, "a notification's status was not stored");
                }
                continue;
            }
            courier.enqueue(
                tenant,
                &record.to_atsign,
                record.id.clone(),
                latest_of(record),
            );
            resumed += 1;
        }
        match page.last() {
            Some(last) if page.len() == NOTIFICATION_PAGE_LEN_MAX => {
                cursor = Some(NotificationCursor::after(last));
            }
            _ => return resumed,
        }
    }
}

/// What `strategy:latest` asks of `record`'s delivery, if it says so.
pub fn latest_of(record: &NotificationRecord) -> Option<Latest> {
    (record.strategy == DeliveryStrategy::Latest).then(|| Latest {
        notifier: record.notifier.clone(),
        keep: record.depth,
    })
}

thread_local! {
    /// The courier of the shard running on this thread.
    static SHARD_COURIER: RefCell<Option<Rc<Courier>>> = const { RefCell::new(None) };
}

/// Makes `courier` deliver the notifications this thread's connections
/// send (a shard installs its own at start, beside its outbound side).
pub fn install(courier: Rc<Courier>) {
    SHARD_COURIER.with(|slot| *slot.borrow_mut() = Some(courier));
}

/// This shard's courier; `None` where none is installed (transcripts,
/// processes without a directory): notifications to other atSigns then stay
/// queued in the store.
pub fn of_this_shard() -> Option<Rc<Courier>> {
    SHARD_COURIER.with(|slot| slot.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::NotificationMeta;

    fn record() -> NotificationRecord {
        NotificationRecord {
            notification_type: NotificationType::Sent,
            notification_status: NotificationStatus::Queued,
            at_value: Some("c2VjcmV0".into()),
            at_metadata: Some(NotificationMeta {
                ttr: Some(-1),
                ccd: Some(false),
                is_encrypted: true,
                iv_nonce: Some("aXY=".into()),
                ..NotificationMeta::default()
            }),
            ttl: Some(60_000),
            ..NotificationRecord::received(
                "n1",
                "@alice",
                "@bob",
                "@bob:phone.wavi@alice".into(),
                1_000,
                61_000,
            )
        }
    }

    #[test]
    fn the_forwarded_line_carries_the_remaining_lifetime_and_the_metadata() {
        assert_eq!(
            forward_line(&record(), 11_000),
            "notify:id:n1:update:messageType:key:notifier:SYSTEM:ttln:50000:ttr:-1:ccd:false:isEncrypted:true:ivNonce:aXY=:@bob:phone.wavi@alice:c2VjcmV0"
        );
    }

    #[test]
    fn public_and_text_notifications_name_the_recipient_once() {
        let mut public = record();
        public.notification = "public:phone.wavi@alice".into();
        public.at_metadata = None;
        public.at_value = None;
        assert_eq!(
            forward_line(&public, 1_000),
            "notify:id:n1:update:messageType:key:notifier:SYSTEM:ttln:60000:@bob:public:phone.wavi@alice"
        );
        let mut text = record();
        text.message_type = MessageType::Text;
        text.notification = "@bob:aGk=".into();
        text.at_metadata = Some(NotificationMeta::default());
        text.at_value = None;
        text.op_type = OpType::Delete;
        assert_eq!(
            forward_line(&text, 60_999),
            "notify:id:n1:delete:messageType:text:notifier:SYSTEM:ttln:1:isEncrypted:false:@bob:aGk="
        );
    }

    #[test]
    fn forwarded_lines_parse_as_the_notify_the_receiver_expects() {
        let line = forward_line(&record(), 11_000);
        let verb = crate::protocol::parse::identify(&line).unwrap();
        let parsed = crate::protocol::parse::parse(verb, &line).unwrap();
        let crate::protocol::command::Command::Notify(n) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(n.id, Some("n1"));
        assert_eq!(n.key, "phone.wavi");
        assert_eq!(n.owner, Some("alice"));
        assert_eq!(n.value, Some("c2VjcmV0"));
        assert_eq!(n.meta.iv_nonce, Some("aXY="));
        assert_eq!(n.ttln, Some(50_000));
    }

    #[test]
    fn latest_keeps_the_newest_n_of_each_notifier() {
        let latest = |n: &str, keep| Waiting {
            id: String::new(),
            latest: Some(Latest {
                notifier: n.into(),
                keep,
            }),
        };
        let lane = Lane {
            waiting: VecDeque::from([latest("a", 1), latest("b", 1), latest("a", 1)]),
        };
        assert!(lane.supersedes(&latest("a", 1)));
        assert!(!lane.supersedes(&latest("a", 3)));
        assert!(lane.supersedes(&latest("b", 1)));
        assert!(!lane.supersedes(&latest("c", 1)));
        let all = Waiting {
            id: String::new(),
            latest: None,
        };
        assert!(!lane.supersedes(&all));
    }

    #[test]
    fn retry_pauses_double_up_to_the_cap_with_bounded_jitter() {
        assert_eq!(retry_pause(1, 0), DELIVERY_RETRY_BASE_MS);
        assert_eq!(retry_pause(2, 0), 2 * DELIVERY_RETRY_BASE_MS);
        assert_eq!(retry_pause(40, 0), DELIVERY_RETRY_MAX_MS);
        for seed in [1, 77, u64::MAX] {
            for failures in 1..30 {
                let pause = retry_pause(failures, seed);
                let full = retry_pause(failures, 0);
                assert!(pause <= full && pause >= full / 2, "{failures} {seed}");
            }
        }
    }
}
