use super::*;
use crate::health::FatalSink;
use futures_lite::future::block_on;

fn record(value: &str, now: i64) -> StoredRecord {
    StoredRecord {
        value: Some(value.to_string()),
        meta: StoredMeta {
            created_at: now,
            updated_at: now,
            ..StoredMeta::default()
        },
    }
}

fn put(tenant: &TenantStore, key: &str, value: &str, commit: bool) -> WriteOutcome {
    let rec = record(value, actor::now_ms());
    block_on(tenant.write(key.to_string(), commit, move |_| {
        Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
    }))
    .expect("write")
}

#[test]
fn written_records_are_read_back_and_commit_ids_are_gap_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    assert_eq!(alice.last_commit_id().expect("last"), None);
    assert_eq!(put(&alice, "phone@alice", "123", true).commit_id, Some(0));
    assert_eq!(put(&alice, "privatekey:x", "s", false).commit_id, None);
    assert_eq!(put(&alice, "email@alice", "a@b", true).commit_id, Some(1));
    assert_eq!(
        alice.get("phone@alice").expect("get").and_then(|r| r.value),
        Some("123".into())
    );
    assert_eq!(alice.last_commit_id().expect("last"), Some(1));
    let log = alice.commits_from(0, 10).expect("log");
    assert_eq!(
        log.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(log[1].1.key, "email@alice");
}

#[test]
fn tenants_do_not_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    let bob = store.tenant("@bob");
    put(&alice, "phone@alice", "1", true);
    assert_eq!(bob.get("phone@alice").expect("get"), None);
    assert_eq!(bob.last_commit_id().expect("last"), None);
    let mut seen = Vec::new();
    bob.for_each(|k, _| {
        seen.push(k.to_string());
        true
    })
    .expect("scan");
    assert!(seen.is_empty());
}

#[test]
fn a_merge_sees_the_previous_record_even_within_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    // Eight threads write at once so requests share batches with their peers.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let alice = alice.clone();
            scope.spawn(move || {
                for _ in 0..25 {
                    let bump = alice.write("n@alice".into(), true, |old| {
                        let mut rec = old.unwrap_or_default();
                        rec.meta.version += 1;
                        Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
                    });
                    block_on(bump).expect("write");
                }
            });
        }
    });
    assert_eq!(
        alice.get("n@alice").expect("get").map(|r| r.meta.version),
        Some(200)
    );
}

#[test]
fn deletes_commit_and_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    put(&alice, "phone@alice", "1", true);
    let outcome = block_on(alice.write("phone@alice".into(), true, |_| Ok(Mutation::Delete)))
        .expect("delete");
    assert_eq!(
        outcome,
        WriteOutcome {
            commit_id: Some(1),
            existed: true
        }
    );
    assert_eq!(alice.get("phone@alice").expect("get"), None);
    let log = alice.commits_from(1, 10).expect("log");
    assert_eq!(log[0].1.op, CommitOp::Delete);
}

#[test]
fn expired_records_are_purged_through_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    let alice = store.tenant("@alice");
    let now = actor::now_ms();
    let mut rec = record("soon gone", now);
    rec.meta.expires_at = Some(now + 50);
    block_on(alice.write("temp@alice".into(), true, move |_| {
        Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
    }))
    .expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alice.get("temp@alice").expect("get").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "record was never purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = alice.commits_from(0, 10).expect("log");
    assert_eq!(log.last().map(|(_, e)| e.op), Some(CommitOp::Delete));
}

#[test]
fn durable_writes_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store =
            Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("open");
        put(&store.tenant("@alice"), "phone@alice", "kept", true);
        assert!(store.close().is_ok(), "the only handle closes the store");
    }
    let store =
        Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("reopen");
    let alice = store.tenant("@alice");
    assert_eq!(
        alice.get("phone@alice").expect("get").and_then(|r| r.value),
        Some("kept".into())
    );
    assert_eq!(put(&alice, "email@alice", "x", true).commit_id, Some(1));
}

