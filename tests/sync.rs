//! The commit log, `stats:3`, `sync:from` and `batch` (sync.md, changes
//! §3; conformance cases H1–H10), byte for byte on the in-process
//! transcript driver (the real pipeline and stores, no socket). Each test
//! uses its own atSign, so they run in parallel on one server.
//! `tests/sync_tls.rs` syncs over TLS while other connections write.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use atserver::app::ScratchServer;
use atserver::protocol::json::{self, JsonValue};
use atserver::session::Transcript;

const SECRET: &str = "sync-secret";

fn server() -> &'static ScratchServer {
    static SERVER: OnceLock<ScratchServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let names = [
            "@fresh", "@h2", "@h4", "@h7", "@skip", "@nc", "@batch", "@stats", "@orphan",
        ];
        let atsigns: Vec<(&str, &str)> = names.iter().map(|a| (*a, SECRET)).collect();
        ScratchServer::open(&atsigns).expect("scratch server")
    })
}

fn owner(atsign: &str) -> Transcript {
    common::transcript_owner(server(), atsign, SECRET)
}

/// The payload of a `data:` reply on `atsign`'s authenticated connection.
fn data<'a>(reply: &'a str, atsign: &str) -> &'a str {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{atsign}@")))
        .unwrap_or_else(|| panic!("not a data reply: {reply:?}"))
}

fn commit_id(reply: &str, atsign: &str) -> i64 {
    data(reply, atsign).parse().expect("a commit id")
}

fn entries(reply: &str, atsign: &str) -> Vec<JsonValue> {
    match json::parse(data(reply, atsign)).expect("sync JSON") {
        JsonValue::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn text<'a>(v: &'a JsonValue, name: &str) -> &'a str {
    v.get(name)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

fn keys_and_ids(items: &[JsonValue]) -> Vec<(String, i64)> {
    items
        .iter()
        .map(|e| {
            let id = e
                .get("commitId")
                .and_then(JsonValue::as_i64)
                .expect("commitId");
            (text(e, "atKey").to_string(), id)
        })
        .collect()
}

/// `createdAt`/`updatedAt` of `key`, as `llookup:meta` shows them.
fn stored_times(t: &mut Transcript, atsign: &str, key: &str) -> (String, String) {
    let reply = t.send(&format!("llookup:meta:{key}"));
    let meta = json::parse(data(&reply, atsign)).expect("meta JSON");
    (
        text(&meta, "createdAt").to_string(),
        text(&meta, "updatedAt").to_string(),
    )
}

#[test]
fn h1_a_fresh_log_holds_the_signing_key_pair_and_stats_names_its_last_id() {
    let mut t = owner("@fresh");
    let reply = t.send("sync:from:-1:limit:10");
    let items = entries(&reply, "@fresh");
    assert_eq!(
        keys_and_ids(&items),
        [
            ("public:signing_publickey@fresh".to_string(), 0),
            ("@fresh:signing_privatekey@fresh".to_string(), 1),
        ],
        "H1: {reply}"
    );
    assert!(items.iter().all(|e| text(e, "operation") == "+"));
    let (created, updated) = stored_times(&mut t, "@fresh", "public:signing_publickey@fresh");
    let value = t.send("llookup:public:signing_publickey@fresh");
    let value = data(&value, "@fresh");
    let mut first = String::new();
    json::write_str(&mut first, value);
    let expected = format!(
        r#"{{"atKey":"public:signing_publickey@fresh","value":{first},"metadata":{{"createdBy":"@fresh","updatedBy":"@fresh","createdAt":"{created}","updatedAt":"{updated}","status":"active","version":"0","isBinary":"false","isEncrypted":"false"}},"commitId":0,"operation":"+"}}"#
    );
    assert!(
        data(&reply, "@fresh").starts_with(&format!("[{expected},")),
        "H1 bytes: {reply}"
    );
    assert_eq!(
        t.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"1\"}]\n@fresh@"
    );
}

#[test]
fn h2_h3_an_update_syncs_with_its_string_metadata_and_a_delete_replaces_it() {
    let mut t = owner("@h2");
    let n = commit_id(&t.send("update:ttl:60000:k1.wavi@h2 v"), "@h2");
    let (created, updated) = stored_times(&mut t, "@h2", "k1.wavi@h2");
    let meta = t.send("llookup:meta:k1.wavi@h2");
    let expires = text(&json::parse(data(&meta, "@h2")).unwrap(), "expiresAt").to_string();
    assert_eq!(
        t.send(&format!("sync:from:{}:limit:10", n - 1)),
        format!(
            "data:[{{\"atKey\":\"k1.wavi@h2\",\"value\":\"v\",\"metadata\":{{\"createdBy\":\"@h2\",\"updatedBy\":\"@h2\",\"createdAt\":\"{created}\",\"updatedAt\":\"{updated}\",\"expiresAt\":\"{expires}\",\"status\":\"active\",\"version\":\"0\",\"ttl\":\"60000\",\"isBinary\":\"false\",\"isEncrypted\":\"false\"}},\"commitId\":{n},\"operation\":\"*\"}}]\n@h2@"
        ),
        "H2"
    );
    let m = commit_id(&t.send("delete:k1.wavi@h2"), "@h2");
    assert_eq!(m, n + 1);
    assert_eq!(
        t.send(&format!("sync:from:{}:limit:10", n - 1)),
        format!(
            "data:[{{\"atKey\":\"k1.wavi@h2\",\"value\":null,\"metadata\":null,\"commitId\":{m},\"operation\":\"-\"}}]\n@h2@"
        ),
        "H3: only the latest entry of the key"
    );
    assert_eq!(t.send(&format!("sync:from:{m}:limit:10")), "data:[]\n@h2@");
}

#[test]
fn h4_a_page_holds_the_clients_limit_and_paging_reaches_every_key_once() {
    let mut t = owner("@h4");
    for i in 0..30 {
        commit_id(&t.send(&format!("update:k{i}.page@h4 v{i}")), "@h4");
    }
    // Rewriting a key moves it to the end of the log, once.
    let last = commit_id(&t.send("update:k3.page@h4 again"), "@h4");
    let items = entries(&t.send("sync:from:-1:limit:10"), "@h4");
    assert_eq!(items.len(), 10, "H4");
    let mut seen = Vec::new();
    let mut from = -1;
    loop {
        let items = entries(&t.send(&format!("sync:from:{from}:limit:7")), "@h4");
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 7);
        for (key, id) in keys_and_ids(&items) {
            assert!(id > from, "ids ascend across pages");
            from = id;
            seen.push(key);
        }
    }
    assert_eq!(from, last);
    assert_eq!(
        seen.len(),
        32,
        "two signing keys and 30 keys, each once: {seen:?}"
    );
    assert_eq!(seen.last().map(String::as_str), Some("k3.page@h4"));
    let page = entries(&t.send(&format!("sync:from:{}:limit:100", last - 1)), "@h4");
    assert_eq!(text(&page[0], "value"), "again");
}

