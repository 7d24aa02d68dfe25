//! From a request line to a [`Command`]: normalisation (wire.md §5), verb
//! identification in the reference's dispatch order (wire.md §6), and the
//! hand-off to that verb's parser in `verbs/<verb>.rs`.
//!
//! Each parser reproduces what the reference's case-insensitive verb regex
//! (`AC/verb/syntax.dart`, plus the post-2024 additions) would capture,
//! including where that regex backtracks: optional groups are tried present
//! first, then absent, exactly as a backtracking engine would. Literals match
//! in any case; captured text keeps its case. Nothing here allocates except
//! `normalize` when it has to change the line and the `stats` id list.

use std::borrow::Cow;

use super::command::{Command, VerbId};
use super::grammar::changes_when_lowercased;
use super::verbs::{
    batch, config, cram, delete, enroll, from, info, keys, llookup, lookup, monitor, noop, notify,
    notify_all, notify_id, notify_list, notify_multi, otp, pkam, plookup, pol, scan, stats, stream,
    sync_from, to, update, update_meta,
};
use crate::error::{AtCode, AtError};

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No verb accepts the line (AT0003 `invalid command`).
    InvalidCommand,
    /// The verb was recognised but its grammar did not match
    /// (AT0003 `Invalid syntax. <usage>`).
    Syntax(VerbId),
    /// The grammar matched but a value is refused (negative ttl, bad ttr,
    /// a field `notify:multi` does not take).
    Meta(AtError),
}

impl std::convert::From<ParseError> for AtError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::InvalidCommand => AtError::invalid_command(),
            ParseError::Syntax(v) => AtError::new(
                AtCode::InvalidSyntax,
                format!("Invalid syntax. {}", v.usage()),
            ),
            ParseError::Meta(e) => e,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::InvalidCommand => f.write_str("invalid command"),
            ParseError::Syntax(v) => write!(f, "Invalid syntax. {}", v.usage()),
            ParseError::Meta(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// wire.md §5: a line without `:` is lower-cased entirely; otherwise the part
/// before the first `:` is lower-cased and its spaces removed. Borrows when
/// nothing changes, which is the common case.
pub fn normalize(line: &str) -> Cow<'_, str> {
    match line.find(':') {
        None => {
            if changes_when_lowercased(line) {
                Cow::Owned(line.to_lowercase())
            } else {
                Cow::Borrowed(line)
            }
        }
        Some(i) => {
            let head = &line[..i];
            if head.contains(' ') || changes_when_lowercased(head) {
                let mut s: String = head.to_lowercase().chars().filter(|&c| c != ' ').collect();
                s.push_str(&line[i..]);
                Cow::Owned(s)
            } else {
                Cow::Borrowed(line)
            }
        }
    }
}

/// A verb handler's accept test on the normalised line.
type AcceptTest = fn(&str) -> bool;

