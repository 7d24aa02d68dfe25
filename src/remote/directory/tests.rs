//! The directory client against a scripted, in-memory directory.
//!
//! The fake is sans-I/O: each dialed stream is a rustls server connection
//! driven by the client's own reads and writes, answering from a script,
//! so every test is deterministic and touches no network. Dials are
//! counted, and a test clock moves time by hand.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite, FutureExt};

use super::*;
use crate::clock::DeadlineExceeded;

/// What one dialed connection does.
#[derive(Debug, Clone)]
enum Directory {
    /// The connection is refused.
    Refuse,
    /// Greets, then answers every query with these bytes.
    Answer(Vec<u8>),
    /// As `Answer`, but the answer is late by one turn of the executor
    /// (so overlapping resolutions really overlap).
    AnswerLate(Vec<u8>),
    /// Completes TLS, then never says anything.
    Silent,
}

/// Development certificates, made once per test process.
fn certs() -> &'static crate::devcerts::DevCerts {
    static CERTS: OnceLock<(tempfile::TempDir, crate::devcerts::DevCerts)> = OnceLock::new();
    let (_, certs) = CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        (dir, certs)
    });
    certs
}

fn server_config() -> Arc<rustls::ServerConfig> {
    let certs = certs();
    crate::tls::server_config(&crate::tls::TlsFiles {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        ca: None,
    })
    .expect("server config")
}

/// The server side of one fake directory connection.
struct FakeConnection {
    tls: rustls::ServerConnection,
    script: Directory,
    greeted: bool,
    /// Plaintext received and not yet a whole line.
    input: Vec<u8>,
    /// Every query line received, shared with the test.
    queries: Rc<RefCell<Vec<String>>>,
    /// The late answer's turn has been given.
    yielded: bool,
    closed: bool,
}

impl FakeConnection {
    /// Runs the directory's side after the client wrote something.
    fn react(&mut self) {
        if self.tls.process_new_packets().is_err() {
            self.closed = true;
            return;
        }
        if self.tls.is_handshaking() {
            return;
        }
        if !self.greeted && !matches!(self.script, Directory::Silent) {
            self.greeted = true;
            let _ = self.tls.writer().write_all(b"@");
        }
        let mut chunk = [0u8; 256];
        while let Ok(n) = self.tls.reader().read(&mut chunk) {
            if n == 0 {
                break;
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
        while let Some(end) = self.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.input.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            if line == "@exit" {
                self.tls.send_close_notify();
                self.closed = true;
                return;
            }
            self.queries.borrow_mut().push(line);
            if let Directory::Answer(bytes) | Directory::AnswerLate(bytes) = &self.script {
                let _ = self.tls.writer().write_all(bytes);
            }
        }
    }
}

impl AsyncRead for FakeConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let answering = this.greeted && !this.queries.borrow().is_empty();
        if matches!(this.script, Directory::AnswerLate(_)) && answering && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.tls.wants_write() {
            let mut out = std::io::Cursor::new(buf);
            return Poll::Ready(this.tls.write_tls(&mut out));
        }
        if this.closed {
            return Poll::Ready(Ok(0));
        }
        // Silent: nothing will ever come (only a deadline ends the wait).
        Poll::Pending
    }
}

