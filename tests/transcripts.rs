//! Byte-exact cases that need no socket, run in-process on the real
//! pipeline and stores through the transcript driver
//! (`atserver::session::Transcript`): the same replies a TLS client gets,
//! without TLS.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Ready;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use atserver::app::ScratchServer;
use atserver::clock::{Clock, DeadlineExceeded};
use atserver::session::Transcript;

const SECRET: &str = "transcript-secret";

fn server() -> &'static ScratchServer {
    static SERVER: OnceLock<ScratchServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let atsigns = [
            "@alice",
            "@keys",
            "@times",
            "@regex",
            "@throttled",
            "@source1",
            "@source2",
            "@stalled",
            "@nstatus",
            "@nlist",
            "@nfetch",
        ];
        let atsigns: Vec<(&str, &str)> = atsigns.iter().map(|a| (*a, SECRET)).collect();
        ScratchServer::open(&atsigns).expect("scratch server")
    })
}

fn connect() -> Transcript {
    Transcript::new(server().server.clone()).expect("transcript")
}

/// The challenge of a `from:` reply.
fn challenge_of(reply: &str) -> &str {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("a challenge")
}

fn owner(atsign: &str) -> Transcript {
    let mut t = connect();
    let reply = t.send(&format!("from:{atsign}"));
    let cram = atserver::client::auth::cram_line(SECRET, challenge_of(&reply));
    assert_eq!(t.send(&cram), format!("data:success\n{atsign}@"));
    t
}

#[test]
fn a_transcript_answers_like_a_connection() {
    let mut t = connect();
    assert_eq!(Transcript::GREETING, b"@");
    assert_eq!(t.send("noop:0"), "data:ok\n@");
    assert_eq!(
        t.send("update:x@alice v"),
        "error:AT0401-Exception: Command cannot be executed without auth\n@"
    );
    let replies = t.feed(b"\r\nnoop:1000\npartial");
    assert_eq!(
        String::from_utf8_lossy(&replies),
        "error:AT0003-Exception: invalid command\n@data:ok\n@"
    );
    assert_eq!(
        t.feed(b" line\n"),
        b"error:AT0003-Exception: invalid command\n@"
    );
    assert!(t.feed(b"@exit\nnoop:0\n").is_empty());
    assert!(t.is_closed());
}

/// A key over the reference's limit is refused by every verb that names
/// one, before anything reaches the store (fjall itself panics on keys over
/// 64 KiB, which once stopped a storage shard).
#[test]
fn giant_keys_are_at0016_on_every_verb_that_names_a_key() {
    let mut t = owner("@keys");
    let giant = "k".repeat(70_000);
    let lines = [
        format!("update:{giant}@keys v"),
        format!("update:meta:{giant}@keys:ttl:1000"),
        format!("llookup:{giant}@keys"),
        format!("llookup:all:{giant}@keys"),
        format!("lookup:{giant}@keys"),
        format!("plookup:{giant}@keys"),
        format!("delete:{giant}@keys"),
        format!("llookup:xy@{giant}"),
    ];
    for line in &lines {
        let reply = t.send(line);
        assert!(
            reply.starts_with("error:AT0016-Invalid key : key length "),
            "{}: {reply}",
            &line[..20]
        );
        assert!(reply.ends_with("\n@keys@"));
    }
    // The store still works for everybody.
    assert_eq!(t.send("update:small@keys v"), "data:2\n@keys@");
    assert_eq!(t.send("llookup:small@keys"), "data:v\n@keys@");
}

#[test]
fn time_fields_that_would_overflow_are_at0003() {
    let mut t = owner("@times");
    for field in ["ttl", "ttb"] {
        let reply = t.send(&format!("update:{field}:9223372036854775807:x@times v"));
        assert!(
            reply.starts_with(&format!(
                "error:AT0003-Invalid syntax : Valid value for {} should be at most",
                field.to_uppercase()
            )),
            "{reply}"
        );
    }
    let reply = t.send("update:ttr:9223372036854775807:x@times v");
    assert!(
        reply.starts_with("error:AT0003-Invalid syntax : Valid value for TTR should be at most"),
        "{reply}"
    );
    let reply = t.send("update:ttl:99999999999999999999999:x@times v");
    assert!(reply.starts_with("error:AT0003-"), "{reply}");
    assert_eq!(t.send("update:ttl:60000:x@times v"), "data:2\n@times@");
}

