//! `from` + `pol` between atServers, both roles, without deciding where
//! connections or keys come from (server-to-server.md §3).
//!
//! **Prover** (this server proving `@me` to another): `from:@me` is
//! answered with `data:proof:<session>@me:<token>`; the prover signs the
//! token verbatim (a bare UUID or a Dart verifier's `pol1.` token alike),
//! publishes the signature as `public:<session>@me` on its own server, where
//! the verifier will look it up, and sends `pol`. The bare `@me@` prompt is
//! success.
//!
//! **Verifier** (another server proving `@bob` to us): having issued the
//! challenge, on `pol` the verifier opens a fresh connection to @bob's
//! server, looks up `<session>@bob` and `signing_publickey@bob` there
//! without authenticating, and checks the signature.

use std::future::Future;

use crate::client::nonblocking::Client;
use crate::client::{ClientError, Reply};
use crate::clock::Clock;
use crate::limits::{POL_FIELD_CHARS_MAX, POL_TOKEN_CHARS_MAX};
use futures_lite::{AsyncRead, AsyncWrite};

/// Why a `pol` exchange failed, in either role.
#[derive(Debug)]
pub enum PolError {
    /// The connection failed, timed out or framed nothing sensible.
    Connection(ClientError),
    /// The other server answered `from:` with an error line (kept whole).
    FromRefused(Vec<u8>),
    /// The `from:` answer was not a `data:proof:<session>@me:<token>` for
    /// the atSign being proven.
    BadChallenge(Vec<u8>),
    /// Signing the token or publishing the cookie failed here.
    Prover(String),
    /// The other server answered `pol` with something other than the
    /// expected prompt (an error line, usually).
    PolRefused(Vec<u8>),
    /// As verifier: the prover's server did not give the cookie or the
    /// signing key (its error line, or what it sent instead).
    ProofUnavailable(Vec<u8>),
    /// As verifier: the signature does not verify with the signing key.
    SignatureInvalid,
}

impl std::fmt::Display for PolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            text.chars().take(120).collect::<String>()
        };
        match self {
            PolError::Connection(e) => write!(f, "{e}"),
            PolError::FromRefused(r) => write!(f, "from refused: {}", shown(r)),
            PolError::BadChallenge(r) => write!(f, "not a pol challenge: {}", shown(r)),
            PolError::Prover(why) => write!(f, "cannot answer the challenge: {why}"),
            PolError::PolRefused(r) => write!(f, "pol refused: {}", shown(r)),
            PolError::ProofUnavailable(r) => write!(f, "proof unavailable: {}", shown(r)),
            PolError::SignatureInvalid => f.write_str("the proof's signature does not verify"),
        }
    }
}

impl std::error::Error for PolError {}

impl From<ClientError> for PolError {
    fn from(error: ClientError) -> PolError {
        match error {
            ClientError::UnexpectedReply { reply, .. } => PolError::PolRefused(reply),
            other => PolError::Connection(other),
        }
    }
}

/// A challenge as the prover reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofChallenge {
    /// Where the verifier will look for the signature: `public:<session>@me`.
    pub cookie_key: String,
    /// What to sign, verbatim.
    pub token: String,
}

/// Reads `data:proof:<session>@me:<token>`. The session part must name
/// `me` (normalised, with its `@`); the token is everything after the
/// session's colon, bounded, without whitespace.
pub fn read_proof_challenge(payload: &[u8], me: &str) -> Option<ProofChallenge> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = text.strip_prefix("data:proof:")?;
    let (session_at, token) = rest.split_once(':')?;
    let session = session_at.strip_suffix(me)?;
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == ':');
    if !plain(session) || session.contains('@') || !plain(token) {
        return None;
    }
    if token.chars().count() > POL_TOKEN_CHARS_MAX {
        return None;
    }
    Some(ProofChallenge {
        cookie_key: format!("public:{session_at}"),
        token: token.to_string(),
    })
}