impl AsyncWrite for FakeConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut input = buf;
        let read = self.tls.read_tls(&mut input);
        self.react();
        Poll::Ready(read)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Dials the fake directory: each dial takes the next script (the last one
/// repeats) and is counted.
#[derive(Clone)]
struct FakeDial {
    scripts: Rc<RefCell<VecDeque<Directory>>>,
    dials: Rc<Cell<usize>>,
    queries: Rc<RefCell<Vec<String>>>,
    config: Arc<rustls::ServerConfig>,
}

impl FakeDial {
    fn new(scripts: impl IntoIterator<Item = Directory>) -> FakeDial {
        FakeDial {
            scripts: Rc::new(RefCell::new(scripts.into_iter().collect())),
            dials: Rc::new(Cell::new(0)),
            queries: Rc::new(RefCell::new(Vec::new())),
            config: server_config(),
        }
    }

    /// The scripts of the next dials.
    fn then(&self, scripts: impl IntoIterator<Item = Directory>) {
        *self.scripts.borrow_mut() = scripts.into_iter().collect();
    }

    fn dials(&self) -> usize {
        self.dials.get()
    }
}

impl Dial for FakeDial {
    type Stream = FakeConnection;

    async fn dial(&self, _host: &str, _port: u16) -> std::io::Result<FakeConnection> {
        self.dials.set(self.dials.get() + 1);
        let script = {
            let mut scripts = self.scripts.borrow_mut();
            if scripts.len() > 1 {
                scripts.pop_front()
            } else {
                scripts.front().cloned()
            }
        };
        let script = script.unwrap_or(Directory::Refuse);
        if matches!(script, Directory::Refuse) {
            return Err(std::io::ErrorKind::ConnectionRefused.into());
        }
        let tls =
            rustls::ServerConnection::new(self.config.clone()).map_err(std::io::Error::other)?;
        Ok(FakeConnection {
            tls,
            script,
            greeted: false,
            input: Vec::new(),
            queries: self.queries.clone(),
            yielded: false,
            closed: false,
        })
    }
}

/// Time moved by hand; sleeps end at once. Deadlines of at least `fires_at`
/// expire as soon as what they guard has to wait (nothing else ever makes
/// it continue in these tests); shorter ones never do.
#[derive(Clone)]
struct TestClock {
    now: Rc<Cell<Instant>>,
    fires_at: Option<Duration>,
}

impl TestClock {
    fn new() -> TestClock {
        TestClock {
            now: Rc::new(Cell::new(Instant::now())),
            fires_at: None,
        }
    }

    fn firing_at(limit: Duration) -> TestClock {
        TestClock {
            fires_at: Some(limit),
            ..TestClock::new()
        }
    }

    fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Clock for TestClock {
    type Sleep = std::future::Ready<()>;

    fn sleep(&self, _duration: Duration) -> Self::Sleep {
        std::future::ready(())
    }

    fn now(&self) -> Instant {
        self.now.get()
    }

    async fn deadline<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> Result<F::Output, DeadlineExceeded> {
        if self.fires_at.is_some_and(|at| limit >= at) {
            async { Ok(future.await) }
                .or(async { Err(DeadlineExceeded) })
                .await
        } else {
            Ok(future.await)
        }
    }
}

fn client(dial: &FakeDial, clock: &TestClock) -> DirectoryClient<FakeDial, TestClock> {
    client_sharing(dial, clock, Arc::new(DirectoryCache::default()))
}

fn client_sharing(
    dial: &FakeDial,
    clock: &TestClock,
    cache: Arc<DirectoryCache>,
) -> DirectoryClient<FakeDial, TestClock> {
    let tls = crate::tls::client_config(&certs().ca, None).expect("client config");
    let root = parse_address("localhost:6400").expect("root");
    DirectoryClient::new(root, tls, cache, dial.clone(), clock.clone()).expect("client")
}

fn resolve(
    client: &DirectoryClient<FakeDial, TestClock>,
    atsign: &str,
) -> Result<ServerAddress, DirectoryError> {
    futures_lite::future::block_on(client.resolve(atsign))
}

fn address(text: &str) -> ServerAddress {
    parse_address(text).expect("address")
}

fn answer(text: &str) -> Directory {
    Directory::Answer(format!("{text}\r\n@").into_bytes())
}

const TTL: Duration = Duration::from_millis(crate::limits::DIRECTORY_CACHE_TTL_MS);
const STALE: Duration = Duration::from_millis(crate::limits::DIRECTORY_STALE_MS);

#[test]
fn a_miss_asks_the_directory_over_tls_and_a_hit_does_not() {
    let dial = FakeDial::new([answer("alice.example:6464")]);
    let clock = TestClock::new();
    let client = client(&dial, &clock);
    assert_eq!(
        resolve(&client, "@alice"),
        Ok(address("alice.example:6464"))
    );
    assert_eq!(dial.dials(), 1);
    assert_eq!(
        resolve(&client, "@alice"),
        Ok(address("alice.example:6464"))
    );
    assert_eq!(dial.dials(), 1, "the second resolution is a cache hit");
}

#[test]
fn the_query_is_the_normalised_name_without_the_at() {
    let dial = FakeDial::new([answer("h:1")]);
    let client = client(&dial, &TestClock::new());
    resolve(&client, "@Al.Ice").expect("resolved");
    resolve(&client, "alice").expect("the same atSign, from the cache");
    assert_eq!(*dial.queries.borrow(), ["alice"]);
    assert_eq!(dial.dials(), 1);
    assert!(matches!(
        resolve(&client, "@a@b"),
        Err(DirectoryError::InvalidAtSign { .. })
    ));
    assert_eq!(dial.dials(), 1, "an invalid atSign is never asked about");
}

#[test]
fn an_answer_expires_after_its_ttl() {
    let dial = FakeDial::new([answer("old.example:1")]);
    let clock = TestClock::new();
    let client = client(&dial, &clock);
    assert_eq!(resolve(&client, "@alice"), Ok(address("old.example:1")));
    clock.advance(TTL - Duration::from_millis(1));
    assert_eq!(resolve(&client, "@alice"), Ok(address("old.example:1")));
    dial.then([answer("new.example:2")]);
    clock.advance(Duration::from_millis(1));
    assert_eq!(resolve(&client, "@alice"), Ok(address("new.example:2")));
    assert_eq!(dial.dials(), 2);
}

#[test]
fn an_expired_answer_is_served_while_the_directory_is_down_for_a_day() {
    let dial = FakeDial::new([answer("alice.example:6464")]);
    let clock = TestClock::new();
    let client = client(&dial, &clock);
    resolve(&client, "@alice").expect("first answer");
    dial.then([Directory::Refuse]);
    clock.advance(TTL + STALE - Duration::from_millis(1));
    assert_eq!(
        resolve(&client, "@alice"),
        Ok(address("alice.example:6464"))
    );
    assert_eq!(dial.dials(), 3, "one attempt and one retry");
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        resolve(&client, "@alice"),
        Err(DirectoryError::Unreachable { .. })
    ));
}