#[test]
fn h5_h6_the_retired_and_the_short_forms_are_syntax_errors() {
    let mut t = owner("@h4");
    assert_eq!(
        t.send("sync:5"),
        "error:AT0003-Invalid syntax : invalid command\n@h4@",
        "H5"
    );
    // H6 was `sync:from:5`, which the 3.16 grammar serves (`:limit:` is
    // optional there, changes §3.1); what has no id is still refused.
    assert_eq!(
        t.send("sync:from:latest"),
        "error:AT0003-Invalid syntax : Invalid syntax. syntax sync:from:1:limit:10:.wavi\n@h4@",
        "H6"
    );
    assert!(t.send("sync:from:5").starts_with("data:["));
}

#[test]
fn h7_a_regex_sync_also_carries_the_keys_every_client_needs() {
    let mut t = owner("@h7");
    for line in [
        "update:phone.wavi@h7 1",
        "update:email.other@h7 2",
        "update:public:publickey@h7 pk",
        "update:@bob:shared_key@h7 sk",
        "update:public:location.other@h7 3",
    ] {
        commit_id(&t.send(line), "@h7");
    }
    let items = entries(&t.send(r"sync:from:-1:limit:100:\.wavi"), "@h7");
    let keys: Vec<String> = keys_and_ids(&items).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "public:signing_publickey@h7",
            "phone.wavi@h7",
            "public:publickey@h7",
            "@bob:shared_key@h7",
        ],
        "H7"
    );
    // stats:3 with the same regex names the newest entry that sync sends.
    let newest = keys_and_ids(&items).last().map(|(_, id)| *id).unwrap();
    assert_eq!(
        t.send(r"stats:3:\.wavi"),
        format!("data: [{{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"{newest}\"}}]\n@h7@")
    );
}

