//! `pkam:[signingAlgo:…:][hashingAlgo:…:][enrollmentId:…:]<signature>`.

use std::sync::Arc;
use std::time::Instant;

use super::Reply;
use super::cram::{missing_challenge, refuse_login};
use crate::auth::enrollment::{self, Enrolled, State};
use crate::auth::pkam;
use crate::clock::Clock;
use crate::connection::{AuthMethod, ConnectionState};
use crate::context::ServerContext;
use crate::error::AtError;
use crate::protocol::command::{Pkam, SigningAlgo};

/// The legacy PKAM public key (written by the onboarding client).
pub const PKAM_PUBLIC_KEY: &str = "privatekey:at_pkam_publickey";

/// The enrollment id that names the legacy key (at_commons 5.18.0).
pub const PRIMARY_ENROLLMENT: &str = "primary";

/// The algorithm an enrollment recorded (an unknown or absent one is
/// rsa2048, as in the reference).
fn recorded_algo(recorded: Option<&str>) -> SigningAlgo {
    match recorded {
        Some("mldsa65") => SigningAlgo::MlDsa65,
        Some("ecc_secp256r1") => SigningAlgo::EccSecp256r1,
        _ => SigningAlgo::Rsa2048,
    }
}

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
    // `primary` names the flat legacy key (changes §4.4): the same as a
    // bare `pkam:`.
    let enrollment_id = cmd.enrollment_id.filter(|id| *id != PRIMARY_ENROLLMENT);
    let (public_key, signing_algo, enrollment) = match enrollment_id {
        None => {
            let key = tenant
                .store
                .read(PKAM_PUBLIC_KEY, |r| r.value_str().map(str::to_string))?
                .flatten()
                .ok_or_else(|| AtError::key_not_found(PKAM_PUBLIC_KEY))?;
            // Legacy pkam: the algorithm is the wire's (absent: rsa2048).
            (key, cmd.signing_algo, None)
        }
        Some(id) => {
            let found = enrollment::load(&tenant.store, id)?;
            let state_now = found
                .as_ref()
                .map_or(State::Expired, |e| e.state_at(super::now_ms()));
            let Some(found) = found.filter(|_| state_now == State::Approved) else {
                state.forget_authentication();
                return Err(state_now.refusal(id));
            };
            // APKAM: the algorithm the enrollment recorded, never the wire's.
            let algo = recorded_algo(found.signing_algo.as_deref());
            (found.apkam_public_key.clone(), Some(algo), Some(found))
        }
    };
    const FAILED: &str = "pkam authentication failed";
    if !challenge.is_fresh(Instant::now()) {
        return Err(refuse_login(server, state, &tenant, clock, "pkam", FAILED).await);
    }
    match pkam::verify(
        signing_algo,
        cmd.hashing_algo,
        &public_key,
        &challenge.text,
        cmd.signature,
    ) {
        Ok(()) => {
            match enrollment {
                None => state.authenticate_owner(AuthMethod::Pkam),
                Some(enrollment) => {
                    tenant.enrollments.record(&enrollment);
                    state.authenticate_enrolled(Arc::new(Enrolled {
                        id: enrollment.id,
                        namespaces: enrollment.namespaces,
                    }));
                }
            }
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
