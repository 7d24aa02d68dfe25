//! `notify:list`: the notifications the owner has received, optionally
//! between two dates and filtered by a regex.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{eat_ci, run1};
use crate::protocol::parse::ParseError;

/// `notify:list[:<from>[:<to>]][:<regex>]`; trailing text is ignored as the
/// reference regex is not end-anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyList<'a> {
    pub from_date: Option<&'a str>,
    pub to_date: Option<&'a str>,
    pub regex: Option<&'a str>,
}

pub(crate) const USAGE: &str = "e.g notify:list [regular expression]";

/// Any line starting `notify:list`, with or without a colon after it.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("notify:list")
}

/// `^notify:list(:<date>)?(:<date>)?(:(?<regex>[^:]+))?` — not end-anchored.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::NotifyList))
}

fn captures(s: &str) -> Option<Command<'_>> {
    let mut r = eat_ci(s, "notify:list")?;
    fn date<'a>(r: &mut &'a str) -> Option<&'a str> {
        let (d, rest) = r.strip_prefix(':').and_then(take_list_date)?;
        *r = rest;
        Some(d)
    }
    let from_date = date(&mut r);
    let to_date = date(&mut r);
    let regex = r
        .strip_prefix(':')
        .and_then(|x| run1(x, |c| c != ':'))
        .map(|(re, _)| re);
    Some(Command::NotifyList(NotifyList {
        from_date,
        to_date,
        regex,
    }))
}

/// `\d{4}-[01]?\d?-[0123]?\d?` at the front of `s`, with the little
/// backtracking the optional parts need to find the second `-`.
fn take_list_date(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let month_first = b.get(5).is_some_and(|c| matches!(c, b'0' | b'1'));
    let at = |i: usize| b.get(i).copied();
    for (m1, m2) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut i = 5;
        if m1 {
            if !month_first {
                continue;
            }
            i += 1;
        }
        if m2 {
            if !at(i).is_some_and(|c| c.is_ascii_digit()) {
                continue;
            }
            i += 1;
        }
        if at(i) != Some(b'-') {
            continue;
        }
        i += 1;
        if at(i).is_some_and(|c| matches!(c, b'0'..=b'3')) {
            i += 1;
        }
        if at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        return Some(s.split_at(i));
    }
    None
}

pub(crate) fn encode(c: &NotifyList<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("notify:list")?;
    write_opt(f, ":", c.from_date)?;
    write_opt(f, ":", c.to_date)?;
    write_opt(f, ":", c.regex)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::NotifyList;
    use crate::protocol::command::Command;

    #[test]
    fn notify_list_is_not_end_anchored() {
        let Command::NotifyList(l) = p("notify:list ^foo").unwrap() else {
            panic!()
        };
        assert_eq!(l, NotifyList::default());
        let Command::NotifyList(l) = p("notify:list:2024-1-5:2024-12-31:wavi:garbage").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (l.from_date, l.to_date, l.regex),
            (Some("2024-1-5"), Some("2024-12-31"), Some("wavi"))
        );
        let Command::NotifyList(l) = p("notify:list:2024-21-05").unwrap() else {
            panic!()
        };
        assert_eq!((l.from_date, l.regex), (None, Some("2024-21-05")));
    }
}
