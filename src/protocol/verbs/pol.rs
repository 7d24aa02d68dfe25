//! `pol`: another atServer proves, through its own atServer, that it is the
//! atSign it claimed in `from`. The verb itself carries nothing.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::eat_ci;
use crate::protocol::parse::ParseError;

pub(crate) const USAGE: &str = "syntax pol e.g pol";

/// Only the exact line `pol`.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line == "pol"
}

/// `^pol$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    eat_ci(s, "pol")
        .filter(|r| r.is_empty())
        .map(|_| Command::Pol)
        .ok_or(ParseError::Syntax(VerbId::Pol))
}

pub(crate) fn encode(f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("pol")
}
