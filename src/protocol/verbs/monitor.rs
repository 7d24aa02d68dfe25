//! `monitor`: turn the connection into a stream of the owner's
//! notifications, optionally filtered by a regex.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::{write_flag, write_opt};
use crate::protocol::grammar::{digits, dot_all, eat_ci};
use crate::protocol::parse::ParseError;

/// `monitor[:strict][:selfNotifications][:multiplexed][:<epochMillis>][ <regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Monitor<'a> {
    pub strict: bool,
    pub self_notifications: bool,
    pub multiplexed: bool,
    pub epoch_ms: Option<u64>,
    pub regex: Option<&'a str>,
}

pub(crate) const USAGE: &str = "e.g. monitor or monitor .wavi";

/// Any line starting `monitor`, with or without a colon.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("monitor")
}

/// `^monitor(:strict)?(:selfNotifications)?(:multiplexed)?(:(\d+))?( (?<regex>.+))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Monitor)
        .ok_or(ParseError::Syntax(VerbId::Monitor))
}

fn captures(s: &str) -> Option<Monitor<'_>> {
    let r = eat_ci(s, "monitor")?;
    let take = |r: &mut &str, lit: &str| match eat_ci(r, lit) {
        Some(x) => {
            *r = x;
            true
        }
        None => false,
    };
    let mut r = r;
    let strict = take(&mut r, ":strict");
    let self_notifications = take(&mut r, ":selfNotifications");
    let multiplexed = take(&mut r, ":multiplexed");
    let mut epoch_ms = None;
    if let Some(x) = r.strip_prefix(':') {
        let (e, rest) = digits::<u64>(x)?;
        epoch_ms = Some(e);
        r = rest;
    }
    let regex = match r.strip_prefix(' ') {
        Some(re) if !re.is_empty() && dot_all(re) => Some(re),
        None if r.is_empty() => None,
        _ => return None,
    };
    Some(Monitor {
        strict,
        self_notifications,
        multiplexed,
        epoch_ms,
        regex,
    })
}

pub(crate) fn encode(c: &Monitor<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("monitor")?;
    write_flag(f, ":strict", c.strict)?;
    write_flag(f, ":selfNotifications", c.self_notifications)?;
    write_flag(f, ":multiplexed", c.multiplexed)?;
    write_opt(f, ":", c.epoch_ms)?;
    write_opt(f, " ", c.regex)
}
