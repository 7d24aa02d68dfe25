//! Conformance cases from the protocol digest (sections A–G), each pinned to
//! the exact bytes the reference server writes. None of them needs a
//! socket, so they run on the in-process transcript driver (the real
//! pipeline and stores); `tests/server.rs` covers the same paths over TLS.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/transcript.rs"]
mod transcript;

use std::sync::OnceLock;

use atserver::app::ScratchServer;
use transcript::Session as Client;

const SECRET: &str = "conformance-secret";

fn server() -> &'static ScratchServer {
    static SERVER: OnceLock<ScratchServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let names = [
            "@alice", "@d", "@e", "@f", "@g", "@a14", "@b5", "@d28", "@fresh", "@to", "@tonull",
            "@i15",
        ];
        let atsigns: Vec<(&str, &str)> = names.iter().map(|a| (*a, SECRET)).collect();
        ScratchServer::open(&atsigns).expect("scratch server")
    })
}

fn auth(atsign: &str) -> Client {
    let mut c = Client::connect(server());
    c.cram(atsign, SECRET);
    c
}

#[test]
fn a_connection_and_framing() {
    let mut c = Client::connect(server());
    let info = c.send("INFO");
    assert!(
        info.starts_with("data:{\"version\":\"") && info.contains("seconds\""),
        "A3: {info}"
    );
    assert_eq!(
        c.send("exit"),
        "error:AT0003-Exception: invalid command\n@",
        "A8"
    );
    c.write(b"noop:0\r\n");
    assert_eq!(c.read_reply(), "data:ok\n@", "A10");
}

