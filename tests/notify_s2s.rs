//! Notifications between two `atserver` processes and a directory on
//! loopback, over real TLS (notifications.md §3, §6): @alice's owner
//! notifies @bob, @alice's server delivers it to @bob's server over a
//! pol-authenticated connection, and @bob's monitor gets the line.
//!
//! The faults the issue names: the recipient's server down when the
//! notification is sent (delivered once after it returns), the sender
//! killed with `kill -9` while notifications are queued (delivered after
//! its restart), a monitor that reconnects with a replay (no loss, no
//! duplicate), and a peer that accepts the connection and never answers
//! (it holds up nobody else).

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use atserver::protocol::json::JsonValue;
use common::Client;
use common::network::Network;
use common::notification::{field, id_of, parse_line};

const ALICE: (&str, &str) = ("@alice", "alice-secret");
const BOB: (&str, &str) = ("@bob", "bob-secret");

/// How long a delivery may take in these tests: a retry's pause included
/// (the first retries come within a few seconds), on a loaded CI machine.
const DELIVERY: Duration = Duration::from_secs(20);

fn owner(network: &Network, index: usize, (atsign, secret): (&str, &str)) -> Client {
    let mut client = Client::connect(network.server(index));
    client.cram(atsign, secret);
    client
}

/// A monitor connection of `atsign` on its server.
fn monitor(network: &Network, index: usize, who: (&str, &str), command: &str) -> Client {
    let mut client = owner(network, index, who);
    client.start_monitor(command);
    client
}

/// The next notification line's JSON within `limit` (stats lines skipped),
/// or `None`.
fn next_notification(monitor: &mut Client, limit: Duration) -> Option<JsonValue> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = monitor.monitor_line_within(left)?;
        let value = parse_line(&line);
        if field(&value, "id") != "-1" {
            return Some(value);
        }
    }
}

/// Waits until `notify:status:<id>` on `sender` answers `expected`.
fn await_status(sender: &mut Client, id: &str, expected: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = sender.send(&format!("notify:status:{id}"));
        if last.starts_with(&format!("data:{expected}\n")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{id} never became {expected}: {last}");
}

#[test]
fn a_notification_crosses_servers_to_the_recipients_monitor() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut bob_monitor = monitor(&network, 1, BOB, "monitor .*");
    let mut alice = owner(&network, 0, ALICE);
    let reply = alice.send("notify:update:ivNonce:aXY=:@bob:phone.wavi@alice:c2VjcmV0");
    let id = id_of(&reply, "@alice@");
    let got = next_notification(&mut bob_monitor, DELIVERY).expect("delivered");
    assert_eq!(field(&got, "id"), id);
    assert_eq!(field(&got, "from"), "@alice");
    assert_eq!(field(&got, "to"), "@bob");
    assert_eq!(field(&got, "key"), "@bob:phone.wavi@alice");
    assert_eq!(field(&got, "value"), "c2VjcmV0");
    await_status(&mut alice, &id, "delivered", DELIVERY);
    // The heartbeat on the monitor connection is answered without a prompt
    // and the next notification still arrives.
    bob_monitor.write(b"noop:0\n");
    assert_eq!(
        bob_monitor.monitor_line_within(DELIVERY).as_deref(),
        Some("data:ok\n")
    );
    let second = id_of(
        &alice.send("notify:messageType:text:isEncrypted:true:@bob:aGVsbG8="),
        "@alice@",
    );
    let got = next_notification(&mut bob_monitor, DELIVERY).expect("delivered");
    assert_eq!(field(&got, "id"), second);
    assert_eq!(field(&got, "key"), "@bob:aGVsbG8=");
    assert_eq!(field(&got, "messageType"), "MessageType.text");
}

#[test]
fn a_recipient_down_when_sent_gets_it_once_after_it_returns() {
    let mut network = Network::start(&[ALICE, BOB], &[], &[]);
    network.kill(1);
    let mut alice = owner(&network, 0, ALICE);
    let id = id_of(&alice.send("notify:@bob:while.down@alice:v"), "@alice@");
    // A few attempts fail while @bob's server is away.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        alice.send(&format!("notify:status:{id}")),
        "data:queued\n@alice@"
    );
    network.restart(1, &[]);
    await_status(&mut alice, &id, "delivered", Duration::from_secs(90));
    let mut bob_monitor = monitor(&network, 1, BOB, "monitor:0 .*");
    let got = next_notification(&mut bob_monitor, DELIVERY).expect("replayed");
    assert_eq!(field(&got, "id"), id);
    assert!(
        next_notification(&mut bob_monitor, Duration::from_millis(1_500)).is_none(),
        "delivered once"
    );
}

