//! The gate: everything that decides whether a request line runs, in one
//! place and one order, before any handler sees it.
//!
//! The order (the reference's where clients can observe it):
//! 1. **exit**: the trimmed line `@exit` closes the connection, no reply.
//! 2. **rate limit**: an unauthenticated connection may send at most
//!    [`UNAUTH_COMMANDS_PER_SEC_MAX`] commands a second (AT0011 beyond).
//! 3. **identify**: UTF-8, normalised (wire.md §5), matched to a verb in the
//!    reference's dispatch order; none ⇒ AT0003 `invalid command`. A blank
//!    line is a command too: it matches no verb, so it gets that answer, as
//!    in the reference (the C SDK sends one right after connecting and waits
//!    for the reply).
//! 4. **access**: the verb's row admits the caller's kind, else AT0401 —
//!    before the syntax is checked; then the row's namespace rule for an
//!    enrolled caller (APKAM).
//! 5. **parse**: the verb's grammar, else AT0003 with its usage text; then
//!    the **authorization table** (`authorization.rs`): a connection of an
//!    APKAM enrollment that left `approved` is closed with its colon-form
//!    code, and one that is approved may touch only what its namespaces
//!    grant (AT0009).
//! 6. **implemented**: a verb this server does not serve yet ⇒ AT0011.
//!
//! What passes is a [`Planned`] command with the typed [`Caller`] that
//! proves who sent it, so no handler checks authentication itself.

use std::borrow::Cow;
use std::time::Instant;

use super::table::{VerbRow, row_of};
use crate::connection::{Caller, ConnectionState};
use crate::error::{AtCode, AtError};
use crate::limits::UNAUTH_COMMANDS_PER_SEC_MAX;
use crate::protocol::command::Command;
use crate::protocol::frame::trim_line;
use crate::protocol::parse::{self, normalize};

/// What the gate decided for one line.
// A verdict lives on the stack for one line; boxing the large `Command`
// would cost an allocation per request instead.
#[allow(clippy::large_enum_variant)]
pub enum Verdict<'a> {
    /// `@exit`: answer everything before it, then close without a reply.
    Exit,
    /// Refused before any handler ran.
    Refuse(AtError),
    /// Run it.
    Run(Planned<'a>),
}

/// A line that passed the gate.
pub struct Planned<'a> {
    pub row: &'static VerbRow,
    /// Who sent it, as proven on the connection.
    pub caller: Caller,
    pub command: Command<'a>,
}

/// Applies the gate to one raw line (without its `\n`). `scratch` holds the
/// normalised line when normalising had to change it, so the planned
/// command can borrow from it.
pub fn admit<'a>(
    state: &mut ConnectionState,
    raw: &'a [u8],
    scratch: &'a mut String,
    now: impl FnOnce() -> Instant,
) -> Verdict<'a> {
    // 1. exit
    let line = trim_line(raw);
    if line == b"@exit" {
        return Verdict::Exit;
    }
    // 2. rate limit
    if !state.admit_command(now) {
        return Verdict::Refuse(AtError::new(
            AtCode::InternalServerException,
            format!(
                "too many requests: at most {UNAUTH_COMMANDS_PER_SEC_MAX} per second before authentication"
            ),
        ));
    }
    // 3. identify
    let Ok(text) = std::str::from_utf8(line) else {
        return Verdict::Refuse(AtError::new(
            AtCode::InvalidSyntax,
            "request is not valid UTF-8",
        ));
    };
    let normalized: &'a str = match normalize(text) {
        Cow::Borrowed(text) => text,
        Cow::Owned(owned) => {
            *scratch = owned;
            let scratch: &'a String = scratch;
            scratch.as_str()
        }
    };
    let Some(verb) = parse::identify(normalized) else {
        return Verdict::Refuse(AtError::invalid_command());
    };
    let row = row_of(verb);
    // 4. access
    let caller = state.caller();
    if !row.access.admits(caller.kind()) {
        return Verdict::Refuse(AtError::needs_auth());
    }
    // 5. parse
    let command = match parse::parse(verb, normalized) {
        Ok(command) => command,
        Err(error) => return Verdict::Refuse(error.into()),
    };
    // 5b. authorization: an APKAM enrollment's namespaces (and its state)
    if let Err(error) = super::authorization::authorize(row, &command, &caller) {
        return Verdict::Refuse(error);
    }
    // 6. implemented
    if !row.implemented {
        return Verdict::Refuse(not_supported_yet(row));
    }
    Verdict::Run(Planned {
        row,
        caller,
        command,
    })
}

