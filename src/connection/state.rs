//! [`ConnectionState`]: what one connection has established so far.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use super::caller::{Anonymous, AuthMethod, Caller, Enrolled, Owner, Peer};
use crate::auth::challenge::Challenge;
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::limits::{AUTH_FAILURES_MAX, ENROLL_REQUESTS_PER_HOUR_MAX, UNAUTH_COMMANDS_PER_SEC_MAX};
use crate::protocol::reply::{self, ErrorStyle, Prompt};

/// What the other end has proven.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proven {
    Nothing,
    /// The owner of `ConnectionState::tenant`.
    Owner(AuthMethod),
    /// The atServer of this atSign (with its `@`), by `pol`.
    Peer(String),
}

/// A challenge issued to another atServer claiming `claimed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolChallenge {
    /// The atSign it claims, with its `@`.
    pub claimed: String,
    /// What it must sign.
    pub nonce: String,
    pub issued: Instant,
}

impl PolChallenge {
    /// Whether the challenge may still be answered (the cookie the prover
    /// publishes lives as long).
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.issued)
            < Duration::from_millis(crate::limits::POL_COOKIE_TTL_MS)
    }
}

/// The state of one connection. Fields are private: verbs change them only
/// through the methods below, each of which keeps the invariants (a proven
/// owner always has a tenant; naming another atSign drops the proof).
#[derive(Debug)]
pub struct ConnectionState {
    /// `_<uuid>`, fixed for the connection's life.
    session_id: String,
    /// The client's address, when it came over the network.
    peer: Option<IpAddr>,
    /// The hosted atSign this connection talks to, once known.
    tenant: Option<Arc<Tenant>>,
    proven: Proven,
    /// The outstanding `from:` challenge; single use.
    challenge: Option<Challenge>,
    /// The outstanding `from:@other` challenge of another atServer, until
    /// its `pol`; single use.
    pol_challenge: Option<PolChallenge>,
    error_style: ErrorStyle,
    /// Failed `cram`/`pkam` attempts so far; the connection closes at
    /// [`AUTH_FAILURES_MAX`].
    auth_failures: u32,
    /// Start of the current one-second window of the unauthenticated rate
    /// limit, and the commands counted in it.
    rate_window_start: Instant,
    rate_window_count: u32,
    /// The end-entity certificate the client presented in the TLS
    /// handshake (other atServers do; end-user clients do not). `from:`
    /// from a peer checks it names the host the directory gives for the
    /// atSign it claims.
    peer_certificate: Option<CertificateDer<'static>>,
    /// Set by `monitor`: replies from then on carry no prompt.
    monitoring: bool,
    /// The APKAM enrollment the owner logged in with (`AuthMethod::Apkam`).
    enrollment: Option<Arc<Enrolled>>,
    /// Start of the current hour of `enroll:request`s, and those counted.
    enroll_window_start: Instant,
    enroll_window_count: u32,
}

impl ConnectionState {
    /// A fresh connection. `tenant` is the atSign it talks to before it
    /// names one: set when the process hosts exactly one.
    pub fn new(
        session_id: String,
        peer: Option<IpAddr>,
        tenant: Option<Arc<Tenant>>,
        now: Instant,
    ) -> ConnectionState {
        ConnectionState {
            session_id,
            peer,
            tenant,
            proven: Proven::Nothing,
            challenge: None,
            pol_challenge: None,
            error_style: ErrorStyle::Legacy,
            auth_failures: 0,
            rate_window_start: now,
            rate_window_count: 0,
            peer_certificate: None,
            monitoring: false,
            enrollment: None,
            enroll_window_start: now,
            enroll_window_count: 0,
        }
    }

    /// The connection ran `monitor`: notification lines are written between
    /// its replies, and replies lose their prompt (clients.md, Monitor).
    pub fn set_monitoring(&mut self) {
        self.monitoring = true;
    }

    /// Records the client certificate of the TLS session (once, right after
    /// the handshake).
    pub fn set_peer_certificate(&mut self, certificate: Option<CertificateDer<'static>>) {
        self.peer_certificate = certificate;
    }

    /// The client certificate the TLS handshake received, if any.
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificate.as_ref()
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The client's address (for per-source limits and logs).
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// The hosted atSign this connection talks to, once known.
    pub fn tenant(&self) -> Option<&Arc<Tenant>> {
        self.tenant.as_ref()
    }