#[test]
fn hostile_regexes_are_at0003_and_the_connection_goes_on() {
    let mut t = owner("@regex");
    for pattern in [r"(\w{500}){500}", "(", &"(a".repeat(200)] {
        let reply = t.send(&format!("scan {pattern}"));
        assert!(reply.starts_with("error:AT0003-"), "{reply}");
        let reply = t.send(&format!("stats:3:{pattern}"));
        assert!(reply.starts_with("error:AT0003-"), "{reply}");
    }
    assert_eq!(
        t.send("scan"),
        "data:[\"@regex:signing_privatekey@regex\",\"public:signing_publickey@regex\"]\n@regex@"
    );
}

/// A clock that records what the server slept, so a test can check
/// delays without waiting for them or timing anything.
#[derive(Clone, Default)]
struct RecordingClock {
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl RecordingClock {
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.slept.lock().expect("lock"))
    }
}

impl Clock for RecordingClock {
    type Sleep = Ready<()>;

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.slept.lock().expect("lock").push(duration);
        std::future::ready(())
    }

    async fn deadline<F: std::future::Future>(
        &self,
        _limit: Duration,
        future: F,
    ) -> Result<F::Output, DeadlineExceeded> {
        Ok(future.await)
    }
}

/// One failed cram by `atsign` from `peer`; returns what the server slept.
fn failed_cram(clock: &RecordingClock, peer: &str, atsign: &str) -> Vec<Duration> {
    let peer: IpAddr = peer.parse().expect("address");
    let mut t =
        Transcript::with_clock(server().server.clone(), clock.clone(), Some(peer)).expect("t");
    t.send(&format!("from:{atsign}"));
    assert_eq!(
        t.send("cram:00"),
        "error:AT0401-Exception: Authentication Failed\n@"
    );
    clock.take()
}

#[test]
fn failed_logins_of_one_atsign_wait_longer_and_longer_until_a_success() {
    let clock = RecordingClock::default();
    let ms = Duration::from_millis;
    let delays: Vec<Vec<Duration>> = (0..6)
        .map(|i| failed_cram(&clock, &format!("10.1.0.{i}"), "@throttled"))
        .collect();
    assert_eq!(
        delays,
        [
            vec![],
            vec![],
            vec![],
            vec![ms(500)],
            vec![ms(1000)],
            vec![ms(2000)]
        ],
        "each from a new connection and address: the atSign's count decides"
    );
    owner("@throttled");
    assert!(
        failed_cram(&clock, "10.1.0.9", "@throttled").is_empty(),
        "a success forgets the failures"
    );
}

#[test]
fn failed_logins_from_one_address_wait_across_atsigns() {
    let clock = RecordingClock::default();
    let mut waited = Vec::new();
    for i in 0..12 {
        let atsign = if i % 2 == 0 { "@source1" } else { "@source2" };
        if i >= 6 {
            // Keep the per-atSign counts free, so only the address counts.
            owner(atsign);
        }
        waited.push(failed_cram(&clock, "10.2.0.1", atsign));
    }
    assert!(waited[..10].iter().all(Vec::is_empty), "{waited:?}");
    assert_eq!(waited[10], [Duration::from_millis(500)], "{waited:?}");
    assert_eq!(waited[11], [Duration::from_millis(1000)]);
}

/// A clock under which no wait is ever in time, as with a hung disk.
#[derive(Clone, Default)]
struct NeverInTime;

impl Clock for NeverInTime {
    type Sleep = Ready<()>;

    fn sleep(&self, _duration: Duration) -> Self::Sleep {
        std::future::ready(())
    }

    async fn deadline<F: std::future::Future>(
        &self,
        _limit: Duration,
        _future: F,
    ) -> Result<F::Output, DeadlineExceeded> {
        Err(DeadlineExceeded)
    }
}

#[test]
fn a_store_that_does_not_answer_in_time_is_at0002_and_closes() {
    let mut t = Transcript::with_clock(server().server.clone(), NeverInTime, None).expect("t");
    let reply = t.send("from:@stalled");
    let cram = atserver::client::auth::cram_line(SECRET, challenge_of(&reply));
    assert_eq!(t.send(&cram), "data:success\n@stalled@");
    assert_eq!(
        t.send("update:x.app@stalled v"),
        "error:AT0002-DataStore exception : the data store did not answer within 30000 ms\n@stalled@"
    );
    assert!(t.is_closed());
}

