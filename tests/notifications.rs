//! `notify` and `monitor` within one process, byte for byte, through the
//! transcript driver (the real pipeline and stores, no socket): a
//! notification to oneself and to another atSign of the same process,
//! monitor lines written between replies without a prompt, replay strictly
//! after an epoch-ms with no duplicate of what arrives live meanwhile, the
//! heartbeat on a monitor connection, and the sender's checks.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

mod common;

use atserver::app::ScratchServer;
use atserver::protocol::json::{self, JsonValue};
use atserver::session::Transcript;
use common::notification::{field, id_of, parse_line};

const SECRET: &str = "notification-secret";

fn server() -> &'static ScratchServer {
    static SERVER: OnceLock<ScratchServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let atsigns = ["@alice", "@bob", "@carol", "@dave", "@erin", "@frank"];
        let atsigns: Vec<(&str, &str)> = atsigns.iter().map(|a| (*a, SECRET)).collect();
        ScratchServer::open(&atsigns).expect("scratch server")
    })
}

fn owner(atsign: &str) -> Transcript {
    common::transcript_owner(server(), atsign, SECRET)
}

/// The JSON objects of `notification: {…}` lines, in order.
fn lines(text: &str) -> Vec<JsonValue> {
    text.lines().map(parse_line).collect()
}

#[test]
fn a_monitor_gets_no_reply_and_its_replies_lose_the_prompt() {
    let mut m = owner("@alice");
    assert_eq!(m.send("monitor"), "");
    // The heartbeat the SDKs send on a monitor connection.
    assert_eq!(m.send("noop:0"), "data:ok\n");
    assert_eq!(
        m.send("llookup:nothing@alice"),
        "error:AT0015-key not found : nothing@alice does not exist in keystore\n"
    );
    assert_eq!(m.notifications(), "");
}

#[test]
fn a_notification_to_oneself_reaches_the_monitor_once() {
    let mut m = owner("@bob");
    assert_eq!(m.send("monitor:selfNotifications"), "");
    let mut sender = owner("@bob");
    let reply = sender.send("notify:id:self-1:update:ivNonce:aXY=:@bob:phone.wavi@bob:c2VjcmV0");
    assert_eq!(reply, "data:self-1\n@bob@");
    let got = lines(&m.notifications());
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(field(n, "id"), "self-1");
    assert_eq!(field(n, "from"), "@bob");
    assert_eq!(field(n, "to"), "@bob");
    assert_eq!(field(n, "key"), "@bob:phone.wavi@bob");
    // The same id again is acknowledged and pushed no second time.
    assert_eq!(
        sender.send("notify:id:self-1:update:@bob:phone.wavi@bob:c2VjcmV0"),
        "data:self-1\n@bob@"
    );
    assert_eq!(m.notifications(), "");
}

#[test]
fn another_atsign_of_the_process_receives_through_its_own_store() {
    let mut m = owner("@dave");
    assert_eq!(m.send("monitor .*"), "");
    let mut alice = owner("@carol");
    let reply = alice.send("notify:update:ivNonce:aXY=:@dave:phone.wavi@carol:c2VjcmV0");
    let id = id_of(&reply, "@carol@");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let got = lines(&m.notifications());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(field(&got[0], "id"), id);
    assert_eq!(field(&got[0], "from"), "@carol");
    assert_eq!(field(&got[0], "key"), "@dave:phone.wavi@carol");
    // The sender's record says delivered.
    assert_eq!(
        alice.send(&format!("notify:status:{id}")),
        "data:delivered\n@carol@"
    );
}

