//! `cram`: the client proves it holds the atSign's shared secret by
//! answering the challenge `from` handed out with a digest.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::{dot_all, eat_ci};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cram<'a> {
    pub digest: &'a str,
}

pub(crate) const USAGE: &str = "cram:<digest>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("cram:")
}

/// `^cram:(?<digest>.+$)`: the digest is the rest of the line.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    eat_ci(s, "cram:")
        .filter(|d| !d.is_empty() && dot_all(d))
        .map(|digest| Command::Cram(Cram { digest }))
        .ok_or(ParseError::Syntax(VerbId::Cram))
}

pub(crate) fn encode(c: &Cram<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "cram:{}", c.digest)
}
