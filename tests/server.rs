//! Byte-exact integration tests: the real listener, real TLS, real bytes.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use atserver::client::auth::{PkamKey, cram_line};
use common::{Client, TestServer, is_uuid};

const SECRET: &str = "b26455a907582760ebf35bc4847de549bc41c24b25c8b1c58d5964f7b4f8a43bc55b0e9a601c9a9657d9a8b8bbc32f88b4e38ffaf1f84e76d3aa8f7b3e1bc61b";

/// One server for the whole file, one atSign per test so tests stay
/// independent while running in parallel.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let atsigns: Vec<(&str, &str)> = [
            "@alice", "@bob", "@errors", "@onboard", "@pkam", "@meta", "@scan", "@stats",
            "@expiry", "@del", "@ecc", "@pipe", "@order", "@rw", "@big", "@blank", "@csdk",
            "@huge", "@signing",
        ]
        .iter()
        .map(|a| (*a, SECRET))
        .collect();
        common::start(&atsigns)
    })
}

fn owner(atsign: &str) -> Client {
    let mut client = Client::connect(server());
    client.cram(atsign, SECRET);
    client
}

#[test]
fn the_greeting_is_a_bare_prompt_and_unknown_verbs_are_at0003() {
    let mut c = Client::connect(server());
    assert_eq!(
        c.send("hello"),
        "error:AT0003-Exception: invalid command\n@"
    );
    assert_eq!(
        c.send("update:metaX@alice v"),
        "error:AT0003-Exception: invalid command\n@"
    );
    assert_eq!(c.send("noop:0"), "data:ok\n@");
}

#[test]
fn from_answers_with_the_exact_challenge_shape() {
    let mut c = Client::connect(server());
    let challenge = c.challenge("@alice");
    let (session, nonce) = challenge.split_once("@alice:").expect("shape");
    assert!(
        session.starts_with('_') && is_uuid(&session[1..]),
        "{challenge}"
    );
    assert!(is_uuid(nonce), "{challenge}");
    // Case and missing @ are normalised.
    let again = c.challenge("ALICE");
    assert!(
        again.starts_with(session) && again.contains("@alice:"),
        "{again}"
    );
}

#[test]
fn cram_authenticates_and_a_wrong_digest_is_at0401_with_the_connection_kept() {
    let mut c = Client::connect(server());
    c.challenge("@alice");
    assert_eq!(
        c.send("cram:00"),
        "error:AT0401-Exception: Authentication Failed\n@"
    );
    // The challenge is single use: a retry without from: is refused.
    assert!(
        c.send(&cram_line(SECRET, "whatever"))
            .starts_with("error:AT0015-")
    );
    c.cram("@alice", SECRET);
    assert_eq!(c.send("noop:0"), "data:ok\n@alice@");
}

