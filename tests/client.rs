//! The library client against a real in-process server over TLS on
//! loopback: the blocking client (cram, pkam with RSA and ECDSA, pipelining,
//! closes and refusals) and the async one on a glommio executor, including
//! its deadline against a peer that accepts TCP and never answers.

// Test helpers fail the test loudly on anything unexpected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "runtime")]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use atserver::client::auth::PkamKey;
use atserver::client::{ClientError, Operation, blocking, nonblocking};
use atserver::clock::Clock;
use atserver::tls;
use common::{READ_TIMEOUT, TestServer};
use rustls::pki_types::ServerName;

const SECRET: &str = "client-test-secret";

/// How long the tests that expect a timeout wait for it: short, because
/// nothing will ever arrive.
const SILENT_PEER_TIMEOUT: Duration = Duration::from_millis(300);

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let names = [
            "@cram",
            "@pipe",
            "@rsa",
            "@ecdsa",
            "@refused",
            "@closing",
            "@async",
            "@identity",
        ];
        let atsigns: Vec<(&str, &str)> = names.iter().map(|a| (*a, SECRET)).collect();
        common::start(&atsigns)
    })
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

fn client_tls() -> Arc<rustls::ClientConfig> {
    tls::client_config(&server().ca, None).expect("client TLS config")
}

fn connect() -> blocking::Client {
    blocking::Client::connect(server().addr, client_tls(), localhost(), READ_TIMEOUT)
        .expect("connect")
}

fn rsa_key() -> PkamKey {
    PkamKey::rsa_from_pkcs8(include_bytes!("../src/auth/testdata/rsa2048.pk8")).expect("RSA key")
}

/// Stores `key` as the atSign's legacy pkam key over a cram connection.
fn install_pkam_key(atsign: &str, key: &PkamKey) {
    let mut c = connect();
    c.cram(atsign, SECRET).expect("cram");
    let reply = c
        .request(&format!(
            "update:privatekey:at_pkam_publickey {}",
            key.public_key_text()
        ))
        .expect("update");
    assert_eq!(reply.as_bytes(), format!("data:-1\n{atsign}@").as_bytes());
    c.close();
}

#[test]
fn the_blocking_client_authenticates_with_cram_and_follows_the_prompt() {
    let mut c = connect();
    assert_eq!(c.framer().expected_prompt(), b"@");
    c.cram("@cram", SECRET).expect("cram");
    assert_eq!(c.framer().expected_prompt(), b"@cram@");
    let reply = c.request("noop:0").expect("noop");
    assert_eq!(reply.as_bytes(), b"data:ok\n@cram@");
    assert_eq!(
        (reply.payload(), reply.prompt(), reply.data()),
        (&b"data:ok"[..], &b"@cram@"[..], Some(&b"ok"[..]))
    );
}

#[test]
fn a_wrong_cram_secret_is_an_unexpected_reply_and_the_connection_stays_usable() {
    let mut c = connect();
    match c.cram("@cram", "not-the-secret") {
        Err(ClientError::UnexpectedReply {
            during: Operation::Cram,
            reply,
        }) => assert_eq!(reply, b"error:AT0401-Exception: Authentication Failed\n@"),
        other => panic!("expected a refused cram, got {other:?}"),
    }
    assert_eq!(c.framer().expected_prompt(), b"@");
    assert_eq!(c.request("noop:0").expect("noop").as_bytes(), b"data:ok\n@");
}

#[test]
fn pipelined_requests_are_read_back_in_order() {
    let mut c = connect();
    c.cram("@pipe", SECRET).expect("cram");
    let replies = c
        .pipeline(&[
            "update:k1.app@pipe one",
            "update:k2.app@pipe two",
            "llookup:k1.app@pipe",
            "bogus",
            "llookup:k2.app@pipe",
            "noop:0",
        ])
        .expect("pipeline");
    let texts: Vec<String> = replies
        .iter()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "data:2\n@pipe@",
            "data:3\n@pipe@",
            "data:one\n@pipe@",
            "error:AT0003-Invalid syntax : invalid command\n@pipe@",
            "data:two\n@pipe@",
            "data:ok\n@pipe@",
        ]
    );
    assert!(replies[3].is_error());
}

