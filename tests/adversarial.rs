//! The server tried as a hostile client would, over real TLS on loopback:
//! one test per class of abuse. Each asserts the server's answer and that a
//! well-behaved client of the same server (one shard) is still served.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use atserver::context::SessionLimits;
use common::process::ServerProcess;
use common::{Client, TestServer, tcp_from};

const SECRET: &str = "adversarial-secret";

/// One server for the tests that need no special limits.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let atsigns: Vec<(&str, &str)> = ["@keys", "@times", "@regex", "@bystander"]
            .iter()
            .map(|a| (*a, SECRET))
            .collect();
        common::start(&atsigns)
    })
}

fn owner_of(server: &TestServer, atsign: &str) -> Client {
    let mut client = Client::connect(server);
    client.cram(atsign, SECRET);
    client
}

/// A well-behaved client of `server` is still served.
fn bystander_is_served(server: &TestServer, atsign: &str) {
    let mut client = owner_of(server, atsign);
    let reply = client.send(&format!("update:still.served{atsign} v"));
    assert!(
        reply.starts_with("data:"),
        "a well-behaved client is served: {reply}"
    );
    assert_eq!(client.send("noop:0"), format!("data:ok\n{atsign}@"));
}

#[test]
fn giant_keys_on_every_verb_are_at0016_and_the_store_keeps_working() {
    let mut attacker = owner_of(server(), "@keys");
    let giant = "k".repeat(70_000);
    for line in [
        format!("update:{giant}@keys v"),
        format!("update:meta:{giant}@keys:ttl:1000"),
        format!("llookup:{giant}@keys"),
        format!("llookup:meta:{giant}@keys"),
        format!("lookup:{giant}@keys"),
        format!("plookup:{giant}@keys"),
        format!("delete:{giant}@keys"),
    ] {
        let reply = attacker.send(&line);
        assert!(
            reply.starts_with("error:AT0016-Invalid key : key length "),
            "{}…: {reply}",
            &line[..16]
        );
    }
    // The anonymous forms too.
    let mut anonymous = Client::connect(server());
    let reply = anonymous.send(&format!("lookup:{}@keys", "k".repeat(8_000)));
    assert!(reply.starts_with("error:AT0016-"), "{reply}");
    assert_eq!(attacker.send("update:fine@keys v"), "data:2\n@keys@");
    bystander_is_served(server(), "@bystander");
}

#[test]
fn overflowing_time_fields_are_at0003() {
    let mut client = owner_of(server(), "@times");
    for line in [
        "update:ttl:9223372036854775807:x.app@times v",
        "update:ttb:9223372036854775807:x.app@times v",
        "update:ttr:9223372036854775807:x.app@times v",
        "update:meta:x.app@times:ttl:9223372036854775807",
    ] {
        let reply = client.send(line);
        assert!(reply.starts_with("error:AT0003-"), "{line}: {reply}");
    }
    bystander_is_served(server(), "@bystander");
}

#[test]
fn catastrophic_regexes_are_at0003_and_others_are_still_served() {
    let mut client = owner_of(server(), "@regex");
    let deep = format!("{}a{}", "(".repeat(500), ")".repeat(500));
    for pattern in [r"(\w{1000}){1000}", "(a*)*b", deep.as_str(), "["] {
        let scan = client.send(&format!("scan {pattern}"));
        let stats = client.send(&format!("stats:3:{pattern}"));
        if pattern == "(a*)*b" {
            // Linear-time matching: a pattern that backtracks elsewhere is
            // simply answered.
            assert!(scan.starts_with("data:["), "{scan}");
            continue;
        }
        assert!(scan.starts_with("error:AT0003-"), "{pattern}: {scan}");
        assert!(stats.starts_with("error:AT0003-"), "{pattern}: {stats}");
    }
    bystander_is_served(server(), "@bystander");
}

/// Limits small enough that a test can fill them.
fn small_limits() -> SessionLimits {
    SessionLimits {
        unauth_connections_max: 16,
        handshakes_max: 8,
        connections_per_source_max: 1_000,
        ..SessionLimits::default()
    }
}

#[test]
fn sockets_that_never_send_a_client_hello_do_not_delay_a_real_client() {
    let server = common::start_with_limits(&[("@hello", SECRET)], small_limits());
    // Far more silent sockets than handshakes may be in progress, and than
    // the unauthenticated quota.
    let silent: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let mut client = Client::connect(&server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the greeting came after {:?}",
        started.elapsed()
    );
    client.cram("@hello", SECRET);
    assert_eq!(client.send("noop:0"), "data:ok\n@hello@");
    drop(silent);
}

