//! Server-to-server over real TLS on loopback: two `atserver` processes
//! and a directory, sharing one development CA (server-to-server.md).
//!
//! The tests play both roles against our servers: @bob's owner asks its
//! own server for @alice's data (our server as the requester, proving @bob
//! with `pol`), and the test itself acts as @bob's server talking to
//! @alice's (our server as the verifier), byte by byte.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::network::{Network, free_port};
use common::{Client, is_uuid};

const ALICE: (&str, &str) = ("@alice", "alice-secret");
const BOB: (&str, &str) = ("@bob", "bob-secret");

fn owner(network: &Network, index: usize, (atsign, secret): (&str, &str)) -> Client {
    let mut client = Client::connect(network.server(index));
    client.cram(atsign, secret);
    client
}

/// A connection to `index`'s server presenting the shared dev certificate
/// (names localhost and 127.0.0.1, where the directory says every server
/// is), as another atServer does.
fn as_server(network: &Network, index: usize) -> Client {
    let certs = network.home.certs();
    Client::connect_as_server(network.server(index), &certs.cert, &certs.key)
}

/// `data:proof:<session>@bob:<nonce>` ⇒ (`<session>`, `<nonce>`).
fn proof_parts(reply: &str, claimed: &str) -> (String, String) {
    let payload = reply.strip_suffix("\n@").expect("anonymous prompt");
    let rest = payload
        .strip_prefix("data:proof:")
        .expect("a proof challenge");
    let (session_at, nonce) = rest.split_once(':').expect("session:nonce");
    let session = session_at
        .strip_suffix(claimed)
        .expect("names the claimant");
    (session.to_string(), nonce.to_string())
}

/// @bob's signing key, read by @bob's owner from @bob's own server.
fn signing_key_of(client: &mut Client, atsign: &str) -> ring::signature::RsaKeyPair {
    let reply = client.send(&format!("llookup:{atsign}:signing_privatekey{atsign}"));
    let b64 = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{atsign}@")))
        .expect("the signing private key");
    let der = STANDARD.decode(b64).expect("base64");
    ring::signature::RsaKeyPair::from_pkcs8(&der).expect("PKCS#8 RSA key")
}

fn sign(key: &ring::signature::RsaKeyPair, message: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &rng,
        message.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    STANDARD.encode(signature)
}

#[test]
fn an_owner_reads_what_another_atsign_shared_through_its_own_server() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut alice = owner(&network, 0, ALICE);
    assert!(
        alice
            .send("update:@bob:phone.wavi@alice +1-555")
            .starts_with("data:")
    );
    assert!(
        alice
            .send("update:public:publickey@alice MIIBalice")
            .starts_with("data:")
    );
    let mut bob = owner(&network, 1, BOB);
    // A cold remote lookup: directory, TLS with client certificates, to:,
    // from, the cookie published on @bob's server, pol, then the lookup.
    assert_eq!(bob.send("lookup:phone.wavi@alice"), "data:+1-555\n@bob@");
    // The new connection kept @alice's encryption key, as `to:` showed it.
    assert_eq!(
        bob.send("llookup:cached:public:publickey@alice"),
        "data:MIIBalice\n@bob@"
    );
    // Warm: the pooled connection, still authenticated as @bob.
    let all = bob.send("lookup:all:phone.wavi@alice");
    assert!(
        all.starts_with(
            "data:{\"key\":\"@bob:phone.wavi@alice\",\"data\":\"+1-555\",\"metaData\":{"
        ),
        "{all}"
    );
    assert!(
        bob.send("lookup:meta:phone.wavi@alice")
            .starts_with("data:{\"createdBy\":")
    );
    assert_eq!(
        bob.send("lookup:nokey@alice"),
        "error:AT0015-key not found : Exception: @bob:nokey@alice does not exist in keystore\n@bob@"
    );
    assert_eq!(bob.send("plookup:publickey@alice"), "data:MIIBalice\n@bob@");
    assert_eq!(
        bob.send("scan:@alice"),
        "data:[\"phone.wavi@alice\"]\n@bob@"
    );
    let unknown = bob.send("lookup:xy@nobody");
    assert!(unknown.starts_with("error:AT0007-"), "{unknown}");
    assert!(unknown.ends_with("\n@bob@"), "{unknown}");
}

