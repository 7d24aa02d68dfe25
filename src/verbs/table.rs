//! The verb table: one static row per verb, the single place that says who
//! may run it, how it is ordered against in-flight writes, and whether this
//! server serves it yet. The gate ([`super::gate`]) applies it to every line.

use crate::connection::CallerKind;
use crate::protocol::command::VerbId;

/// Who may run a verb. Checked before the verb's syntax, as the reference
/// does, so an unauthenticated malformed `update:` gets AT0401, not AT0003.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any connection; the handler decides what each kind of caller sees.
    Anyone,
    /// Only the owner of the atSign (cram, pkam, later APKAM enrollments,
    /// limited by the row's [`NamespaceRule`]).
    Owner,
    /// The owner, or another atServer proven by `pol` (server-to-server
    /// `notify`).
    OwnerOrPeer,
}

impl Access {
    /// Whether a caller of this kind may run the verb.
    pub const fn admits(self, caller: CallerKind) -> bool {
        match self {
            Access::Anyone => true,
            Access::Owner => matches!(caller, CallerKind::Owner),
            Access::OwnerOrPeer => matches!(caller, CallerKind::Owner | CallerKind::Peer),
        }
    }
}

/// What an APKAM enrollment's namespace grant must allow for the verb to
/// run. The gate applies it to enrolled callers (the APKAM issue brings
/// them); owners proven by cram or legacy pkam hold every namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceRule {
    /// Not about stored data (authentication, `info`, `noop`): no grant.
    Unrestricted,
    /// Reads the one key it names: the grant must cover its namespace.
    ReadsKey,
    /// Writes the one key it names: the grant must be `rw` on its namespace.
    WritesKey,
    /// Lists or syncs many keys: answers only what the grants cover.
    Listing,
    /// Manages the atSign itself (enrollments, OTPs, keys, config): needs
    /// the `__manage` namespace.
    Manage,
}

/// How a verb is ordered against the connection's in-flight writes, which
/// are answered in request order once durable (`session::inflight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Handed to the storage actor without waiting; answered with its
    /// commit id once durable.
    Write,
    /// Reads one key: runs at once unless a write to that key is in flight,
    /// since its answer cannot depend on writes to other keys.
    KeyedRead,
    /// Runs after every in-flight write has completed (its answer may
    /// depend on any of them, or it changes the connection's state).
    Barrier,
}

/// One verb's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerbRow {
    pub verb: VerbId,
    /// As written on the wire (for logs and errors).
    pub name: &'static str,
    /// The reference's usage text, shown after `Invalid syntax. ` (AT0003).
    pub usage: &'static str,
    pub access: Access,
    pub namespaces: NamespaceRule,
    pub ordering: Ordering,
    /// False: parsed, then answered AT0011 "not supported by this server
    /// yet" (after the access check, so an anonymous caller still gets
    /// AT0401 for an owner verb).
    pub implemented: bool,
}

/// Whether this server serves a verb yet.
#[derive(Clone, Copy)]
enum Served {
    Yes,
    NotYet,
}

const fn row(
    verb: VerbId,
    access: Access,
    namespaces: NamespaceRule,
    ordering: Ordering,
    served: Served,
) -> VerbRow {
    VerbRow {
        verb,
        name: verb.name(),
        usage: verb.usage(),
        access,
        namespaces,
        ordering,
        implemented: matches!(served, Served::Yes),
    }
}

use Access::{Anyone, Owner, OwnerOrPeer};
use NamespaceRule::{Listing, Manage, ReadsKey, Unrestricted, WritesKey};
use Ordering::{Barrier, KeyedRead, Write};
use Served::{NotYet, Yes};
use VerbId as V;

