//! Verbs: one file per verb, one table of shared checks, one dispatcher.
//!
//! Order of work for every line (the reference's, which clients observe):
//! normalise → identify the verb (unknown ⇒ AT0003 `invalid command`) → the
//! gate (auth ⇒ AT0401, *before* syntax) → parse (⇒ AT0003 with usage) →
//! handler. The gate is the only place that decides who may run a verb.

mod cram;
mod delete;
mod from;
mod info;
mod llookup;
mod lookup;
pub mod metadata;
mod noop;
mod pkam;
mod plookup;
mod scan;
mod stats;
mod update;
mod update_meta;

use crate::error::{AtCode, AtError};
use crate::protocol::command::{Command, VerbId};
use crate::protocol::parse;
use crate::protocol::reply;
use crate::session::{Flow, Session};

/// What a handler produced, besides the payload it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `data:<payload>` and the prompt.
    Data,
    /// `data: <payload>` and the prompt (the reference's `stats` shape).
    DataSpaced,
}

/// Who may run a verb (checked before its syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Any connection, authenticated or not.
    Anyone,
    /// Only the owner, proven by cram or pkam.
    Owner,
}

/// The verb table: access, and whether this server implements it yet.
const fn rule(verb: VerbId) -> (Access, bool) {
    use Access::{Anyone, Owner};
    match verb {
        VerbId::From | VerbId::Cram | VerbId::Pkam => (Anyone, true),
        VerbId::Info | VerbId::Noop | VerbId::Lookup | VerbId::Scan => (Anyone, true),
        VerbId::Update | VerbId::UpdateMeta | VerbId::LLookup | VerbId::PLookup => (Owner, true),
        VerbId::Delete | VerbId::Stats => (Owner, true),
        // Parsed now, served in later milestones.
        VerbId::Pol | VerbId::To | VerbId::Stream | VerbId::NotifyList | VerbId::NotifyStatus => {
            (Anyone, false)
        }
        VerbId::Enroll => (Anyone, false),
        VerbId::Config
        | VerbId::Monitor
        | VerbId::Notify
        | VerbId::NotifyAll
        | VerbId::NotifyRemove
        | VerbId::NotifyFetch
        | VerbId::NotifyMulti
        | VerbId::Batch
        | VerbId::SyncFrom
        | VerbId::Otp
        | VerbId::Keys => (Owner, false),
    }
}

fn not_supported_yet(verb: VerbId) -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        format!("{} is not supported by this server yet", verb.name()),
    )
}

/// Runs one request line and appends the reply to `out`.
pub async fn execute(session: &mut Session, text: &str, out: &mut Vec<u8>) -> Flow {
    let normalized = parse::normalize(text);
    let result = match parse::identify(&normalized) {
        None => Err(AtError::invalid_command()),
        Some(verb) => run(session, verb, &normalized).await,
    };
    match result {
        Ok(kind) => {
            let prompt = session.prompt();
            match kind {
                Reply::Data => reply::data(out, &session.payload, prompt),
                Reply::DataSpaced => reply::data_spaced(out, &session.payload, prompt),
            }
            Flow::Continue
        }
        Err(error) => {
            session.write_error(&error, out);
            if error.close {
                Flow::Close
            } else {
                Flow::Continue
            }
        }
    }
}

async fn run(session: &mut Session, verb: VerbId, normalized: &str) -> Result<Reply, AtError> {
    let (access, implemented) = rule(verb);
    if access == Access::Owner && !session.is_owner() {
        return Err(AtError::needs_auth());
    }
    let command = parse::parse(verb, normalized).map_err(AtError::from)?;
    if !implemented {
        return Err(not_supported_yet(verb));
    }
    session.payload.clear();
    let mut payload = std::mem::take(&mut session.payload);
    let result = dispatch(session, command, &mut payload).await;
    session.payload = payload;
    result
}

async fn dispatch(
    session: &mut Session,
    command: Command<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    match command {
        Command::From(c) => from::apply(session, c, payload),
        Command::Cram(c) => cram::apply(session, c, payload),
        Command::Pkam(c) => pkam::apply(session, c, payload),
        Command::Info(c) => info::apply(session, c, payload),
        Command::Noop(c) => noop::apply(c, payload).await,
        Command::Update(c) => update::apply(session, c, payload).await,
        Command::UpdateMeta(c) => update_meta::apply(session, c, payload).await,
        Command::LLookup(c) => llookup::apply(session, c, payload),
        Command::Lookup(c) => lookup::apply(session, c, payload),
        Command::PLookup(c) => plookup::apply(session, c, payload),
        Command::Delete(c) => delete::apply(session, c, payload).await,
        Command::Scan(c) => scan::apply(session, c, payload),
        Command::Stats(c) => stats::apply(session, c, payload),
        other => Err(not_supported_yet(other.verb())),
    }
}

/// The tenant of an owner-authenticated session (the gate guarantees one).
fn owner_tenant(session: &Session) -> Result<std::sync::Arc<crate::context::Tenant>, AtError> {
    session.owner().cloned().ok_or_else(AtError::needs_auth)
}

/// Checks that a key's owner part, if present, is the session's atSign.
fn check_owner(owner: Option<&str>, tenant_atsign: &str, verb: &str) -> Result<(), AtError> {
    if let Some(owner) = owner {
        let owner = crate::protocol::atsign::normalize_atsign(owner).map_err(AtError::from)?;
        if owner != tenant_atsign {
            return Err(AtError::new(
                AtCode::InvalidKey,
                format!(
                    "Invalid {verb} command - sharedBy atsign {owner} should be same as current atsign {tenant_atsign}"
                ),
            ));
        }
    }
    Ok(())
}

/// The reference's key-length rule (AT0016).
fn check_key_length(key: &str) -> Result<(), AtError> {
    let max = if key.starts_with("cached:") {
        crate::limits::CACHED_KEY_CHARS_MAX
    } else {
        crate::limits::KEY_CHARS_MAX
    };
    let len = crate::protocol::atkey::reference_len(key);
    if len > max {
        return Err(AtError::new(
            AtCode::InvalidKey,
            format!("key length {len} is greater than max allowed {max} chars"),
        ));
    }
    Ok(())
}

/// `cram`/`pkam` without a fresh `from:` first: the reference reports the
/// missing challenge record as AT0015.
fn no_challenge(session: &Session) -> AtError {
    let atsign = session.tenant.as_ref().map_or("", |t| t.atsign.as_str());
    AtError::new(
        AtCode::KeyNotFound,
        format!(
            "private:{}{atsign} does not exist in keystore",
            session.session_id
        ),
    )
}

/// Current time in epoch milliseconds.
fn now_ms() -> i64 {
    crate::storage::actor::now_ms()
}

pub use cram::SECRET_KEY;
pub use delete::SECRET_DELETED_KEY;