#[test]
fn the_pol_handshake_as_the_reference_answers_it() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut bob_owner = owner(&network, 1, BOB);
    let bob_key = signing_key_of(&mut bob_owner, "@bob");

    // A Dart verifier asks for post-quantum signing keys first; a server
    // that has none must answer an ordinary "not found" (changes §10.2).
    let mut plain = Client::connect(network.server(0));
    assert_eq!(
        plain.send("lookup:all:signing_publickeys@alice"),
        "error:AT0015-Exception: public:signing_publickeys@alice does not exist in keystore\n@"
    );
    // Without a client certificate, another atSign is refused.
    assert_eq!(
        plain.send("from:@bob"),
        "error:AT0401-Exception: Certificate Verification Failed\n@"
    );

    // With one: the challenge, then a correct proof.
    let mut peer = as_server(&network, 0);
    let challenge = peer.send("from:@bob");
    let (session, nonce) = proof_parts(&challenge, "@bob");
    assert!(is_uuid(session.trim_start_matches('_')), "{challenge}");
    assert!(is_uuid(&nonce), "{challenge}");
    let cookie = sign(&bob_key, &nonce);
    assert!(
        bob_owner
            .send(&format!("update:public:{session}@bob {cookie}"))
            .starts_with("data:")
    );
    peer.pol("@bob").expect("pol succeeds");
    // Now a peer: it sees what @alice shared with @bob, and errors get `@`.
    let mut alice = owner(&network, 0, ALICE);
    alice.send("update:@bob:phone.wavi@alice 42");
    let all = peer.send("lookup:all:phone.wavi@alice");
    assert!(
        all.starts_with("data:{\"key\":\"@bob:phone.wavi@alice\",\"data\":\"42\""),
        "{all}"
    );
    assert!(all.ends_with("\n@bob@"), "{all}");
    assert_eq!(peer.send("lookup:phone.wavi@alice"), "data:42\n@bob@");
    assert_eq!(
        peer.send("lookup:nokey@alice"),
        "error:AT0015-Exception: @bob:nokey@alice does not exist in keystore\n@"
    );
    assert_eq!(peer.send("scan"), "data:[\"phone.wavi@alice\"]\n@bob@");
    assert_eq!(
        peer.send("llookup:phone.wavi@alice"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
}

#[test]
fn forged_missing_and_unverifiable_proofs_fail_and_leave_the_connection_usable() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut bob_owner = owner(&network, 1, BOB);
    let mut peer = as_server(&network, 0);

    // pol without a challenge closes, as in the reference.
    let mut fresh = as_server(&network, 0);
    let reply = fresh.pol("@bob").expect_err("no challenge");
    assert!(reply.starts_with("error:AT0011-"), "{reply}");
    assert!(fresh.is_closed());

    // A cookie signed by another key.
    let (session, nonce) = proof_parts(&peer.send("from:@bob"), "@bob");
    let wrong = atserver::auth::signing::SigningKeyPair::generate()
        .and_then(|pair| pair.signing_key())
        .expect("another key");
    let forged = wrong.sign_base64(nonce.as_bytes()).expect("sign");
    bob_owner.send(&format!("update:public:{session}@bob {forged}"));
    assert_eq!(
        peer.pol("@bob"),
        Err("error:AT0401-Exception: Pol Authentication Failed\n@".to_string())
    );
    // No cookie at all (a new connection, so a new session): the proof
    // cannot be fetched, and @bob's server's "not found" is relayed.
    let mut other = as_server(&network, 0);
    other.send("from:@bob");
    let reply = other.pol("@bob").expect_err("no cookie");
    assert!(reply.starts_with("error:AT0015-"), "{reply}");
    // An atSign the directory does not know.
    let reply = peer.send("from:@nobody");
    assert!(reply.starts_with("error:AT0007-"), "{reply}");
    // The connection still works.
    assert!(peer.send("from:@bob").starts_with("data:proof:"));
}

