//! The notification store (`notifications.rs`): idempotent puts, the
//! creation-time index, status, removal, expiry, lifetimes, restarts, and a
//! model test of record and indexes staying consistent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;

use super::notifications::*;
use super::*;
use crate::error::AtCode;
use crate::health::FatalSink;

/// A time `offset_ms` after this test process started: notifications of
/// the tests must be recent, or the expiry sweep purges them under them.
pub(super) fn t(offset_ms: i64) -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(actor::now_ms) + offset_ms
}

/// A queued notification of `id` created at `created`, living an hour.
pub(super) fn notification(id: &str, created: i64) -> NotificationRecord {
    NotificationRecord {
        id: id.to_string(),
        from_atsign: "@bob".into(),
        to_atsign: "@alice".into(),
        notification_date_time: created,
        notification: "@alice:phone.wavi@bob".into(),
        notification_type: NotificationType::Received,
        op_type: OpType::Update,
        message_type: MessageType::Key,
        priority: Priority::Low,
        notification_status: NotificationStatus::Queued,
        retry_count: 1,
        strategy: DeliveryStrategy::All,
        notifier: "SYSTEM".into(),
        depth: 1,
        at_value: Some("v".into()),
        at_metadata: None,
        ttl: None,
        expires_at: created + 3_600_000,
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Durability::Fast, FatalSink::log_only()).expect("open")
}

fn put(tenant: &TenantStore, record: NotificationRecord) -> Stored {
    block_on(tenant.put_notification(record)).expect("put")
}

fn ids(records: &[NotificationRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

/// Every (id, created, expires) the three keyspaces hold for `atsign`,
/// read raw: records, creation-time index and expiry index must agree.
fn raw_view(store: &Store, atsign: &str) -> [Vec<(String, i64, i64)>; 3] {
    let ks = &store.inner.keyspaces;
    let prefix = layout::tenant_prefix(atsign);
    let mut records = Vec::new();
    for item in ks.notifications.prefix(&prefix) {
        let (_, value) = item.into_inner().expect("scan");
        let record = NotificationRecord::decode(&value).expect("record");
        records.push((record.id, record.notification_date_time, record.expires_at));
    }
    let mut times = Vec::new();
    for item in ks.notification_times.prefix(&prefix) {
        let key = item.key().expect("scan");
        let (a, created, id) = layout::parse_notification_time_key(&key).expect("time key");
        assert_eq!(a, atsign);
        let expires = records
            .iter()
            .find(|(i, _, _)| i == id)
            .map_or(i64::MIN, |r| r.2);
        times.push((id.to_string(), created, expires));
    }
    let mut expiry = Vec::new();
    for item in ks.notification_expiry.iter() {
        let key = item.key().expect("scan");
        let (at, a, id) = layout::parse_expiry_key(&key).expect("expiry key");
        if a != atsign {
            continue;
        }
        let created = records
            .iter()
            .find(|(i, _, _)| i == id)
            .map_or(i64::MIN, |r| r.1);
        expiry.push((id.to_string(), created, at));
    }
    records.sort();
    times.sort();
    expiry.sort();
    [records, times, expiry]
}

fn assert_consistent(store: &Store, atsign: &str) -> Vec<(String, i64, i64)> {
    let [records, times, expiry] = raw_view(store, atsign);
    assert_eq!(records, times, "records and the creation-time index differ");
    assert_eq!(records, expiry, "records and the expiry index differ");
    records
}

#[test]
fn a_second_put_of_an_id_stores_nothing_and_says_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    assert_eq!(put(&alice, notification("n1", t(1_000))), Stored::New);
    let mut again = notification("n1", t(2_000));
    again.at_value = Some("other".into());
    assert_eq!(put(&alice, again), Stored::Duplicate);
    let stored = alice.notification("n1").expect("read").expect("stored");
    assert_eq!(stored, notification("n1", t(1_000)));
    // The same id of another atSign is another notification.
    assert_eq!(
        put(&store.tenant("@bob"), notification("n1", t(5))),
        Stored::New
    );
    assert_eq!(assert_consistent(&store, "@alice").len(), 1);
}

#[test]
fn two_puts_of_one_id_in_one_batch_store_one_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    // A key write whose closure waits holds the actor inside one batch
    // while both puts queue up, so the next drain takes them together.
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let blocker = alice.clone();
    let holding = std::thread::spawn(move || {
        block_on(blocker.write("hold@alice".into(), false, move |_| {
            let _ = entered_tx.send(());
            let _ = released.recv_timeout(Duration::from_secs(10));
            Ok(Mutation::Unchanged)
        }))
    });
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("actor held");
    let first = block_on(alice.submit_work(
        actor::Work::Notification(NotificationWrite::Put(Box::new(notification("dup", t(1))))),
        1,
    ))
    .expect("queued");
    let second = block_on(alice.submit_work(
        actor::Work::Notification(NotificationWrite::Put(Box::new(notification("dup", t(2))))),
        1,
    ))
    .expect("queued");
    release.send(()).expect("release");
    holding.join().expect("join").expect("held write");
    let first = block_on(first.outcome()).expect("first");
    let second = block_on(second.outcome()).expect("second");
    assert!(!first.existed, "the first put stores");
    assert!(
        second.existed,
        "the second finds the first, staged in its batch"
    );
    assert_eq!(
        alice.notification("dup").expect("read"),
        Some(notification("dup", t(1)))
    );
    assert_eq!(assert_consistent(&store, "@alice").len(), 1);
}