#[test]
fn null_is_not_found_and_is_believed_briefly() {
    let dial = FakeDial::new([answer("null")]);
    let clock = TestClock::new();
    let client = client(&dial, &clock);
    let not_found = Err(DirectoryError::NotFound {
        atsign: "@ghost".into(),
    });
    assert_eq!(resolve(&client, "@ghost"), not_found);
    assert_eq!(resolve(&client, "@ghost"), not_found);
    assert_eq!(dial.dials(), 1, "a null is cached and never retried");
    clock.advance(Duration::from_millis(
        crate::limits::DIRECTORY_NEGATIVE_TTL_MS,
    ));
    dial.then([answer("ghost.example:1")]);
    assert_eq!(resolve(&client, "@ghost"), Ok(address("ghost.example:1")));
    assert_eq!(dial.dials(), 2);
}

#[test]
fn a_failed_attempt_is_retried_once_then_the_resolution_fails() {
    let recovering = FakeDial::new([Directory::Refuse, answer("h:1")]);
    let directory = client(&recovering, &TestClock::new());
    assert_eq!(resolve(&directory, "@alice"), Ok(address("h:1")));
    assert_eq!(recovering.dials(), 2);

    let down = FakeDial::new([Directory::Refuse]);
    let directory = client(&down, &TestClock::new());
    let error = resolve(&directory, "@alice").unwrap_err();
    assert!(
        matches!(&error, DirectoryError::Unreachable { detail } if detail.contains("localhost:6400")),
        "{error}"
    );
    assert_eq!(down.dials(), 2, "exactly one retry");
}

#[test]
fn a_silent_directory_times_out_each_attempt() {
    let dial = FakeDial::new([Directory::Silent]);
    let clock = TestClock::firing_at(Duration::from_millis(DIRECTORY_ATTEMPT_MS));
    let client = client(&dial, &clock);
    assert_eq!(
        resolve(&client, "@alice"),
        Err(DirectoryError::TimedOut {
            limit_ms: DIRECTORY_ATTEMPT_MS
        })
    );
    assert_eq!(dial.dials(), 2);
}

#[test]
fn one_deadline_bounds_the_whole_resolution() {
    let dial = FakeDial::new([Directory::Silent]);
    // Attempts would wait forever; only the resolution's deadline fires.
    let clock = TestClock::firing_at(Duration::from_millis(DIRECTORY_RESOLVE_MS));
    let client = client(&dial, &clock);
    assert_eq!(
        resolve(&client, "@alice"),
        Err(DirectoryError::TimedOut {
            limit_ms: DIRECTORY_RESOLVE_MS
        })
    );
    assert_eq!(dial.dials(), 1);
}

