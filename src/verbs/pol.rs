//! `pol`: another atServer answers the challenge of its `from:@bob`
//! (server-to-server.md §3, verifier side). This server looks up the
//! signed cookie `<session>@bob` and `signing_publickey@bob` on @bob's
//! server, unauthenticated, and checks the RSA-SHA256 signature of the
//! nonce. Success is the bare `@bob@` prompt; the connection is then
//! pol-authenticated as @bob.

use std::time::Instant;

use super::Reply;
use crate::auth::signing::verify_base64;
use crate::connection::ConnectionState;
use crate::error::{AtCode, AtError};
use crate::remote::peers::PeerAccess;
use crate::remote::pol::{PolError, proof_field};

pub async fn apply(state: &mut ConnectionState, peers: &dyn PeerAccess) -> Result<Reply, AtError> {
    let Some(challenge) = state.take_pol_challenge() else {
        // The reference fails with an unhandled error here and closes.
        return Err(AtError::new(
            AtCode::InternalServerException,
            "pol needs a from: for another atSign first",
        )
        .closing());
    };
    if !challenge.is_fresh(Instant::now()) {
        return Err(AtError::new(
            AtCode::AuthFailed,
            "Pol Authentication Failed: the challenge has expired",
        ));
    }
    let claimed = challenge.claimed.as_str();
    let cookie_line = format!("lookup:{}{claimed}", state.session_id());
    let key_line = format!("lookup:signing_publickey{claimed}");
    let fetch = |line: String| async move {
        let reply = peers
            .request_anonymous(claimed, &line)
            .await
            .map_err(|e| unverifiable(&e.to_string()))?;
        // The prover's server's own error (e.g. its "not found") is relayed;
        // anything else it sent instead of a value is unverifiable.
        proof_field(reply).map_err(|e| match &e {
            PolError::ProofUnavailable(reply) => crate::remote::outbound::relayed_error(reply)
                .unwrap_or_else(|| unverifiable(&e.to_string())),
            other => unverifiable(&other.to_string()),
        })
    };
    let signature = fetch(cookie_line).await?;
    let signing_key = fetch(key_line).await?;
    if !verify_base64(&signing_key, challenge.nonce.as_bytes(), &signature) {
        tracing::warn!(claimed, peer = ?state.peer(), "pol proof does not verify");
        return Err(AtError::new(
            AtCode::AuthFailed,
            "Pol Authentication Failed",
        ));
    }
    state.authenticate_peer(challenge.claimed);
    Ok(Reply::BarePrompt)
}

fn unverifiable(why: &str) -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        format!("Unable to verify signature: {why}"),
    )
}