/// Proves `me` on `client` (a fresh connection to the other server):
/// `from:`, then `sign` the token, `publish` the cookie (key, signature),
/// then `pol`. `publish` must have made the cookie readable when it
/// returns. On success the client's prompt is `@me@`.
pub async fn prove<S, C, Sign, Publish, Published>(
    client: &mut Client<S, C>,
    me: &str,
    sign: Sign,
    publish: Publish,
) -> Result<(), PolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: Clock,
    Sign: FnOnce(&[u8]) -> Result<String, String>,
    Publish: FnOnce(String, String) -> Published,
    Published: Future<Output = Result<(), String>>,
{
    let reply = client.request(&format!("from:{me}")).await?;
    if reply.is_error() {
        return Err(PolError::FromRefused(reply.into_bytes()));
    }
    let challenge = read_proof_challenge(reply.payload(), me)
        .ok_or_else(|| PolError::BadChallenge(reply.as_bytes().to_vec()))?;
    let signature = sign(challenge.token.as_bytes()).map_err(PolError::Prover)?;
    publish(challenge.cookie_key, signature)
        .await
        .map_err(PolError::Prover)?;
    client.pol(me).await.map_err(PolError::from)
}

/// As verifier: the value of the prover's server's answer to a cookie or
/// signing-key lookup, bounded; the answer itself when it is anything else
/// (an error, `null`, an empty or oversized value).
pub fn proof_field(reply: Reply) -> Result<String, PolError> {
    let value = reply
        .data()
        .filter(|v| !v.is_empty() && v.len() <= POL_FIELD_CHARS_MAX && *v != b"null")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string);
    value.ok_or_else(|| PolError::ProofUnavailable(reply.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_and_a_pol1_token_are_both_signed_verbatim() {
        let uuid = read_proof_challenge(
            b"data:proof:_4af24c03-d732-48f8-a9a2-570e8fb6a01c@alice:d6cac849-9c29-42b0-b0c5-493db62728b9",
            "@alice",
        )
        .expect("uuid challenge");
        assert_eq!(
            uuid.cookie_key,
            "public:_4af24c03-d732-48f8-a9a2-570e8fb6a01c@alice"
        );
        assert_eq!(uuid.token, "d6cac849-9c29-42b0-b0c5-493db62728b9");
        let pol1 = read_proof_challenge(
            b"data:proof:_s1@alice:pol1.eyJ2IjoiQGJvYiIsIm4iOiJ4In0=",
            "@alice",
        )
        .expect("pol1 challenge");
        assert_eq!(pol1.token, "pol1.eyJ2IjoiQGJvYiIsIm4iOiJ4In0=");
    }

    #[test]
    fn a_proof_field_is_a_bounded_non_null_value() {
        let ok = Reply::from_bytes_for_tests("data:c2lnbmF0dXJl\n@");
        assert_eq!(proof_field(ok).expect("value"), "c2lnbmF0dXJl");
        for bad in [
            "data:null\n@".to_string(),
            "data:\n@".to_string(),
            "error:AT0015-Exception: public:_s@bob does not exist in keystore\n@".to_string(),
            format!("data:{}\n@", "A".repeat(POL_FIELD_CHARS_MAX + 1)),
        ] {
            assert!(
                matches!(
                    proof_field(Reply::from_bytes_for_tests(&bad)),
                    Err(PolError::ProofUnavailable(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn challenges_for_someone_else_or_malformed_are_refused() {
        for bad in [
            &b"data:_s@alice:n"[..],
            b"data:proof:_s@bob:n",
            b"data:proof:@alice:n",
            b"data:proof:_s@alice:",
            b"data:proof:_s@alice:a b",
            b"data:proof:_s@alice:a:b",
            b"data:proof:_s@x@alice:n",
            b"error:AT0401-Exception: Certificate Verification Failed",
            b"data:proof:_s@alice",
        ] {
            assert_eq!(
                read_proof_challenge(bad, "@alice"),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(
            "data:proof:_s@alice:{}",
            "n".repeat(POL_TOKEN_CHARS_MAX + 1)
        );
        assert_eq!(read_proof_challenge(long.as_bytes(), "@alice"), None);
        let longest = format!("data:proof:_s@alice:{}", "n".repeat(POL_TOKEN_CHARS_MAX));
        assert!(read_proof_challenge(longest.as_bytes(), "@alice").is_some());
    }
}
