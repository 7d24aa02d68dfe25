//! Sync over real TLS while the log changes: two connections of the owner
//! write and delete the same keys concurrently (on a two-shard server, so
//! they may run on different threads) while a third syncs in small pages.
//! The syncing connection must end with exactly the server's state, and
//! the writers' commit ids must be strictly increasing per connection and,
//! together, gap-free.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use atserver::context::SessionLimits;
use atserver::protocol::json::{self, JsonValue};
use common::Client;

const ATSIGN: &str = "@syncer";
const SECRET: &str = "sync-tls-secret";
/// Writes each writer makes, over this many keys.
const WRITES: usize = 150;
const KEYS: usize = 12;

fn data(reply: &str) -> &str {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{ATSIGN}@")))
        .unwrap_or_else(|| panic!("not a data reply: {reply:?}"))
}

fn key(i: usize) -> String {
    format!("k{i}.race{ATSIGN}")
}

/// Writer `w`'s commit ids, in the order its writes were answered.
fn write_concurrently(client: &mut Client, w: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let k = key((n * 7 + w * 5) % KEYS);
        let line = if (n + w) % 5 == 4 {
            format!("delete:{k}")
        } else {
            format!("update:{k} w{w}n{n}")
        };
        ids.push(data(&client.send(&line)).parse().expect("a commit id"));
    }
    ids
}

/// Applies one page to the replica; the last commit id it held, if any.
fn apply_page(replica: &mut BTreeMap<String, String>, page: &str) -> Option<i64> {
    let JsonValue::Array(items) = json::parse(page).expect("sync JSON") else {
        panic!("not an array: {page}");
    };
    let mut last = None;
    for item in items {
        let key = item
            .get("atKey")
            .and_then(JsonValue::as_str)
            .expect("atKey");
        let id = item
            .get("commitId")
            .and_then(JsonValue::as_i64)
            .expect("commitId");
        match item.get("operation").and_then(JsonValue::as_str) {
            Some("-") => {
                replica.remove(key);
            }
            Some("+" | "*" | "#") => {
                let value = item
                    .get("value")
                    .and_then(JsonValue::as_str)
                    .expect("value");
                replica.insert(key.to_string(), value.to_string());
            }
            other => panic!("operation {other:?}"),
        }
        assert!(last.is_none_or(|l| id > l), "ids ascend within a page");
        last = Some(id);
    }
    last
}

fn stats_3(client: &mut Client) -> i64 {
    let reply = client.send("stats:3");
    let payload = reply
        .strip_prefix("data: ")
        .and_then(|r| r.strip_suffix(&format!("\n{ATSIGN}@")))
        .expect("stats reply");
    let parsed = json::parse(payload).expect("stats JSON");
    let JsonValue::Array(items) = parsed else {
        panic!("stats array")
    };
    let value = items[0]
        .get("value")
        .and_then(JsonValue::as_str)
        .expect("value");
    value.parse().expect("an id")
}

#[test]
fn a_replica_synced_in_pages_during_concurrent_writes_ends_equal_to_the_server() {
    let server = common::start_sharded(&[(ATSIGN, SECRET)], SessionLimits::default(), 2);
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let mut client = Client::connect(&server);
            client.cram(ATSIGN, SECRET);
            std::thread::spawn(move || write_concurrently(&mut client, w))
        })
        .collect();
    let mut syncer = Client::connect(&server);
    syncer.cram(ATSIGN, SECRET);
    let mut replica = BTreeMap::new();
    let mut cursor = -1i64;
    let mut pages = 0usize;
    // Sync while the writers run, as a device would on each change.
    while writers.iter().any(|w| !w.is_finished()) && pages < 10_000 {
        let reply = syncer.send(&format!("sync:from:{cursor}:limit:5"));
        if let Some(last) = apply_page(&mut replica, data(&reply)) {
            cursor = last;
        }
        pages += 1;
    }
    assert!(pages > 0, "the replica synced while the writers wrote");
    let ids: Vec<Vec<i64>> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    // Then catch up, as the Dart client does: until stats:3 is reached.
    let target = stats_3(&mut syncer);
    while cursor < target {
        let reply = syncer.send(&format!("sync:from:{cursor}:limit:5"));
        match apply_page(&mut replica, data(&reply)) {
            Some(last) => cursor = last,
            None => break,
        }
    }
    assert_eq!(
        cursor, target,
        "the replica reached the server's last commit"
    );
    let mut server_state = BTreeMap::new();
    for i in 0..KEYS {
        let reply = syncer.send(&format!("llookup:{}", key(i)));
        if let Some(value) = reply.strip_prefix("data:") {
            let value = value.strip_suffix(&format!("\n{ATSIGN}@")).expect("prompt");
            server_state.insert(key(i), value.to_string());
        } else {
            assert!(reply.starts_with("error:AT0015"), "{reply}");
        }
    }
    let synced: BTreeMap<String, String> = replica
        .into_iter()
        .filter(|(k, _)| k.contains(".race"))
        .collect();
    assert_eq!(
        synced, server_state,
        "the replica is exactly the server's state"
    );
    for per_writer in &ids {
        assert!(
            per_writer.windows(2).all(|w| w[0] < w[1]),
            "one connection's ids strictly increase"
        );
    }
    let mut all: Vec<i64> = ids.concat();
    all.sort_unstable();
    let first = all[0];
    let expected: Vec<i64> = (first..first + all.len() as i64).collect();
    assert_eq!(all, expected, "both writers' ids together are gap-free");
    assert_eq!(*all.last().expect("ids"), target);
}
