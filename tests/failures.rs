//! Failures stop loudly: the real binary, built with the `failpoints`
//! feature, is made to fail a commit or panic its write actor, and must
//! stop accepting work, say why in its log and exit non-zero (70) so that a
//! supervisor restarts it — never go on serving half-alive. And a crash at
//! the worst moment (`store.commit=abort@N`: right after a batch is
//! committed, before anything of it is answered) must leave a store that a
//! restart trusts: a deleted CRAM secret stays deleted.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use atserver::client::auth::cram_line;
use common::Client;
use common::process::{ServerHome, ServerProcess};

const SECRET: &str = "failure-secret";

/// How long a failed server may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// The exit status the supervisor uses after a fatal failure.
const EXIT_FATAL: i32 = 70;

/// The signal `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

/// `atserver serve` for `@fail` with failpoints armed, in a home that a
/// restart reuses.
struct Server {
    process: ServerProcess,
    home: Rc<ServerHome>,
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl Server {
    /// Starts `atserver serve` for `@fail` with `failpoints` armed.
    fn start(failpoints: &str) -> Server {
        Server::start_in(Rc::new(ServerHome::new()), failpoints)
    }

    /// Starts the server again on the same data, once this one has ended,
    /// with `-s` the same secret on the command line.
    fn restart(mut self, failpoints: &str) -> Server {
        self.process.kill();
        Server::start_in(self.home.clone(), failpoints)
    }

    fn start_in(home: Rc<ServerHome>, failpoints: &str) -> Server {
        let env = [("ATSERVER_FAILPOINTS", failpoints)];
        let process = ServerProcess::start_at(&home, "@fail", SECRET, &[], &env);
        Server { process, home }
    }

    /// Whether `secret` still opens a CRAM login.
    fn cram_works(&self, secret: &str) -> bool {
        let mut client = Client::connect(&self.target);
        let challenge = client.challenge("@fail");
        let reply = client.send(&cram_line(secret, &challenge));
        match reply.as_str() {
            "data:success\n@fail@" => true,
            refused if refused.starts_with("error:") => false,
            other => panic!("unexpected cram reply {other:?}"),
        }
    }

    fn owner(&self) -> Client {
        let mut client = Client::connect(&self.target);
        client.cram("@fail", SECRET);
        client
    }
}

fn assert_stopped_loudly(server: &mut Server, cause: &str) {
    let (status, log) = server.wait_for_exit(EXIT_WITHIN);
    assert_eq!(
        status.code(),
        Some(EXIT_FATAL),
        "exit status; log: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.contains("stopping after a fatal failure") && line.contains(cause)),
        "the log says why: {log:#?}"
    );
    // The listener can outlive the process for a moment: io_uring tears a
    // dead process's ring down in the background, and a pending accept
    // holds the socket until then. So wait for it to go, within a bound.
    let deadline = Instant::now() + EXIT_WITHIN;
    while std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "nothing listens any more");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh store's first commits are made at start: the CRAM secret (1),
/// the signing key pair (2) and its flag (3); the fourth is the client's
/// first write.
#[test]
fn a_failed_commit_poisons_the_store_and_stops_the_process() {
    let mut server = Server::start("store.commit=error@4");
    let mut client = server.owner();
    let reply = client.send("update:first.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert!(client.is_closed(), "AT0002 closes the connection");
    assert_stopped_loudly(&mut server, "failpoint store.commit=error@4");
}

#[test]
fn a_panic_in_the_write_actor_poisons_the_store_and_stops_the_process() {
    let mut server = Server::start("store.apply=panic@4");
    let mut client = server.owner();
    let reply = client.send("update:first.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert_stopped_loudly(&mut server, "panicked");
}

#[test]
fn reads_are_served_until_the_failure_and_nothing_is_accepted_after() {
    let mut server = Server::start("store.commit=error@5");
    let mut client = server.owner();
    assert_eq!(client.send("update:kept.app@fail v"), "data:2\n@fail@");
    assert_eq!(client.send("llookup:kept.app@fail"), "data:v\n@fail@");
    let reply = client.send("update:lost.app@fail v");
    assert!(reply.starts_with("error:AT0002-"), "{reply}");
    assert_stopped_loudly(&mut server, "failpoint store.commit=error@5");
}

/// Waits for a crash by an abort failpoint and checks the log says so.
fn assert_aborted(server: &mut Server, failpoint: &str) {
    let (status, log) = server.wait_for_exit(EXIT_WITHIN);
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "status {status:?}; log: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.contains(&format!("failpoint {failpoint}: aborting the process"))),
        "the log names the failpoint: {log:#?}"
    );
}

/// Sends `line` and expects the server to die before it answers.
fn send_into_a_crash(client: &mut Client, line: &str) {
    client.write(format!("{line}\n").as_bytes());
    assert!(client.is_closed(), "no reply: the server crashed first");
}

/// The first steps of onboarding after `cram`, one batch commit each: the
/// store's first three commits are made at start (the secret, the signing
/// key pair, its flag), so these are commits 4 and 5; the secret's deletion
/// is commit 6.
fn onboarding_writes() -> [String; 2] {
    let public = include_str!("../src/auth/testdata/rsa2048.spki.b64");
    [
        format!("update:privatekey:at_pkam_publickey {public}"),
        format!("update:public:publickey@fail {public}"),
    ]
}

const DELETE_SECRET: &str = "delete:privatekey:at_secret";

/// A crash in the commit that deletes the secret, or in any later one,
/// leaves it deleted: the tombstone is in the same batch as the delete,
/// so the restart with `-s` on the command line does not restore it.
#[test]
fn a_crash_at_or_after_the_commit_that_deletes_the_secret_never_brings_it_back() {
    for (crash_at, writes_after_delete) in [(6, 0), (7, 1)] {
        let failpoint = format!("store.commit=abort@{crash_at}");
        let mut server = Server::start(&failpoint);
        let mut client = server.owner();
        for line in onboarding_writes() {
            assert!(client.send(&line).starts_with("data:"), "{line}");
        }
        if writes_after_delete == 0 {
            send_into_a_crash(&mut client, DELETE_SECRET);
        } else {
            assert_eq!(client.send(DELETE_SECRET), "data:-1\n@fail@");
            send_into_a_crash(&mut client, "update:later.app@fail v");
        }
        assert_aborted(&mut server, &failpoint);
        let restarted = server.restart("");
        assert!(
            !restarted.cram_works(SECRET),
            "crash at commit {crash_at}: the old secret must be refused"
        );
        assert!(
            restarted
                .startup_log
                .iter()
                .any(|line| line.contains("the CRAM secret is not restored")),
            "the restart says why: {:#?}",
            restarted.startup_log
        );
    }
}

/// A crash in the commit before the deletion: nothing of that write was
/// acknowledged and the secret was never deleted, so it still works; the
/// onboarding can go on after the restart, and then the secret is gone.
#[test]
fn a_crash_at_the_commit_before_the_secret_is_deleted_keeps_the_secret() {
    let failpoint = "store.commit=abort@5";
    let mut server = Server::start(failpoint);
    let mut client = server.owner();
    let [pkam_key, public_key] = onboarding_writes();
    assert!(client.send(&pkam_key).starts_with("data:"));
    send_into_a_crash(&mut client, &public_key);
    assert_aborted(&mut server, failpoint);
    let restarted = server.restart("");
    assert!(restarted.cram_works(SECRET), "the secret still works");
    let mut client = restarted.owner();
    assert!(client.send(&public_key).starts_with("data:"));
    assert_eq!(client.send(DELETE_SECRET), "data:-1\n@fail@");
    drop(client);
    let again = restarted.restart("");
    assert!(!again.cram_works(SECRET), "deleted after the restart");
}

/// The signing key pair's halves belong together: what the stored private
/// half signs, the public half (as anyone reads it) verifies.
fn assert_one_consistent_pair(server: &Server) -> String {
    use atserver::auth::signing::{SigningKey, verify_base64};
    let mut owner = server.owner();
    let private = owner.send("llookup:@fail:signing_privatekey@fail");
    let private = private
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@fail@"))
        .expect("the private half");
    let mut anyone = Client::connect(&server.target);
    let public = anyone.send("lookup:signing_publickey@fail");
    let public = public
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix("\n@"))
        .expect("the public half")
        .to_string();
    let signature = SigningKey::from_pkcs8_base64(private)
        .expect("a PKCS#8 key")
        .sign_base64(b"nonce")
        .expect("sign");
    assert!(verify_base64(&public, b"nonce", &signature), "one pair");
    public
}

/// A crash right after the pair is committed, before its flag: the next
/// start does not trust a pair without its flag and replaces it whole, so
/// the server ends with one consistent pair, which later starts keep.
#[test]
fn a_crash_between_the_signing_pair_and_its_flag_ends_with_one_new_pair() {
    let home = Rc::new(ServerHome::new());
    let failpoint = "store.commit=abort@2";
    let (status, log) = ServerProcess::run_to_exit(
        &home,
        "@fail",
        SECRET,
        &[("ATSERVER_FAILPOINTS", failpoint)],
        EXIT_WITHIN,
    );
    assert_eq!(status.signal(), Some(SIGABRT), "{status:?}; log: {log:#?}");
    let server = Server::start_in(home.clone(), "");
    assert!(
        server
            .startup_log
            .iter()
            .any(|line| line.contains("generated the signing key pair")),
        "the pair without its flag is replaced: {:#?}",
        server.startup_log
    );
    let public = assert_one_consistent_pair(&server);
    // The replaced pair's two commits (0, 1) and the new pair's (2, 3).
    let mut owner = server.owner();
    assert_eq!(
        owner.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"3\"}]\n@fail@"
    );
    drop(owner);
    let again = server.restart("");
    assert!(
        !again
            .startup_log
            .iter()
            .any(|line| line.contains("generated the signing key pair")),
        "{:#?}",
        again.startup_log
    );
    assert_eq!(assert_one_consistent_pair(&again), public, "kept");
}

/// A crash right after the flag is committed: the pair is complete, and
/// the next start keeps it.
#[test]
fn a_crash_right_after_the_signing_flag_keeps_the_pair() {
    let home = Rc::new(ServerHome::new());
    let failpoint = "store.commit=abort@3";
    let (status, log) = ServerProcess::run_to_exit(
        &home,
        "@fail",
        SECRET,
        &[("ATSERVER_FAILPOINTS", failpoint)],
        EXIT_WITHIN,
    );
    assert_eq!(status.signal(), Some(SIGABRT), "{status:?}; log: {log:#?}");
    let server = Server::start_in(home.clone(), "");
    assert!(
        !server
            .startup_log
            .iter()
            .any(|line| line.contains("generated the signing key pair")),
        "{:#?}",
        server.startup_log
    );
    assert_one_consistent_pair(&server);
    let mut owner = server.owner();
    assert_eq!(
        owner.send("stats:3"),
        "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"1\"}]\n@fail@"
    );
}