/// @hang's "server" accepts and never says a word; @gone's closes at once.
#[test]
fn a_peer_that_hangs_or_closes_ends_in_an_error_and_nothing_stays_stuck() {
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone_addr = gone.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in gone.incoming() {
            drop(stream);
        }
    });
    let records = vec![
        format!("hang={}", hang.local_addr().expect("addr")),
        format!("gone={gone_addr}"),
        format!("refused=127.0.0.1:{}", free_port()),
    ];
    let network = Network::start(&[BOB], &["--outbound-step-ms", "2000"], &records);
    let mut bob = owner(&network, 0, BOB);
    for (atsign, codes) in [
        ("@gone", &["AT0021"][..]),
        ("@refused", &["AT0021"][..]),
        ("@hang", &["AT0023", "AT0021"][..]),
    ] {
        let started = Instant::now();
        let reply = bob.send(&format!("lookup:xy{atsign}"));
        assert!(
            codes
                .iter()
                .any(|code| reply.starts_with(&format!("error:{code}-"))),
            "{atsign}: {reply}"
        );
        assert!(reply.ends_with("\n@bob@"), "{reply}");
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{atsign} is bounded"
        );
        // The owner's connection goes on.
        assert_eq!(bob.send("noop:0"), "data:ok\n@bob@");
    }
    drop(hang);
}

#[test]
fn answers_are_cached_per_ttr_served_from_the_cache_and_dropped_when_gone() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut alice = owner(&network, 0, ALICE);
    alice.send("update:ttr:3600:@bob:cached.wavi@alice first");
    alice.send("update:@bob:uncached.wavi@alice plain");
    alice.send("update:public:publickey@alice MIIBalice");
    let mut bob = owner(&network, 1, BOB);
    assert_eq!(bob.send("lookup:cached.wavi@alice"), "data:first\n@bob@");
    assert_eq!(bob.send("lookup:uncached.wavi@alice"), "data:plain\n@bob@");
    assert_eq!(bob.send("plookup:publickey@alice"), "data:MIIBalice\n@bob@");
    // The copies (the cache write does not hold the reply back: wait for it).
    await_reply(
        &mut bob,
        "llookup:cached:@bob:cached.wavi@alice",
        "data:first",
    );
    assert_eq!(
        bob.send("llookup:cached:public:publickey@alice"),
        "data:MIIBalice\n@bob@"
    );
    let listed = bob.send("scan");
    assert!(
        listed.contains("\"cached:@bob:cached.wavi@alice\""),
        "{listed}"
    );
    assert!(!listed.contains("uncached"), "no ttr, no copy: {listed}");
    // @alice changes it: the copy is served until its refresh is due...
    alice.send("update:ttr:3600:@bob:cached.wavi@alice second");
    let all = bob.send("lookup:all:cached.wavi@alice");
    assert!(
        all.starts_with("data:{\"key\":\"cached:@bob:cached.wavi@alice\",\"data\":\"first\""),
        "{all}"
    );
    // ...unless the client bypasses the cache, which also refreshes it.
    assert_eq!(
        bob.send("lookup:bypassCache:true:cached.wavi@alice"),
        "data:second\n@bob@"
    );
    // Gone at the owner: not found, and the copy goes too.
    alice.send("delete:@bob:cached.wavi@alice");
    let gone = bob.send("lookup:bypassCache:true:cached.wavi@alice");
    assert!(gone.starts_with("error:AT0015-"), "{gone}");
    await_reply(
        &mut bob,
        "llookup:cached:@bob:cached.wavi@alice",
        "error:AT0015-",
    );
}

