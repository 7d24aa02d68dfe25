//! Arbitrary write requests through the real actor: keys of any text and
//! length (empty, unicode, around and past fjall's key limit), values and
//! metadata of any content, every `Mutation`, refusing closures, companion
//! writes and request sizes. Whatever the request, no panic reaches fjall,
//! the store is never poisoned, and every request gets an outcome: queued
//! and answered, or refused at once because its keys cannot be stored.

use proptest::prelude::*;

use super::*;
use crate::error::{AtCode, AtError};
use crate::health::FatalSink;
use crate::limits::TENANT_QUEUED_WRITE_BYTES_MAX;
use futures_lite::future::block_on;

/// Lengths in bytes around the longest key the layout can store for
/// `@alice` (the expiry key adds 8 + 6 + 1 bytes to the key name).
const NEAR_LIMIT: std::ops::RangeInclusive<usize> =
    (actor::FJALL_KEY_BYTES_MAX - 24)..=(actor::FJALL_KEY_BYTES_MAX + 8);

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_.:@-]{1,40}",
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => (NEAR_LIMIT, any::<char>()).prop_map(|(bytes, c)| {
            // Mostly ASCII, ending in one character of any width.
            let mut key = "k".repeat(bytes);
            key.push(c);
            key
        }),
    ]
}

fn text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => proptest::option::of(any::<String>()),
        1 => (0usize..100_000).prop_map(|n| Some("v".repeat(n))),
    ]
}

