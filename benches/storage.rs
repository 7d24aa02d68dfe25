//! Storage costs: a keystore put through the write actor (Fast durability,
//! one at a time and 100 in flight), inline reads (zero-copy and full
//! decode), a scan of 10k keys, and rkyv zero-copy access vs full decode.
//!
//! `cargo bench --bench storage` (`cargo test --benches` runs each once).

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use atserver::health::FatalSink;
use atserver::storage::record::with_archived;
use atserver::storage::{
    CommitEntry, CommitOp, Durability, Mutation, Store, StoredMeta, StoredRecord, TenantStore,
};
use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};

/// Keys the put benches cycle through.
const PUT_KEYS: u64 = 10_000;
/// Keys the scan walks.
const SCAN_KEYS: usize = 10_000;
/// Writes in flight for the concurrent put bench.
const IN_FLIGHT: usize = 100;

fn record(value_len: usize) -> StoredRecord {
    StoredRecord {
        value: Some("v".repeat(value_len)),
        meta: StoredMeta {
            created_by: Some("@bench".into()),
            updated_by: Some("@bench".into()),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
            version: 3,
            ttl: Some(86_400_000),
            expires_at: Some(4_000_000_000_000),
            is_encrypted: true,
            shared_key_enc: Some("c2hhcmVkIGtleQ==".into()),
            pub_key_cs: Some("8f2a".into()),
            encoding: Some("base64".into()),
            iv_nonce: Some("AAECAwQFBgcICQoLDA0ODw==".into()),
            ..StoredMeta::default()
        },
    }
}

fn put(tenant: &TenantStore, key: String, rec: StoredRecord) -> impl Future<Output = ()> + use<> {
    let tenant = tenant.clone();
    async move {
        tenant
            .write(key, true, move |_| {
                Ok(Mutation::Put(Box::new(rec), CommitOp::Update))
            })
            .await
            .expect("put");
    }
}

/// Polls every future until all are done (the write actor batches what is
/// queued together, as it does for many connections).
fn join_all<F: Future<Output = ()>>(futures: Vec<F>) -> impl Future<Output = ()> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        pending.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open store");
    let tenant = store.tenant("@bench");
    let rec = record(100);

    let mut group = c.benchmark_group("keystore");
    let mut i = 0u64;
    group.bench_function("put_one_at_a_time_fast", |b| {
        b.iter(|| {
            i = (i + 1) % PUT_KEYS;
            futures_lite::future::block_on(put(&tenant, format!("k{i}.bench@bench"), rec.clone()));
        })
    });
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("put_100_in_flight_fast", |b| {
        b.iter_batched(
            || {
                (0..IN_FLIGHT)
                    .map(|_| {
                        i = (i + 1) % PUT_KEYS;
                        put(&tenant, format!("k{i}.bench@bench"), rec.clone())
                    })
                    .collect::<Vec<_>>()
            },
            |futures| futures_lite::future::block_on(join_all(futures)),
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(1));
    futures_lite::future::block_on(put(&tenant, "hot.bench@bench".into(), rec.clone()));
    group.bench_function("get_inline_zero_copy", |b| {
        b.iter(|| {
            let len = tenant
                .read(black_box("hot.bench@bench"), |r| {
                    r.value_str().map(str::len)
                })
                .expect("read");
            black_box(len)
        })
    });
    group.bench_function("get_inline_full_decode", |b| {
        b.iter(|| black_box(tenant.get(black_box("hot.bench@bench")).expect("get")))
    });
    group.finish();

    let scan = store.tenant("@scan");
    let futures: Vec<_> = (0..SCAN_KEYS)
        .map(|k| put(&scan, format!("s{k:05}.bench@scan"), rec.clone()))
        .collect();
    futures_lite::future::block_on(join_all(futures));
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(SCAN_KEYS as u64));
    group.sample_size(20);
    group.bench_function("for_each_10k", |b| {
        b.iter(|| {
            let mut count = 0usize;
            let mut bytes = 0usize;
            scan.for_each(|name, r| {
                count += 1;
                bytes += name.len() + r.value_str().map_or(0, str::len);
                true
            })
            .expect("scan");
            assert_eq!(count, SCAN_KEYS);
            black_box(bytes)
        })
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    let bytes = record(100).encode(Some(7));
    let mut group = c.benchmark_group("record");
    group.bench_function("with_archived_zero_copy", |b| {
        b.iter(|| {
            let out = with_archived(black_box(&bytes), |a| {
                (a.value_str().map(str::len), a.meta.version.to_native())
            });
            black_box(out.expect("archived"))
        })
    });
    group.bench_function("decode_full", |b| {
        b.iter(|| black_box(StoredRecord::decode(black_box(&bytes)).expect("decode")))
    });
    // Every write encodes its record and, when logged, its commit entry, on
    // the storage actor's thread.
    let stored = record(100);
    group.bench_function("encode_record_100b", |b| {
        b.iter(|| black_box(black_box(&stored).encode(Some(7))))
    });
    let entry = CommitEntry {
        key: "k123.bench@bench".into(),
        op: CommitOp::Update,
        op_time_ms: 1_764_633_600_000,
    };
    group.bench_function("encode_commit_entry", |b| {
        b.iter(|| black_box(black_box(&entry).encode()))
    });
    group.finish();
}

criterion_group!(benches, storage, records);
criterion_main!(benches);