/// AT0011 for a verb this server parses but does not serve yet.
pub fn not_supported_yet(row: &VerbRow) -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        format!("{} is not supported by this server yet", row.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::AuthMethod;
    use crate::protocol::command::VerbId;
    use crate::verbs::table::{Access, rows};

    fn anonymous() -> ConnectionState {
        ConnectionState::new("_s".into(), None, None, Instant::now())
    }

    fn owner() -> ConnectionState {
        let mut state = anonymous();
        state.issue_challenge(
            crate::context::testing::tenant("@alice"),
            "n",
            Instant::now(),
        );
        state.authenticate_owner(AuthMethod::Cram);
        state
    }

    fn peer() -> ConnectionState {
        let tenant = crate::context::testing::tenant("@alice");
        let mut state = ConnectionState::new("_s".into(), None, Some(tenant), Instant::now());
        state.authenticate_peer("@bob".into());
        state
    }

    fn refusal(state: &mut ConnectionState, line: &str) -> Option<AtError> {
        let mut scratch = String::new();
        match admit(state, line.as_bytes(), &mut scratch, Instant::now) {
            Verdict::Refuse(error) => Some(error),
            _ => None,
        }
    }

    /// A line that identifies as `verb` but matches none of its grammar, so
    /// only a check made before parsing can explain an AT0401.
    fn malformed(verb: VerbId) -> String {
        let name = verb.name();
        [
            format!("{name}:\u{1}::"),
            format!("{name}:"),
            name.to_string(),
        ]
        .into_iter()
        .find(|line| parse::identify(line) == Some(verb) && parse::parse(verb, line).is_err())
        .unwrap_or_else(|| panic!("no malformed line found for {name}"))
    }

    #[test]
    fn every_verb_not_open_to_anyone_is_at0401_before_its_syntax() {
        for row in rows() {
            if row.access == Access::Anyone {
                continue;
            }
            let line = malformed(row.verb);
            let error = refusal(&mut anonymous(), &line).expect("refused");
            assert_eq!(error.code, AtCode::AuthFailed, "{} anonymous", row.name);
            if !row.access.admits(crate::connection::CallerKind::Peer) {
                let error = refusal(&mut peer(), &line).expect("refused");
                assert_eq!(error.code, AtCode::AuthFailed, "{} as a peer", row.name);
            }
            if !row.access.admits(crate::connection::CallerKind::Owner) {
                let error = refusal(&mut owner(), &line).expect("refused");
                assert_eq!(error.code, AtCode::AuthFailed, "{} as the owner", row.name);
            }
        }
    }

    #[test]
    fn the_owner_passes_access_and_meets_the_syntax_check() {
        for row in rows() {
            if row.access == Access::Anyone
                || !row.access.admits(crate::connection::CallerKind::Owner)
            {
                continue;
            }
            let line = malformed(row.verb);
            let error = refusal(&mut owner(), &line).expect("malformed is refused");
            assert_eq!(error.code, AtCode::InvalidSyntax, "{}", row.name);
        }
    }

    #[test]
    fn exit_comes_first_and_blank_lines_are_unknown_verbs() {
        let mut scratch = String::new();
        let mut state = anonymous();
        assert!(matches!(
            admit(&mut state, b"@exit\r", &mut scratch, Instant::now),
            Verdict::Exit
        ));
        for blank in ["", "  ", "\t \r"] {
            let error = refusal(&mut state, blank).expect("blank");
            assert_eq!(error.code, AtCode::InvalidSyntax);
            assert_eq!(error.message, "invalid command");
        }
        let error = refusal(&mut state, "exit").expect("unknown");
        assert_eq!(error.message, "invalid command");
        let error = refusal(&mut state, "update:\u{1}").expect("owner verb");
        assert_eq!(error.code, AtCode::AuthFailed);
    }

    #[test]
    fn verbs_not_served_yet_are_at0011_after_access_and_syntax() {
        let error = refusal(&mut owner(), "config:block:add:@bob").expect("not served");
        assert_eq!(error.code, AtCode::InternalServerException);
        assert_eq!(error.message, "config is not supported by this server yet");
        let error = refusal(&mut anonymous(), "config:block:add:@bob").expect("owner only");
        assert_eq!(error.code, AtCode::AuthFailed);
    }

    #[test]
    fn a_normalised_line_is_planned_from_the_scratch_buffer() {
        let mut scratch = String::new();
        let mut state = owner();
        match admit(
            &mut state,
            b"LLOOKUP:phone@alice",
            &mut scratch,
            Instant::now,
        ) {
            Verdict::Run(planned) => {
                assert_eq!(planned.row.verb, VerbId::LLookup);
                assert!(matches!(planned.caller, Caller::Owner(_)));
            }
            _ => panic!("llookup runs for the owner"),
        }
    }
}
