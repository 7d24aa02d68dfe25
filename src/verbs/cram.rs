//! `cram:<digest>`: owner authentication with the shared CRAM secret.

use std::sync::Arc;
use std::time::Instant;

use super::Reply;
use crate::admission::source_bucket;
use crate::auth::cram;
use crate::auth::throttle::delay_for;
use crate::clock::Clock;
use crate::connection::{AuthMethod, ConnectionState};
use crate::context::{ServerContext, Tenant};
use crate::error::{AtCode, AtError};
use crate::limits::{LOGIN_FREE_FAILURES, LOGIN_FREE_FAILURES_PER_SOURCE};
use crate::protocol::command::Cram;

/// Where the CRAM secret lives (the reference's key).
pub const SECRET_KEY: &str = "privatekey:at_secret";

pub async fn apply<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    clock: &C,
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
        tenant.login_failures.clear();
        tenant
            .last_login_ms
            .store(super::now_ms(), std::sync::atomic::Ordering::Relaxed);
        payload.push_str("success");
        Ok(Reply::Data)
    } else {
        Err(refuse_login(
            server,
            state,
            &tenant,
            clock,
            "cram",
            "Authentication Failed",
        )
        .await)
    }
}

/// A failed `cram`/`pkam`: drops the connection's authentication, counts
/// the failure for the atSign and for the source address, logs it, and
/// waits the delay those counts call for before the error is answered.
pub(super) async fn refuse_login<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    tenant: &Arc<Tenant>,
    clock: &C,
    method: &'static str,
    message: &str,
) -> AtError {
    let error = state.fail_authentication(message);
    let now = u64::try_from(super::now_ms()).unwrap_or(0);
    let by_atsign = tenant.login_failures.record(now);
    let by_source = state
        .peer()
        .and_then(|ip| server.login_failures_by_source.bucket(source_bucket(ip)))
        .map_or(0, |counter| counter.record(now));
    let delay = delay_for(by_atsign, LOGIN_FREE_FAILURES)
        .max(delay_for(by_source, LOGIN_FREE_FAILURES_PER_SOURCE));
    tracing::warn!(
        atsign = %tenant.atsign,
        source = ?state.peer(),
        by_atsign,
        by_source,
        delay_ms = delay.as_millis() as u64,
        "{method} login failed"
    );
    if !delay.is_zero() {
        clock.sleep(delay).await;
    }
    error
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