/// Every verb, in [`VerbId`] order (checked at compile time below), so a
/// verb's row is found by its discriminant.
static TABLE: [VerbRow; VerbId::ALL.len()] = [
    row(V::From, Anyone, Unrestricted, Barrier, Yes),
    row(V::Cram, Anyone, Unrestricted, Barrier, Yes),
    row(V::Pkam, Anyone, Unrestricted, Barrier, Yes),
    row(V::Update, Owner, WritesKey, Write, Yes),
    row(V::UpdateMeta, Owner, WritesKey, Write, Yes),
    row(V::LLookup, Owner, ReadsKey, KeyedRead, Yes),
    row(V::PLookup, Owner, ReadsKey, Barrier, Yes),
    row(V::Lookup, Anyone, ReadsKey, Barrier, Yes),
    row(V::Scan, Anyone, Listing, Barrier, Yes),
    row(V::Pol, Anyone, Unrestricted, Barrier, Yes),
    row(V::Delete, Owner, WritesKey, Write, Yes),
    row(V::Stats, Owner, Listing, Barrier, Yes),
    row(V::Config, Owner, Manage, Barrier, NotYet),
    row(V::Monitor, Owner, Listing, Barrier, Yes),
    row(V::Stream, Anyone, Unrestricted, Barrier, NotYet),
    row(V::Notify, OwnerOrPeer, WritesKey, Barrier, Yes),
    row(V::NotifyList, Anyone, Listing, Barrier, Yes),
    row(V::Batch, Owner, Listing, Barrier, Yes),
    row(V::NotifyStatus, Anyone, Listing, Barrier, Yes),
    row(V::NotifyAll, Owner, WritesKey, Barrier, Yes),
    row(V::SyncFrom, Owner, Listing, Barrier, Yes),
    row(V::Info, Anyone, Unrestricted, Barrier, Yes),
    row(V::Noop, Anyone, Unrestricted, Barrier, Yes),
    row(V::NotifyRemove, Owner, Listing, Barrier, Yes),
    row(V::NotifyFetch, Owner, Listing, Barrier, Yes),
    row(V::Enroll, Anyone, Manage, Barrier, Yes),
    row(V::Otp, Owner, Manage, Barrier, Yes),
    row(V::Keys, Owner, Manage, Barrier, Yes),
    row(V::NotifyMulti, Owner, WritesKey, Barrier, Yes),
    row(V::To, Anyone, Unrestricted, Barrier, Yes),
];

// Row i describes the verb whose discriminant is i, for every verb: so
// `verb as usize` is always a valid index into `TABLE` and names its row.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].verb as usize == i);
        assert!(VerbId::ALL[i] as usize == i);
        i += 1;
    }
};

/// The row of `verb`.
pub fn row_of(verb: VerbId) -> &'static VerbRow {
    // In range for every verb: see the compile-time check above.
    &TABLE[verb as usize]
}

/// Every row, in dispatch order.
pub fn rows() -> &'static [VerbRow] {
    &TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_its_own_row_with_its_wire_name() {
        for verb in VerbId::ALL {
            let row = row_of(verb);
            assert_eq!(row.verb, verb);
            assert_eq!(row.name, verb.name());
            assert_eq!(row.usage, verb.usage());
        }
    }

    #[test]
    fn only_writes_are_ordered_as_writes_and_only_owners_write() {
        for row in rows() {
            if row.ordering == Ordering::Write {
                assert_eq!(row.access, Access::Owner, "{}", row.name);
                assert_eq!(row.namespaces, NamespaceRule::WritesKey, "{}", row.name);
            }
        }
    }

    #[test]
    fn access_classes_admit_exactly_their_callers() {
        use CallerKind::{Anonymous, Owner as O, Peer};
        assert!(Access::Anyone.admits(Anonymous) && Access::Anyone.admits(Peer));
        assert!(Access::Owner.admits(O));
        assert!(!Access::Owner.admits(Anonymous) && !Access::Owner.admits(Peer));
        assert!(Access::OwnerOrPeer.admits(O) && Access::OwnerOrPeer.admits(Peer));
        assert!(!Access::OwnerOrPeer.admits(Anonymous));
    }
}