#[test]
fn a_replay_starts_strictly_after_the_epoch_and_skips_what_came_live() {
    let mut sender = owner("@frank");
    let first = id_of(&sender.send("notify:@erin:one@frank:v1"), "@frank@");
    let second = id_of(&sender.send("notify:@erin:two@frank:v2"), "@frank@");
    let mut m = owner("@erin");
    assert_eq!(m.send("monitor:0"), "");
    // One more arrives before the replay is written: it must come once.
    let third = id_of(&sender.send("notify:@erin:three@frank:v3"), "@frank@");
    let got = lines(&m.notifications());
    let ids: Vec<&str> = got.iter().map(|n| field(n, "id")).collect();
    assert_eq!(ids, [first.as_str(), second.as_str(), third.as_str()]);
    // Strictly after: the epoch of the first replays only the later ones.
    let epoch = got[0]
        .get("epochMillis")
        .and_then(JsonValue::as_i64)
        .unwrap();
    let mut again = owner("@erin");
    assert_eq!(again.send(&format!("monitor:{epoch} .*")), "");
    let later = lines(&again.notifications());
    assert!(later.iter().all(|n| field(n, "id") != first), "{later:?}");
    assert!(later.iter().any(|n| field(n, "id") == third));
}

#[test]
fn the_sender_is_checked_before_anything_is_stored() {
    let mut t = owner("@alice");
    assert_eq!(
        t.send("notify:@bob:phone@carol:v"),
        "error:AT0009-UnAuthorized client in request : @alice is not authorized to send notification as @carol\n@alice@"
    );
    assert_eq!(
        t.send("notify:strategy:latest:@bob:phone@alice:v"),
        "error:AT0003-Invalid syntax : For Strategy latest, notifier cannot be null\n@alice@"
    );
    let unauthenticated = Transcript::new(server().server.clone())
        .unwrap()
        .send("notify:@bob:phone@alice:v");
    assert!(
        unauthenticated.starts_with("error:AT0401"),
        "{unauthenticated}"
    );
}

#[test]
fn writes_tell_the_monitors_their_commit_id_and_shared_keys_notify_the_recipient() {
    let mut m = owner("@alice");
    assert_eq!(m.send("monitor:strict statsNotification"), "");
    let mut bob = owner("@bob");
    assert_eq!(bob.send("monitor auto.wavi"), "");
    let mut alice = owner("@alice");
    let reply =
        alice.send("update:ttr:-1:isEncrypted:true:ivNonce:aXY=:@bob:auto.wavi@alice c2VjcmV0");
    let commit = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@alice@"))
        .expect("a commit id")
        .to_string();
    // The owner's strict monitor asked only for stats lines.
    let stats = lines(&m.notifications());
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(field(&stats[0], "id"), "-1");
    assert_eq!(field(&stats[0], "key"), "statsNotification.@alice");
    assert_eq!(field(&stats[0], "value"), commit);
    assert_eq!(field(&stats[0], "operation"), "update");
    // @bob (same process) receives the new value, as a peer would send it.
    let got = lines(&bob.notifications());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(field(&got[0], "from"), "@alice");
    assert_eq!(field(&got[0], "key"), "@bob:auto.wavi@alice");
    assert_eq!(field(&got[0], "value"), "c2VjcmV0");
    assert_eq!(field(&got[0], "operation"), "update");
    // …and @bob's server caches it, per the ttr.
    assert_eq!(
        bob.send("llookup:cached:@bob:auto.wavi@alice"),
        "data:c2VjcmV0\n"
    );
    // A delete is notified too, without a value.
    assert!(
        alice
            .send("delete:@bob:auto.wavi@alice")
            .starts_with("data:")
    );
    let got = lines(&bob.notifications());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(field(&got[0], "operation"), "delete");
    let stats = lines(&m.notifications());
    assert_eq!(field(&stats[0], "operation"), "delete");
}

