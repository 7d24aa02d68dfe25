//! `otp`: get a one-time passcode for a new enrollment, or store a
//! semi-permanent one.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{digits, eat_ci, is_word, run1};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpOp {
    Get,
    Put,
}

/// `otp:get[:ttl:<ms>]` or `otp:put:<passcode>[:ttl:<ms>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Otp<'a> {
    pub op: OtpOp,
    pub passcode: Option<&'a str>,
    pub ttl: Option<u64>,
}

pub(crate) const USAGE: &str = "otp:get or otp:validate:<otp>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("otp:")
}

/// `^otp:(get|put)(:(?<otp>(?<=put:)\w{6,}))?(:ttl:(\d+))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::Otp))
}

fn captures(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "otp:")?;
    let (op, r) = if let Some(x) = eat_ci(r, "get") {
        (OtpOp::Get, x)
    } else {
        (OtpOp::Put, eat_ci(r, "put")?)
    };
    let finish = |passcode, r| {
        let (ttl, r) = match eat_ci(r, ":ttl:").and_then(digits::<u64>) {
            Some((t, x)) => (Some(t), x),
            None => (None, r),
        };
        r.is_empty()
            .then_some(Command::Otp(Otp { op, passcode, ttl }))
    };
    // `\w{6,}` only right after `put:` (the lookbehind).
    let with_code = match op {
        OtpOp::Put => r
            .strip_prefix(':')
            .and_then(|x| run1(x, is_word))
            .filter(|(c, _)| c.len() >= 6),
        OtpOp::Get => None,
    };
    with_code
        .and_then(|(code, x)| finish(Some(code), x))
        .or_else(|| finish(None, r))
}

pub(crate) fn encode(c: &Otp<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str(match c.op {
        OtpOp::Get => "otp:get",
        OtpOp::Put => "otp:put",
    })?;
    write_opt(f, ":", c.passcode)?;
    write_opt(f, ":ttl:", c.ttl)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn otp_takes_a_passcode_only_after_put() {
        let Command::Otp(o) = p("otp:put:ttl:5").unwrap() else {
            panic!()
        };
        assert_eq!((o.passcode, o.ttl), (None, Some(5)));
        assert!(p("otp:get:ABCDEF").is_err());
    }
}
