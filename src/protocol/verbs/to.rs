//! `to` (post-2024): the first command a peer atServer sends on a new
//! server-to-server connection, naming the atSign whose public keys it wants.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::{eat_ci, is_js_space};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct To<'a> {
    /// As sent, with its `@` if given.
    pub atsign: &'a str,
}

pub(crate) const USAGE: &str = "e.g to:@alice";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("to:")
}

/// `^to:(?<atSign>@?[^\s:]+)$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    eat_ci(s, "to:")
        .filter(|atsign| !atsign.is_empty() && !atsign.contains(|c| c == ':' || is_js_space(c)))
        .map(|atsign| Command::To(To { atsign }))
        .ok_or(ParseError::Syntax(VerbId::To))
}

pub(crate) fn encode(c: &To<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "to:{}", c.atsign)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn to_takes_one_atsign_without_blanks() {
        let Command::To(t) = p("to:@alice").unwrap() else {
            panic!()
        };
        assert_eq!(t.atsign, "@alice");
        assert!(p("to:@a b").is_err());
    }

    #[test]
    fn to_takes_the_atsign_as_sent_with_or_without_its_at() {
        let Command::To(t) = p("to:alice").unwrap() else {
            panic!()
        };
        assert_eq!(t.atsign, "alice");
        // `[^\s:]+`: anything but blanks and colons, normalised later.
        let Command::To(t) = p("to:@al@ice").unwrap() else {
            panic!()
        };
        assert_eq!(t.atsign, "@al@ice");
        for bad in ["to:", "to:@alice:", "to:@a:b", "to:@a\tb"] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
