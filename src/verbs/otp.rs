//! `otp:get[:ttl:<ms>]` ⇒ `data:<otp>`, a one-time passcode for a new
//! device's `enroll:request`; `otp:put:<spp>[:ttl:<ms>]` ⇒ `data:ok`, the
//! semi-permanent passcode (auth.md §5). The records and the rules are in
//! [`crate::auth::otp`]. Owners only (the verb table); what an APKAM
//! enrollment needs for them (`__manage`) is the gate's.

use super::{Reply, now_ms};
use crate::auth::challenge::RandomSource;
use crate::auth::otp;
use crate::connection::Owner;
use crate::context::ServerContext;
use crate::error::AtError;
use crate::protocol::command::{Otp, OtpOp, VerbId};
use crate::protocol::parse::ParseError;

pub async fn apply(
    server: &ServerContext,
    owner: &Owner,
    cmd: Otp<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    respond(owner, cmd, &server.rng, payload).await
}

/// [`apply`] with its random source named: the system's in the server, a
/// broken one in tests.
async fn respond(
    owner: &Owner,
    cmd: Otp<'_>,
    rng: &impl RandomSource,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let store = &owner.tenant().store;
    match cmd.op {
        OtpOp::Get => {
            let code = otp::issue(store, rng, cmd.ttl, now_ms()).await?;
            payload.push_str(&code);
        }
        OtpOp::Put => {
            // The grammar lets `otp:put` go without a passcode; the
            // reference would store a null one. Refused as its syntax.
            let spp = cmd.passcode.ok_or(ParseError::Syntax(VerbId::Otp))?;
            otp::put_spp(store, spp, cmd.ttl, now_ms()).await?;
            payload.push_str("ok");
        }
    }
    Ok(Reply::Data)
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;

    use super::*;
    use crate::connection::Caller;
    use crate::error::AtCode;
    use crate::verbs::testing::owner_of;

    fn run(atsign: &str, cmd: Otp<'_>) -> (Result<Reply, AtError>, String) {
        let tenant = crate::context::testing::tenant(atsign);
        let Caller::Owner(owner) = owner_of(&tenant) else {
            panic!("an owner");
        };
        let mut payload = String::new();
        let rng = ring::rand::SystemRandom::new();
        let result = block_on(respond(&owner, cmd, &rng, &mut payload));
        (result, payload)
    }

    #[test]
    fn get_answers_the_code_and_put_answers_ok() {
        let get = Otp {
            op: OtpOp::Get,
            passcode: None,
            ttl: None,
        };
        let (result, code) = run("@otp-verb", get);
        assert_eq!(result, Ok(Reply::Data));
        assert_eq!(code.len(), otp::OTP_CHARS);
        let put = Otp {
            op: OtpOp::Put,
            passcode: Some("ABC123"),
            ttl: None,
        };
        assert_eq!(run("@otp-verb", put), (Ok(Reply::Data), "ok".to_string()));
    }

    #[test]
    fn put_without_a_passcode_is_a_syntax_error() {
        let put = Otp {
            op: OtpOp::Put,
            passcode: None,
            ttl: Some(5),
        };
        let (result, payload) = run("@otp-verb-bare-put", put);
        let error = result.expect_err("refused");
        assert_eq!(error.code, AtCode::InvalidSyntax);
        assert!(payload.is_empty());
    }
}
