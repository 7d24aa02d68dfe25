//! `update:meta`: change the metadata of an existing key, leaving its value.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, KeyRef, VerbId};
use crate::protocol::encode::{write_flag, write_key_ref};
use crate::protocol::grammar::{eat_ci, flag, is_tok, run, run1, validated, with_scope};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::parse::ParseError;

/// `update:meta[:nc][:public|:@for]:<key>@<owner><meta>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateMeta<'a> {
    pub no_commit: bool,
    pub key: KeyRef<'a>,
    pub meta: MetaFragment<'a>,
}

pub(crate) const USAGE: &str = "update:meta:ttl:20000:ttb:20000:ttr:20000";

/// `update:meta:` with its colon: `update:meta` alone, or `update:metaX…`,
/// is for no handler at all.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("update:meta:")
}

/// `^update:meta(:nc)?(:public|:@for)?:(?<atKey>[^:@]((?!:{2})[^:@])+)@(?<atSign>[^:@\s]+)<meta>$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).unwrap_or(Err(ParseError::Syntax(VerbId::UpdateMeta)))
}

fn captures(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "update:meta")?;
    flag(r, ":nc").find_map(|(no_commit, r)| {
        with_scope(r, |scope, rest| {
            let k = rest.strip_prefix(':')?;
            let (name, after) = run(k, |c| c != ':' && c != '@');
            // At least two characters.
            name.chars().nth(1)?;
            let (owner, after) = run1(after.strip_prefix('@')?, is_tok)?;
            let (meta, tail) = MetaFragment::parse(after).ok()?;
            if !tail.is_empty() {
                return None;
            }
            let key = KeyRef {
                cached: false,
                scope,
                name,
                owner: Some(owner),
            };
            Some(validated(
                &meta,
                Command::UpdateMeta(UpdateMeta {
                    no_commit,
                    key,
                    meta,
                }),
            ))
        })
    })
}

pub(crate) fn encode(c: &UpdateMeta<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("update:meta")?;
    write_flag(f, ":nc", c.no_commit)?;
    write_key_ref(f, &c.key)?;
    write!(f, "{}", c.meta)
}
