//! `from`: the client names the atSign it wants to talk to (and may describe
//! itself in `clientConfig`, which only changes the error format).

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{dot_all, eat_ci, is_tok, run1};
use crate::protocol::parse::ParseError;

/// `from:[@]<atsign>[:clientConfig:{json}]`. `atsign` is as sent (with its
/// `@` if given); normalise with [`crate::protocol::atsign::normalize_atsign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct From<'a> {
    pub atsign: &'a str,
    pub client_config: Option<&'a str>,
}

pub(crate) const USAGE: &str = "syntax from:@<atSign>   e.g from:@alice";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("from:")
}

/// `^from:(?<atSign>@?[^:@\s]+)(:clientConfig:(?<clientConfig>\{.+\}))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::From)
        .ok_or(ParseError::Syntax(VerbId::From))
}

fn captures(s: &str) -> Option<From<'_>> {
    let r = eat_ci(s, "from:")?;
    let at = usize::from(r.starts_with('@'));
    let (name, rest) = run1(&r[at..], is_tok)?;
    let atsign = &r[..at + name.len()];
    let client_config = if rest.is_empty() {
        None
    } else {
        let cfg = eat_ci(rest, ":clientConfig:")?;
        if !(cfg.len() >= 3 && cfg.starts_with('{') && cfg.ends_with('}') && dot_all(cfg)) {
            return None;
        }
        Some(cfg)
    };
    Some(From {
        atsign,
        client_config,
    })
}

pub(crate) fn encode(c: &From<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "from:{}", c.atsign)?;
    write_opt(f, ":clientConfig:", c.client_config)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn from_takes_an_atsign_and_a_client_config_object() {
        let Command::From(f) = p("from:@alice:clientConfig:{\"version\":\"3.0.38\"}").unwrap()
        else {
            panic!()
        };
        assert_eq!(f.client_config, Some("{\"version\":\"3.0.38\"}"));
        assert!(p("from:@alice:clientConfig:{}").is_err());
        assert!(p("from:@al ice").is_err());
    }
}
