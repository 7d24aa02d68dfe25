//! `cram:<digest>`: owner authentication with the shared CRAM secret.

use std::time::Instant;

use super::Reply;
use crate::auth::cram;
use crate::connection::{AuthMethod, ConnectionState};
use crate::error::{AtCode, AtError};
use crate::protocol::command::Cram;

/// Where the CRAM secret lives (the reference's key).
pub const SECRET_KEY: &str = "privatekey:at_secret";

pub fn apply(
    state: &mut ConnectionState,
    cmd: Cram<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let Some((tenant, challenge)) = state.take_challenge() else {
        return Err(missing_challenge(state));
    };
    let secret = tenant
        .store
        .read(SECRET_KEY, |r| r.value_str().map(str::to_string))?
        .flatten()
        .ok_or_else(|| AtError::key_not_found(SECRET_KEY))?;
    if challenge.is_fresh(Instant::now()) && cram::verify(&secret, &challenge.text, cmd.digest) {
        state.authenticate_owner(AuthMethod::Cram);
        tenant
            .last_login_ms
            .store(super::now_ms(), std::sync::atomic::Ordering::Relaxed);
        payload.push_str("success");
        Ok(Reply::Data)
    } else {
        Err(state.fail_authentication("Authentication Failed"))
    }
}

/// `cram`/`pkam` without a fresh `from:` first: the reference reports the
/// missing challenge record as AT0015.
pub(super) fn missing_challenge(state: &ConnectionState) -> AtError {
    let atsign = state.tenant().map_or("", |t| t.atsign.as_str());
    AtError::new(
        AtCode::KeyNotFound,
        format!(
            "private:{}{atsign} does not exist in keystore",
            state.session_id()
        ),
    )
}
