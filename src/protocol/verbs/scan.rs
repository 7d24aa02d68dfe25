//! `scan`: list the keys the caller may see, optionally filtered by a regex.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::{bool_str, write_flag, write_opt};
use crate::protocol::grammar::{
    changes_when_lowercased, digits, eat_ci, is_js_space, is_tok, run1,
};
use crate::protocol::metadata::take_bool;
use crate::protocol::parse::ParseError;

/// `scan[:cl][:showhidden:<bool>][:@atsign][:page:<n>][ <regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scan<'a> {
    pub commit_log: bool,
    pub show_hidden: Option<bool>,
    /// With its leading `@`, as the grammar captures it.
    pub for_atsign: Option<&'a str>,
    pub page: Option<u64>,
    pub regex: Option<&'a str>,
}

pub(crate) const USAGE: &str = "scan";

/// Any line starting `scan`, with or without a colon (`scanner` too).
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("scan")
}

/// `^scan$|scan(:cl)?(:showhidden:(true|false))?(:(?<forAtSign>@[^:@\s]+))?(:page:(\d+))?( (?<regex>\S+))?$`
/// The second alternative is not anchored at the start, so like the
/// reference we also accept it at a later `scan` in the line.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    let bytes = s.as_bytes();
    (0..bytes.len().saturating_sub(3))
        .filter(|&i| bytes[i..i + 4].eq_ignore_ascii_case(b"scan"))
        .find_map(|i| captures_after_scan(&s[i + 4..]))
        .map(Command::Scan)
        .ok_or(ParseError::Syntax(VerbId::Scan))
}

/// The second alternative from just after its `scan`, to the end of the line.
fn captures_after_scan(r: &str) -> Option<Scan<'_>> {
    let (commit_log, r) = match eat_ci(r, ":cl") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let (show_hidden, r) = match eat_ci(r, ":showhidden:").and_then(take_bool) {
        Some((b, x)) => (Some(b), x),
        None => (None, r),
    };
    let (for_atsign, r) = match r.strip_prefix(":@").and_then(|x| run1(x, is_tok)) {
        Some((name, x)) => (Some(&r[1..2 + name.len()]), x),
        None => (None, r),
    };
    let (page, r) = match eat_ci(r, ":page:").and_then(digits::<u64>) {
        Some((p, x)) => (Some(p), x),
        None => (None, r),
    };
    let (regex, r) = match r
        .strip_prefix(' ')
        .and_then(|x| run1(x, |c| !is_js_space(c)))
    {
        Some((re, x)) => (Some(re), x),
        None => (None, r),
    };
    r.is_empty().then_some(Scan {
        commit_log,
        show_hidden,
        for_atsign,
        page,
        regex,
    })
}

pub(crate) fn encode(c: &Scan<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("scan")?;
    let flagless =
        !c.commit_log && c.show_hidden.is_none() && c.for_atsign.is_none() && c.page.is_none();
    if flagless
        && c.regex
            .is_some_and(|r| r.contains(':') || changes_when_lowercased(r))
    {
        // A line without `:` is lower-cased whole, and a `:` in the
        // regex would pull the space into the lower-cased,
        // space-stripped verb part. `scan:` first keeps the regex
        // out of it; the grammar's unanchored second alternative
        // then matches at the second `scan` (only the reference's
        // quirk can produce such a command in the first place).
        f.write_str(":scan")?;
    }
    write_flag(f, ":cl", c.commit_log)?;
    write_opt(f, ":showhidden:", c.show_hidden.map(bool_str))?;
    write_opt(f, ":", c.for_atsign)?;
    write_opt(f, ":page:", c.page)?;
    write_opt(f, " ", c.regex)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::Scan;
    use crate::protocol::command::Command;

    #[test]
    fn scan_forms() {
        assert_eq!(p("scan").unwrap(), Command::Scan(Scan::default()));
        let Command::Scan(s) = p("scan:showhidden:TRUE:@bob:page:3 .*").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.show_hidden, s.for_atsign, s.page, s.regex),
            (Some(true), Some("@bob"), Some(3), Some(".*"))
        );
        assert!(p("scan a b").is_err());
        // The unanchored second alternative of the reference regex.
        let Command::Scan(s) = p("scanxscan:page:1").unwrap() else {
            panic!()
        };
        assert_eq!(s.page, Some(1));
    }
}
