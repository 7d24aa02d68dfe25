//! `pkam:[signingAlgo:…:][hashingAlgo:…:][enrollmentId:…:]<signature>`.

use super::Reply;
use crate::auth::pkam;
use crate::error::{AtCode, AtError};
use crate::protocol::command::Pkam;
use crate::session::{Auth, Session};

/// The legacy PKAM public key (written by the onboarding client).
pub const PKAM_PUBLIC_KEY: &str = "privatekey:at_pkam_publickey";

pub fn apply(session: &mut Session, cmd: Pkam<'_>, payload: &mut String) -> Result<Reply, AtError> {
    let (Some(tenant), Some(challenge)) = (session.tenant.clone(), session.challenge.take()) else {
        return Err(super::no_challenge(session));
    };
    if let Some(enrollment) = cmd.enrollment_id {
        // No enrollment exists until APKAM lands: every id is unknown.
        session.auth = Auth::None;
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
    if !challenge.is_fresh() {
        return Err(session.auth_failure("pkam authentication failed"));
    }
    match pkam::verify(
        cmd.signing_algo,
        cmd.hashing_algo,
        &public_key,
        &challenge.text,
        cmd.signature,
    ) {
        Ok(()) => {
            session.auth = Auth::Pkam;
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
            Err(session.auth_failure("pkam authentication failed"))
        }
    }
}