#[test]
fn notify_multi_sends_one_copy_per_distinct_recipient() {
    let mut bob = owner("@bob");
    assert_eq!(bob.send("monitor msg.multi"), "");
    let mut carol = owner("@carol");
    assert_eq!(carol.send("monitor msg.multi"), "");
    let mut alice = owner("@alice");
    let reply = alice.send("notify:multi:@bob,@BOB,@carol:msg.multi@alice:Y3Q=");
    let json_text = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@alice@"))
        .unwrap_or_else(|| panic!("{reply}"));
    let ids = json::parse(json_text).unwrap();
    let (bob_id, carol_id) = (field(&ids, "@bob"), field(&ids, "@carol"));
    assert!(json_text.starts_with(r#"{"@bob":""#), "{json_text}");
    assert_ne!(bob_id, carol_id);
    let got = lines(&bob.notifications());
    assert_eq!(got.len(), 1, "once for @bob,@BOB: {got:?}");
    assert_eq!(field(&got[0], "id"), bob_id);
    assert_eq!(field(&got[0], "key"), "@bob:msg.multi@alice");
    let got = lines(&carol.notifications());
    assert_eq!(field(&got[0], "id"), carol_id);
    assert_eq!(
        alice.send("notify:multi:ttr:5:@bob:msg.multi@alice:v"),
        "error:AT0003-Invalid syntax : notify:multi does not take ttr\n@alice@"
    );
}

#[test]
fn notify_all_signs_each_copy_and_answers_spaced() {
    let mut bob = owner("@bob");
    assert_eq!(bob.send("monitor msg.all"), "");
    let mut alice = owner("@alice");
    let reply = alice.send("notify:all:@bob,@carol:msg.all@alice:v");
    assert!(reply.starts_with(r#"data: {"@bob":""#), "{reply}");
    assert!(reply.ends_with("\"}\n@alice@"), "{reply}");
    let got = lines(&bob.notifications());
    assert_eq!(got.len(), 1, "{got:?}");
    let signature = got[0]
        .get("metadata")
        .and_then(|m| m.get("dataSignature"))
        .and_then(JsonValue::as_str)
        .expect("a dataSignature");
    assert!(signature.len() > 300, "RSA-2048, base64: {signature}");
    assert_eq!(
        Transcript::new(server().server.clone())
            .unwrap()
            .send("notify:all:@bob:msg.all@alice:v"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
}

#[test]
fn an_explicit_expiry_is_kept_and_one_in_the_past_is_answered_but_dropped() {
    let mut alice = owner("@alice");
    let reply = alice.send("notify:id:gone-1:eAtn:2020-01-01T00:00:00.000Z:@bob:past.x@alice:v");
    assert_eq!(reply, "data:gone-1\n@alice@");
    assert_eq!(alice.send("notify:status:gone-1"), "data:null\n@alice@");
    assert_eq!(
        alice.send("notify:ttln:1000:eAtn:2030-01-01T00:00:00.000Z:@bob:both.x@alice:v"),
        "error:AT0003-Invalid syntax : notify takes eAtn or ttln, not both\n@alice@"
    );
    assert_eq!(
        alice.send("notify:delete:eph:@bob:eph.x@alice"),
        "error:AT0003-Invalid syntax : an ephemeral notification cannot be a delete\n@alice@"
    );
    // To another atServer with no directory to find it: stored and queued.
    let reply = alice.send("notify:id:away-1:@nobody:k.x@alice:v");
    assert_eq!(reply, "data:away-1\n@alice@");
    assert_eq!(alice.send("notify:status:away-1"), "data:queued\n@alice@");
}

#[test]
fn a_notification_to_too_many_recipients_is_refused_before_any_is_sent() {
    let mut alice = owner("@alice");
    let names: Vec<String> = (0..=atserver::limits::NOTIFY_RECIPIENTS_MAX)
        .map(|i| format!("@many{i}"))
        .collect();
    let reply = alice.send(&format!(
        "notify:multi:{}:msg.many@alice:v",
        names.join(",")
    ));
    assert_eq!(
        reply,
        "error:AT0022-Illegal arguments : a notification names at most 1000 recipients\n@alice@"
    );
    // The connection goes on.
    assert_eq!(alice.send("noop:0"), "data:ok\n@alice@");
}
