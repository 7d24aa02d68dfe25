//! `lookup`: read another atSign's key shared with us, through that atSign's
//! server (or our cache). Its grammar also serves `plookup`, which differs
//! only in the verb name and a key that may not contain blanks.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, LookupOp, VerbId};
use crate::protocol::encode::{bool_str, write_opt_then};
use crate::protocol::grammar::{choice, dot_all, eat_ci, is_js_space, is_tok};
use crate::protocol::parse::ParseError;

/// `lookup:`/`plookup:[bypassCache:<bool>:][meta:|all:]<name>@<owner>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub bypass_cache: Option<bool>,
    pub op: LookupOp,
    pub name: &'a str,
    /// Captured without the `@`.
    pub owner: &'a str,
}

pub(crate) const USAGE: &str = "e.g lookup:location@bob";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("lookup:")
}

/// `^lookup:(bypassCache:(true|false):)?((meta|all):)?(?<atKey>[^:].+)@(?<atSign>[^:@\s]+)$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s, "lookup:", false)
        .map(Command::Lookup)
        .ok_or(ParseError::Syntax(VerbId::Lookup))
}

/// The grammar of `lookup` (`proxy: false`) and `plookup` (`proxy: true`,
/// key `[^@\s]+`) after the verb `prefix`.
pub(super) fn captures<'a>(s: &'a str, prefix: &str, proxy: bool) -> Option<Lookup<'a>> {
    const BYPASS: [(&str, bool); 2] = [("bypassCache:true:", true), ("bypassCache:false:", false)];
    const OPS: [(&str, LookupOp); 2] = [("meta:", LookupOp::Meta), ("all:", LookupOp::All)];
    let r = eat_ci(s, prefix)?;
    choice(r, &BYPASS).find_map(|(bypass_cache, r)| {
        choice(r, &OPS).find_map(|(op, r)| {
            let (name, owner) = r.rsplit_once('@')?;
            if owner.is_empty() || !owner.chars().all(is_tok) {
                return None;
            }
            let ok = if proxy {
                !name.is_empty() && !name.contains(|c| c == '@' || is_js_space(c))
            } else {
                let mut chars = name.chars();
                chars.next().is_some_and(|c| c != ':')
                    && !chars.as_str().is_empty()
                    && dot_all(chars.as_str())
            };
            ok.then_some(Lookup {
                bypass_cache,
                op: op.unwrap_or_default(),
                name,
                owner,
            })
        })
    })
}

pub(crate) fn encode(c: &Lookup<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    encode_as(f, "lookup", c)
}

/// `lookup` and `plookup` write the same fields after their verb name.
pub(super) fn encode_as(f: &mut Formatter<'_>, verb: &str, l: &Lookup<'_>) -> fmt::Result {
    write!(f, "{verb}:")?;
    write_opt_then(f, "bypassCache:", l.bypass_cache.map(bool_str), ":")?;
    let op = match l.op {
        LookupOp::Value => "",
        LookupOp::Meta => "meta:",
        LookupOp::All => "all:",
    };
    write!(f, "{op}{}@{}", l.name, l.owner)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::{Command, LookupOp};

    #[test]
    fn lookup_backtracks_over_its_prefixes() {
        let Command::Lookup(l) = p("lookup:all:phone.wavi@bob").unwrap() else {
            panic!()
        };
        assert_eq!(
            (l.op, l.name, l.owner),
            (LookupOp::All, "phone.wavi", "bob")
        );
        // `all:` cannot be the prefix here (empty key), so it is the key.
        let Command::PLookup(l) = p("plookup:all:@bob").unwrap() else {
            panic!()
        };
        assert_eq!((l.op, l.name), (LookupOp::Value, "all:"));
        let Command::Lookup(l) = p("lookup:a b@c@bob").unwrap() else {
            panic!()
        };
        assert_eq!((l.name, l.owner), ("a b@c", "bob"));
        assert!(p("plookup:a b@bob").is_err());
    }
}