#[test]
fn a14_to_a16_error_styles_follow_the_client_version() {
    let mut c = Client::connect(server());
    assert!(
        c.send(r#"from:@a14:clientConfig:{"version":"3.0.38"}"#)
            .starts_with("data:_")
    );
    assert_eq!(
        c.send("llookup:xy.wavi@a14"),
        "error:{\"errorCode\":\"AT0401\",\"errorDescription\":\"Exception: Command cannot be executed without auth\"}\n@",
        "A14"
    );
    let mut c = Client::connect(server());
    assert!(
        c.send(r#"from:@a14:clientConfig:{"version":"3.0.37"}"#)
            .starts_with("data:_")
    );
    assert_eq!(
        c.send("llookup:xy.wavi@a14"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@",
        "A15"
    );
    let mut c = Client::connect(server());
    assert!(
        c.send("from:@a14:clientConfig:{}")
            .starts_with("error:AT0003-"),
        "A16"
    );
}

#[test]
fn b_from_normalises_and_bad_atsigns_close() {
    let mut c = Client::connect(server());
    for form in ["from:alice", "from:@ALICE", "from:@al.ice"] {
        let reply = c.send(form);
        assert!(
            reply.starts_with("data:_") && reply.contains("@alice:"),
            "B2 {form}: {reply}"
        );
    }
    let mut c = Client::connect(server());
    let reply = c.send("from:@al!ce");
    assert!(
        reply.starts_with("error:AT0011-Exception: invalid @sign"),
        "B13: {reply}"
    );
    assert!(c.is_closed(), "B13 closes");
}

#[test]
fn b5_cram_without_from_is_key_not_found() {
    let mut c = Client::connect(server());
    let reply = c.send("cram:deadbeef");
    assert!(
        reply.starts_with("error:AT0015-Exception: ")
            && reply.ends_with("does not exist in keystore\n@"),
        "B5: {reply}"
    );
}

#[test]
fn c_owner_verbs_are_refused_before_their_syntax() {
    let mut c = Client::connect(server());
    let refused = "error:AT0401-Exception: Command cannot be executed without auth\n@";
    for line in [
        "llookup:xy.wavi@alice",
        "update:garbage",
        "monitor",
        "stats",
        "otp:get",
        "sync:from:-1:limit:1",
        "batch:[]",
        "plookup:publickey@bob",
        "delete:xy@alice",
        "keys:get:self",
        "notify:fetch:x",
        "notify:remove:x",
    ] {
        assert_eq!(c.send(line), refused, "C: {line}");
    }
}

#[test]
fn c6_c7_an_unauthenticated_notify_list_or_status_is_null() {
    let mut c = Client::connect(server());
    assert_eq!(c.send("notify:list"), "data:null\n@", "C6");
    assert_eq!(c.send("notify:status:unknown-id"), "data:null\n@", "C7");
}

/// I15 and I16. The owner's `notify` (I1) is not served yet, so the
/// notification I1 would make is stored directly.
#[test]
fn i15_i16_a_removed_notification_is_gone_and_an_unknown_one_fetches_as_expired() {
    use atserver::storage::NotificationRecord;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let now = i64::try_from(now).expect("in range");
    let record = NotificationRecord {
        at_value: Some("hello".into()),
        ..NotificationRecord::received(
            "i1-note",
            "@i15",
            "@i15",
            "@i15:note.wavi@i15".into(),
            now,
            now + 900_000,
        )
    };
    let tenant = server().server.tenant("@i15").expect("hosted");
    futures_lite::future::block_on(tenant.store.put_notification(record)).expect("stored");
    let mut c = auth("@i15");
    assert_eq!(
        c.send("notify:status:i1-note"),
        "data:delivered\n@i15@",
        "I2"
    );
    assert_eq!(
        c.send("notify:remove:i1-note"),
        "data:success\n@i15@",
        "I15"
    );
    assert_eq!(c.send("notify:status:i1-note"), "data:null\n@i15@", "I15");
    assert_eq!(
        c.send("notify:fetch:unknown"),
        "data:{\"id\":\"unknown\",\"notificationStatus\":\"NotificationStatus.expired\"}\n@i15@",
        "I16"
    );
}

#[test]
fn d_update_llookup_delete() {
    let mut c = auth("@d");
    let ok = |r: String| assert!(r.starts_with("data:") && r.ends_with("\n@d@"), "{r}");
    ok(c.send("update:@bob:phone.wavi@d secret"));
    let all = c.send("llookup:all:@bob:phone.wavi@d");
    let expected_start = r#"data:{"key":"@bob:phone.wavi@d","data":"secret","metaData":{"createdBy":"@d","updatedBy":"@d","createdAt":""#;
    assert!(all.starts_with(expected_start), "D5: {all}");
    assert!(
        all.ends_with(
            "\"status\":\"active\",\"version\":0,\"isBinary\":false,\"isEncrypted\":false}}\n@d@"
        ),
        "D5: {all}"
    );
    ok(c.send("update:@bob:phone.wavi@d secret"));
    assert!(
        c.send("llookup:meta:@bob:phone.wavi@d")
            .contains("\"version\":1"),
        "D6"
    );
    ok(c.send("update:ttb:60000:later.wavi@d v"));
    assert_eq!(c.send("llookup:later.wavi@d"), "data:null\n@d@", "D8");
    assert_eq!(
        c.send("update:ttr:-2:@bob:xy@d v"),
        "error:AT0003-Invalid syntax : Valid values for TTR are -1 and greater than or equal to 1\n@d@",
        "D10"
    );
    assert_eq!(
        c.send("update:isEncrypted:true:ttl:100:@bob:xy@d v"),
        "error:AT0003-Invalid syntax : Invalid syntax. e.g. update:@alice:location@bob San Francisco\n@d@",
        "D11"
    );
    assert!(
        c.send("update:@bob:phone@d").starts_with("error:AT0003-"),
        "D14"
    );
    assert_eq!(c.send("update:public:_hid@d v"), "data:-1\n@d@", "D15");
    assert!(
        !c.send("update:public:__hid@d v").starts_with("data:-1"),
        "D15"
    );
    ok(c.send("update:meta:@bob:phone.wavi@d:ttr:3600:ccd:true"));
    let meta = c.send("llookup:meta:@bob:phone.wavi@d");
    assert!(
        meta.contains("\"ttr\":3600,\"ccd\":true") && meta.contains("\"refreshAt\":"),
        "D17: {meta}"
    );
    ok(c.send("update:meta:newkey.wavi@d:ttl:0"));
    assert_eq!(c.send("llookup:newkey.wavi@d"), "data:null\n@d@", "D18");
    let all = c.send("llookup:all:newkey.wavi@d");
    assert!(
        all.starts_with("data:{\"key\":\"newkey.wavi@d\",\"metaData\":{"),
        "D18: {all}"
    );
    let first = c.send("delete:phone.wavi@d");
    let second = c.send("delete:phone.wavi@d");
    let id = |r: &str| {
        r.trim_start_matches("data:")
            .split('\n')
            .next()
            .and_then(|n| n.parse::<i64>().ok())
    };
    assert!(id(&second) > id(&first), "D19: {first} {second}");
    assert_eq!(
        c.send("delete:public:signing_publickey@d"),
        "error:AT0009-UnAuthorized client in request : Cannot delete protected key: 'signing_publickey@d'\n@d@",
        "D21"
    );
    assert_eq!(
        c.send("delete:@d:signing_privatekey@d"),
        "error:AT0009-UnAuthorized client in request : Cannot delete protected key: 'signing_privatekey@d'\n@d@",
        "D21"
    );
    assert!(
        c.send("delete:public:SIGNING_PUBLICKEY@d")
            .starts_with("error:AT0009-"),
        "D21 in any case spelling"
    );
    assert!(
        c.send("llookup:public:signing_publickey@d")
            .starts_with("data:MIIBIjAN"),
        "D21: still there"
    );
    let long_key = format!("update:{}@d v", "a".repeat(247));
    assert_eq!(
        c.send(&long_key),
        "error:AT0016-Invalid key : key length 249 is greater than max allowed 248 chars\n@d@",
        "D22"
    );
    ok(c.send("update:dataSignature:abc:isEncrypted:true:ds.wavi@d v1"));
    ok(c.send("update:ds.wavi@d v2"));
    let meta = c.send("llookup:meta:ds.wavi@d");
    assert!(
        meta.contains("\"isEncrypted\":false") && meta.contains("\"dataSignature\":\"abc\""),
        "D23: {meta}"
    );
    ok(c.send("update:dataSignature:null:ds.wavi@d v3"));
    assert!(
        !c.send("llookup:meta:ds.wavi@d").contains("dataSignature"),
        "D24"
    );
    ok(c.send("update:colon.wavi@d a: b @c"));
    assert_eq!(c.send("llookup:colon.wavi@d"), "data:a: b @c\n@d@", "D25");
    ok(c.send("update:sp.wavi@d  lead"));
    assert_eq!(c.send("llookup:sp.wavi@d"), "data: lead\n@d@", "D26");
    ok(c.send("update:x@d v"));
    assert!(c.send("llookup:x@d").starts_with("error:AT0003-"), "D27");
}

#[test]
fn e_lookup_by_connection_state() {
    let mut c = auth("@e");
    assert!(
        c.send("update:public:location.wavi@e New York")
            .starts_with("data:")
    );
    assert!(c.send("update:@e:selfref.wavi@e v").starts_with("data:"));
    assert!(c.send("update:only.wavi@e v").starts_with("data:"));
    assert_eq!(c.send("lookup:selfref.wavi@e"), "data:v\n@e@", "E4");
    assert_eq!(
        c.send("lookup:only.wavi@e"),
        "error:AT0015-key not found : @e:only.wavi@e does not exist in keystore\n@e@",
        "E5"
    );
    let mut anon = Client::connect(server());
    assert_eq!(
        anon.send("lookup:location.wavi@e"),
        "data:New York\n@",
        "E1"
    );
    assert_eq!(
        anon.send("lookup:only.wavi@e"),
        "error:AT0015-Exception: public:only.wavi@e does not exist in keystore\n@",
        "E2"
    );
    let all = anon.send("lookup:all:location.wavi@e");
    assert!(
        all.starts_with(r#"data:{"key":"public:location.wavi@e","data":"New York","metaData":{"#),
        "E3: {all}"
    );
}

#[test]
fn f_scan_is_case_folded_without_a_colon() {
    let mut c = auth("@f");
    assert!(
        c.send("update:public:location.wavi@f x")
            .starts_with("data:")
    );
    assert!(c.send("update:k.other@f x").starts_with("data:"));
    let lower = c.send("scan");
    assert_eq!(c.send("SCAN"), lower, "F5");
    assert_eq!(
        c.send("scan .*wavi"),
        "data:[\"public:location.wavi@f\"]\n@f@",
        "F4"
    );
}

#[test]
fn g_stats_ids_and_errors() {
    let mut c = auth("@g");
    let g3 = c.send("stats:1");
    assert!(
        g3.starts_with("data: [{\"id\":\"1\",\"name\":\"activeInboundConnections\",\"value\":\""),
        "G3: {g3}"
    );
    let g4 = c.send("stats:3,1");
    assert!(
        g4.starts_with("data: [{\"id\":\"3\"") && g4.contains("}, {\"id\":\"1\""),
        "G4: {g4}"
    );
    assert!(c.send("stats:0").starts_with("error:AT0003-"), "G5");
    assert!(
        c.send("stats:99").starts_with("error:AT0003-"),
        "G6 (AT0003 accepted)"
    );
}

/// The payload of the owner's `llookup:all:<key>`: the `lookup:all` object
/// the server renders for that key.
fn all_object(owner: &mut Client, atsign: &str, key: &str) -> String {
    let reply = owner.send(&format!("llookup:all:{key}"));
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{atsign}@")))
        .unwrap_or_else(|| panic!("an all object for {key}: {reply}"))
        .to_string()
}

#[test]
fn f1_f6_h1_a_fresh_atsign_holds_only_its_signing_key_pair() {
    let mut owner = auth("@fresh");
    assert_eq!(
        owner.send("scan"),
        "data:[\"@fresh:signing_privatekey@fresh\",\"public:signing_publickey@fresh\"]\n@fresh@",
        "F1 on a fresh atSign"
    );
    assert_eq!(
        owner.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"1\"}]\n@fresh@",
        "sync.md §2: a fresh atSign's last commit id"
    );
    assert_eq!(
        owner.send("stats:15"),
        "data: [{\"id\":\"15\",\"name\":\"LatestCommitEntryOfEachKey\",\"value\":\"{\\\"public:signing_publickey@fresh\\\":[0,\\\"+\\\"],\\\"@fresh:signing_privatekey@fresh\\\":[1,\\\"+\\\"]}\"}]\n@fresh@",
        "H1: commit ids 0 and 1, plain puts"
    );
    let meta = owner.send("llookup:meta:public:signing_publickey@fresh");
    assert!(
        meta.starts_with(r#"data:{"createdBy":"@fresh","updatedBy":"@fresh","createdAt":""#)
            && meta.ends_with("\"status\":\"active\",\"version\":0,\"isBinary\":false,\"isEncrypted\":false}\n@fresh@"),
        "H1: {meta}"
    );
    let mut anon = Client::connect(server());
    assert!(anon.send("from:@fresh").starts_with("data:_"));
    assert_eq!(
        anon.send("scan"),
        "data:[\"signing_publickey@fresh\"]\n@",
        "F6"
    );
}

#[test]
fn the_signing_private_key_is_read_by_its_owner_only() {
    let mut owner = auth("@fresh");
    let private = owner.send("llookup:@fresh:signing_privatekey@fresh");
    assert!(private.starts_with("data:MII"), "{private}");
    let public = owner.send("llookup:public:signing_publickey@fresh");
    assert!(public.starts_with("data:MIIBIjAN"), "{public}");
    let mut anon = Client::connect(server());
    assert_eq!(
        anon.send("lookup:signing_publickey@fresh"),
        public.replace("\n@fresh@", "\n@"),
        "anyone reads the public half"
    );
    for line in [
        "lookup:signing_privatekey@fresh",
        "lookup:all:signing_privatekey@fresh",
        "lookup:@fresh:signing_privatekey@fresh",
    ] {
        let reply = anon.send(line);
        assert!(reply.starts_with("error:AT0015-"), "{line}: {reply}");
    }
    // The owner of another atSign of this process.
    let mut other = auth("@g");
    for line in [
        "lookup:signing_privatekey@fresh",
        "lookup:all:signing_privatekey@fresh",
        "plookup:signing_privatekey@fresh",
        "plookup:all:signing_privatekey@fresh",
    ] {
        let reply = other.send(line);
        assert!(reply.starts_with("error:AT0015-"), "{line}: {reply}");
    }
    let reply = other.send("llookup:@fresh:signing_privatekey@fresh");
    assert!(
        !reply.contains(&private["data:".len()..private.len() - "\n@fresh@".len()]),
        "{reply}"
    );
    assert!(reply.starts_with("error:"), "{reply}");
}

#[test]
fn to_answers_the_lookup_all_objects_of_both_public_keys() {
    let mut owner = auth("@to");
    let spki = include_str!("../src/auth/testdata/rsa2048.spki.b64").trim();
    assert!(
        owner
            .send(&format!("update:public:publickey@to {spki}"))
            .starts_with("data:")
    );
    let publickey = all_object(&mut owner, "@to", "public:publickey@to");
    assert!(
        publickey.starts_with(r#"{"key":"public:publickey@to","data":"MIIB"#),
        "{publickey}"
    );
    let signing = all_object(&mut owner, "@to", "public:signing_publickey@to");
    assert!(
        signing.starts_with(r#"{"key":"public:signing_publickey@to","data":"MIIB"#),
        "{signing}"
    );
    let expected = format!("data:{{\"publickey\":{publickey},\"signing_publickey\":{signing}}}\n@");
    let mut peer = Client::connect(server());
    assert_eq!(peer.send("to:@to"), expected);
    assert_eq!(peer.send("TO:To"), expected, "normalised, the @ optional");
    // The owner gets the same object, with its prompt.
    assert_eq!(owner.send("to:@to"), expected.replace("\n@", "\n@to@"));
}

#[test]
fn to_shows_a_missing_public_key_as_null() {
    let mut owner = auth("@tonull");
    let signing = all_object(&mut owner, "@tonull", "public:signing_publickey@tonull");
    let mut peer = Client::connect(server());
    assert_eq!(
        peer.send("to:@tonull"),
        format!("data:{{\"publickey\":null,\"signing_publickey\":{signing}}}\n@")
    );
}

#[test]
fn to_an_atsign_not_hosted_here_is_at0007_and_bad_lines_are_at0003() {
    let mut peer = Client::connect(server());
    assert_eq!(
        peer.send("to:@nobody"),
        "error:AT0007-Exception: @nobody is not hosted on this atServer\n@"
    );
    for line in ["to:@a b", "to:@alice:x", "to:"] {
        assert_eq!(
            peer.send(line),
            "error:AT0003-Exception: Invalid syntax. e.g to:@alice\n@",
            "{line}"
        );
    }
    let mut owner = auth("@g");
    assert_eq!(
        owner.send("to:nobody"),
        "error:AT0007-Secondary server not found : @nobody is not hosted on this atServer\n@g@"
    );
}

#[test]
fn to_names_the_atsign_the_connection_talks_to() {
    // Before `to:` an anonymous scan on this multi-atSign process lists
    // every atSign's public keys; after it, only the addressed one's.
    let mut peer = Client::connect(server());
    assert!(peer.send("scan").contains("signing_publickey@alice"));
    assert!(peer.send("to:@tonull").starts_with("data:{"));
    assert_eq!(peer.send("scan"), "data:[\"signing_publickey@tonull\"]\n@");
    // A later `to:` does not move it, and `from:` still works.
    assert!(peer.send("to:@alice").starts_with("data:{"));
    assert_eq!(peer.send("scan"), "data:[\"signing_publickey@tonull\"]\n@");
    assert!(peer.send("from:@tonull").starts_with("data:_"));
}