    /// The typed proof of who is calling, for the gate to hand to a verb.
    pub fn caller(&self) -> Caller {
        match (&self.proven, &self.tenant) {
            (Proven::Owner(method), Some(tenant)) => Caller::Owner(Owner {
                tenant: tenant.clone(),
                method: *method,
                enrollment: self.enrollment.clone(),
            }),
            (Proven::Peer(atsign), Some(tenant)) => Caller::Peer(Peer {
                tenant: tenant.clone(),
                atsign: atsign.clone(),
            }),
            _ => Caller::Anonymous(Anonymous {
                tenant: self.tenant.clone(),
            }),
        }
    }

    /// Whether the owner is proven on this connection.
    pub fn is_owner(&self) -> bool {
        matches!(self.proven, Proven::Owner(_)) && self.tenant.is_some()
    }

    /// Whether anything is proven (owner or peer): such connections get the
    /// longer idle limit and are not rate limited.
    pub fn is_authenticated(&self) -> bool {
        self.proven != Proven::Nothing && self.tenant.is_some()
    }

    /// The prompt written after a normal reply (wire.md §4).
    pub fn prompt(&self) -> Prompt<'_> {
        if self.monitoring {
            return Prompt::Silent;
        }
        match (&self.proven, &self.tenant) {
            (Proven::Owner(_), Some(tenant)) => Prompt::Owner(&tenant.atsign),
            (Proven::Peer(atsign), Some(_)) => Prompt::Pol(atsign),
            _ => Prompt::Anonymous,
        }
    }

    pub fn set_error_style(&mut self, style: ErrorStyle) {
        self.error_style = style;
    }

    /// Writes `error` in this connection's style and with its prompt. An
    /// exception error on a pol connection gets `@` and the unauthenticated
    /// description, as the reference's global handler knows only owners.
    pub fn write_error(&self, error: &AtError, out: &mut Vec<u8>) {
        if error.response_object {
            reply::response_error(out, error.code.code(), &error.message, self.prompt());
            return;
        }
        match (&self.proven, &self.tenant) {
            (Proven::Owner(_), Some(_)) if self.monitoring => {
                reply::error_with_prompt(out, error, self.error_style, true, Prompt::Silent)
            }
            (Proven::Owner(_), Some(tenant)) => {
                reply::error(out, error, self.error_style, true, &tenant.atsign)
            }
            _ => reply::error(out, error, self.error_style, false, ""),
        }
    }

    /// `from:` for a hosted atSign: issues a fresh single-use challenge and
    /// returns its text. Naming another atSign than before drops whatever
    /// was proven; naming the same one keeps it (the SDK's onboarding sends
    /// `from:` again on its cram connection before switching to pkam).
    pub fn issue_challenge(&mut self, tenant: Arc<Tenant>, nonce: &str, now: Instant) -> &str {
        let same = self
            .tenant
            .as_ref()
            .is_some_and(|t| t.atsign == tenant.atsign);
        if !same {
            self.proven = Proven::Nothing;
            self.enrollment = None;
        }
        let challenge = Challenge::new(&self.session_id, &tenant.atsign, nonce, now);
        self.tenant = Some(tenant);
        &self.challenge.insert(challenge).text
    }

    /// `to:` named a hosted atSign: the connection now talks to `tenant`
    /// unless it already talks to one (named by `from:`, or the process's
    /// sole atSign). Proves nothing; a peer's later `from:@bob` and `pol`
    /// then know which hosted atSign they address.
    pub fn address_tenant(&mut self, tenant: Arc<Tenant>) {
        if self.tenant.is_none() {
            self.tenant = Some(tenant);
        }
    }

    /// Takes the outstanding challenge for one `cram`/`pkam` attempt, with
    /// the atSign it was issued for. `None` without a `from:` first.
    pub fn take_challenge(&mut self) -> Option<(Arc<Tenant>, Challenge)> {
        let challenge = self.challenge.take()?;
        Some((self.tenant.clone()?, challenge))
    }

    /// The owner of the current atSign proved itself.
    pub fn authenticate_owner(&mut self, method: AuthMethod) {
        debug_assert!(self.tenant.is_some(), "an owner is proven for a tenant");
        debug_assert!(
            method != AuthMethod::Apkam,
            "an enrollment is proven with its grant"
        );
        self.proven = Proven::Owner(method);
        self.enrollment = None;
    }

    /// The owner proved the key of an approved APKAM enrollment: the
    /// connection is limited to `enrolled`'s namespaces.
    pub fn authenticate_enrolled(&mut self, enrolled: Arc<Enrolled>) {
        debug_assert!(self.tenant.is_some(), "an owner is proven for a tenant");
        self.proven = Proven::Owner(AuthMethod::Apkam);
        self.enrollment = Some(enrolled);
    }

    /// The enrollment the connection logged in with, if any.
    pub fn enrollment(&self) -> Option<&Arc<Enrolled>> {
        self.enrollment.as_ref()
    }

    /// `from:@other` by another atServer: issues a single-use challenge
    /// and returns its text, `proof:<session>@other:<nonce>`. Whatever was
    /// proven before is dropped.
    pub fn issue_pol_challenge(&mut self, claimed: String, nonce: String, now: Instant) -> String {
        self.proven = Proven::Nothing;
        self.challenge = None;
        let text = format!("proof:{}{claimed}:{nonce}", self.session_id);
        self.pol_challenge = Some(PolChallenge {
            claimed,
            nonce,
            issued: now,
        });
        text
    }

    /// Takes the outstanding `pol` challenge. `None` without a `from:` for
    /// another atSign first.
    pub fn take_pol_challenge(&mut self) -> Option<PolChallenge> {
        self.pol_challenge.take()
    }

    /// Another atServer proved it is `atsign` (server-to-server `pol`).
    pub fn authenticate_peer(&mut self, atsign: String) {
        debug_assert!(self.tenant.is_some(), "a peer talks to a tenant");
        self.proven = Proven::Peer(atsign);
    }

    /// Drops whatever was proven (a `pkam` for an enrollment this server
    /// does not know ends the old authentication, as in the reference).
    pub fn forget_authentication(&mut self) {
        self.proven = Proven::Nothing;
        self.enrollment = None;
    }

    /// A failed `cram`/`pkam`: drops the authentication and counts the
    /// failure. The returned AT0401 closes the connection once
    /// [`AUTH_FAILURES_MAX`] failures are reached.
    pub fn fail_authentication(&mut self, message: &str) -> AtError {
        self.auth_failures = self.auth_failures.saturating_add(1);
        self.proven = Proven::Nothing;
        self.enrollment = None;
        let error = AtError::new(AtCode::AuthFailed, message);
        if self.auth_failures >= AUTH_FAILURES_MAX {
            error.closing()
        } else {
            error
        }
    }

    /// Counts one `enroll:request` against [`ENROLL_REQUESTS_PER_HOUR_MAX`];
    /// false once the connection has sent that many in the current hour.
    pub fn admit_enroll_request(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.enroll_window_start) >= Duration::from_secs(3_600) {
            self.enroll_window_start = now;
            self.enroll_window_count = 0;
        }
        self.enroll_window_count = self.enroll_window_count.saturating_add(1);
        self.enroll_window_count <= ENROLL_REQUESTS_PER_HOUR_MAX
    }

    /// Counts one command against the unauthenticated rate limit; false when
    /// it is over [`UNAUTH_COMMANDS_PER_SEC_MAX`] in the current second.
    /// Authenticated connections are not limited.
    /// `now` is read only for an unauthenticated connection: an
    /// authenticated one is not rate-limited here and pays no clock read
    /// per request.
    pub fn admit_command(&mut self, now: impl FnOnce() -> Instant) -> bool {
        if self.is_authenticated() {
            return true;
        }
        let now = now();
        if now.saturating_duration_since(self.rate_window_start) >= Duration::from_secs(1) {
            self.rate_window_start = now;
            self.rate_window_count = 0;
        }
        self.rate_window_count = self.rate_window_count.saturating_add(1);
        self.rate_window_count <= UNAUTH_COMMANDS_PER_SEC_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::CallerKind;

    fn tenant(atsign: &str) -> Arc<Tenant> {
        crate::context::testing::tenant(atsign)
    }

    fn state() -> ConnectionState {
        ConnectionState::new("_s".into(), None, None, Instant::now())
    }

    #[test]
    fn a_challenge_names_the_tenant_and_is_single_use() {
        let mut s = state();
        assert!(s.take_challenge().is_none());
        let text = s
            .issue_challenge(tenant("@alice"), "n1", Instant::now())
            .to_string();
        assert_eq!(text, "_s@alice:n1");
        let (t, c) = s.take_challenge().expect("issued");
        assert_eq!(
            (t.atsign.as_str(), c.text.as_str()),
            ("@alice", "_s@alice:n1")
        );
        assert!(s.take_challenge().is_none());
    }

    #[test]
    fn owners_get_their_prompt_and_lose_it_by_naming_another_atsign() {
        let mut s = state();
        s.issue_challenge(tenant("@alice"), "n1", Instant::now());
        s.authenticate_owner(AuthMethod::Cram);
        assert_eq!(s.caller().kind(), CallerKind::Owner);
        assert_eq!(s.prompt(), Prompt::Owner("@alice"));
        s.issue_challenge(tenant("@alice"), "n2", Instant::now());
        assert!(s.is_owner(), "the same atSign keeps the proof");
        s.issue_challenge(tenant("@bob"), "n3", Instant::now());
        assert!(!s.is_owner());
        assert_eq!(s.caller().kind(), CallerKind::Anonymous);
        assert_eq!(s.prompt(), Prompt::Anonymous);
    }

    #[test]
    fn peers_get_the_pol_prompt_but_exception_errors_get_the_bare_one() {
        let mut s = ConnectionState::new("_s".into(), None, Some(tenant("@alice")), Instant::now());
        s.authenticate_peer("@bob".into());
        assert_eq!(s.caller().kind(), CallerKind::Peer);
        assert_eq!(s.prompt(), Prompt::Pol("@bob"));
        let mut out = Vec::new();
        s.write_error(&AtError::invalid_command(), &mut out);
        assert_eq!(out, b"error:AT0003-Exception: invalid command\n@");
    }

    #[test]
    fn to_addresses_a_tenant_only_when_none_is_known_and_proves_nothing() {
        let mut s = state();
        s.address_tenant(tenant("@alice"));
        assert_eq!(s.tenant().map(|t| t.atsign.as_str()), Some("@alice"));
        assert_eq!(s.caller().kind(), CallerKind::Anonymous);
        assert_eq!(s.prompt(), Prompt::Anonymous);
        s.address_tenant(tenant("@bob"));
        assert_eq!(s.tenant().map(|t| t.atsign.as_str()), Some("@alice"));
        let mut owner = state();
        owner.issue_challenge(tenant("@carol"), "n", Instant::now());
        owner.authenticate_owner(AuthMethod::Cram);
        owner.address_tenant(tenant("@alice"));
        assert_eq!(
            owner.prompt(),
            Prompt::Owner("@carol"),
            "the owner keeps its atSign"
        );
    }

    #[test]
    fn failed_attempts_drop_the_proof_and_close_at_the_limit() {
        let mut s = state();
        s.issue_challenge(tenant("@alice"), "n", Instant::now());
        s.authenticate_owner(AuthMethod::Pkam);
        let first = s.fail_authentication("no");
        assert!(!first.close && !s.is_owner());
        for _ in 1..AUTH_FAILURES_MAX - 1 {
            assert!(!s.fail_authentication("no").close);
        }
        assert!(s.fail_authentication("no").close);
    }

    #[test]
    fn a_connection_keeps_the_certificate_its_peer_presented() {
        let mut s = state();
        assert!(s.peer_certificate().is_none());
        let certificate = CertificateDer::from(vec![0x30, 0x00]);
        s.set_peer_certificate(Some(certificate.clone()));
        assert_eq!(s.peer_certificate(), Some(&certificate));
    }

    #[test]
    fn the_rate_limit_counts_per_second_and_spares_the_authenticated() {
        let start = Instant::now();
        let mut s = ConnectionState::new("_s".into(), None, None, start);
        for _ in 0..UNAUTH_COMMANDS_PER_SEC_MAX {
            assert!(s.admit_command(|| start));
        }
        assert!(!s.admit_command(|| start));
        assert!(s.admit_command(|| start + Duration::from_secs(1)));
        s.issue_challenge(tenant("@alice"), "n", start);
        s.authenticate_owner(AuthMethod::Cram);
        for _ in 0..2 * UNAUTH_COMMANDS_PER_SEC_MAX {
            assert!(s.admit_command(|| start + Duration::from_secs(1)));
        }
    }
}