fn meta() -> impl Strategy<Value = StoredMeta> {
    let times = (
        any::<i64>(),
        any::<i64>(),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
        any::<u32>(),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
    );
    let flags = (
        any::<Option<bool>>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let texts = proptest::collection::vec(text(), 16);
    (times, flags, texts).prop_map(|(times, flags, texts)| {
        let (created_at, updated_at, available_at, expires_at, refresh_at, version, ttl, ttb, ttr) =
            times;
        let (ccd, is_binary, is_encrypted, immutable) = flags;
        let mut texts = texts.into_iter();
        let mut next = || texts.next().flatten();
        StoredMeta {
            created_by: next(),
            updated_by: next(),
            created_at,
            updated_at,
            available_at,
            expires_at,
            refresh_at,
            version,
            ttl,
            ttb,
            ttr,
            ccd,
            is_binary,
            is_encrypted,
            data_signature: next(),
            shared_key_enc: next(),
            pub_key_cs: next(),
            pub_key_hash: next(),
            hashing_algo: next(),
            encoding: next(),
            enc_key_name: next(),
            enc_algo: next(),
            iv_nonce: next(),
            ske_enc_key_name: next(),
            ske_enc_algo: next(),
            immutable,
            app_metadata: next(),
        }
    })
}

fn commit_op() -> impl Strategy<Value = CommitOp> {
    prop_oneof![
        Just(CommitOp::Update),
        Just(CommitOp::UpdateMeta),
        Just(CommitOp::UpdateAll),
        Just(CommitOp::Delete),
    ]
}

/// What a request's closure does.
#[derive(Debug, Clone)]
enum Does {
    Put(Box<StoredRecord>, CommitOp),
    Delete,
    Unchanged,
    /// The closure refuses the write (as an immutable key would).
    Refuse,
}

fn does() -> impl Strategy<Value = Does> {
    prop_oneof![
        4 => (text(), meta(), commit_op()).prop_map(|(value, meta, op)| {
            Does::Put(Box::new(StoredRecord { value, meta }), op)
        }),
        2 => Just(Does::Delete),
        1 => Just(Does::Unchanged),
        1 => Just(Does::Refuse),
    ]
}

impl Does {
    fn refuses(&self) -> bool {
        matches!(self, Does::Refuse)
    }

    fn into_mutate(self) -> actor::MutateFn {
        Box::new(move |_| match self {
            Does::Put(record, op) => Ok(Mutation::Put(record, op)),
            Does::Delete => Ok(Mutation::Delete),
            Does::Unchanged => Ok(Mutation::Unchanged),
            Does::Refuse => Err(AtError::new(AtCode::Unauthorized, "refused on purpose")),
        })
    }
}

#[derive(Debug, Clone)]
struct OneWrite {
    key: String,
    commit: bool,
    does: Does,
}

fn one_write() -> impl Strategy<Value = OneWrite> {
    (key(), any::<bool>(), does()).prop_map(|(key, commit, does)| OneWrite { key, commit, does })
}

#[derive(Debug, Clone)]
struct Request {
    tenant: usize,
    write: OneWrite,
    companion: Option<OneWrite>,
    request_bytes: usize,
}

/// The atSigns requests go to: a usual one, a unicode one and an empty one.
const TENANTS: [&str; 3] = ["@alice", "@\u{1f600}\u{00e9}", ""];

fn request() -> impl Strategy<Value = Request> {
    (
        0..TENANTS.len(),
        one_write(),
        proptest::option::weighted(0.3, one_write()),
        prop_oneof![
            4 => 0usize..10_000,
            1 => 0..=2 * TENANT_QUEUED_WRITE_BYTES_MAX,
        ],
    )
        .prop_map(|(tenant, write, companion, request_bytes)| Request {
            tenant,
            write,
            companion,
            request_bytes,
        })
}

impl Request {
    /// Whether the store must refuse it before queueing: a key whose layout
    /// keys fjall could not take.
    fn too_long(&self, atsign: &str) -> bool {
        let too_long =
            |w: &OneWrite| layout::write_key_bytes(atsign, &w.key) > actor::FJALL_KEY_BYTES_MAX;
        too_long(&self.write) || self.companion.as_ref().is_some_and(too_long)
    }

    fn refuses(&self) -> bool {
        self.write.does.refuses() || self.companion.as_ref().is_some_and(|c| c.does.refuses())
    }

    fn into_request(self) -> WriteRequest {
        let key_write = |w: OneWrite| KeyWrite::new(w.key, w.commit, w.does.into_mutate());
        WriteRequest {
            write: key_write(self.write),
            companion: self.companion.map(key_write),
            request_bytes: self.request_bytes,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn any_request_gets_an_outcome_and_none_poisons_the_store(
        requests in proptest::collection::vec(request(), 1..16)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
        let mut submitted = Vec::new();
        for request in requests {
            let atsign = TENANTS[request.tenant];
            let tenant = store.tenant(atsign);
            let too_long = request.too_long(atsign);
            let refuses = request.refuses();
            let keys = (request.write.key.clone(), request.companion.as_ref().map(|c| c.key.clone()));
            match block_on(tenant.submit_request(request.into_request())) {
                Ok(pending) => {
                    prop_assert!(!too_long, "a key fjall cannot take was queued: {keys:?}");
                    submitted.push((pending, refuses, keys));
                }
                Err(StoreError::KeyTooLong { .. }) => {
                    prop_assert!(too_long, "refused as too long: {keys:?}");
                }
                Err(other) => prop_assert!(false, "submit failed: {other:?}"),
            }
        }
        for (pending, refuses, keys) in submitted {
            match block_on(pending.outcome()) {
                Ok(_) => prop_assert!(!refuses, "a refused write landed: {keys:?}"),
                Err(WriteError::Refused(_)) => prop_assert!(refuses, "refused: {keys:?}"),
                Err(WriteError::Store(error)) => {
                    prop_assert!(false, "a store failure for {keys:?}: {error:?}")
                }
            }
        }
        prop_assert!(!store.is_poisoned());
        // And the store still takes an ordinary write.
        let record = StoredRecord::written_by(Some("after".into()), "@alice", 1);
        let after = block_on(store.tenant("@alice").write("after@alice".into(), true, move |_| {
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        }));
        prop_assert!(after.is_ok(), "{after:?}");
    }
}