#[test]
fn notifications_after_a_time_come_strictly_after_it_in_creation_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    for (id, created) in [("d", 30), ("b", 20), ("a", 20), ("c", 10), ("e", -5)] {
        put(&alice, notification(id, t(created)));
    }
    put(&store.tenant("@alicf"), notification("x", t(25)));
    put(&store.tenant("@alic"), notification("y", t(25)));
    let all = alice.notifications_after(i64::MIN, 100).expect("list");
    assert_eq!(ids(&all), ["e", "c", "a", "b", "d"]);
    let after = alice.notifications_after(t(20), 100).expect("list");
    assert_eq!(ids(&after), ["d"], "strictly after: not the two at 20");
    let after = alice.notifications_after(t(19), 100).expect("list");
    assert_eq!(ids(&after), ["a", "b", "d"]);
    assert_eq!(alice.notifications_after(t(30), 100).expect("list"), []);
    assert_eq!(alice.notifications_after(i64::MAX, 100).expect("list"), []);
    assert_eq!(
        ids(&store
            .tenant("@bob")
            .notifications_after(0, 10)
            .expect("list")),
        Vec::<&str>::new()
    );
}

#[test]
fn pages_are_bounded_and_resume_without_skipping_ties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    for id in ["a", "b", "c", "d", "e"] {
        put(&alice, notification(id, t(7)));
    }
    assert_eq!(
        ids(&alice.notifications_after(0, 2).expect("list")),
        ["a", "b"]
    );
    assert_eq!(alice.notifications_after(0, 0).expect("list"), []);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = alice.notifications_page(cursor.as_ref(), 2).expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(NotificationCursor::after(last));
        seen.extend(page.iter().map(|r| r.id.clone()));
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
}

#[test]
fn a_page_never_holds_more_than_the_page_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    let pending: Vec<_> = (0..NOTIFICATION_PAGE_LEN_MAX + 3)
        .map(|n| {
            let write = NotificationWrite::Put(Box::new(notification(&format!("n{n:05}"), t(1))));
            block_on(alice.submit_work(actor::Work::Notification(write), 1)).expect("queued")
        })
        .collect();
    for write in pending {
        block_on(write.outcome()).expect("put");
    }
    let page = alice.notifications_after(0, usize::MAX).expect("list");
    assert_eq!(page.len(), NOTIFICATION_PAGE_LEN_MAX);
}

#[test]
fn a_status_update_is_read_back_and_an_unknown_id_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    put(&alice, notification("n1", t(1_000)));
    let set = |id: &str, status, retries| {
        block_on(alice.set_notification_status(id, status, retries)).expect("status")
    };
    assert!(set("n1", NotificationStatus::Errored, 2));
    let stored = alice.notification("n1").expect("read").expect("stored");
    assert_eq!(stored.notification_status, NotificationStatus::Errored);
    assert_eq!(stored.retry_count, 2);
    assert_eq!(stored.reported_status(1_000), ReportedStatus::Errored);
    assert!(!set("missing", NotificationStatus::Delivered, 1));
    assert!(!set("not an id", NotificationStatus::Delivered, 1));
    assert_eq!(assert_consistent(&store, "@alice").len(), 1);
}