/// Every verb's accept test, in the order the reference tries its handlers
/// (wire.md §6), with the post-2024 `notify:multi` before `notify` (whose
/// test would also take it, changes §6.2) and `to` last. Each test is the
/// `accepts` of the verb's own file, case-sensitive as in the reference
/// (`startsWith` on the normalised command).
///
/// A table rather than an `if` chain so the order reads as one list. The
/// compiler unrolls the search and inlines every test (they are
/// `#[inline(always)]`), so it costs what the chain did: 3.0 ns to find
/// `update:` or `llookup:`, 7.7 ns for `to:`, the last (release build,
/// minimum over batches).
const DISPATCH: [(VerbId, AcceptTest); 30] = [
    (VerbId::From, from::accepts),
    (VerbId::Cram, cram::accepts),
    (VerbId::Pkam, pkam::accepts),
    (VerbId::Update, update::accepts),
    (VerbId::UpdateMeta, update_meta::accepts),
    (VerbId::LLookup, llookup::accepts),
    (VerbId::PLookup, plookup::accepts),
    (VerbId::Lookup, lookup::accepts),
    (VerbId::Scan, scan::accepts),
    (VerbId::Pol, pol::accepts),
    (VerbId::Delete, delete::accepts),
    (VerbId::Stats, stats::accepts),
    (VerbId::Config, config::accepts),
    (VerbId::Monitor, monitor::accepts),
    (VerbId::Stream, stream::accepts),
    (VerbId::NotifyMulti, notify_multi::accepts),
    (VerbId::Notify, notify::accepts),
    (VerbId::NotifyList, notify_list::accepts),
    (VerbId::Batch, batch::accepts),
    (VerbId::NotifyStatus, notify_id::status::accepts),
    (VerbId::NotifyAll, notify_all::accepts),
    (VerbId::SyncFrom, sync_from::accepts),
    (VerbId::Info, info::accepts),
    (VerbId::Noop, noop::accepts),
    (VerbId::NotifyRemove, notify_id::remove::accepts),
    (VerbId::NotifyFetch, notify_id::fetch::accepts),
    (VerbId::Enroll, enroll::accepts),
    (VerbId::Otp, otp::accepts),
    (VerbId::Keys, keys::accepts),
    (VerbId::To, to::accepts),
];

/// The verb whose handler would accept the normalised line: the first in
/// `DISPATCH` whose test passes.
pub fn identify(n: &str) -> Option<VerbId> {
    DISPATCH
        .iter()
        .find(|(_, accepts)| accepts(n))
        .map(|&(verb, _)| verb)
}

/// Parses a normalised line for the verb [`identify`] chose.
pub fn parse(verb: VerbId, s: &str) -> Result<Command<'_>, ParseError> {
    match verb {
        VerbId::From => from::parse(s),
        VerbId::Cram => cram::parse(s),
        VerbId::Pkam => pkam::parse(s),
        VerbId::Update => update::parse(s),
        VerbId::UpdateMeta => update_meta::parse(s),
        VerbId::LLookup => llookup::parse(s),
        VerbId::PLookup => plookup::parse(s),
        VerbId::Lookup => lookup::parse(s),
        VerbId::Scan => scan::parse(s),
        VerbId::Pol => pol::parse(s),
        VerbId::Delete => delete::parse(s),
        VerbId::Stats => stats::parse(s),
        VerbId::Config => config::parse(s),
        VerbId::Monitor => monitor::parse(s),
        VerbId::Stream => stream::parse(s),
        VerbId::Notify => notify::parse(s),
        VerbId::NotifyList => notify_list::parse(s),
        VerbId::Batch => batch::parse(s),
        VerbId::NotifyStatus => notify_id::status::parse(s),
        VerbId::NotifyAll => notify_all::parse(s),
        VerbId::SyncFrom => sync_from::parse(s),
        VerbId::Info => info::parse(s),
        VerbId::Noop => noop::parse(s),
        VerbId::NotifyRemove => notify_id::remove::parse(s),
        VerbId::NotifyFetch => notify_id::fetch::parse(s),
        VerbId::Enroll => enroll::parse(s),
        VerbId::Otp => otp::parse(s),
        VerbId::Keys => keys::parse(s),
        VerbId::NotifyMulti => notify_multi::parse(s),
        VerbId::To => to::parse(s),
    }
}

