//! `plookup`: read another atSign's public key through that atSign's server
//! (or our cache). The grammar is `lookup`'s with a blank-free key.

use std::fmt::{self, Formatter};

use super::lookup::{Lookup, captures, encode_as};
use crate::protocol::command::{Command, VerbId};
use crate::protocol::parse::ParseError;

/// `plookup` has the same fields as `lookup` (its key may not contain spaces).
pub type PLookup<'a> = Lookup<'a>;

pub(crate) const USAGE: &str = "e.g plookup:location@bob";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("plookup:")
}

/// `^plookup:(bypassCache:(true|false):)?((meta|all):)?(?<atKey>[^@\s]+)@(?<atSign>[^:@\s]+)$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s, "plookup:", true)
        .map(Command::PLookup)
        .ok_or(ParseError::Syntax(VerbId::PLookup))
}

pub(crate) fn encode(c: &PLookup<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    encode_as(f, "plookup", c)
}