#[test]
fn deletes_up_to_skip_deletes_until_are_left_out_unless_newest() {
    let mut t = owner("@skip");
    let a = commit_id(&t.send("update:a.skip@skip 1"), "@skip");
    let gone = commit_id(&t.send("delete:a.skip@skip"), "@skip");
    let b = commit_id(&t.send("update:b.skip@skip 2"), "@skip");
    assert!(a < gone && gone < b);
    let synced = |t: &mut Transcript, line: &str| -> Vec<(String, i64)> {
        keys_and_ids(&entries(&t.send(line), "@skip"))
    };
    let skipping = synced(
        &mut t,
        &format!("sync:from:1:limit:10:skipDeletesUntil:{gone}"),
    );
    assert_eq!(skipping, [("b.skip@skip".to_string(), b)]);
    let all = synced(&mut t, "sync:from:1:limit:10:skipDeletesUntil:0");
    assert_eq!(
        all,
        [
            ("a.skip@skip".to_string(), gone),
            ("b.skip@skip".to_string(), b)
        ]
    );
    // The newest entry of the log is sent even when it is a skipped delete.
    let last = commit_id(&t.send("delete:b.skip@skip"), "@skip");
    let newest = synced(
        &mut t,
        &format!("sync:from:1:limit:10:skipDeletesUntil:{last}"),
    );
    assert_eq!(newest, [("b.skip@skip".to_string(), last)]);
}

#[test]
fn no_commit_writes_answer_minus_one_and_remove_the_keys_entry() {
    let mut t = owner("@nc");
    let first = commit_id(&t.send("update:k.nc@nc 1"), "@nc");
    assert_eq!(t.send("update:nc:k.nc@nc 2"), "data:-1\n@nc@");
    assert_eq!(
        t.send("llookup:k.nc@nc"),
        "data:2\n@nc@",
        "the write happened"
    );
    let keys = keys_and_ids(&entries(
        &t.send(&format!("sync:from:{}:limit:10", first - 1)),
        "@nc",
    ));
    assert!(keys.is_empty(), "the entry is gone: {keys:?}");
    // A logged write of the key gets the next id; `delete:nc` of it (and
    // of a key that no longer exists) removes its entry again.
    let next = commit_id(&t.send("update:k.nc@nc 3"), "@nc");
    assert_eq!(next, first + 1, "ids are issued gap-free");
    assert_eq!(t.send("delete:nc:k.nc@nc"), "data:-1\n@nc@");
    assert_eq!(t.send("delete:nc:k.nc@nc"), "data:-1\n@nc@");
    assert_eq!(
        t.send(&format!("sync:from:{}:limit:10", first - 1)),
        "data:[]\n@nc@"
    );
    // Keys the reference never logs answer -1 too.
    assert_eq!(t.send("update:public:_hidden.nc@nc 1"), "data:-1\n@nc@");
}

#[test]
fn h8_h9_h10_a_batch_answers_each_command_and_sends_no_stats_notification() {
    let mut monitor = owner("@batch");
    assert_eq!(monitor.send("monitor"), "");
    let mut t = owner("@batch");
    let reply = t.send(
        r#"batch:[{"id":1,"command":"update:b1.wavi@batch v1"},{"id":2,"command":"llookup:nokey.wavi@batch"},{"id":3,"command":"llookup:b1.wavi@batch"},{"id":4,"command":"update:public:_x@batch y"},{"id":5,"command":"from:@batch"},{"id":6,"command":"nonsense"}]"#,
    );
    let n = commit_id(&t.send("update:after.wavi@batch x"), "@batch") - 1;
    assert_eq!(
        reply,
        format!(
            r#"data:[{{"id":1,"response":{{"data":"{n}"}}}},{{"id":2,"response":{{"error_code":"AT0015","error_message":"key not found"}}}},{{"id":3,"response":{{"data":"v1"}}}},{{"id":4,"response":{{"data":"-1"}}}},{{"id":5,"response":{{"error_code":"AT0011","error_message":"Internal server exception"}}}},{{"id":6,"response":{{"error_code":"AT0003","error_message":"Invalid syntax"}}}}]
@batch@"#
        ),
        "H8"
    );
    // Only the top-level update told the monitor.
    let lines: Vec<String> = monitor
        .notifications()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "H10: {lines:?}");
    assert!(lines[0].contains("statsNotification"), "{lines:?}");
    assert_eq!(
        t.send("batch:notjson"),
        "error:AT0011-Internal server exception : invalid batch request: invalid JSON at byte 0: unexpected character\n@batch@"
    );
    assert!(t.is_closed(), "H9: an invalid batch closes the connection");
}

#[test]
fn stats_3_without_a_regex_is_the_last_id_issued_even_when_its_entry_went() {
    let mut t = owner("@stats");
    let n = commit_id(&t.send("update:k.s@stats 1"), "@stats");
    assert_eq!(t.send("delete:nc:k.s@stats"), "data:-1\n@stats@");
    assert_eq!(
        t.send("stats:3"),
        format!("data: [{{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"{n}\"}}]\n@stats@")
    );
    assert_eq!(
        t.send("stats:3:nomatch"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"0\"}]\n@stats@",
        "G8: the signing public key is always counted"
    );
}
