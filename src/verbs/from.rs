//! `from:@alice[:clientConfig:{…}]`: names the atSign and issues a challenge.
//!
//! Reply: `data:_<session uuid>@alice:<nonce uuid>` — exactly this shape,
//! which current clients check before signing. A second `from:` on an
//! authenticated connection (the SDK's onboarding does this) issues a new
//! challenge and keeps the authentication if it names the same atSign.

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

/// Clients newer than this get JSON error lines (the reference's rule).
const JSON_ERRORS_AFTER_VERSION: (u64, u64, u64) = (3, 0, 37);

pub fn apply(
    server: &ServerContext,
    state: &mut ConnectionState,
    cmd: From<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let atsign = normalize_atsign(cmd.atsign).map_err(AtError::from)?;
    if let Some(config) = cmd.client_config {
        state.set_error_style(error_style_for(config)?);
    }
    let Some(tenant) = server.tenant(&atsign).cloned() else {
        // Another atSign proving itself (from + pol) is server-to-server
        // authentication, which a later milestone brings.
        return Err(AtError::new(
            AtCode::AuthFailed,
            format!(
                "{atsign} is not hosted here and server-to-server authentication (pol) is not supported yet"
            ),
        ));
    };
    let nonce = uuid_v4(&server.rng)?;
    payload.push_str(state.issue_challenge(tenant, &nonce, Instant::now()));
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
