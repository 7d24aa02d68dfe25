//! `llookup`: the owner reads one of its own keys (or a cached copy of
//! someone else's), as the value, its metadata, or both.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, KeyRef, LookupOp, VerbId};
use crate::protocol::encode::write_key_ref;
use crate::protocol::grammar::{choice, eat_ci, flag, is_tok, with_scope};
use crate::protocol::parse::ParseError;

/// `llookup[:meta|:all][:cached][:public|:@for]:<key>@<owner>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LLookup<'a> {
    pub op: LookupOp,
    pub key: KeyRef<'a>,
}

pub(crate) const USAGE: &str = "e.g llookup:location@bob";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("llookup:")
}

/// The output choices as `llookup` spells them: colon first.
const LOOKUP_OPS: [(&str, LookupOp); 2] = [(":meta", LookupOp::Meta), (":all", LookupOp::All)];

/// `^llookup(:meta|:all)?(:cached)?(:public|:@for)?:(?<atKey>[^:]((?!:{2})[^@])+)@(?<atSign>[^:@\s]+)$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::LLookup)
        .ok_or(ParseError::Syntax(VerbId::LLookup))
}

fn captures(s: &str) -> Option<LLookup<'_>> {
    let r = eat_ci(s, "llookup")?;
    choice(r, &LOOKUP_OPS).find_map(|(op, r)| {
        flag(r, ":cached").find_map(|(cached, r)| {
            with_scope(r, |scope, rest| {
                let k = rest.strip_prefix(':')?;
                let (name, owner) = k.rsplit_once('@')?;
                let first_ok = !name.starts_with(':');
                let mut chars = name.chars();
                chars.next();
                let tail = chars.as_str();
                let ok =
                    first_ok && !tail.is_empty() && !tail.contains('@') && !tail.contains("::");
                if !ok || owner.is_empty() || !owner.chars().all(is_tok) {
                    return None;
                }
                let key = KeyRef {
                    cached,
                    scope,
                    name,
                    owner: Some(owner),
                };
                Some(LLookup {
                    op: op.unwrap_or_default(),
                    key,
                })
            })
        })
    })
}

pub(crate) fn encode(c: &LLookup<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("llookup")?;
    f.write_str(match c.op {
        LookupOp::Value => "",
        LookupOp::Meta => ":meta",
        LookupOp::All => ":all",
    })?;
    write_key_ref(f, &c.key)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{key, p};
    use crate::protocol::command::{Command, LookupOp, Scope};

    #[test]
    fn llookup_keys_may_contain_single_colons() {
        let Command::LLookup(l) = p("llookup:privatekey:xy@alice").unwrap() else {
            panic!()
        };
        assert_eq!(
            l.key,
            key(false, Scope::None, "privatekey:xy", Some("alice"))
        );
        let Command::LLookup(l) = p("llookup:meta:cached:@alice:phone@bob").unwrap() else {
            panic!()
        };
        assert_eq!(l.op, LookupOp::Meta);
        assert_eq!(l.key.assemble(), "cached:@alice:phone@bob");
    }
}