#[test]
fn queued_notifications_survive_kill_9_of_the_sender() {
    let mut network = Network::start(&[ALICE, BOB], &[], &[]);
    network.kill(1);
    let mut alice = owner(&network, 0, ALICE);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            id_of(
                &alice.send(&format!("notify:@bob:queued{i}@alice:v{i}")),
                "@alice@",
            )
        })
        .collect();
    drop(alice);
    network.kill(0);
    network.restart(0, &[]);
    network.restart(1, &[]);
    let mut alice = owner(&network, 0, ALICE);
    for id in &ids {
        await_status(&mut alice, id, "delivered", Duration::from_secs(90));
    }
    let mut bob_monitor = monitor(&network, 1, BOB, "monitor:0");
    let mut seen = Vec::new();
    while let Some(got) = next_notification(&mut bob_monitor, Duration::from_secs(2)) {
        seen.push(field(&got, "id").to_string());
    }
    assert_eq!(seen, ids, "each once, oldest first");
}

#[test]
fn a_monitor_that_reconnects_replays_without_loss_or_duplicate() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut alice = owner(&network, 0, ALICE);
    let mut first = monitor(&network, 1, BOB, "monitor:0 .*");
    let n1 = id_of(&alice.send("notify:@bob:one@alice:1"), "@alice@");
    let got = next_notification(&mut first, DELIVERY).expect("live");
    assert_eq!(field(&got, "id"), n1);
    let epoch = got.get("epochMillis").and_then(JsonValue::as_i64).unwrap();
    drop(first);
    let n2 = id_of(&alice.send("notify:@bob:two@alice:2"), "@alice@");
    let n3 = id_of(&alice.send("notify:@bob:three@alice:3"), "@alice@");
    await_status(&mut alice, &n3, "delivered", DELIVERY);
    let mut again = monitor(&network, 1, BOB, &format!("monitor:{epoch} .*"));
    let n4 = id_of(&alice.send("notify:@bob:four@alice:4"), "@alice@");
    let mut seen = Vec::new();
    while let Some(got) = next_notification(&mut again, Duration::from_secs(3)) {
        seen.push(field(&got, "id").to_string());
    }
    assert_eq!(seen, [n2, n3, n4]);
}

#[test]
fn a_peer_that_never_answers_holds_up_only_its_own_deliveries() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let records = vec![format!("silent={}", silent.local_addr().expect("addr"))];
    let network = Network::start(&[ALICE, BOB], &["--outbound-step-ms", "2000"], &records);
    let mut alice = owner(&network, 0, ALICE);
    let mut bob_monitor = monitor(&network, 1, BOB, "monitor");
    let stuck = id_of(&alice.send("notify:@silent:stuck@alice:v"), "@alice@");
    let started = Instant::now();
    let id = id_of(&alice.send("notify:@bob:free@alice:v"), "@alice@");
    let got = next_notification(&mut bob_monitor, DELIVERY).expect("delivered");
    assert_eq!(field(&got, "id"), id);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not behind the silent peer: {:?}",
        started.elapsed()
    );
    assert_eq!(
        alice.send(&format!("notify:status:{stuck}")),
        "data:queued\n@alice@"
    );
    // The sender's connection stays responsive throughout.
    assert_eq!(alice.send("noop:0"), "data:ok\n@alice@");
    drop(silent);
}

/// Waits until `line` on `client` answers `expected`.
fn await_reply(client: &mut Client, line: &str, expected: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = client.send(line);
        if last == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{line} never answered {expected:?}: {last:?}");
}

#[test]
fn the_owners_shares_reach_the_recipients_cache_and_its_deletes_cascade() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut alice = owner(&network, 0, ALICE);
    let mut bob = owner(&network, 1, BOB);
    assert!(
        alice
            .send("update:ttr:-1:ccd:true:@bob:pushed.wavi@alice first")
            .starts_with("data:")
    );
    // Auto-notified: @bob's server writes its cached copy without a lookup.
    await_reply(
        &mut bob,
        "llookup:cached:@bob:pushed.wavi@alice",
        "data:first\n@bob@",
        DELIVERY,
    );
    // The owner's update of the shared key propagates to the copy.
    assert!(
        alice
            .send("update:ttr:-1:ccd:true:@bob:pushed.wavi@alice second")
            .starts_with("data:")
    );
    await_reply(
        &mut bob,
        "llookup:cached:@bob:pushed.wavi@alice",
        "data:second\n@bob@",
        DELIVERY,
    );
    // With ccd, the owner's delete removes the copy.
    assert!(
        alice
            .send("delete:@bob:pushed.wavi@alice")
            .starts_with("data:")
    );
    await_reply(
        &mut bob,
        "llookup:cached:@bob:pushed.wavi@alice",
        "error:AT0015-key not found : cached:@bob:pushed.wavi@alice does not exist in keystore\n@bob@",
        DELIVERY,
    );
}