/// Sends `line` until its reply starts with `expected` (at most 5 s).
fn await_reply(client: &mut Client, line: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client.send(line);
        if reply.starts_with(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{line}: still {reply}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// @alice and @bob in one process: the same answers as across two
/// processes, without a network hop (and so without a directory).
#[test]
fn atsigns_hosted_together_see_the_same_answers_without_a_network_hop() {
    let server = common::start(&[ALICE, BOB]);
    let mut alice = Client::connect(&server);
    alice.cram(ALICE.0, ALICE.1);
    alice.send("update:@bob:phone.wavi@alice +1-555");
    alice.send("update:public:publickey@alice MIIBalice");
    let mut bob = Client::connect(&server);
    bob.cram(BOB.0, BOB.1);
    assert_eq!(bob.send("lookup:phone.wavi@alice"), "data:+1-555\n@bob@");
    let all = bob.send("lookup:all:phone.wavi@alice");
    assert!(
        all.starts_with(
            "data:{\"key\":\"@bob:phone.wavi@alice\",\"data\":\"+1-555\",\"metaData\":{"
        ),
        "{all}"
    );
    assert_eq!(
        bob.send("lookup:nokey@alice"),
        "error:AT0015-key not found : Exception: @bob:nokey@alice does not exist in keystore\n@bob@"
    );
    assert_eq!(bob.send("plookup:publickey@alice"), "data:MIIBalice\n@bob@");
    assert_eq!(
        bob.send("scan:@alice"),
        "data:[\"phone.wavi@alice\"]\n@bob@"
    );
}

/// A fake server for @slow that plays the protocol far enough for @bob's
/// server to prove itself, then answers `first` only after the requester's
/// deadline and `second` at once.
fn serve_slow_peer(listener: TcpListener, certs: atserver::devcerts::DevCerts) {
    use std::io::{BufRead, BufReader, Write};
    let config = atserver::tls::server_config(&atserver::tls::TlsFiles {
        cert: certs.cert,
        key: certs.key,
        ca: None,
    })
    .expect("tls");
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { return };
        let config = config.clone();
        std::thread::spawn(move || {
            let connection = rustls::ServerConnection::new(config).expect("tls connection");
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            if tls.write_all(b"@").is_err() {
                return;
            }
            let mut lines = BufReader::new(tls);
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                let reply: Vec<u8> = match line.trim() {
                    "to:@slow" => b"data:{\"publickey\":null,\"signing_publickey\":null}\n@".to_vec(),
                    "from:@bob" => b"data:proof:_s@bob:nonce\n@".to_vec(),
                    "pol" => b"@bob@".to_vec(),
                    "lookup:all:first@slow" => {
                        std::thread::sleep(Duration::from_secs(4));
                        b"data:{\"key\":\"@bob:first@slow\",\"data\":\"late\",\"metaData\":{}}\n@bob@"
                            .to_vec()
                    }
                    "lookup:all:second@slow" => {
                        b"data:{\"key\":\"@bob:second@slow\",\"data\":\"second\",\"metaData\":{}}\n@bob@"
                            .to_vec()
                    }
                    _ => b"error:AT0003-Exception: invalid command\n@".to_vec(),
                };
                line.clear();
                if lines.get_mut().write_all(&reply).is_err() {
                    return;
                }
            }
        });
    }
}

/// Each pooled request gets its own reply: a peer that answers after the
/// deadline costs that request an error, and its late answer never
/// reaches the next request (the connection is closed, not reused).
#[test]
fn a_late_answer_never_reaches_the_next_request() {
    let slow = TcpListener::bind("127.0.0.1:0").expect("bind");
    let records = vec![format!("slow={}", slow.local_addr().expect("addr"))];
    let network = Network::start(&[BOB], &["--outbound-step-ms", "2000"], &records);
    let certs = network.home.certs().clone();
    std::thread::spawn(move || serve_slow_peer(slow, certs));
    let mut bob = owner(&network, 0, BOB);
    let late = bob.send("lookup:first@slow");
    assert!(late.starts_with("error:AT0023-"), "{late}");
    assert_eq!(bob.send("lookup:second@slow"), "data:second\n@bob@");
}

/// Copies nobody reads are refreshed when their `ttr` is due, and removed
/// when the original is gone.
#[test]
fn due_copies_are_refreshed_in_the_background() {
    let network = Network::start(&[ALICE, BOB], &["--cache-refresh-ms", "300"], &[]);
    let mut alice = owner(&network, 0, ALICE);
    alice.send("update:ttr:1:@bob:fresh.wavi@alice one");
    let mut bob = owner(&network, 1, BOB);
    assert_eq!(bob.send("lookup:fresh.wavi@alice"), "data:one\n@bob@");
    await_reply(&mut bob, "llookup:cached:@bob:fresh.wavi@alice", "data:one");
    alice.send("update:ttr:1:@bob:fresh.wavi@alice two");
    await_reply(&mut bob, "llookup:cached:@bob:fresh.wavi@alice", "data:two");
    alice.send("delete:@bob:fresh.wavi@alice");
    await_reply(
        &mut bob,
        "llookup:cached:@bob:fresh.wavi@alice",
        "error:AT0015-",
    );
}