#[test]
fn owner_verbs_need_auth_before_syntax() {
    let mut c = Client::connect(server());
    assert_eq!(
        c.send("llookup:phone@alice"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
    assert_eq!(
        c.send("update:bad"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
    assert_eq!(c.send("noop:1"), "data:ok\n@");
}

#[test]
fn update_llookup_delete_round_trip_with_commit_ids() {
    let mut c = owner("@bob");
    // Commit ids 0 and 1 are the signing key pair every fresh atSign gets.
    assert_eq!(c.send("update:phone@bob +1 555 0100"), "data:2\n@bob@");
    assert_eq!(c.send("llookup:phone@bob"), "data:+1 555 0100\n@bob@");
    assert_eq!(c.send("llookup:PHONE@BOB"), "data:+1 555 0100\n@bob@");
    assert_eq!(
        c.send("update:public:email@bob b@example.com"),
        "data:3\n@bob@"
    );
    assert_eq!(
        c.send("llookup:public:email@bob"),
        "data:b@example.com\n@bob@"
    );
    assert_eq!(c.send("delete:phone@bob"), "data:4\n@bob@");
    assert_eq!(
        c.send("llookup:phone@bob"),
        "error:AT0015-key not found : phone@bob does not exist in keystore\n@bob@"
    );
    // Deleting a missing key still commits a delete entry.
    assert_eq!(c.send("delete:nothing@bob"), "data:5\n@bob@");
}

#[test]
fn errors_use_the_reference_codes_and_keep_the_connection() {
    let mut c = owner("@errors");
    assert!(
        c.send("update:phone@errors")
            .starts_with("error:AT0003-Invalid syntax : Invalid syntax.")
    );
    assert_eq!(
        c.send("update:phone@someoneelse v"),
        "error:AT0016-Invalid key : Invalid update command - sharedBy atsign @someoneelse should be same as current atsign @errors\n@errors@"
    );
    assert_eq!(
        c.send("update:phone v"),
        "error:AT0016-Invalid key : You may not update keys of type KeyType.invalidKey\n@errors@"
    );
    assert_eq!(
        c.send("update:ttl:-5:x1@errors v"),
        "error:AT0003-Invalid syntax : Valid value for TTL should be greater than or equal to 0\n@errors@"
    );
    assert_eq!(
        c.send("noop:5001"),
        "error:AT0022-Illegal arguments : noop:<durationInMillis> where the duration maximum is 5000 milliseconds\n@errors@"
    );
    assert_eq!(
        c.send("delete:publickey@errors"),
        "error:AT0009-UnAuthorized client in request : Cannot delete protected key: 'publickey@errors'\n@errors@"
    );
    let bad_regex = c.send("scan (");
    assert!(
        bad_regex.starts_with("error:AT0003-Invalid syntax : Invalid regex: "),
        "{bad_regex}"
    );
    assert!(
        bad_regex.ends_with("\n@errors@") && bad_regex.matches('\n').count() == 1,
        "{bad_regex}"
    );
    assert_eq!(c.send("noop:0"), "data:ok\n@errors@");
}

#[test]
fn the_sdk_onboarding_sequence_works() {
    let mut c = Client::connect(server());
    c.cram("@onboard", SECRET);
    let public = include_str!("../src/auth/testdata/rsa2048.spki.b64");
    assert_eq!(
        c.send(&format!("update:privatekey:at_pkam_publickey {public}")),
        "data:-1\n@onboard@"
    );
    let challenge = c.challenge("@onboard");
    assert_eq!(
        c.send(&format!("pkam:{}", sign(&challenge))),
        "data:success\n@onboard@"
    );
    assert_eq!(
        c.send(&format!("update:public:publickey@onboard {public}")),
        "data:2\n@onboard@"
    );
    assert_eq!(c.send("delete:privatekey:at_secret"), "data:-1\n@onboard@");
    // The secret is gone: cram now fails.
    let mut again = Client::connect(server());
    let challenge = again.challenge("@onboard");
    let reply = again.send(&cram_line(SECRET, &challenge));
    assert!(reply.starts_with("error:AT0015-"), "{reply}");
}

fn sign(challenge: &str) -> String {
    PkamKey::rsa_from_pkcs8(include_bytes!("../src/auth/testdata/rsa2048.pk8"))
        .expect("key")
        .sign(challenge)
        .expect("sign")
}

#[test]
fn pkam_accepts_rsa_signatures_and_refuses_bad_ones() {
    let mut setup = owner("@pkam");
    let public = include_str!("../src/auth/testdata/rsa2048.spki.b64");
    assert_eq!(
        setup.send(&format!("update:privatekey:at_pkam_publickey {public}")),
        "data:-1\n@pkam@"
    );

    let mut c = Client::connect(server());
    let challenge = c.challenge("@pkam");
    assert_eq!(
        c.send(&format!("pkam:{}", sign("_other@pkam:x"))),
        "error:AT0401-Exception: pkam authentication failed\n@"
    );
    // Single use: the failed attempt consumed the challenge.
    assert!(
        c.send(&format!("pkam:{}", sign(&challenge)))
            .starts_with("error:AT0015-")
    );
    let challenge = c.challenge("@pkam");
    assert_eq!(
        c.send(&format!(
            "pkam:signingAlgo:rsa2048:hashingAlgo:sha256:{}",
            sign(&challenge)
        )),
        "data:success\n@pkam@"
    );
    let challenge = c.challenge("@pkam");
    assert_eq!(
        c.send(&format!("pkam:enrollmentId:abc:{}", sign(&challenge))),
        "error:AT0028:enrollment_id: abc is expired or invalid\n@"
    );
}

#[test]
fn pkam_accepts_ecdsa_p256_keys() {
    let key = PkamKey::generate_ecdsa().expect("key");
    let mut setup = owner("@ecc");
    assert_eq!(
        setup.send(&format!(
            "update:privatekey:at_pkam_publickey {}",
            key.public_key_text()
        )),
        "data:-1\n@ecc@"
    );
    let mut c = Client::connect(server());
    let challenge = c.challenge("@ecc");
    let wire = key.sign(&challenge).expect("sign");
    assert_eq!(
        c.send(&format!(
            "pkam:signingAlgo:ecc_secp256r1:hashingAlgo:sha256:{wire}"
        )),
        "data:success\n@ecc@"
    );
}

#[test]
fn metadata_round_trips_through_llookup_meta_and_all() {
    let mut c = owner("@meta");
    let reply = c.send("update:ttl:60000:dataSignature:c2ln:isEncrypted:true:pubKeyHash:abc:hashingAlgo:sha512:ivNonce:aXY=:note.app@meta secret text");
    assert_eq!(reply, "data:2\n@meta@");
    let meta = c.send("llookup:meta:note.app@meta");
    for part in [
        r#""createdBy":"@meta""#,
        r#""status":"active","version":0,"ttl":60000,"#,
        r#""isBinary":false,"isEncrypted":true,"dataSignature":"c2ln","pubKeyHash":{"hash":"abc","hashingAlgo":"sha512"},"ivNonce":"aXY=""#,
        r#""expiresAt":""#,
    ] {
        assert!(meta.contains(part), "{part} missing from {meta}");
    }
    let all = c.send("llookup:all:note.app@meta");
    assert!(
        all.starts_with(
            r#"data:{"key":"note.app@meta","data":"secret text","metaData":{"createdBy":"@meta""#
        ),
        "{all}"
    );
    // Omitted strings are kept, omitted booleans reset, version bumps.
    assert_eq!(c.send("update:note.app@meta new"), "data:3\n@meta@");
    let meta = c.send("llookup:meta:note.app@meta");
    assert!(
        meta.contains(r#""version":1"#)
            && meta.contains(r#""isEncrypted":false"#)
            && meta.contains(r#""ivNonce":"aXY=""#),
        "{meta}"
    );
    // update:meta changes metadata only.
    assert_eq!(
        c.send("update:meta:note.app@meta:ttr:-1:ccd:true:isEncrypted:true"),
        "data:4\n@meta@"
    );
    assert_eq!(c.send("llookup:note.app@meta"), "data:new\n@meta@");
    let meta = c.send("llookup:meta:note.app@meta");
    assert!(meta.contains(r#""ttr":-1,"ccd":true"#), "{meta}");
}

#[test]
fn lookup_and_plookup_read_the_owners_public_and_shared_keys() {
    let mut c = owner("@alice");
    assert!(
        c.send("update:public:location.wavi@alice London")
            .starts_with("data:")
    );
    assert!(
        c.send("update:@alice:nick.wavi@alice Ali")
            .starts_with("data:")
    );
    assert_eq!(
        c.send("plookup:location.wavi@alice"),
        "data:London\n@alice@"
    );
    assert_eq!(c.send("lookup:nick.wavi@alice"), "data:Ali\n@alice@");
    let all = c.send("plookup:all:location.wavi@alice");
    assert!(
        all.starts_with(r#"data:{"key":"public:location.wavi@alice","data":"London""#),
        "{all}"
    );
    let mut anon = Client::connect(server());
    assert_eq!(anon.send("lookup:location.wavi@alice"), "data:London\n@");
    assert_eq!(
        anon.send("lookup:missing.wavi@alice"),
        "error:AT0015-Exception: public:missing.wavi@alice does not exist in keystore\n@"
    );
    assert_eq!(
        anon.send("plookup:location.wavi@alice"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
}

#[test]
fn scan_filters_by_auth_state_and_regex() {
    let mut c = owner("@scan");
    for line in [
        "update:public:pub.app@scan 1",
        "update:self.app@scan 2",
        "update:_hidden.app@scan 3",
        "update:public:__hidden.app@scan 4",
        "update:public:_never.app@scan 5",
        "update:@bob:shared.app@scan 6",
    ] {
        assert!(c.send(line).starts_with("data:"), "{line}");
    }
    assert_eq!(
        c.send("scan"),
        r#"data:["@bob:shared.app@scan","@scan:signing_privatekey@scan","public:pub.app@scan","public:signing_publickey@scan","self.app@scan"]"#.to_string()
            + "\n@scan@"
    );
    assert_eq!(
        c.send("scan:showHidden:true"),
        r#"data:["@bob:shared.app@scan","@scan:signing_privatekey@scan","_hidden.app@scan","public:__hidden.app@scan","public:pub.app@scan","public:signing_publickey@scan","self.app@scan"]"#
            .to_string()
            + "\n@scan@"
    );
    assert_eq!(
        c.send(r"scan:showHidden:true self\..*"),
        "data:[\"self.app@scan\"]\n@scan@"
    );
    let mut anon = Client::connect(server());
    anon.challenge("@scan");
    assert_eq!(
        anon.send("scan"),
        "data:[\"pub.app@scan\",\"signing_publickey@scan\"]\n@"
    );
}

#[test]
fn stats_reports_the_last_commit_id_with_the_reference_spacing() {
    let mut c = owner("@stats");
    // A fresh atSign's log holds its signing key pair (commit ids 0 and 1).
    assert_eq!(
        c.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"1\"}]\n@stats@"
    );
    // (The empty log's "-1" is no longer reachable on a started server;
    // `verbs::stats` pins it.)
    assert_eq!(c.send("update:a.app@stats 1"), "data:2\n@stats@");
    assert_eq!(c.send("update:b.other@stats 1"), "data:3\n@stats@");
    assert_eq!(
        c.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"3\"}]\n@stats@"
    );
    assert_eq!(
        c.send(r"stats:3:.*\.app"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"2\"}]\n@stats@"
    );
    assert_eq!(
        c.send(r"stats:15:\.app@"),
        "data: [{\"id\":\"15\",\"name\":\"LatestCommitEntryOfEachKey\",\"value\":\"{\\\"a.app@stats\\\":[2,\\\"*\\\"]}\"}]\n@stats@"
    );
    let logins = c.send("stats:8,10");
    assert!(
        logins.contains(r#""name":"LastLoggedInDatetime","value":"20"#),
        "{logins}"
    );
    assert!(
        logins.contains(r#""name":"LastPkam","value":"Not Available""#),
        "{logins}"
    );
    let disk = c.send("stats:9");
    assert!(
        disk.contains(r#""name":"diskSize","value":"{\"size\":"#),
        "{disk}"
    );
    let both = c.send("stats:1,7");
    assert!(
        both.starts_with("data: [{\"id\":\"1\",\"name\":\"activeInboundConnections\",\"value\":\""),
        "{both}"
    );
    assert!(
        both.ends_with(
            ", {\"id\":\"7\",\"name\":\"secondaryServerVersion\",\"value\":\"3.16.6\"}]\n@stats@"
        ),
        "{both}"
    );
}

/// What `info` lists: the optional notification features this server
/// serves (changes §8).
const FEATURES: &str = r#"[{"name":"notify.multi","status":"GA","description":"one notification to several atSigns"},{"name":"notify.eAtn","status":"GA","description":"a notification's own expiry as a timestamp"},{"name":"notify.all","status":"Deprecated","description":"superseded by notify.multi"}]"#;

#[test]
fn info_lists_version_uptime_and_the_notification_features() {
    let mut c = Client::connect(server());
    let info = c.send("info");
    assert!(
        info.starts_with(r#"data:{"version":"3.16.6","uptimeAsWords":""#),
        "{info}"
    );
    assert!(
        info.ends_with(&format!("\"features\":{FEATURES}}}\n@")),
        "{info}"
    );
    let brief = c.send("info:brief");
    assert!(
        brief.starts_with(r#"data:{"version":"3.16.6","uptimeAsMillis":"#)
            && brief.ends_with(&format!("\"features\":{FEATURES}}}\n@")),
        "{brief}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut c = owner("@pipe");
    c.write(b"update:k1@pipe one\nupdate:k2@pipe two\nllookup:k1@pipe\nllookup:k2@pipe\nnoop:0\n");
    assert_eq!(c.read_reply(), "data:2\n@pipe@");
    assert_eq!(c.read_reply(), "data:3\n@pipe@");
    assert_eq!(c.read_reply(), "data:one\n@pipe@");
    assert_eq!(c.read_reply(), "data:two\n@pipe@");
    assert_eq!(c.read_reply(), "data:ok\n@pipe@");
}

#[test]
fn pipelined_writes_reads_and_errors_keep_request_order() {
    let mut c = owner("@order");
    assert_eq!(c.send("update:base.order@order b0"), "data:2\n@order@");
    c.write(
        b"update:a.order@order a1\nllookup:base.order@order\nbogus\nupdate:c.order@order c1\nllookup:a.order@order\ndelete:c.order@order\nllookup:c.order@order\nupdate:ttl:-1:x.order@order v\nstats:3\n",
    );
    assert_eq!(c.read_reply(), "data:3\n@order@");
    assert_eq!(c.read_reply(), "data:b0\n@order@");
    assert_eq!(
        c.read_reply(),
        "error:AT0003-Invalid syntax : invalid command\n@order@"
    );
    assert_eq!(c.read_reply(), "data:4\n@order@");
    assert_eq!(c.read_reply(), "data:a1\n@order@");
    assert_eq!(c.read_reply(), "data:5\n@order@");
    assert_eq!(
        c.read_reply(),
        "error:AT0015-key not found : c.order@order does not exist in keystore\n@order@"
    );
    assert_eq!(
        c.read_reply(),
        "error:AT0003-Invalid syntax : Valid value for TTL should be greater than or equal to 0\n@order@"
    );
    assert_eq!(
        c.read_reply(),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"5\"}]\n@order@"
    );
}

#[test]
fn a_read_sent_while_its_write_commits_sees_the_write() {
    let mut c = owner("@rw");
    for round in 0..50 {
        // Two separate writes on the wire: the server has usually read the
        // llookup while the update is still in flight.
        c.write(format!("update:k.rw@rw v{round}\n").as_bytes());
        c.write(b"llookup:k.rw@rw\n");
        assert_eq!(c.read_reply(), format!("data:{}\n@rw@", round + 2));
        assert_eq!(c.read_reply(), format!("data:v{round}\n@rw@"));
    }
}

#[test]
fn pipelined_reads_of_large_values_arrive_whole_and_in_order() {
    let mut c = owner("@big");
    let value = "x".repeat(200_000);
    assert_eq!(
        c.send(&format!("update:large.big@big {value}")),
        "data:2\n@big@"
    );
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str("llookup:large.big@big\n");
        batch.push_str(&format!("update:n{i}.big@big {i}\n"));
    }
    c.write(batch.as_bytes());
    for i in 0..20 {
        assert_eq!(c.read_reply(), format!("data:{value}\n@big@"));
        assert_eq!(c.read_reply(), format!("data:{}\n@big@", i + 3));
    }
}

#[test]
fn expired_keys_read_as_null_then_disappear() {
    let mut c = owner("@expiry");
    assert_eq!(
        c.send("update:ttl:300:gone.app@expiry soon"),
        "data:2\n@expiry@"
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let reply = c.send("llookup:gone.app@expiry");
    assert!(
        reply == "data:null\n@expiry@" || reply.starts_with("error:AT0015-"),
        "{reply}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if c.send("llookup:gone.app@expiry")
            .starts_with("error:AT0015-")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never purged");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        c.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"3\"}]\n@expiry@"
    );
}

#[test]
fn exit_closes_without_a_reply() {
    let mut c = Client::connect(server());
    c.write(b"@exit\n");
    assert!(c.is_closed());
}

#[test]
fn an_oversized_line_is_at0005_and_closes() {
    let mut c = owner("@huge");
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..10 {
        c.write(&chunk);
    }
    c.write(&vec![b'a'; 300_000]);
    let reply = c.read_reply();
    assert!(reply.starts_with("error:AT0005-Buffer limit exceeded : InboundBuffer overflow: server received request which exceeded the buffer size limit of 10240000 bytes."), "{reply}");
    assert!(c.is_closed());
}

#[test]
fn before_authentication_a_line_may_hold_16_kib() {
    let mut c = Client::connect(server());
    // The largest legitimate pre-auth lines (an ML-DSA-65 pkam, an OTP
    // enroll:request) are under 6 KiB.
    let long_pkam = format!("pkam:{}", "A".repeat(6_000));
    assert!(c.send(&long_pkam).starts_with("error:AT0015-"));
    c.write(&vec![b'a'; 16 * 1024 + 1]);
    let reply = c.read_reply();
    assert!(reply.starts_with("error:AT0005-Exception: InboundBuffer overflow: server received request which exceeded the buffer size limit of 16384 bytes."), "{reply}");
    assert!(c.is_closed());
}

#[test]
fn garbage_and_abandoned_connections_do_not_hurt_others() {
    use std::io::Write;
    let addr = server().addr;
    let mut raw = std::net::TcpStream::connect(addr).expect("connect");
    let _ = raw.write_all(b"this is not TLS\r\n\r\n");
    drop(raw);
    let mut half = Client::connect(server());
    half.write(b"update:partial-line-without-newl");
    drop(half);
    let mut c = Client::connect(server());
    assert_eq!(c.send("noop:0"), "data:ok\n@");
}

#[test]
fn an_invalid_atsign_is_at0011_and_closes() {
    let mut c = Client::connect(server());
    let reply = c.send("from:@bad!name");
    assert!(reply.starts_with("error:AT0011-Exception: "), "{reply}");
    assert!(c.is_closed());
}

#[test]
fn new_clients_get_json_errors() {
    let mut c = Client::connect(server());
    let reply = c.send(r#"from:@alice:clientConfig:{"version":"3.2.1","clientId":"x"}"#);
    assert!(reply.starts_with("data:_"), "{reply}");
    assert_eq!(
        c.send("bogus"),
        "error:{\"errorCode\":\"AT0003\",\"errorDescription\":\"Exception: invalid command\"}\n@"
    );
}

#[test]
fn connections_beyond_the_inbound_limit_get_at0012() {
    let limits = atserver::context::SessionLimits {
        inbound_connections_max: 2,
        ..Default::default()
    };
    let small = common::start_with_limits(&[("@limited", SECRET)], limits);
    let _first = Client::connect(&small);
    let _second = Client::connect(&small);
    let mut third = Client::connect_raw(small.addr, &small.ca);
    let expected = b"error:AT0012-Inbound connection limit exceeded: at most 2 connections\n";
    assert_eq!(third.read_exactly(expected.len()), expected);
    assert!(third.is_closed());
}

#[test]
fn a_blank_line_is_an_unknown_command_in_either_auth_state() {
    let mut c = Client::connect(server());
    c.write(b"\r\n");
    assert_eq!(c.read_reply(), "error:AT0003-Exception: invalid command\n@");
    // Pipelined blank lines are answered in order like any other line.
    c.write(b"\n \t \r\nnoop:0\n");
    for _ in 0..2 {
        assert_eq!(c.read_reply(), "error:AT0003-Exception: invalid command\n@");
    }
    assert_eq!(c.read_reply(), "data:ok\n@");
    let mut o = owner("@blank");
    o.write(b"\r\n");
    assert_eq!(
        o.read_reply(),
        "error:AT0003-Invalid syntax : invalid command\n@blank@"
    );
    assert_eq!(o.send("noop:0"), "data:ok\n@blank@");
}

/// What the official C SDK (at_c) does on every atServer connection: read
/// the `@`, send a blank CRLF line and wait for its reply, then `from:`
/// without the `@`, pkam, and its CRLF-terminated requests.
#[test]
fn the_c_sdk_connect_sequence_works() {
    let mut setup = owner("@csdk");
    let public = include_str!("../src/auth/testdata/rsa2048.spki.b64");
    assert_eq!(
        setup.send(&format!("update:privatekey:at_pkam_publickey {public}")),
        "data:-1\n@csdk@"
    );
    let mut c = Client::connect(server());
    c.write(b"\r\n");
    assert_eq!(c.read_reply(), "error:AT0003-Exception: invalid command\n@");
    c.write(b"from:csdk\r\n");
    let reply = c.read_reply();
    let challenge = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("a challenge");
    assert!(
        challenge.starts_with('_') && challenge.contains("@csdk:"),
        "{challenge}"
    );
    c.write(format!("pkam:{}\r\n", sign(challenge)).as_bytes());
    assert_eq!(c.read_reply(), "data:success\n@csdk@");
    c.write(b"noop:0\r\n");
    assert_eq!(c.read_reply(), "data:ok\n@csdk@");
    c.write(b"llookup:shared_key.bob@csdk\r\n");
    let missing = c.read_reply();
    assert!(
        missing.starts_with("error:AT0015-key not found"),
        "{missing}"
    );
}

#[test]
fn every_atsign_gets_a_signing_key_pair_whose_halves_match_and_to_serves_it() {
    use atserver::auth::signing::{SigningKey, verify_base64};
    let mut owner = owner("@signing");
    let private = owner.send("llookup:@signing:signing_privatekey@signing");
    let private = private
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@signing@"))
        .expect("the owner reads the private half");
    let all = owner.send("llookup:all:public:signing_publickey@signing");
    let all = all
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@signing@"))
        .expect("the public half's all object");
    let mut peer = Client::connect(server());
    let public = peer.send("lookup:signing_publickey@signing");
    let public = public
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("anyone reads the public half");
    // What a pol verifier does with them: the private half signs a nonce,
    // the public half verifies it.
    let nonce = b"6f0a3e0e-7c55-4a8e-9a55-2f7f3d1d2b61";
    let signature = SigningKey::from_pkcs8_base64(private)
        .expect("ring parses the stored PKCS#8")
        .sign_base64(nonce)
        .expect("sign");
    assert!(verify_base64(public, nonce, &signature));
    assert_eq!(
        peer.send("lookup:signing_privatekey@signing"),
        "error:AT0015-Exception: public:signing_privatekey@signing does not exist in keystore\n@"
    );
    assert_eq!(
        peer.send("to:@signing"),
        format!("data:{{\"publickey\":null,\"signing_publickey\":{all}}}\n@")
    );
    assert_eq!(
        peer.send("to:@elsewhere"),
        "error:AT0007-Exception: @elsewhere is not hosted on this atServer\n@"
    );
    assert_eq!(
        peer.send("to:@x y"),
        "error:AT0003-Exception: Invalid syntax. e.g to:@alice\n@"
    );
    for key in [
        "public:signing_publickey@signing",
        "@signing:signing_privatekey@signing",
    ] {
        let name = key.split_once(':').map_or(key, |(_, name)| name);
        assert_eq!(
            owner.send(&format!("delete:{key}")),
            format!(
                "error:AT0009-UnAuthorized client in request : Cannot delete protected key: '{name}'\n@signing@"
            )
        );
    }
    assert_eq!(
        owner.send("llookup:@signing:signing_privatekey@signing"),
        format!("data:{private}\n@signing@"),
        "a refused delete leaves the key"
    );
}
