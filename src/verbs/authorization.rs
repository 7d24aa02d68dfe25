//! The authorization table: (verb, key, caller, enrollment grant) →
//! allow or deny, default deny, applied by the gate to every parsed line
//! before any handler runs (auth.md §6, changes §4.3).
//!
//! Who is restricted: only owners that logged in with an APKAM enrollment.
//! Anonymous callers and peers reach only what the verb table's access
//! class admits them to (and the handlers' own visibility rules); cram and
//! legacy pkam connections are the owner without restriction.
//!
//! For an enrollment:
//! 1. its state must still be `approved`, else the connection closes with
//!    the colon-form code `pkam` would give (AT0025/26/27/28);
//! 2. by the verb's namespace rule (`table::NamespaceRule`):
//!    - `Unrestricted` (from, cram, pkam, pol, to, info, noop): allowed;
//!    - `ReadsKey` (llookup, lookup, plookup): `r` on the key's namespace;
//!    - `WritesKey` (update, update:meta, delete, notify, notify:multi,
//!      notify:all): `rw` on the key's namespace;
//!    - `Manage`: `otp:get` needs `__manage` (`r`), `otp:put` and `config`
//!      `__manage:rw`; `enroll` and `keys` are checked by their handlers,
//!      which need the target's or key's details;
//!    - `Listing` (scan, stats, sync:from, monitor, notify:list/status/
//!      fetch/remove, batch): allowed; the handlers filter what they show
//!      by the enrollment's namespaces, and a batch's commands each pass
//!      this table on their own.
//!
//! Key rules: `__manage` keys are never read or written through key verbs
//! (only `otp`, `enroll`, `keys` and `monitor` use that namespace);
//! reserved keys (the public and signing keys, shared keys, `privatekey:`
//! names) are readable by any enrollment and shared keys writable by any,
//! as in the reference (an app with only its namespace shares data by
//! writing `@bob:shared_key@alice`); but no enrollment writes the owner's
//! credentials (`privatekey:at_secret`, `privatekey:at_secret_deleted`,
//! `privatekey:at_pkam_publickey`, 3.16.4), and only one holding `*:rw`
//! writes the atSign's identity keys (`public:publickey`,
//! `public:signing_publickey`, `signing_privatekey`, other `privatekey:`
//! names), which the reference lets any enrollment overwrite (a
//! deliberate difference, docs/COMPATIBILITY.md).

use super::table::{NamespaceRule, VerbRow};
use crate::auth::enrollment::{Enrolled, State};
use crate::auth::namespaces::{self, Access};
use crate::connection::Caller;
use crate::error::{AtCode, AtError};
use crate::protocol::atkey;
use crate::protocol::command::{Command, OtpOp};

/// The owner's credentials no enrollment may write.
const CREDENTIAL_KEYS: [&str; 3] = [
    "privatekey:at_secret",
    "privatekey:at_secret_deleted",
    "privatekey:at_pkam_publickey",
];

/// Decides whether `caller` may run `command` (of `row`).
pub fn authorize(row: &VerbRow, command: &Command<'_>, caller: &Caller) -> Result<(), AtError> {
    let Caller::Owner(owner) = caller else {
        return Ok(());
    };
    let Some(enrolled) = owner.enrollment() else {
        return Ok(());
    };
    let state = owner.tenant().enrollments.state_of(&enrolled.id);
    if state != State::Approved {
        return Err(state.refusal(&enrolled.id).closing());
    }
    decide(row, command, enrolled)
}

/// The table for one approved enrollment.
pub fn decide(row: &VerbRow, command: &Command<'_>, enrolled: &Enrolled) -> Result<(), AtError> {
    match row.namespaces {
        NamespaceRule::Unrestricted | NamespaceRule::Listing => Ok(()),
        NamespaceRule::ReadsKey => match key_of(command) {
            Some(key) => check_key(row, enrolled, &key, Access::Read),
            None => Ok(()),
        },
        NamespaceRule::WritesKey => match key_of(command) {
            Some(key) => check_key(row, enrolled, &key, Access::ReadWrite),
            None => Err(refused(row, enrolled, "its key")),
        },
        NamespaceRule::Manage => {
            let needed = match command {
                Command::Otp(otp) if otp.op == OtpOp::Get => Some(Access::Read),
                Command::Otp(_) | Command::Config(_) => Some(Access::ReadWrite),
                _ => None,
            };
            match needed {
                None => Ok(()),
                Some(needed) => {
                    let held = enrolled.namespaces.exactly(namespaces::MANAGE);
                    if held.is_some_and(|held| held.allows(needed)) {
                        Ok(())
                    } else {
                        Err(refused(row, enrolled, namespaces::MANAGE))
                    }
                }
            }
        }
    }
}

fn check_key(row: &VerbRow, enrolled: &Enrolled, key: &str, needed: Access) -> Result<(), AtError> {
    let lower = key.to_ascii_lowercase();
    if needed == Access::ReadWrite && CREDENTIAL_KEYS.iter().any(|c| lower.starts_with(c)) {
        return Err(refused(row, enrolled, key));
    }
    if atkey::namespace(&lower) == Some(namespaces::MANAGE) {
        return Err(refused(row, enrolled, key));
    }
    if atkey::is_reserved(key) {
        if needed == Access::ReadWrite && is_identity_key(&lower) {
            let all = enrolled.namespaces.exactly(namespaces::ALL);
            if all != Some(Access::ReadWrite) {
                return Err(refused(row, enrolled, key));
            }
        }
        return Ok(());
    }
    match enrolled.namespaces.access_to(&lower) {
        Some(held) if held.allows(needed) => Ok(()),
        _ => Err(refused(row, enrolled, key)),
    }
}

/// The atSign's own identity keys (lower-cased `key`).
fn is_identity_key(key: &str) -> bool {
    let name = key
        .split_once(':')
        .filter(|(head, _)| head.starts_with('@'))
        .map_or(key, |(_, rest)| rest);
    key.starts_with("public:publickey@")
        || key.starts_with("public:signing_publickey@")
        || name.starts_with("signing_privatekey@")
        || key.starts_with("privatekey:")
}

/// The key a key verb names, assembled as its handler will.
fn key_of(command: &Command<'_>) -> Option<String> {
    match command {
        Command::Update(c) => Some(c.key.assemble()),
        Command::UpdateMeta(c) => Some(c.key.assemble()),
        Command::Delete(c) => Some(c.key.assemble()),
        Command::LLookup(c) => Some(c.key.assemble()),
        Command::Lookup(c) | Command::PLookup(c) => Some(format!("{}@{}", c.name, c.owner)),
        Command::Notify(c) => Some(match c.owner {
            Some(owner) => format!("{}@{}", c.key, owner.trim_start_matches('@')),
            None => c.key.to_string(),
        }),
        Command::NotifyMulti(c) => Some(format!("{}@{}", c.key, c.owner)),
        Command::NotifyAll(c) => Some(match c.owner {
            Some(owner) => format!("{}@{}", c.key, owner.trim_start_matches('@')),
            None => c.key.to_string(),
        }),
        _ => None,
    }
}

fn refused(row: &VerbRow, enrolled: &Enrolled, what: &str) -> AtError {
    AtError::new(
        AtCode::Unauthorized,
        format!(
            "Connection with enrollment ID {} is not authorized to {} key: {what}",
            enrolled.id, row.name
        ),
    )
}

#[cfg(test)]
mod tests;