#[test]
fn pkam_with_rsa_succeeds_once_the_key_is_stored_and_a_wrong_key_is_refused() {
    let key = rsa_key();
    let mut before = connect();
    assert!(matches!(
        before.pkam("@rsa", &key),
        Err(ClientError::UnexpectedReply {
            during: Operation::Pkam,
            ..
        })
    ));
    install_pkam_key("@rsa", &key);
    let mut c = connect();
    c.pkam("@rsa", &key).expect("pkam");
    assert_eq!(c.framer().expected_prompt(), b"@rsa@");
    assert_eq!(
        c.request("noop:0").expect("noop").as_bytes(),
        b"data:ok\n@rsa@"
    );
    // Another key: refused with the anonymous prompt, which the client follows.
    let other = PkamKey::generate_ecdsa().expect("key");
    match c.pkam("@rsa", &other) {
        Err(ClientError::UnexpectedReply { reply, .. }) => {
            assert_eq!(
                reply,
                b"error:AT0401-Exception: pkam authentication failed\n@"
            )
        }
        other => panic!("expected a refused pkam, got {other:?}"),
    }
    assert_eq!(c.framer().expected_prompt(), b"@");
    assert_eq!(c.request("noop:0").expect("noop").as_bytes(), b"data:ok\n@");
}

#[test]
fn pkam_with_ecdsa_succeeds_once_the_key_is_stored() {
    let key = PkamKey::generate_ecdsa().expect("key");
    install_pkam_key("@ecdsa", &key);
    let mut c = connect();
    c.pkam("@ecdsa", &key).expect("pkam");
    assert_eq!(c.framer().expected_prompt(), b"@ecdsa@");
    assert_eq!(
        c.request("noop:0").expect("noop").as_bytes(),
        b"data:ok\n@ecdsa@"
    );
}

#[test]
fn a_close_by_the_server_is_reported_as_closed() {
    let mut c = connect();
    c.send_line("@exit").expect("send");
    c.wait_for_close().expect("closed");
    assert!(matches!(
        c.read_reply(),
        Err(ClientError::Closed {
            during: Operation::Receive,
            ..
        })
    ));
    let mut bad = connect();
    assert!(matches!(
        bad.challenge("@bad!name"),
        Err(ClientError::UnexpectedReply {
            during: Operation::Challenge,
            ..
        })
    ));
    bad.wait_for_close().expect("closed after AT0011");
}

#[test]
fn the_inbound_limit_refusal_is_a_close_that_carries_its_bytes() {
    let limits = atserver::context::SessionLimits {
        inbound_connections_max: 1,
        ..Default::default()
    };
    let small = common::start_with_limits(&[("@limited", SECRET)], limits);
    let config = tls::client_config(&small.ca, None).expect("config");
    let _first = blocking::Client::connect(small.addr, config.clone(), localhost(), READ_TIMEOUT)
        .expect("first connection");
    match blocking::Client::connect(small.addr, config, localhost(), READ_TIMEOUT) {
        Err(ClientError::Closed {
            during: Operation::Greeting,
            pending,
        }) => assert_eq!(
            pending,
            b"error:AT0012-Inbound connection limit exceeded: at most 1 connections\n"
        ),
        Err(other) => panic!("expected the AT0012 close, got {other:?}"),
        Ok(_) => panic!("expected the AT0012 close, got a connection"),
    }
}

#[test]
fn a_configured_client_certificate_is_accepted_by_the_server() {
    // The dev leaf next to the CA is good for clientAuth too.
    let cert = server().ca.with_file_name("server.pem");
    let key = server().ca.with_file_name("server.key");
    let config = tls::client_config(&server().ca, Some((&cert, &key))).expect("config");
    let mut c = blocking::Client::connect(server().addr, config, localhost(), READ_TIMEOUT)
        .expect("connect with a client certificate");
    c.cram("@identity", SECRET).expect("cram");
}

/// A TCP peer that accepts connections (the kernel completes them from the
/// backlog) and never reads or writes. It lives as long as the test.
fn silent_peer() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

