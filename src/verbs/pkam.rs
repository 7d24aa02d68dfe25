//! `pkam:[signingAlgo:…:][hashingAlgo:…:][enrollmentId:…:]<signature>`.

use std::time::Instant;

use super::Reply;
use super::cram::{missing_challenge, refuse_login};
use crate::auth::pkam;
use crate::clock::Clock;
use crate::connection::{AuthMethod, ConnectionState};
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::command::Pkam;

/// The legacy PKAM public key (written by the onboarding client).
pub const PKAM_PUBLIC_KEY: &str = "privatekey:at_pkam_publickey";

pub async fn apply<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    clock: &C,
    cmd: Pkam<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let Some((tenant, challenge)) = state.take_challenge() else {
        return Err(missing_challenge(state));
    };
    if let Some(enrollment) = cmd.enrollment_id {
        // No enrollment exists until APKAM lands: every id is unknown.
        state.forget_authentication();
        return Err(AtError::new(
            AtCode::ApkamExpired,
            format!("enrollment_id: {enrollment} is expired or invalid"),
        )
        .response_object());
    }
    let public_key = tenant
        .store
        .read(PKAM_PUBLIC_KEY, |r| r.value_str().map(str::to_string))?
        .flatten()
        .ok_or_else(|| AtError::key_not_found(PKAM_PUBLIC_KEY))?;
    const FAILED: &str = "pkam authentication failed";
    if !challenge.is_fresh(Instant::now()) {
        return Err(refuse_login(server, state, &tenant, clock, "pkam", FAILED).await);
    }
    match pkam::verify(
        cmd.signing_algo,
        cmd.hashing_algo,
        &public_key,
        &challenge.text,
        cmd.signature,
    ) {
        Ok(()) => {
            state.authenticate_owner(AuthMethod::Pkam);
            tenant.login_failures.clear();
            let now = super::now_ms();
            tenant
                .last_login_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
            tenant
                .last_pkam_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
            payload.push_str("success");
            Ok(Reply::Data)
        }
        Err(failure) => {
            tracing::debug!(?failure, atsign = %tenant.atsign, "pkam refused");
            Err(refuse_login(server, state, &tenant, clock, "pkam", FAILED).await)
        }
    }
}
