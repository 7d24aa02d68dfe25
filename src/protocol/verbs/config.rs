//! `config`: the owner's block list, and (for tests) runtime settings.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::{eat_ci, is_js_space, is_line_terminator, is_tok, run1};
use crate::protocol::parse::ParseError;

/// `config:block:add|remove:@a[ @b…]`, `config:block:show`,
/// `config:set|reset|print:<arg>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config<'a> {
    /// The space-separated atSign list as sent; iterate with [`Config::atsigns`].
    BlockAdd(&'a str),
    BlockRemove(&'a str),
    BlockShow,
    /// `<name>=<value>`.
    Set(&'a str),
    Reset(&'a str),
    Print(&'a str),
}

impl<'a> Config<'a> {
    /// The atSigns of a block list, split on single spaces, as sent.
    pub fn atsigns(list: &'a str) -> impl Iterator<Item = &'a str> {
        list.split(' ').filter(|s| !s.is_empty())
    }
}

pub(crate) const USAGE: &str = "configure block syntax config:block:<action>:@<atSign>   e.g config:block:add:@alice   view syntax config:show:<type>   e.g config:shoe:allow   configure set syntax   e.g. config:set:<configName>=<configValue>   config:reset(or)print:<configName>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("config:")
}

/// `^config:(?:block:(add|remove|show)(?:(?<=show)\s?$|(?<=add|remove):(?<atSign>@[^:@\s]+( @[^\s@]+)*$)))|(?:(?<=config:)(set|reset|print):(?<configNew>.+)$)`.
/// The second alternative is unanchored: it may start after any `config:`.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Config)
        .ok_or(ParseError::Syntax(VerbId::Config))
}

fn captures(s: &str) -> Option<Config<'_>> {
    if let Some(b) = eat_ci(s, "config:block:") {
        if let Some(r) = eat_ci(b, "show") {
            let mut c = r.chars();
            if c.next().is_none_or(is_js_space) && c.next().is_none() {
                return Some(Config::BlockShow);
            }
        }
        for (lit, add) in [("add:", true), ("remove:", false)] {
            if let Some(list) = eat_ci(b, lit) {
                if is_block_list(list) {
                    return Some(if add {
                        Config::BlockAdd(list)
                    } else {
                        Config::BlockRemove(list)
                    });
                }
            }
        }
    }
    let bytes = s.as_bytes();
    // Each candidate's `.+$` runs to the end of the line: find the last line
    // terminator once instead of rescanning the tail per candidate.
    let last_lt = s.rfind(is_line_terminator);
    (7..=bytes.len())
        .filter(|&i| bytes[i - 7..i].eq_ignore_ascii_case(b"config:"))
        .find_map(|i| {
            let r = &s[i..];
            let (op, rest) = [("set:", 0), ("reset:", 1), ("print:", 2)]
                .iter()
                .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
            if rest.is_empty() || last_lt.is_some_and(|l| l >= s.len() - rest.len()) {
                return None;
            }
            Some(match op {
                0 => Config::Set(rest),
                1 => Config::Reset(rest),
                _ => Config::Print(rest),
            })
        })
}

/// `@[^:@\s]+( @[^\s@]+)*` over the whole of `s`.
fn is_block_list(s: &str) -> bool {
    let Some(first) = s.strip_prefix('@') else {
        return false;
    };
    let Some((_, mut r)) = run1(first, is_tok) else {
        return false;
    };
    while !r.is_empty() {
        let Some(next) = r.strip_prefix(" @") else {
            return false;
        };
        let Some((_, rest)) = run1(next, |c| c != '@' && !is_js_space(c)) else {
            return false;
        };
        r = rest;
    }
    true
}

pub(crate) fn encode(c: &Config<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    match c {
        Config::BlockAdd(l) => write!(f, "config:block:add:{l}"),
        Config::BlockRemove(l) => write!(f, "config:block:remove:{l}"),
        Config::BlockShow => f.write_str("config:block:show"),
        Config::Set(a) => write!(f, "config:set:{a}"),
        Config::Reset(a) => write!(f, "config:reset:{a}"),
        Config::Print(a) => write!(f, "config:print:{a}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::Config;
    use crate::protocol::command::Command;

    #[test]
    fn config_block_list_forms() {
        assert_eq!(
            p("config:block:show").unwrap(),
            Command::Config(Config::BlockShow)
        );
        let Command::Config(Config::BlockAdd(l)) = p("config:block:add:@bob @colin").unwrap()
        else {
            panic!()
        };
        assert_eq!(Config::atsigns(l).collect::<Vec<_>>(), ["@bob", "@colin"]);
        assert!(p("config:block:add:bob").is_err());
    }
}