#[test]
fn the_blocking_client_times_out_on_a_peer_that_never_answers() {
    let (_peer, addr) = silent_peer();
    match blocking::Client::connect(addr, client_tls(), localhost(), SILENT_PEER_TIMEOUT) {
        Err(ClientError::Timeout {
            during: Operation::Handshake,
            ..
        }) => {}
        Err(other) => panic!("expected a handshake timeout, got {other:?}"),
        Ok(_) => panic!("expected a handshake timeout, got a connection"),
    }
}

/// glommio's timers behind the library's `Clock`, as `src/shard` will
/// provide them.
#[derive(Debug, Clone, Copy)]
struct GlommioClock;

impl Clock for GlommioClock {
    type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        // A glommio timer resolves to the instant it fired; a sleep to `()`.
        Box::pin(async move {
            glommio::timer::Timer::new(duration).await;
        })
    }
}

/// Runs `future` on a fresh glommio executor on this thread.
fn on_glommio<T>(future: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(atserver::limits::IO_MEMORY_BYTES)
        .make()
        .expect("glommio executor")
        .run(future)
}

/// A glommio TCP connection with TCP_NODELAY, as an `io::Result` future.
async fn glommio_tcp(addr: SocketAddr) -> std::io::Result<glommio::net::TcpStream> {
    let stream = glommio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[test]
fn the_async_client_authenticates_and_pipelines_on_glommio() {
    let key = rsa_key();
    install_pkam_key("@async", &key);
    let connector = futures_rustls::TlsConnector::from(client_tls());
    let addr = server().addr;
    on_glommio(async move {
        let mut c = nonblocking::Client::connect(
            glommio_tcp(addr),
            &connector,
            localhost(),
            GlommioClock,
            READ_TIMEOUT,
        )
        .await
        .expect("connect");
        c.cram("@async", SECRET).await.expect("cram");
        assert_eq!(c.framer().expected_prompt(), b"@async@");
        let replies = c
            .pipeline(&["update:a.app@async 1", "llookup:a.app@async", "noop:0"])
            .await
            .expect("pipeline");
        let texts: Vec<&[u8]> = replies.iter().map(|r| r.as_bytes()).collect();
        assert_eq!(
            texts,
            [
                &b"data:2\n@async@"[..],
                b"data:1\n@async@",
                b"data:ok\n@async@"
            ]
        );
        c.close().await;

        let mut p = nonblocking::Client::connect(
            glommio_tcp(addr),
            &connector,
            localhost(),
            GlommioClock,
            READ_TIMEOUT,
        )
        .await
        .expect("connect");
        p.pkam("@async", &key).await.expect("pkam");
        let reply = p.request("llookup:a.app@async").await.expect("llookup");
        assert_eq!(reply.as_bytes(), b"data:1\n@async@");
        p.send_line("@exit").await.expect("send");
        p.wait_for_close().await.expect("closed");
    });
}

#[test]
fn async_deadlines_fire_against_a_peer_that_never_answers() {
    let (_peer, addr) = silent_peer();
    let connector = futures_rustls::TlsConnector::from(client_tls());
    on_glommio(async move {
        let handshake = nonblocking::Client::connect(
            glommio_tcp(addr),
            &connector,
            localhost(),
            GlommioClock,
            SILENT_PEER_TIMEOUT,
        )
        .await;
        match handshake {
            Err(ClientError::Timeout {
                during: Operation::Handshake,
                ..
            }) => {}
            Err(other) => panic!("expected a handshake timeout, got {other:?}"),
            Ok(_) => panic!("expected a handshake timeout, got a connection"),
        }
        // Without TLS, over the raw stream: the greeting never comes.
        let tcp = glommio_tcp(addr).await.expect("tcp");
        let mut plain = nonblocking::Client::new(tcp, GlommioClock, SILENT_PEER_TIMEOUT);
        match plain.read_greeting().await {
            Err(ClientError::Timeout {
                during: Operation::Greeting,
                pending,
            }) => assert!(pending.is_empty()),
            other => panic!("expected a greeting timeout, got {other:?}"),
        }
    });
}