#[test]
fn malformed_answers_are_typed_errors() {
    let long_host = format!(
        "{}:1",
        "a".repeat(crate::limits::DIRECTORY_HOST_CHARS_MAX + 1)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"garbage\r\n@".to_vec(), "not host:port"),
        (b"host:0\r\n@".to_vec(), "port"),
        (b"host:70000\r\n@".to_vec(), "port"),
        (format!("{long_host}\r\n@").into_bytes(), "longer than"),
        (b"@bob@".to_vec(), "unexpected reply"),
        (vec![b'x'; DIRECTORY_REPLY_BYTES_MAX * 2], "more than"),
    ];
    for (reply, says) in cases {
        let dial = FakeDial::new([Directory::Answer(reply.clone())]);
        let client = client(&dial, &TestClock::new());
        let error = resolve(&client, "@alice").unwrap_err();
        assert!(
            matches!(&error, DirectoryError::Malformed { detail } if detail.contains(says)),
            "{:?}: {error}",
            String::from_utf8_lossy(&reply)
        );
        assert_eq!(dial.dials(), 2, "a malformed answer is asked again once");
        assert!(client.cache().is_empty(), "nothing malformed is cached");
    }
}

/// Polls every future until all are done, on this thread.
fn run_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    futures_lite::future::block_on(std::future::poll_fn(|cx| {
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = future
                && let Poll::Ready(value) = f.as_mut().poll(cx)
            {
                *output = Some(value);
                *future = None;
            }
        }
        if futures.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    outputs.into_iter().flatten().collect()
}

#[test]
fn a_lookup_storm_for_one_atsign_makes_one_request() {
    let dial = FakeDial::new([Directory::AnswerLate(b"storm.example:1\r\n@".to_vec())]);
    let client = client(&dial, &TestClock::new());
    let mut storm: Vec<Pin<Box<dyn Future<Output = _>>>> = (0..50)
        .map(|_| Box::pin(client.resolve("@storm")) as Pin<Box<dyn Future<Output = _>>>)
        .collect();
    // One turn each: the first is waiting for its answer, the others for it
    // (nothing is cached yet, so they really share the request).
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for resolution in &mut storm {
        assert!(resolution.as_mut().poll(&mut cx).is_pending());
    }
    assert!(client.cache().is_empty());
    let outcomes = run_all(storm);
    assert_eq!(outcomes.len(), 50);
    assert!(
        outcomes
            .iter()
            .all(|o| *o == Ok(address("storm.example:1")))
    );
    assert_eq!(dial.dials(), 1, "one request served the whole storm");
}

#[test]
fn waiters_ask_themselves_when_the_asking_task_is_dropped() {
    let dial = FakeDial::new([Directory::AnswerLate(b"h:1\r\n@".to_vec())]);
    let client = client(&dial, &TestClock::new());
    let mut leader = Box::pin(client.resolve("@alice"));
    let mut waiter = Box::pin(client.resolve("@alice"));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    drop(leader);
    assert_eq!(futures_lite::future::block_on(waiter), Ok(address("h:1")));
    assert_eq!(dial.dials(), 2);
}

#[test]
fn shards_share_the_cache() {
    let cache = Arc::new(DirectoryCache::default());
    let clock = TestClock::new();
    let first_shard = FakeDial::new([answer("h:1")]);
    let second_shard = FakeDial::new([Directory::Refuse]);
    let first = client_sharing(&first_shard, &clock, cache.clone());
    let second = client_sharing(&second_shard, &clock, cache);
    assert_eq!(resolve(&first, "@alice"), Ok(address("h:1")));
    assert_eq!(resolve(&second, "@alice"), Ok(address("h:1")));
    assert_eq!(second_shard.dials(), 0);
}

#[test]
fn a_directory_with_an_untrusted_certificate_is_unreachable() {
    let dial = FakeDial::new([answer("h:1")]);
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = crate::devcerts::ensure(other.path()).expect("certs").ca;
    let tls = crate::tls::client_config(&other_ca, None).expect("client config");
    let root = parse_address("localhost:6400").expect("root");
    let clock = TestClock::new();
    let client = DirectoryClient::new(
        root,
        tls,
        Arc::new(DirectoryCache::default()),
        dial.clone(),
        clock,
    )
    .expect("client");
    let error = resolve(&client, "@alice").unwrap_err();
    assert!(
        matches!(&error, DirectoryError::Unreachable { detail } if detail.contains("TLS")),
        "{error}"
    );
}
