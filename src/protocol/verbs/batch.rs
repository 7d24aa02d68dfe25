//! `batch`: several commands in one JSON array; the handler parses the JSON
//! and runs each command without the top-level normalisation.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::{dot_all, eat_ci};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    pub json: &'a str,
}

pub(crate) const USAGE: &str = r#"e.g batch:[{"id":1, "commmand":"update:location@alice newyork"},{"id":2, "commmand":"delete:location@alice"}]"#;

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("batch:")
}

/// `^batch:(?<json>.+)$`; the JSON is the handler's to read.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    eat_ci(s, "batch:")
        .filter(|j| !j.is_empty() && dot_all(j))
        .map(|json| Command::Batch(Batch { json }))
        .ok_or(ParseError::Syntax(VerbId::Batch))
}

pub(crate) fn encode(c: &Batch<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "batch:{}", c.json)
}
