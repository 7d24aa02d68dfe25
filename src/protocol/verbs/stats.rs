//! `stats`: the server's metrics, all of them or those listed by id.

use std::fmt::{self, Formatter, Write as _};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{digits, dot_all, eat_ci};
use crate::protocol::parse::ParseError;

/// `stats[:<id>[,<id>…]][:<regex>]` (regex only after `:3` or `:15`).
/// No ids means every metric.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats<'a> {
    pub ids: Vec<u32>,
    pub regex: Option<&'a str>,
}

pub(crate) const USAGE: &str = "stats:1,2,3";

/// Any line starting `stats`, with or without a colon.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("stats")
}

/// `^stats(?<statId>:((?!0)\d+)?(,(\d+))*)?(:(?<regex>(?<=:3:|:15:).+))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Stats)
        .ok_or(ParseError::Syntax(VerbId::Stats))
}

fn captures(s: &str) -> Option<Stats<'_>> {
    let r = eat_ci(s, "stats")?;
    if r.is_empty() {
        return Some(Stats::default());
    }
    let mut r = r.strip_prefix(':')?;
    let mut ids = Vec::new();
    if !r.starts_with('0') {
        if let Some((id, rest)) = digits::<u32>(r) {
            ids.push(id);
            r = rest;
        } else if r.starts_with(|c: char| c.is_ascii_digit()) {
            return None; // too large
        }
    }
    while let Some(rest) = r.strip_prefix(',') {
        let (id, rest) = digits::<u32>(rest)?;
        ids.push(id);
        r = rest;
    }
    let regex = if r.is_empty() {
        None
    } else {
        // The lookbehind only holds when the id list is exactly `:3` or `:15`.
        let id_text = &s[eat_ci(s, "stats:").map_or(0, |x| s.len() - x.len())..s.len() - r.len()];
        let re = r
            .strip_prefix(':')
            .filter(|re| !re.is_empty() && dot_all(re))?;
        if id_text != "3" && id_text != "15" {
            return None;
        }
        Some(re)
    };
    Some(Stats { ids, regex })
}

pub(crate) fn encode(c: &Stats<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("stats")?;
    if !c.ids.is_empty() {
        f.write_char(':')?;
    }
    for (i, id) in c.ids.iter().enumerate() {
        // The first id may not start with 0; `stats:,0` is how
        // the grammar spells a leading zero id.
        if i > 0 || *id == 0 {
            f.write_char(',')?;
        }
        write!(f, "{id}")?;
    }
    write_opt(f, ":", c.regex)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn stats_ids_and_regex() {
        let Command::Stats(s) = p("stats:3:.*wavi").unwrap() else {
            panic!()
        };
        assert_eq!((s.ids.as_slice(), s.regex), (&[3][..], Some(".*wavi")));
        assert!(p("stats:1,3:x").is_err());
        assert!(p("stats:13:x").is_err());
        assert!(p("stats:0").is_err());
        let Command::Stats(s) = p("stats:,0").unwrap() else {
            panic!()
        };
        assert_eq!(s.ids, vec![0]);
        assert!(p("statsx").is_err());
    }
}