#[test]
fn a_removal_takes_the_record_and_its_index_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    put(&alice, notification("n1", t(1_000)));
    put(&alice, notification("n2", t(2_000)));
    assert!(block_on(alice.remove_notification("n1")).expect("remove"));
    assert!(!block_on(alice.remove_notification("n1")).expect("remove again"));
    assert_eq!(alice.notification("n1").expect("read"), None);
    assert_eq!(
        ids(&alice.notifications_after(0, 10).expect("list")),
        ["n2"]
    );
    let left = assert_consistent(&store, "@alice");
    assert_eq!(left, [("n2".to_string(), t(2_000), t(2_000) + 3_600_000)]);
    // A removed id can be stored again.
    assert_eq!(put(&alice, notification("n1", t(3_000))), Stored::New);
}

#[test]
fn expired_notifications_are_purged_with_their_index_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    let now = actor::now_ms();
    let mut expired = notification("old", now - 2_000);
    expired.expires_at = now - 1_000;
    assert!(expired.is_expired(now));
    assert_eq!(expired.reported_status(now), ReportedStatus::Expired);
    put(&alice, expired);
    put(&alice, notification("live", now));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alice.notification("old").expect("read").is_some() {
        assert!(Instant::now() < deadline, "the sweep never purged it");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = assert_consistent(&store, "@alice");
    assert_eq!(
        ids(&alice.notifications_after(i64::MIN, 10).expect("list")),
        ["live"]
    );
    assert_eq!(left.len(), 1);
}

#[test]
fn a_put_caps_the_expiry_at_the_lifetime_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    let mut forever = notification("n1", t(1_000));
    forever.expires_at = i64::MAX;
    put(&alice, forever);
    let stored = alice.notification("n1").expect("read").expect("stored");
    assert_eq!(stored.expires_at, t(1_000) + NOTIFICATION_LIFETIME_MS_MAX);
    // Created longer ago than the cap is expired, whatever it says.
    let mut old = notification("n2", t(0));
    old.expires_at = i64::MAX;
    assert!(old.is_expired(t(0) + NOTIFICATION_LIFETIME_MS_MAX + 1));
    assert!(!old.is_expired(t(0) + NOTIFICATION_LIFETIME_MS_MAX));
    assert_consistent(&store, "@alice");
}

#[test]
fn lifetimes_default_and_clamp_with_checked_arithmetic() {
    let default = NOTIFICATION_LIFETIME_MS_DEFAULT;
    let max = NOTIFICATION_LIFETIME_MS_MAX;
    assert_eq!(notification_lifetime_ms(None, default), default);
    assert_eq!(notification_lifetime_ms(Some(0), default), default);
    assert_eq!(notification_lifetime_ms(Some(-5), default), default);
    assert_eq!(notification_lifetime_ms(Some(60_000), default), 60_000);
    assert_eq!(notification_lifetime_ms(Some(i64::MAX), default), max);
    assert_eq!(notification_lifetime_ms(None, 60_000), 60_000);
    assert_eq!(notification_lifetime_ms(None, i64::MAX), max);
    assert_eq!(notification_lifetime_ms(None, 0), default);
    assert_eq!(
        notification_expires_at(1_000, None, default),
        Some(1_000 + default)
    );
    assert_eq!(
        notification_expires_at(1_000, Some(i64::MAX), default),
        Some(1_000 + max)
    );
    assert_eq!(
        notification_expires_at(i64::MAX - 10, Some(60_000), default),
        None
    );
    assert_eq!(
        notification_expires_at(i64::MIN, None, default),
        Some(i64::MIN + default)
    );
    assert_eq!(clamp_notification_expiry(1_000, 5_000), Some(5_000));
    assert_eq!(
        clamp_notification_expiry(1_000, i64::MAX),
        Some(1_000 + max)
    );
    assert_eq!(clamp_notification_expiry(i64::MAX, 0), None);
}

