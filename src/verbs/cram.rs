//! `cram:<digest>`: owner authentication with the shared CRAM secret.

use super::Reply;
use crate::auth::cram;
use crate::error::AtError;
use crate::protocol::command::Cram;
use crate::session::{Auth, Session};

/// Where the CRAM secret lives (the reference's key).
pub const SECRET_KEY: &str = "privatekey:at_secret";

pub fn apply(session: &mut Session, cmd: Cram<'_>, payload: &mut String) -> Result<Reply, AtError> {
    let (Some(tenant), Some(challenge)) = (session.tenant.clone(), session.challenge.take()) else {
        return Err(super::no_challenge(session));
    };
    let secret = tenant
        .store
        .read(SECRET_KEY, |r| r.value_str().map(str::to_string))?
        .flatten()
        .ok_or_else(|| AtError::key_not_found(SECRET_KEY))?;
    if challenge.is_fresh() && cram::verify(&secret, &challenge.text, cmd.digest) {
        session.auth = Auth::Cram;
        tenant
            .last_login_ms
            .store(super::now_ms(), std::sync::atomic::Ordering::Relaxed);
        payload.push_str("success");
        Ok(Reply::Data)
    } else {
        Err(session.auth_failure("Authentication Failed"))
    }
}
