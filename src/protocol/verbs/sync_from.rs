//! `sync:from`: the owner's commit log from a sequence number on, for a
//! client catching up.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{digits, dot_all, eat_ci, group};
use crate::protocol::parse::ParseError;

/// `sync:from:<id|-1>[:limit:<n>][:skipDeletesUntil:<k>][:<regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFrom<'a> {
    pub from: i64,
    pub limit: Option<u32>,
    pub skip_deletes_until: Option<i64>,
    pub regex: Option<&'a str>,
}

pub(crate) const USAGE: &str = "syntax sync:from:1:limit:10:.wavi";

/// Any line starting `sync:from`; plain `sync:<n>` is for no handler.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("sync:from")
}

/// `^sync:from:(?<from>[0-9]+|-1)(:limit:(\d+))?(:skipDeletesUntil:(\d+))?(:(?<regex>.+))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::SyncFrom))
}

fn captures(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "sync:from:")?;
    let (from, r) = match digits::<i64>(r) {
        Some(x) => x,
        None => (-1, r.strip_prefix("-1")?),
    };
    group(r, ":limit:", digits::<u32>).find_map(|(limit, r)| {
        group(r, ":skipDeletesUntil:", digits::<i64>).find_map(|(skip_deletes_until, r)| {
            let regex = if r.is_empty() {
                None
            } else {
                Some(
                    r.strip_prefix(':')
                        .filter(|x| !x.is_empty() && dot_all(x))?,
                )
            };
            Some(Command::SyncFrom(SyncFrom {
                from,
                limit,
                skip_deletes_until,
                regex,
            }))
        })
    })
}

pub(crate) fn encode(c: &SyncFrom<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "sync:from:{}", c.from)?;
    write_opt(f, ":limit:", c.limit)?;
    write_opt(f, ":skipDeletesUntil:", c.skip_deletes_until)?;
    write_opt(f, ":", c.regex)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn sync_from_forms() {
        let Command::SyncFrom(s) = p("sync:from:-1:limit:10:skipDeletesUntil:593700").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.from, s.limit, s.skip_deletes_until, s.regex),
            (-1, Some(10), Some(593_700), None)
        );
        // The 2024 grammar's mandatory limit is optional now.
        let Command::SyncFrom(s) = p("sync:from:41:.*\\.wavi").unwrap() else {
            panic!()
        };
        assert_eq!((s.from, s.limit, s.regex), (41, None, Some(".*\\.wavi")));
        let Command::SyncFrom(s) = p("sync:from:1:limit:5:").unwrap() else {
            panic!()
        };
        assert_eq!((s.limit, s.regex), (None, Some("limit:5:")));
        assert!(p("sync:from:-2").is_err());
    }
}