#[test]
fn bad_and_too_long_ids_are_refused_as_at0002_before_they_are_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    let longest = "a".repeat(NOTIFICATION_ID_CHARS_MAX);
    assert_eq!(put(&alice, notification(&longest, t(1))), Stored::New);
    for (id, expected) in [
        (
            "a".repeat(NOTIFICATION_ID_CHARS_MAX + 1),
            NotificationProblem::IdTooLong {
                chars: NOTIFICATION_ID_CHARS_MAX + 1,
            },
        ),
        (String::new(), NotificationProblem::IdEmpty),
        ("a:b".to_string(), NotificationProblem::IdNotWordCharacters),
        ("é".to_string(), NotificationProblem::IdNotWordCharacters),
    ] {
        let refused = block_on(alice.put_notification(notification(&id, t(1))));
        match refused {
            Err(WriteError::Store(StoreError::InvalidNotification { problem, .. })) => {
                assert_eq!(problem, expected, "{id:?}")
            }
            other => panic!("{id:?}: {other:?}"),
        }
        assert_eq!(alice.notification(&id).expect("read"), None);
    }
    let mut huge = notification("big", t(1));
    huge.at_value = Some("v".repeat(NOTIFICATION_TEXT_BYTES_MAX));
    let refused = block_on(alice.put_notification(huge)).expect_err("too much text");
    assert!(!refused.is_store_failure(), "the request is at fault");
    assert_eq!(AtError::from(refused).code, AtCode::DataStore);
    assert!(!store.is_poisoned());
    assert_consistent(&store, "@alice");
}