#[test]
fn a_fast_store_syncs_what_it_acknowledged_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
    assert_eq!(
        store.background_syncs(),
        0,
        "nothing written, nothing to sync"
    );
    put(&store.tenant("@alice"), "phone@alice", "1", true);
    // Polls with a generous limit: what is asserted is that the sync
    // happens, not when.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.background_syncs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the acknowledged write was never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!store.is_poisoned());
}

mod companions {
    //! A write with a companion: two keys in one request, applied in one
    //! batch, both or neither, with one outcome.

    use super::*;
    use crate::error::{AtCode, AtError};

    fn putting(value: &str) -> actor::MutateFn {
        let rec = record(value, 1);
        Box::new(move |_| Ok(Mutation::Put(Box::new(rec), CommitOp::Update)))
    }

    fn refusing() -> actor::MutateFn {
        Box::new(|_| Err(AtError::new(AtCode::Unauthorized, "refused on purpose")))
    }

    fn appending(suffix: &'static str) -> actor::MutateFn {
        Box::new(move |old: Option<StoredRecord>| {
            let old = old.and_then(|r| r.value).unwrap_or_default();
            Ok(Mutation::Put(
                Box::new(record(&format!("{old}{suffix}"), 1)),
                CommitOp::Update,
            ))
        })
    }

    fn request(write: KeyWrite, companion: KeyWrite) -> WriteRequest {
        WriteRequest {
            companion: Some(companion),
            ..WriteRequest::new(write)
        }
    }

    fn submit(tenant: &TenantStore, request: WriteRequest) -> Result<WriteOutcome, WriteError> {
        block_on(async { tenant.submit_request(request).await?.outcome().await })
    }

    fn value(tenant: &TenantStore, key: &str) -> Option<String> {
        tenant.get(key).expect("get").and_then(|r| r.value)
    }

    #[test]
    fn a_write_and_its_companion_land_together_with_one_outcome() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        put(&alice, "secret@alice", "s", true);
        let outcome = submit(
            &alice,
            request(
                KeyWrite::new(
                    "secret@alice".into(),
                    true,
                    Box::new(|_| Ok(Mutation::Delete)),
                ),
                KeyWrite::new("tombstone@alice".into(), false, putting("true")),
            ),
        )
        .expect("written");
        assert_eq!(
            outcome,
            WriteOutcome {
                commit_id: Some(1),
                existed: true
            },
            "the outcome is the write's"
        );
        assert_eq!(value(&alice, "secret@alice"), None);
        assert_eq!(value(&alice, "tombstone@alice").as_deref(), Some("true"));
        let log = alice.commits_from(0, 10).expect("log");
        let logged: Vec<(u64, &str)> = log.iter().map(|(id, e)| (*id, e.key.as_str())).collect();
        assert_eq!(
            logged,
            [(1, "secret@alice")],
            "the delete superseded the put; the companion asked for no entry"
        );
    }

    #[test]
    fn a_refused_companion_undoes_nothing_because_nothing_of_it_was_staged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        put(&alice, "secret@alice", "s", true);
        let refused = submit(
            &alice,
            request(
                KeyWrite::new(
                    "secret@alice".into(),
                    true,
                    Box::new(|_| Ok(Mutation::Delete)),
                ),
                KeyWrite::new("tombstone@alice".into(), false, refusing()),
            ),
        );
        assert!(
            matches!(refused, Err(WriteError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(value(&alice, "secret@alice").as_deref(), Some("s"));
        assert_eq!(value(&alice, "tombstone@alice"), None);
        // No commit id was used up: the next one follows the last.
        assert_eq!(put(&alice, "next@alice", "n", true).commit_id, Some(1));
    }

    #[test]
    fn a_refused_write_keeps_its_companion_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        let refused = submit(
            &alice,
            request(
                KeyWrite::new("secret@alice".into(), true, refusing()),
                KeyWrite::new("tombstone@alice".into(), false, putting("true")),
            ),
        );
        assert!(
            matches!(refused, Err(WriteError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(value(&alice, "tombstone@alice"), None);
    }

    #[test]
    fn a_companion_of_the_same_key_builds_on_the_write_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        let outcome = submit(
            &alice,
            request(
                KeyWrite::new("k@alice".into(), true, appending("a")),
                KeyWrite::new("k@alice".into(), true, appending("b")),
            ),
        )
        .expect("written");
        assert_eq!(outcome.commit_id, Some(0));
        assert_eq!(value(&alice, "k@alice").as_deref(), Some("ab"));
        let ids: Vec<u64> = alice
            .commits_from(0, 10)
            .expect("log")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, [1], "the log keeps the key's latest entry only");
        assert_eq!(
            put(&alice, "next@alice", "n", true).commit_id,
            Some(2),
            "both got gap-free ids"
        );
    }

    #[test]
    fn a_companion_key_too_long_refuses_the_whole_request_before_it_is_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        let refused = block_on(alice.submit_request(request(
            KeyWrite::new("k@alice".into(), true, putting("v")),
            KeyWrite::new("x".repeat(actor::FJALL_KEY_BYTES_MAX), false, putting("v")),
        )));
        assert!(matches!(refused, Err(StoreError::KeyTooLong { .. })));
        assert_eq!(value(&alice, "k@alice"), None);
        assert!(!store.is_poisoned());
    }

    #[test]
    fn a_refused_request_in_a_batch_leaves_the_others_of_the_batch_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let alice = store.tenant("@alice");
        let submitted: Vec<PendingWrite> = (0..6)
            .map(|i| {
                let companion = if i == 3 { refusing() } else { putting("c") };
                let request = request(
                    KeyWrite::new(format!("w{i}@alice"), true, putting("w")),
                    KeyWrite::new(format!("c{i}@alice"), false, companion),
                );
                block_on(alice.submit_request(request)).expect("queued")
            })
            .collect();
        let outcomes: Vec<_> = submitted
            .into_iter()
            .map(|p| block_on(p.outcome()))
            .collect();
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.is_ok(), i != 3, "request {i}: {outcome:?}");
            let landed = value(&alice, &format!("w{i}@alice")).is_some();
            assert_eq!(landed, i != 3, "write {i}");
        }
        let ids: Vec<u64> = alice
            .commits_from(0, 10)
            .expect("log")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4], "gap-free without the refused one");
    }
}