// --- notify:status, notify:list, notify:fetch, notify:remove -------------
//
// The owner's `notify` is not served yet, so these seed the notification
// store directly; what a peer sees is covered beside the handlers.

mod notifications {
    use atserver::protocol::time::format_dart_utc;
    use atserver::storage::{
        NotificationMeta, NotificationRecord, NotificationStatus, NotificationType,
    };

    use super::{connect, owner, server};

    fn now_ms() -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        i64::try_from(since.as_millis()).expect("in range")
    }

    /// A received key notification for `to` from @bob, created `created`,
    /// living an hour.
    fn received(id: &str, to: &str, created: i64) -> NotificationRecord {
        NotificationRecord {
            at_value: Some("QmFzZTY0".into()),
            at_metadata: Some(NotificationMeta {
                ttr: Some(-1),
                is_encrypted: true,
                enc_key_name: Some("shared_key".into()),
                ..NotificationMeta::default()
            }),
            ttl: Some(3_600_000),
            ..NotificationRecord::received(
                id,
                "@bob",
                to,
                format!("{to}:phone.wavi@bob"),
                created,
                created + 3_600_000,
            )
        }
    }

    fn seed(atsign: &str, record: NotificationRecord) {
        let tenant = server().server.tenant(atsign).expect("hosted");
        futures_lite::future::block_on(tenant.store.put_notification(record)).expect("stored");
    }

    /// The JSON `notify:list` writes for a record made by [`received`]
    /// (the date inside the metadata is the only computed part).
    fn listed(id: &str, to: &str, created: i64) -> String {
        let expires = created + 3_600_000;
        format!(
            concat!(
                r#"{{"id":"{id}","from":"@bob","to":"{to}","key":"{to}:phone.wavi@bob","#,
                r#""value":"QmFzZTY0","operation":"update","epochMillis":{created},"#,
                r#""messageType":"MessageType.key","isEncrypted":true,"metadata":{{"#,
                r#""sharedKeyEnc":null,"pubKeyCS":null,"dataSignature":null,"encKeyName":"shared_key","#,
                r#""encAlgo":null,"ivNonce":null,"skeEncKeyName":null,"skeEncAlgo":null,"#,
                r#""availableAt":"null","expiresAt":"{date}","pubKeyHash":null,"appMetadata":null,"#,
                r#""ttl":null,"ttb":null,"ttr":-1,"ccd":null,"isBinary":false,"encoding":null}},"#,
                r#""expiresAt":{expires}}}"#
            ),
            id = id,
            to = to,
            created = created,
            date = format_dart_utc(expires),
            expires = expires,
        )
    }

    #[test]
    fn notify_status_answers_the_owner_and_tells_a_stranger_nothing() {
        let now = now_ms();
        let mut queued = received("st-queued", "@nstatus", now - 2_000);
        queued.notification_type = NotificationType::Sent;
        queued.from_atsign = "@nstatus".into();
        queued.to_atsign = "@bob".into();
        queued.notification_status = NotificationStatus::Queued;
        let mut errored = queued.clone();
        errored.id = "st-errored".into();
        errored.notification_status = NotificationStatus::Errored;
        seed("@nstatus", queued);
        seed("@nstatus", errored);
        seed(
            "@nstatus",
            received("st-delivered", "@nstatus", now - 1_000),
        );
        let mut t = owner("@nstatus");
        assert_eq!(t.send("notify:status:st-queued"), "data:queued\n@nstatus@");
        assert_eq!(
            t.send("notify:status:st-errored"),
            "data:errored\n@nstatus@"
        );
        assert_eq!(
            t.send("notify:status:st-delivered"),
            "data:delivered\n@nstatus@"
        );
        assert_eq!(t.send("notify:status:unknown"), "data:null\n@nstatus@");
        assert_eq!(
            t.send("notify:status:"),
            "error:AT0003-Invalid syntax : Invalid syntax. e.g notify:status:<notification-id>\n@nstatus@"
        );
        // The reference would tell any connection; this server does not.
        let mut stranger = connect();
        assert_eq!(stranger.send("notify:status:st-queued"), "data:null\n@");
        stranger.send("from:@nstatus");
        assert_eq!(stranger.send("notify:status:st-queued"), "data:null\n@");
    }

    #[test]
    fn notify_list_lists_the_owners_received_notifications_oldest_first() {
        let now = now_ms();
        // Both today (UTC), so a listing of today's date finds both, unless
        // the test runs in the day's first seconds.
        let (first, second) = (now - 2, now - 1);
        seed("@nlist", received("ls-2", "@nlist", second));
        seed("@nlist", received("ls-1", "@nlist", first));
        let mut sent = received("ls-sent", "@nlist", now - 3);
        sent.notification_type = NotificationType::Sent;
        seed("@nlist", sent);
        let both = format!(
            "data:[{},{}]\n@nlist@",
            listed("ls-1", "@nlist", first),
            listed("ls-2", "@nlist", second)
        );
        let mut t = owner("@nlist");
        assert_eq!(t.send("notify:list"), both);
        assert_eq!(t.send("notify:list:wavi"), both, "regex on the key");
        assert_eq!(t.send("notify:list:^bob$"), both, "regex on the sender");
        assert_eq!(t.send("notify:list:nothing-like-it"), "data:null\n@nlist@");
        let today = &format_dart_utc(first)[..10];
        if today == &format_dart_utc(now)[..10] {
            assert_eq!(t.send(&format!("notify:list:{today}")), both);
            assert_eq!(t.send(&format!("notify:list:{today}:{today}:wavi")), both);
        }
        assert_eq!(
            t.send("notify:list:2000-01-01:2000-01-02"),
            "data:null\n@nlist@"
        );
        assert_eq!(
            t.send("notify:list:2024-1-5"),
            "error:AT0022-Illegal arguments : Invalid date format\n@nlist@"
        );
        assert_eq!(
            t.send("notify:list:2024-10-25:2024-10-24"),
            "error:AT0022-Illegal arguments : ToDate cannot be less than FromDate\n@nlist@"
        );
        let bad = t.send("notify:list:(");
        assert!(
            bad.starts_with("error:AT0003-Invalid syntax : Invalid regex: ")
                && bad.ends_with("\n@nlist@"),
            "{bad}"
        );
        assert_eq!(connect().send("notify:list"), "data:null\n@");
    }

    #[test]
    fn notify_fetch_shows_the_record_and_notify_remove_deletes_it() {
        let created = now_ms() - 1_000;
        seed("@nfetch", received("fx-1", "@nfetch", created));
        let mut t = owner("@nfetch");
        assert_eq!(
            t.send("notify:fetch:fx-1"),
            format!(
                concat!(
                    r#"data:{{"id":"fx-1","fromAtSign":"@bob","notificationDateTime":"{created}","#,
                    r#""toAtSign":"@nfetch","notification":"@nfetch:phone.wavi@bob","#,
                    r#""type":"NotificationType.received","opType":"OperationType.update","#,
                    r#""messageType":"MessageType.key","priority":"NotificationPriority.low","#,
                    r#""notificationStatus":"NotificationStatus.delivered","retryCount":"1","#,
                    r#""strategy":"all","depth":"1","notifier":"SYSTEM","expiresAt":"{expires}","#,
                    r#""atValue":"QmFzZTY0","#,
                    r#""atMetadata":{{"ttr":-1,"isBinary":false,"isEncrypted":true,"encKeyName":"shared_key"}},"#,
                    r#""ttl":"3600000"}}"#,
                    "\n@nfetch@"
                ),
                created = format_dart_utc(created),
                expires = format_dart_utc(created + 3_600_000),
            )
        );
        let expired = "data:{\"id\":\"fx-1\",\"notificationStatus\":\"NotificationStatus.expired\"}\n@nfetch@";
        assert_eq!(t.send("notify:remove:fx-1"), "data:success\n@nfetch@");
        assert_eq!(t.send("notify:fetch:fx-1"), expired);
        assert_eq!(t.send("notify:status:fx-1"), "data:null\n@nfetch@");
        assert_eq!(t.send("notify:list"), "data:null\n@nfetch@");
        assert_eq!(
            t.send("notify:remove:fx-1"),
            "data:success\n@nfetch@",
            "removing what is gone succeeds"
        );
        let refused = "error:AT0401-Exception: Command cannot be executed without auth\n@";
        assert_eq!(connect().send("notify:fetch:fx-1"), refused);
        assert_eq!(connect().send("notify:remove:fx-1"), refused);
    }
}
