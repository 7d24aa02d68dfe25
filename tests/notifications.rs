//! `notify` and `monitor` within one process, byte for byte, through the
//! transcript driver (the real pipeline and stores, no socket): a
//! notification to oneself and to another atSign of the same process,
//! monitor lines written between replies without a prompt, replay strictly
//! after an epoch-ms with no duplicate of what arrives live meanwhile, the
//! heartbeat on a monitor connection, and the sender's checks.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use atserver::app::ScratchServer;
use atserver::protocol::json::{self, JsonValue};
use atserver::session::Transcript;

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
    let mut t = Transcript::new(server().server.clone()).expect("transcript");
    let reply = t.send(&format!("from:{atsign}"));
    let challenge = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("a challenge");
    let cram = atserver::client::auth::cram_line(SECRET, challenge);
    assert_eq!(t.send(&cram), format!("data:success\n{atsign}@"));
    t
}

/// The JSON objects of `notification: {…}` lines, in order.
fn lines(text: &str) -> Vec<JsonValue> {
    text.lines()
        .map(|line| {
            let body = line
                .strip_prefix("notification: ")
                .unwrap_or_else(|| panic!("not a notification line: {line:?}"));
            json::parse(body).unwrap_or_else(|e| panic!("{e:?}: {body}"))
        })
        .collect()
}

fn field<'a>(v: &'a JsonValue, name: &str) -> &'a str {
    v.get(name)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no string {name} in {v:?}"))
}

fn id_of(reply: &str, prompt: &str) -> String {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{prompt}")))
        .unwrap_or_else(|| panic!("not an id reply: {reply:?}"))
        .to_string()
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