/// A connection to @alice's server, pol-authenticated as @bob by the test
/// playing @bob's server (the cookie is published on @bob's real server).
fn pol_connection_as_bob(network: &Network) -> Client {
    let mut bob_owner = owner(network, 1, BOB);
    let bob_key = signing_key_of(&mut bob_owner, "@bob");
    let mut peer = as_server(network, 0);
    let (session, nonce) = proof_parts(&peer.send("from:@bob"), "@bob");
    let cookie = sign(&bob_key, &nonce);
    bob_owner.send(&format!("update:public:{session}@bob {cookie}"));
    peer.pol("@bob").expect("pol succeeds");
    peer
}

/// What @bob's server delivers to @alice's: stored once by id, cached per
/// ttr, cascade-deleted per ccd; only about @bob's own keys, only to the
/// atSign this server hosts.
#[test]
fn notifications_from_a_peer_are_acknowledged_cached_and_cascade_deleted() {
    let network = Network::start(&[ALICE, BOB], &[], &[]);
    let mut peer = pol_connection_as_bob(&network);
    let mut alice = owner(&network, 0, ALICE);
    let update = "notify:id:n1:update:messageType:key:notifier:SYSTEM:ttln:60000:ttl:0:ttb:0:ttr:-1:ccd:true:isEncrypted:true:@alice:phone.wavi@bob:VAL";
    assert_eq!(peer.send(update), "data:success\n@bob@");
    // The copy is written right after the notification is durable and
    // acknowledged.
    await_reply(
        &mut alice,
        "llookup:cached:@alice:phone.wavi@bob",
        "data:VAL\n@alice@",
    );
    // A redelivery (same id) is acknowledged and changes nothing.
    let again = update.replace(":VAL", ":VAL2");
    assert_eq!(peer.send(&again), "data:success\n@bob@");
    assert_eq!(
        alice.send("llookup:cached:@alice:phone.wavi@bob"),
        "data:VAL\n@alice@"
    );
    // A delete of a key whose copy asked for cascade deletes removes it.
    assert_eq!(
        peer.send("notify:id:n2:delete:messageType:key:notifier:SYSTEM:@alice:phone.wavi@bob"),
        "data:success\n@bob@"
    );
    await_reply(
        &mut alice,
        "llookup:cached:@alice:phone.wavi@bob",
        "error:AT0015-key not found : cached:@alice:phone.wavi@bob does not exist in keystore\n@alice@",
    );
    // Without ccd the copy stays.
    peer.send("notify:id:n3:update:messageType:key:ttr:3600:ccd:false:@alice:kept.wavi@bob:K");
    await_reply(
        &mut alice,
        "llookup:cached:@alice:kept.wavi@bob",
        "data:K\n@alice@",
    );
    peer.send("notify:id:n4:delete:messageType:key:@alice:kept.wavi@bob");
    // The delete's effect (none, without ccd) has run before a later
    // notification on the same connection is answered.
    peer.send("notify:id:n4b:update:messageType:text:@alice:c3luYw==");
    assert_eq!(
        alice.send("llookup:cached:@alice:kept.wavi@bob"),
        "data:K\n@alice@"
    );
    // Text messages are stored, nothing is cached.
    assert_eq!(
        peer.send("notify:id:n5:update:messageType:text:isEncrypted:true:@alice:aGVsbG8="),
        "data:success\n@bob@"
    );
    // Only about the sender's own keys, only to the atSign hosted here.
    let forged = peer.send("notify:id:n6:update:messageType:key:ttr:-1:@alice:phone.wavi@carol:X");
    assert!(forged.starts_with("error:AT0009-"), "{forged}");
    let misaddressed =
        peer.send("notify:id:n7:update:messageType:key:ttr:-1:@carol:phone.wavi@bob:X");
    assert!(misaddressed.starts_with("error:AT0009-"), "{misaddressed}");
    // The connection goes on.
    assert!(
        peer.send("lookup:nothing.wavi@alice")
            .starts_with("error:AT0015-")
    );
}