mod model {
    //! The store against a `BTreeMap` model: random puts, deletes and
    //! reopens must leave the same contents, gap-free commit ids, and a
    //! commit log holding exactly the latest entry of every key.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, String),
        Delete(u8),
        /// A put or delete that leaves the log alone (`private:` keys): the
        /// key keeps the entry it had.
        Unlogged(u8, Option<String>),
        /// `:nc`: the key keeps no entry; a put, or a write that leaves the
        /// record as it is.
        Forget(u8, Option<String>),
        /// Read-modify-writes submitted together (one actor batch, mostly):
        /// each appends to what the previous write of its key left.
        Appends(Vec<(u8, String)>),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..8, "[a-z]{0,12}").prop_map(|(k, v)| Op::Put(k, v)),
            3 => (0u8..8).prop_map(Op::Delete),
            2 => (0u8..8, proptest::option::of("[a-z]{0,4}")).prop_map(|(k, v)| Op::Unlogged(k, v)),
            2 => (0u8..8, proptest::option::of("[a-z]{0,4}")).prop_map(|(k, v)| Op::Forget(k, v)),
            3 => proptest::collection::vec((0u8..8, "[a-z]{1,4}"), 1..12).prop_map(Op::Appends),
            1 => Just(Op::Reopen),
        ]
    }

    fn append(suffix: String) -> actor::MutateFn {
        Box::new(move |previous: Option<StoredRecord>| {
            let old = previous.and_then(|r| r.value).unwrap_or_default();
            Ok(Mutation::Put(
                Box::new(record(&format!("{old}{suffix}"), 1)),
                CommitOp::Update,
            ))
        })
    }

    fn key(k: u8) -> String {
        format!("k{k}.model@alice")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn the_store_matches_a_map_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            // Each key's latest commit id: what the log must hold.
            let mut latest: BTreeMap<String, u64> = BTreeMap::new();
            let mut commits = 0u64;
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let rec = record(&v, 1);
                        let outcome = block_on(store.tenant("@alice").write(key(k), true, move |_| {
                            Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
                        }))
                        .expect("put");
                        prop_assert_eq!(outcome.commit_id, Some(commits));
                        latest.insert(key(k), commits);
                        commits += 1;
                        model.insert(key(k), v);
                    }
                    Op::Delete(k) => {
                        let outcome = block_on(store.tenant("@alice").write(key(k), true, |_| Ok(Mutation::Delete)))
                            .expect("delete");
                        prop_assert_eq!(outcome.commit_id, Some(commits));
                        latest.insert(key(k), commits);
                        commits += 1;
                        model.remove(&key(k));
                    }
                    Op::Unlogged(k, value) => {
                        let outcome = match value.clone() {
                            Some(v) => {
                                let rec = record(&v, 1);
                                block_on(store.tenant("@alice").write(key(k), false, move |_| {
                                    Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
                                }))
                            }
                            None => block_on(store.tenant("@alice").write(key(k), false, |_| Ok(Mutation::Delete))),
                        }
                        .expect("unlogged write");
                        prop_assert_eq!(outcome.commit_id, None);
                        match value {
                            Some(v) => model.insert(key(k), v),
                            None => model.remove(&key(k)),
                        };
                    }
                    Op::Forget(k, value) => {
                        let put = value.clone();
                        let mutate: actor::MutateFn = Box::new(move |_| match put {
                            Some(v) => Ok(Mutation::Put(Box::new(record(&v, 1)), CommitOp::Update)),
                            None => Ok(Mutation::Unchanged),
                        });
                        let write = actor::KeyWrite::new(key(k), CommitLog::Forget, mutate);
                        let pending = block_on(store.tenant("@alice").submit_request(WriteRequest::new(write)))
                            .expect("submit");
                        let outcome = block_on(pending.outcome()).expect("forget");
                        prop_assert_eq!(outcome.commit_id, None);
                        latest.remove(&key(k));
                        if let Some(v) = value {
                            model.insert(key(k), v);
                        }
                    }
                    Op::Appends(appends) => {
                        let tenant = store.tenant("@alice");
                        let pending: Vec<_> = appends
                            .iter()
                            .map(|(k, v)| block_on(tenant.submit(key(*k), true, append(v.clone()))).expect("submit"))
                            .collect();
                        for (pending, (k, v)) in pending.into_iter().zip(appends) {
                            let outcome = block_on(pending.outcome()).expect("append");
                            prop_assert_eq!(outcome.commit_id, Some(commits));
                            latest.insert(key(k), commits);
                            commits += 1;
                            model.entry(key(k)).or_default().push_str(&v);
                        }
                    }
                    Op::Reopen => {
                        prop_assert!(store.close().is_ok());
                        store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("reopen");
                    }
                }
                let tenant = store.tenant("@alice");
                for k in 0..8 {
                    let stored = tenant.get(&key(k)).expect("get").and_then(|r| r.value);
                    prop_assert_eq!(stored.as_ref(), model.get(&key(k)));
                }
                let expected_last = commits.checked_sub(1);
                prop_assert_eq!(tenant.last_commit_id().expect("last"), expected_last);
                let log: Vec<(u64, String)> = tenant.commits_from(0, 1_000).expect("log").into_iter().map(|(id, e)| (id, e.key)).collect();
                let mut expected: Vec<(u64, String)> = latest.iter().map(|(k, id)| (*id, k.clone())).collect();
                expected.sort();
                prop_assert_eq!(log, expected);
            }
            // Records, index and log name each other as `check-store` wants.
            prop_assert!(store.close().is_ok());
            let mut findings = Vec::new();
            check::check_shard(dir.path(), |f| findings.push(f.to_string())).expect("check");
            prop_assert_eq!(findings, Vec::<String>::new());
        }
    }
}