#[test]
fn notifications_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store =
            Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        put(&alice, notification("n1", t(10)));
        put(&alice, notification("n2", t(20)));
        put(&alice, notification("n3", t(30)));
        assert!(block_on(alice.remove_notification("n2")).expect("remove"));
        assert!(
            block_on(alice.set_notification_status("n3", NotificationStatus::Delivered, 1))
                .expect("status")
        );
        drop(alice);
        assert!(store.close().is_ok(), "the only handle closes the store");
    }
    let store = open(dir.path());
    let alice = store.tenant("@alice");
    let listed = alice.notifications_after(0, 10).expect("list");
    assert_eq!(ids(&listed), ["n1", "n3"]);
    assert_eq!(listed[1].notification_status, NotificationStatus::Delivered);
    assert_eq!(put(&alice, notification("n1", t(99))), Stored::Duplicate);
    assert_eq!(assert_consistent(&store, "@alice").len(), 2);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(any::<String>())
    }

    fn meta() -> impl Strategy<Value = NotificationMeta> {
        let times = (
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            any::<bool>(),
            any::<bool>(),
        );
        let texts = proptest::collection::vec(text(), 11);
        (times, texts).prop_map(|(t, s)| {
            let mut s = s.into_iter();
            let mut next = || s.next().flatten();
            NotificationMeta {
                ttl: t.0,
                ttb: t.1,
                ttr: t.2,
                ccd: t.3,
                created_at: t.4,
                updated_at: t.5,
                is_encrypted: t.6,
                is_binary: t.7,
                shared_key_enc: next(),
                pub_key_cs: next(),
                enc_key_name: next(),
                enc_algo: next(),
                iv_nonce: next(),
                ske_enc_key_name: next(),
                ske_enc_algo: next(),
                data_signature: next(),
                pub_key_hash: next(),
                app_metadata: next(),
                encoding: next(),
            }
        })
    }

    pub(super) fn record() -> impl Strategy<Value = NotificationRecord> {
        let kinds = (
            prop_oneof![
                Just(NotificationType::Sent),
                Just(NotificationType::Received),
                Just(NotificationType::SelfNotification)
            ],
            prop_oneof![Just(OpType::Update), Just(OpType::Delete)],
            prop_oneof![Just(MessageType::Key), Just(MessageType::Text)],
            prop_oneof![
                Just(Priority::Low),
                Just(Priority::Medium),
                Just(Priority::High)
            ],
            prop_oneof![
                Just(NotificationStatus::Queued),
                Just(NotificationStatus::Delivered),
                Just(NotificationStatus::Errored)
            ],
            prop_oneof![Just(DeliveryStrategy::All), Just(DeliveryStrategy::Latest)],
        );
        let numbers = (
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<i64>()),
            any::<i64>(),
        );
        let texts = (
            "[A-Za-z0-9_-]{1,40}",
            any::<String>(),
            any::<String>(),
            any::<String>(),
            any::<String>(),
            text(),
            proptest::option::of(meta()),
        );
        (kinds, numbers, texts).prop_map(|(k, n, t)| NotificationRecord {
            id: t.0,
            from_atsign: t.1,
            to_atsign: t.2,
            notification: t.3,
            notifier: t.4,
            at_value: t.5,
            at_metadata: t.6,
            notification_type: k.0,
            op_type: k.1,
            message_type: k.2,
            priority: k.3,
            notification_status: k.4,
            strategy: k.5,
            notification_date_time: n.0,
            retry_count: n.1,
            depth: n.2,
            ttl: n.3,
            expires_at: n.4,
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put { id: u8, created: i64 },
        Remove { id: u8 },
        SetStatus { id: u8, retries: u32 },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, 0i64..5).prop_map(|(id, created)| Op::Put { id, created }),
            2 => (0u8..8).prop_map(|id| Op::Remove { id }),
            1 => (0u8..8, 1u32..4).prop_map(|(id, retries)| Op::SetStatus { id, retries }),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_record_survives_encode_and_decode(record in record()) {
            prop_assert_eq!(NotificationRecord::decode(&record.encode()), Ok(record));
        }

        /// Puts, removals and status updates, submitted together so they
        /// share batches, against a map of id to (created, retries), with
        /// reopens: the store answers as the map does, and records and
        /// both indexes always agree.
        #[test]
        fn records_and_indexes_stay_consistent_with_a_map(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = Some(open(dir.path()));
            let mut model: BTreeMap<String, (i64, u32)> = BTreeMap::new();
            for chunk in ops.chunks(4) {
                let Some(current) = store.as_ref() else { break };
                let alice = current.tenant("@alice");
                let mut waiting = Vec::new();
                let mut reopen = false;
                for op in chunk {
                    let (write, expected) = match op {
                        Op::Put { id, created } => {
                            let id = format!("n{id}");
                            let existed = model.contains_key(&id);
                            model.entry(id.clone()).or_insert((t(*created), 1));
                            let record = notification(&id, t(*created));
                            (NotificationWrite::Put(Box::new(record)), existed)
                        }
                        Op::Remove { id } => {
                            let id = format!("n{id}");
                            let existed = model.remove(&id).is_some();
                            (NotificationWrite::Remove { id }, existed)
                        }
                        Op::SetStatus { id, retries } => {
                            let id = format!("n{id}");
                            let existed = match model.get_mut(&id) {
                                Some(entry) => { entry.1 = *retries; true }
                                None => false,
                            };
                            let write = NotificationWrite::SetStatus {
                                id,
                                status: NotificationStatus::Errored,
                                retry_count: *retries,
                            };
                            (write, existed)
                        }
                        Op::Reopen => { reopen = true; continue; }
                    };
                    let queued = block_on(alice.submit_work(actor::Work::Notification(write), 1))
                        .expect("queued");
                    waiting.push((queued, expected));
                }
                for (queued, expected) in waiting {
                    let outcome = block_on(queued.outcome()).expect("outcome");
                    prop_assert_eq!(outcome.existed, expected);
                }
                let held = assert_consistent(current, "@alice");
                let held: Vec<(String, i64)> =
                    held.into_iter().map(|(id, created, _)| (id, created)).collect();
                let expected: Vec<(String, i64)> =
                    model.iter().map(|(id, (created, _))| (id.clone(), *created)).collect();
                prop_assert_eq!(held, expected);
                for (id, (_, retries)) in &model {
                    let stored = alice.notification(id).expect("read").expect("stored");
                    prop_assert_eq!(stored.retry_count, *retries);
                }
                let listed = alice.notifications_after(i64::MIN, 100).expect("list");
                let mut in_order: Vec<(i64, String)> =
                    model.iter().map(|(id, (created, _))| (*created, id.clone())).collect();
                in_order.sort();
                let listed: Vec<(i64, String)> = listed
                    .into_iter()
                    .map(|r| (r.notification_date_time, r.id))
                    .collect();
                prop_assert_eq!(listed, in_order);
                if reopen {
                    drop(alice);
                    if let Some(closing) = store.take() {
                        prop_assert!(closing.close().is_ok());
                    }
                    store = Some(open(dir.path()));
                }
            }
        }
    }
}
