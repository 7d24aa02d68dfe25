//! The `from:` challenge: `_<session uuid>@alice:<nonce uuid>`.
//!
//! Kept in the connection, not in the keystore: it is single-use and valid
//! for [`crate::limits::CHALLENGE_TTL_MS`] (reference 3.16.4), so persisting
//! it would only cost a durable write per login.

use std::time::{Duration, Instant};

use crate::limits::CHALLENGE_TTL_MS;

/// The system's random-number source failed: whatever needed randomness
/// (a session id, a challenge nonce, a secret) is refused, never made from
/// something guessable like the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomnessFailed;

impl std::fmt::Display for RandomnessFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the system random-number source failed")
    }
}

impl std::error::Error for RandomnessFailed {}

impl From<RandomnessFailed> for crate::error::AtError {
    fn from(failure: RandomnessFailed) -> Self {
        crate::error::AtError::new(
            crate::error::AtCode::InternalServerError,
            failure.to_string(),
        )
    }
}

/// Where random bytes come from: the system CSPRNG in the server, a failing
/// source in tests (ring's own trait is sealed).
pub trait RandomSource {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessFailed>;
}

impl RandomSource for ring::rand::SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessFailed> {
        ring::rand::SecureRandom::fill(self, dest).map_err(|_| RandomnessFailed)
    }
}

/// A random version-4 UUID, lower-case and hyphenated.
pub fn uuid_v4(rng: &impl RandomSource) -> Result<String, RandomnessFailed> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// An issued challenge, waiting for one `cram`/`pkam` attempt.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The text signed by the client: the `from:` reply without `data:`.
    pub text: String,
    pub issued: Instant,
}

impl Challenge {
    pub fn new(session_id: &str, atsign: &str, nonce: &str, issued: Instant) -> Challenge {
        Challenge {
            text: format!("{session_id}{atsign}:{nonce}"),
            issued,
        }
    }

    /// Whether the challenge may still be answered at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.issued) <= Duration::from_millis(CHALLENGE_TTL_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_v4_shape() {
        let rng = ring::rand::SystemRandom::new();
        let id = uuid_v4(&rng).expect("random");
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(id, uuid_v4(&rng).expect("random"));
    }

    /// A random source that always fails, as a broken `getrandom` would.
    struct Broken;

    impl RandomSource for Broken {
        fn fill(&self, _dest: &mut [u8]) -> Result<(), RandomnessFailed> {
            Err(RandomnessFailed)
        }
    }

    #[test]
    fn a_failing_random_source_fails_instead_of_falling_back() {
        assert_eq!(uuid_v4(&Broken), Err(RandomnessFailed));
    }

    #[test]
    fn the_challenge_text_is_session_atsign_colon_nonce() {
        let issued = Instant::now();
        let c = Challenge::new("_abc", "@alice", "n1", issued);
        assert_eq!(c.text, "_abc@alice:n1");
        assert!(c.is_fresh(issued));
        assert!(c.is_fresh(issued + Duration::from_millis(CHALLENGE_TTL_MS)));
        assert!(!c.is_fresh(issued + Duration::from_millis(CHALLENGE_TTL_MS + 1)));
    }
}