/// [`identify`] then [`parse`] on an already normalised line.
pub fn parse_normalized(n: &str) -> Result<Command<'_>, ParseError> {
    let verb = identify(n).ok_or(ParseError::InvalidCommand)?;
    parse(verb, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::verbs::test_support::p;

    #[test]
    fn normalize_follows_wire_md_5() {
        assert!(matches!(normalize("llookup:Phone@alice"), Cow::Borrowed(_)));
        assert_eq!(normalize("SCAN .*Foo"), "scan .*foo");
        assert_eq!(normalize("UPDATE:Phone@alice V"), "update:Phone@alice V");
        assert_eq!(normalize("scan .*:x"), "scan.*:x");
        assert_eq!(normalize("Noop :5"), "noop:5");
        assert!(matches!(normalize("scan"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_dispatch_table_holds_every_verb_once() {
        assert_eq!(DISPATCH.len(), VerbId::ALL.len());
        for verb in VerbId::ALL {
            let rows = DISPATCH.iter().filter(|(v, _)| *v == verb).count();
            assert_eq!(rows, 1, "{verb:?}");
        }
    }

    #[test]
    fn identify_follows_the_dispatch_table() {
        assert_eq!(identify("update:metaX@alice v"), None);
        assert_eq!(identify("update:meta"), None);
        assert_eq!(identify("update:meta:x@alice"), Some(VerbId::UpdateMeta));
        assert_eq!(identify("update:x@alice v"), Some(VerbId::Update));
        assert_eq!(identify("sync:5"), None);
        assert_eq!(identify("sync:from:5:limit:5"), Some(VerbId::SyncFrom));
        assert_eq!(identify("info"), Some(VerbId::Info));
        assert_eq!(identify("info:brief"), Some(VerbId::Info));
        assert_eq!(identify("info:x"), None);
        assert_eq!(identify("pol"), Some(VerbId::Pol));
        assert_eq!(identify("polx"), None);
        assert_eq!(identify("exit"), None);
        assert_eq!(identify("scanner"), Some(VerbId::Scan));
        assert_eq!(identify("notify:list:x"), Some(VerbId::NotifyList));
        assert_eq!(identify("notify:multi:@a:k@b"), Some(VerbId::NotifyMulti));
        assert_eq!(identify("notify:@bob:k@alice"), Some(VerbId::Notify));
        assert_eq!(identify("notify:remove:x"), Some(VerbId::NotifyRemove));
        assert_eq!(identify("to:@alice"), Some(VerbId::To));
        assert_eq!(identify("lookup:x@y"), Some(VerbId::Lookup));
        assert_eq!(identify("plookup:x@y"), Some(VerbId::PLookup));
    }

    #[test]
    fn errors_map_to_at0003_texts() {
        assert_eq!(
            AtError::from(p("exit").unwrap_err()).message,
            "invalid command"
        );
        let e = AtError::from(p("lookup:x").unwrap_err());
        assert_eq!(e.message, "Invalid syntax. e.g lookup:location@bob");
        assert_eq!(e.code, AtCode::InvalidSyntax);
        let e = AtError::from(p("update:ttl:-5:x@alice v").unwrap_err());
        assert_eq!(
            e.message,
            "Valid value for TTL should be greater than or equal to 0"
        );
    }

    #[test]
    fn key_length_rules_of_0_2() {
        assert!(p("update:x@alice v").is_ok());
        assert!(p("delete:x@alice").is_ok());
        assert!(p("plookup:x@alice").is_ok());
        assert_eq!(
            p("llookup:x@alice"),
            Err(ParseError::Syntax(VerbId::LLookup))
        );
        assert_eq!(p("lookup:x@alice"), Err(ParseError::Syntax(VerbId::Lookup)));
        assert_eq!(
            p("update:meta:x@alice"),
            Err(ParseError::Syntax(VerbId::UpdateMeta))
        );
        assert_eq!(
            p("notify:@bob:x@alice"),
            Err(ParseError::Syntax(VerbId::Notify))
        );
        assert!(p("llookup:a::b@alice").is_err());
        assert!(p("notify:@bob:a::b@alice").is_err());
    }

    #[test]
    fn parse_borrows_from_the_line() {
        let line = "llookup:phone.wavi@alice";
        let n = normalize(line);
        assert!(matches!(n, Cow::Borrowed(_)));
        let Ok(Command::LLookup(l)) = parse_normalized(&n) else {
            panic!()
        };
        assert!(std::ptr::eq(l.key.name.as_ptr(), line[8..].as_ptr()));
    }
}