#[test]
fn an_owner_is_served_while_the_unauthenticated_quota_is_full() {
    let server = common::start_with_limits(&[("@quota", SECRET)], small_limits());
    // Silent connections that did complete TLS, as many as the quota.
    let mut silent: Vec<Client> = (0..16).map(|_| Client::connect(&server)).collect();
    let mut owner = owner_of(&server, "@quota");
    assert_eq!(owner.send("update:in.app@quota v"), "data:2\n@quota@");
    // Room was made by evicting the one unauthenticated the longest.
    assert!(
        silent[0].is_closed(),
        "the oldest silent connection was evicted"
    );
    assert_eq!(owner.send("llookup:in.app@quota"), "data:v\n@quota@");
    silent.clear();
}

#[test]
fn one_source_address_holds_only_its_share_of_unauthenticated_connections() {
    let limits = SessionLimits {
        connections_per_source_max: 4,
        ..SessionLimits::default()
    };
    let server = common::start_with_limits(&[("@share", SECRET)], limits);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let held: Vec<Client> = (0..4)
        .map(|_| Client::over_tcp(tcp_from(attacker, server.addr), &server.ca))
        .collect();
    let mut refused = Client::over_tcp_raw(tcp_from(attacker, server.addr), &server.ca);
    let expected: &[u8] = b"error:AT0012-Inbound connection limit exceeded: at most 4 unauthenticated connections from one address\n";
    assert_eq!(refused.read_exactly(expected.len()), expected);
    assert!(refused.is_closed());
    // Another address is not affected.
    let mut owner = Client::over_tcp(
        tcp_from(Ipv4Addr::new(127, 0, 0, 3), server.addr),
        &server.ca,
    );
    owner.cram("@share", SECRET);
    assert_eq!(owner.send("noop:0"), "data:ok\n@share@");
    drop(held);
}

#[test]
fn trickling_a_partial_line_does_not_keep_a_connection_alive() {
    let limits = SessionLimits {
        idle_unauth_ms: 1_000,
        ..SessionLimits::default()
    };
    let server = common::start_with_limits(&[("@trickle", SECRET)], limits);
    let mut client = Client::connect(&server);
    let started = Instant::now();
    let mut closed = false;
    // One byte every 200 ms, never a newline: a read every time, but no line.
    for _ in 0..40 {
        if !client.try_write(b"n") {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_millis(1_500) {
            closed = client.is_closed();
            break;
        }
    }
    assert!(closed, "the idle deadline runs from the last complete line");
    let mut owner = owner_of(&server, "@trickle");
    assert_eq!(owner.send("noop:0"), "data:ok\n@trickle@");
}

/// Thousands of unauthenticated connections each holding a partial line:
/// the server's memory stays bounded, and an owner is still served.
#[test]
fn thousands_of_trickling_unauthenticated_connections_stay_within_memory() {
    const CONNECTIONS: usize = 1_200;
    const PARTIAL_BYTES: usize = 8 * 1024;
    const RSS_GROWTH_MAX: u64 = 192 * 1024 * 1024;
    let server = ServerProcess::start("@memory", SECRET, &[], &[]);
    let before = server.rss_bytes();
    let partial = vec![b'a'; PARTIAL_BYTES];
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        // 40 per source address, under the per-source share.
        let source = Ipv4Addr::new(127, 0, 1, 1 + (i / 40) as u8);
        let mut client = Client::over_tcp(tcp_from(source, server.addr), &server.target.ca);
        client.write(&partial);
        held.push(client);
    }
    let during = server.rss_bytes();
    assert!(
        during.saturating_sub(before) < RSS_GROWTH_MAX,
        "RSS grew from {before} to {during} bytes"
    );
    let mut owner = Client::connect(&server.target);
    owner.cram("@memory", SECRET);
    assert_eq!(owner.send("update:x.app@memory v"), "data:2\n@memory@");
    drop(held);
}

