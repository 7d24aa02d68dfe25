//! `noop`: answer after a delay; monitor clients use `noop:0` as a heartbeat.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::{digits, eat_ci};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noop {
    pub delay_ms: u64,
}

pub(crate) const USAGE: &str = "noop:<durationInMillis>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("noop:")
}

/// `^noop:(?<delayMillis>\d+)$`; a delay too large for a `u64` does not match.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    eat_ci(s, "noop:")
        .and_then(digits::<u64>)
        .filter(|(_, r)| r.is_empty())
        .map(|(delay_ms, _)| Command::Noop(Noop { delay_ms }))
        .ok_or(ParseError::Syntax(VerbId::Noop))
}

pub(crate) fn encode(c: &Noop, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "noop:{}", c.delay_ms)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;

    #[test]
    fn noop_refuses_a_delay_too_large_for_its_type() {
        assert!(p("noop:99999999999999999999999").is_err());
    }
}
