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
pub mod write;

use crate::error::{AtCode, AtError};
use crate::protocol::command::{Command, KeyRef, LookupOp, VerbId};
use crate::protocol::parse;
use crate::protocol::reply;
use crate::session::{Flow, Session};
pub use write::PreparedWrite;

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

/// What a request line turned out to be, once identified, gated and parsed.
// A `Step` lives on the stack for one line; boxing the large `Command` would
// cost an allocation per request instead.
#[allow(clippy::large_enum_variant)]
pub enum Step<'a> {
    /// A validated owner write for the storage actor; answered with its
    /// commit id once durable.
    Write(PreparedWrite),
    /// `llookup` of one key: it may run while writes to *other* keys are in
    /// flight, since its answer cannot depend on them.
    Read { key: KeyRef<'a>, op: LookupOp },
    /// Everything else runs after every in-flight write has completed.
    Other(Command<'a>),
}

/// Identifies, gates and parses a normalised line (the reference's order:
/// unknown verb ⇒ AT0003, then auth ⇒ AT0401, then syntax ⇒ AT0003).
pub fn plan<'a>(session: &Session, normalized: &'a str) -> Result<Step<'a>, AtError> {
    let verb = parse::identify(normalized).ok_or_else(AtError::invalid_command)?;
    let (access, implemented) = rule(verb);
    if access == Access::Owner && !session.is_owner() {
        return Err(AtError::needs_auth());
    }
    let command = parse::parse(verb, normalized).map_err(AtError::from)?;
    if !implemented {
        return Err(not_supported_yet(verb));
    }
    Ok(match command {
        Command::Update(c) => Step::Write(update::prepare(session, c)?),
        Command::UpdateMeta(c) => Step::Write(update_meta::prepare(session, c)?),
        Command::Delete(c) => Step::Write(delete::prepare(session, c)?),
        Command::LLookup(c) => Step::Read {
            key: c.key,
            op: c.op,
        },
        other => Step::Other(other),
    })
}

/// Runs an `llookup` planned as [`Step::Read`] and appends its reply.
pub fn run_read(session: &mut Session, key: &str, op: LookupOp, out: &mut Vec<u8>) -> Flow {
    let mut payload = std::mem::take(&mut session.payload);
    payload.clear();
    let result = llookup::apply(session, key, op, &mut payload);
    session.payload = payload;
    respond(session, result, out)
}

/// Runs a command planned as [`Step::Other`] and appends its reply.
pub async fn run_other(session: &mut Session, command: Command<'_>, out: &mut Vec<u8>) -> Flow {
    let mut payload = std::mem::take(&mut session.payload);
    payload.clear();
    let result = dispatch(session, command, &mut payload).await;
    session.payload = payload;
    respond(session, result, out)
}

/// Appends the reply of a completed write: its commit id, or its error.
pub fn respond_write(
    session: &mut Session,
    result: Result<Option<u64>, AtError>,
    out: &mut Vec<u8>,
) -> Flow {
    let mut payload = std::mem::take(&mut session.payload);
    payload.clear();
    let result = result.map(|commit_id| {
        write::write_commit_id(&mut payload, commit_id);
        Reply::Data
    });
    session.payload = payload;
    respond(session, result, out)
}

/// The one place a handler's result becomes reply bytes.
fn respond(session: &Session, result: Result<Reply, AtError>, out: &mut Vec<u8>) -> Flow {
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
        Command::Lookup(c) => lookup::apply(session, c, payload),
        Command::PLookup(c) => plookup::apply(session, c, payload),
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
