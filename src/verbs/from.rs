//! `from:@alice[:clientConfig:{…}]`: names the atSign and issues a challenge.
//!
//! Reply: `data:_<session uuid>@alice:<nonce uuid>` — exactly this shape,
//! which current clients check before signing. A second `from:` on an
//! authenticated connection (the SDK's onboarding does this) issues a new
//! challenge and keeps the authentication if it names the same atSign.
//!
//! `from:@bob` for an atSign this process does not host is another
//! atServer starting `pol` (server-to-server.md §3): its TLS client
//! certificate must name the host the directory gives for @bob, and the
//! reply is `data:proof:_<session>@bob:<nonce>`.

use std::time::Instant;

use super::Reply;
use crate::auth::challenge::uuid_v4;
use crate::connection::ConnectionState;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::From;
use crate::protocol::json;
use crate::protocol::reply::ErrorStyle;
use crate::remote::certificate::certificate_names_host;
use crate::remote::peers::PeerAccess;

/// Clients newer than this get JSON error lines (the reference's rule).
const JSON_ERRORS_AFTER_VERSION: (u64, u64, u64) = (3, 0, 37);

pub async fn apply(
    server: &ServerContext,
    state: &mut ConnectionState,
    peers: &dyn PeerAccess,
    cmd: From<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let atsign = normalize_atsign(cmd.atsign).map_err(AtError::from)?;
    if let Some(config) = cmd.client_config {
        state.set_error_style(error_style_for(config)?);
    }
    let Some(tenant) = server.tenant(&atsign).cloned() else {
        return challenge_peer(server, state, peers, atsign, payload).await;
    };
    let nonce = uuid_v4(&server.rng)?;
    payload.push_str(state.issue_challenge(tenant, &nonce, Instant::now()));
    Ok(Reply::Data)
}

/// `from:@other` by another atServer.
async fn challenge_peer(
    server: &ServerContext,
    state: &mut ConnectionState,
    peers: &dyn PeerAccess,
    claimed: String,
    payload: &mut String,
) -> Result<Reply, AtError> {
    if state.tenant().is_none() {
        // A process hosting several atSigns learns which one a peer wants
        // from its `to:` (Dart servers send it first since 3.16.6).
        return Err(AtError::new(
            AtCode::AuthFailed,
            "this server hosts several atSigns: name one with to:@<atSign> before from:",
        ));
    }
    if server.peer_certificates_required {
        let address = peers
            .resolve(&claimed)
            .await
            .map_err(|e| e.for_atsign(&claimed).to_at_error())?;
        let named = state
            .peer_certificate()
            .is_some_and(|cert| certificate_names_host(cert, &address.host));
        if !named {
            return Err(AtError::new(
                AtCode::AuthFailed,
                "Certificate Verification Failed",
            ));
        }
    }
    let nonce = uuid_v4(&server.rng)?;
    payload.push_str(&state.issue_pol_challenge(claimed, nonce, Instant::now()));
    Ok(Reply::Data)
}

/// The error style a `clientConfig` asks for; it must carry a string version.
fn error_style_for(config: &str) -> Result<ErrorStyle, AtError> {
    let value = json::parse(config)
        .map_err(|_| AtError::new(AtCode::InvalidSyntax, "clientConfig is not valid JSON"))?;
    let version = value
        .get("version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            AtError::new(
                AtCode::InternalServerError,
                "clientConfig must contain a string version",
            )
        })?;
    Ok(
        if semver(version).is_some_and(|v| v > JSON_ERRORS_AFTER_VERSION) {
            ErrorStyle::Json
        } else {
            ErrorStyle::Legacy
        },
    )
}

/// `major.minor.patch` with any pre-release or build suffix ignored.
fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_after_3_0_37_get_json_errors() {
        assert_eq!(
            error_style_for(r#"{"version":"3.0.38"}"#),
            Ok(ErrorStyle::Json)
        );
        assert_eq!(
            error_style_for(r#"{"version":"3.2.1-rc1"}"#),
            Ok(ErrorStyle::Json)
        );
        assert_eq!(
            error_style_for(r#"{"version":"3.0.37"}"#),
            Ok(ErrorStyle::Legacy)
        );
        assert_eq!(
            error_style_for(r#"{"version":"n/a"}"#),
            Ok(ErrorStyle::Legacy)
        );
        assert_eq!(
            error_style_for(r#"{"appName":"x"}"#).map_err(|e| e.code),
            Err(AtCode::InternalServerError)
        );
    }
}