mod concurrent_commits {
    //! Many writers on one atSign at once (as connections on several
    //! shards are): the ids they get are strictly increasing per writer
    //! and gap-free together, and the log ends holding each key's latest
    //! entry, which is its highest id.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn concurrent_writers_get_gap_free_ids_and_the_log_keeps_each_keys_latest(
            plans in proptest::collection::vec(
                proptest::collection::vec((0u8..6, any::<bool>()), 1..40),
                2..6,
            )
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(
                Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open"),
            );
            let writers: Vec<_> = plans
                .iter()
                .cloned()
                .map(|plan| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        let tenant = store.tenant("@many");
                        plan.into_iter()
                            .map(|(k, delete)| {
                                let key = format!("k{k}.race@many");
                                let outcome = if delete {
                                    block_on(tenant.write(key.clone(), true, |_| Ok(Mutation::Delete)))
                                } else {
                                    let rec = record("v", 1);
                                    block_on(tenant.write(key.clone(), true, move |_| {
                                        Ok(Mutation::Put(Box::new(rec), CommitOp::UpdateAll))
                                    }))
                                };
                                (key, outcome.expect("written").commit_id.expect("an id"))
                            })
                            .collect::<Vec<(String, u64)>>()
                    })
                })
                .collect();
            let results: Vec<Vec<(String, u64)>> =
                writers.into_iter().map(|w| w.join().expect("writer")).collect();
            let mut latest: BTreeMap<String, u64> = BTreeMap::new();
            let mut all = Vec::new();
            for writes in &results {
                prop_assert!(writes.windows(2).all(|w| w[0].1 < w[1].1), "per writer increasing");
                for (key, id) in writes {
                    all.push(*id);
                    let slot = latest.entry(key.clone()).or_insert(*id);
                    *slot = (*slot).max(*id);
                }
            }
            all.sort_unstable();
            prop_assert_eq!(&all, &(0..all.len() as u64).collect::<Vec<_>>());
            let tenant = store.tenant("@many");
            let log: Vec<(u64, String)> = tenant
                .commits_from(0, 10_000)
                .expect("log")
                .into_iter()
                .map(|(id, entry)| (id, entry.key))
                .collect();
            let mut expected: Vec<(u64, String)> =
                latest.into_iter().map(|(key, id)| (id, key)).collect();
            expected.sort();
            prop_assert_eq!(log, expected);
        }
    }
}