/// A client that pipelines large values as fast as it can: the server's
/// memory stays bounded (in-flight writes are capped per connection), and
/// another client of the same shard is served meanwhile.
#[test]
fn a_pipelined_flood_of_large_values_stays_within_memory() {
    const VALUE_BYTES: usize = 1024 * 1024;
    const RSS_MAX: u64 = 512 * 1024 * 1024;
    let server = ServerProcess::start("@flood", SECRET, &["--durability", "fast"], &[]);
    let mut flooder = Client::connect(&server.target);
    flooder.cram("@flood", SECRET);
    let value = "v".repeat(VALUE_BYTES);
    let flood = std::thread::spawn(move || {
        for i in 0..200 {
            let line = format!("update:big{i}.app@flood {value}\n");
            if !flooder.try_write(line.as_bytes()) {
                break;
            }
        }
    });
    let mut bystander = Client::connect(&server.target);
    bystander.cram("@flood", SECRET);
    for i in 0..20 {
        // Commit ids interleave with the flood's, so only the shape is known.
        let reply = bystander.send(&format!("update:small{i}.app@flood v"));
        assert!(
            reply.starts_with("data:") && reply.ends_with("\n@flood@"),
            "{reply}"
        );
    }
    flood.join().expect("flood thread");
    let rss = server.rss_bytes();
    assert!(rss < RSS_MAX, "RSS {rss} bytes");
}

/// A client that pipelines reads of a large value and never reads the
/// replies: the server stops reading its requests once its replies back up
/// (it writes them out at 1 MiB and the socket is full), holds a bounded
/// amount for it, and serves another client of the same shard meanwhile.
#[test]
fn a_client_that_never_reads_its_large_replies_is_not_read_either() {
    const RSS_MAX: u64 = 512 * 1024 * 1024;
    const REQUESTS: usize = 100_000;
    let server = ServerProcess::start("@deaf", SECRET, &["--durability", "fast"], &[]);
    let mut setup = Client::connect(&server.target);
    setup.cram("@deaf", SECRET);
    let value = "v".repeat(1024 * 1024);
    assert_eq!(
        setup.send(&format!("update:big.app@deaf {value}")),
        "data:2\n@deaf@"
    );
    let mut deaf = Client::connect(&server.target);
    deaf.cram("@deaf", SECRET);
    let flood = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < REQUESTS && deaf.try_write(b"llookup:big.app@deaf\n") {
            sent += 1;
        }
        (sent, deaf)
    });
    assert_eq!(setup.send("llookup:big.app@deaf").len(), 1024 * 1024 + 12);
    let (sent, _deaf) = flood.join().expect("flood thread");
    assert!(
        sent < REQUESTS,
        "the server stopped reading requests whose replies nobody reads"
    );
    assert_eq!(setup.send("noop:0"), "data:ok\n@deaf@");
    let rss = server.rss_bytes();
    assert!(rss < RSS_MAX, "RSS {rss} bytes");
}

/// A record corrupted on disk fails only its own reads (AT0002, logged);
/// scans skip it, the other keys are served, and the process stays up.
#[test]
fn a_corrupted_record_on_disk_is_confined_to_its_key() {
    let home = common::process::ServerHome::new();
    let mut first = ServerProcess::start_at(&home, "@corrupt", SECRET, &[], &[]);
    let mut owner = Client::connect(&first.target);
    owner.cram("@corrupt", SECRET);
    for key in ["good.app", "bad.app", "other.app"] {
        assert!(
            owner
                .send(&format!("update:{key}@corrupt v"))
                .starts_with("data:")
        );
    }
    drop(owner);
    first.kill();
    // What a bit flip on disk leaves: a value that fails validation.
    let shard = std::fs::read_dir(home.data())
        .expect("data dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.is_dir())
        .expect("a storage shard");
    {
        let db = fjall::Database::builder(&shard).open().expect("open raw");
        let keys = db
            .keyspace("keys", fjall::KeyspaceCreateOptions::default)
            .expect("keys");
        let damaged: &[u8] = include_bytes!("fixtures/store/record-v1-full.flipped.bin");
        keys.insert("@corrupt\0bad.app@corrupt", damaged)
            .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let mut server = ServerProcess::start_at(&home, "@corrupt", SECRET, &[], &[]);
    let mut reader = Client::connect(&server.target);
    reader.cram("@corrupt", SECRET);
    let reply = reader.send("llookup:bad.app@corrupt");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    let mut owner = Client::connect(&server.target);
    owner.cram("@corrupt", SECRET);
    assert_eq!(owner.send("llookup:good.app@corrupt"), "data:v\n@corrupt@");
    assert_eq!(
        owner.send("scan"),
        "data:[\"@corrupt:signing_privatekey@corrupt\",\"good.app@corrupt\",\"other.app@corrupt\",\"public:signing_publickey@corrupt\"]\n@corrupt@"
    );
    assert!(server.is_running(), "a corrupt record is not fatal");
}