mod commit_index_build {
    //! A store written before the commit index existed holds every entry
    //! ever made; opening it builds the index once and removes the
    //! superseded entries.

    use super::*;

    fn entry(key: &str, op: CommitOp) -> Vec<u8> {
        CommitEntry {
            key: key.to_string(),
            op,
            op_time_ms: 1,
        }
        .encode()
    }

    #[test]
    fn an_older_store_keeps_only_each_keys_latest_entry_after_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // The layout an older build left: three entries of one key, one
            // of another, a last commit id, and no index.
            let db = fjall::Database::builder(dir.path())
                .open()
                .expect("raw open");
            let open = |name: &str| {
                db.keyspace(name, fjall::KeyspaceCreateOptions::default)
                    .expect("keyspace")
            };
            let (commits, meta) = (open(layout::COMMITS), open(layout::META));
            let rows = [
                (0, entry("k@old", CommitOp::UpdateAll)),
                (1, entry("j@old", CommitOp::UpdateAll)),
                (2, entry("k@old", CommitOp::UpdateMeta)),
                (3, entry("k@old", CommitOp::Delete)),
            ];
            for (id, bytes) in rows {
                commits
                    .insert(layout::commit_key("@old", id), bytes)
                    .expect("insert");
            }
            meta.insert(layout::last_commit_key("@old"), 3u64.to_be_bytes())
                .expect("insert");
            db.persist(fjall::PersistMode::SyncAll).expect("persist");
        }
        let store =
            Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("open");
        let old = store.tenant("@old");
        let log: Vec<(u64, String, CommitOp)> = old
            .commits_from(0, 10)
            .expect("log")
            .into_iter()
            .map(|(id, e)| (id, e.key, e.op))
            .collect();
        assert_eq!(
            log,
            [
                (1, "j@old".to_string(), CommitOp::UpdateAll),
                (3, "k@old".to_string(), CommitOp::Delete),
            ]
        );
        // The index now supersedes as a new store's does.
        assert_eq!(put(&old, "k@old", "again", true).commit_id, Some(4));
        let ids: Vec<u64> = old
            .commits_from(0, 10)
            .expect("log")
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, [1, 4]);
        drop(old);
        assert!(store.close().is_ok());
        let mut findings = Vec::new();
        check::check_shard(dir.path(), |f| findings.push(f.to_string())).expect("check");
        assert_eq!(findings, Vec::<String>::new());
    }
    #[test]
    fn version_1_records_named_by_the_index_move_their_id_into_the_record_when_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // What a build before records carried their commit id left:
            // version-1 records, each key's entry named by the index.
            let db = fjall::Database::builder(dir.path())
                .open()
                .expect("raw open");
            let open = |name: &str| {
                db.keyspace(name, fjall::KeyspaceCreateOptions::default)
                    .expect("keyspace")
            };
            let (keys, commits) = (open(layout::KEYS), open(layout::COMMITS));
            let (index, meta) = (open(layout::COMMIT_INDEX), open(layout::META));
            for (id, name) in [(0u64, "a@old"), (1, "b@old"), (2, "c@old")] {
                let full_key = layout::record_key("@old", name);
                keys.insert(&full_key, record("v1", 1).encode_v1())
                    .expect("insert");
                commits
                    .insert(
                        layout::commit_key("@old", id),
                        entry(name, CommitOp::Update),
                    )
                    .expect("insert");
                index.insert(&full_key, id.to_be_bytes()).expect("insert");
            }
            meta.insert(layout::last_commit_key("@old"), 2u64.to_be_bytes())
                .expect("insert");
            meta.insert(layout::COMMIT_INDEX_BUILT_KEY, b"")
                .expect("insert");
            db.persist(fjall::PersistMode::SyncAll).expect("persist");
        }
        let store =
            Store::open(dir.path(), Durability::Durable, FatalSink::log_only()).expect("open");
        let old = store.tenant("@old");
        assert_eq!(
            old.get("a@old")
                .expect("get")
                .and_then(|r| r.value)
                .as_deref(),
            Some("v1")
        );
        // A logged write, an unlogged one and a delete, one per key.
        assert_eq!(put(&old, "a@old", "v2", true).commit_id, Some(3));
        assert_eq!(put(&old, "b@old", "v2", false).commit_id, None);
        let deleted = block_on(old.write("c@old".into(), true, |_| Ok(Mutation::Delete)));
        assert_eq!(deleted.expect("delete").commit_id, Some(4));
        let log: Vec<(u64, String)> = old
            .commits_from(0, 10)
            .expect("log")
            .into_iter()
            .map(|(id, e)| (id, e.key))
            .collect();
        assert_eq!(
            log,
            [
                (1, "b@old".to_string()),
                (3, "a@old".to_string()),
                (4, "c@old".to_string())
            ]
        );
        let keyspaces = &store.inner.keyspaces;
        let indexed = |name: &str| {
            commit_log::indexed_id(keyspaces, &layout::record_key("@old", name)).expect("index")
        };
        // Written records name their entries; the deleted key's is indexed.
        assert_eq!(
            (indexed("a@old"), indexed("b@old"), indexed("c@old")),
            (None, None, Some(4))
        );
        let record_commit = |name: &str| {
            let bytes = keyspaces
                .keys
                .get(layout::record_key("@old", name))
                .expect("read");
            bytes.map(|bytes| record::commit_of(&bytes).expect("commit"))
        };
        assert_eq!(
            record_commit("a@old"),
            Some(record::RecordCommit::Known(Some(3)))
        );
        assert_eq!(
            record_commit("b@old"),
            Some(record::RecordCommit::Known(Some(1)))
        );
        // Written again after the delete, the key's entry moves back into
        // its record.
        assert_eq!(put(&old, "c@old", "again", true).commit_id, Some(5));
        assert_eq!(indexed("c@old"), None);
        drop(old);
        assert!(store.close().is_ok());
        let mut findings = Vec::new();
        check::check_shard(dir.path(), |f| findings.push(f.to_string())).expect("check");
        assert_eq!(findings, Vec::<String>::new());
    }
}
