//! `notify:all`: one notification to a list of atSigns at once.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, MessageType, NotifyOp, VerbId};
use crate::protocol::encode::{
    bool_str, message_type_str, notify_op_str, write_opt, write_opt_then,
};
use crate::protocol::grammar::{
    choice, digits, eat_ci, group, is_js_space, is_line_terminator, run, run1,
};
use crate::protocol::metadata::take_int;
use crate::protocol::parse::ParseError;

/// `notify:all:[op:][messageType:<t>:][ttl:n:][ttb:n:][ttr:n:][ccd:b:]<recipients>:<key>[@owner][:<value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyAll<'a> {
    pub operation: Option<NotifyOp>,
    pub message_type: Option<MessageType>,
    pub ttl: Option<u64>,
    pub ttb: Option<u64>,
    pub ttr: Option<i64>,
    pub ccd: Option<bool>,
    /// The comma-separated recipient list as sent (may be empty).
    pub recipients: &'a str,
    pub key: &'a str,
    pub owner: Option<&'a str>,
    pub value: Option<&'a str>,
}

pub(crate) const USAGE: &str = "e.g notify:all:@alice,@bob:key1@colin";

/// Any line starting `notify:all`, with or without a colon after it.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("notify:all")
}

/// `^notify:all:((update|delete):)?(messageType:(key|text):)?(ttl:(\d+):)?(ttb:(\d+):)?(ttr:(-?\d+):)?(ccd:(true|false+):)?(?<forAtSign>[^:\s]*)(:(?<atKey>[^@:\s]+))(@(?<atSign>[^@:\s]+))?(:(?<value>.+))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::NotifyAll))
}

fn captures(s: &str) -> Option<Command<'_>> {
    const OPS: [(&str, NotifyOp); 2] =
        [("update:", NotifyOp::Update), ("delete:", NotifyOp::Delete)];
    const MT: [(&str, MessageType); 2] = [
        ("messageType:key:", MessageType::Key),
        ("messageType:text:", MessageType::Text),
    ];
    let r = eat_ci(s, "notify:all:")?;
    let last_lt = s.rfind(is_line_terminator);
    let base = s.len();
    fn num_colon(x: &str) -> Option<(u64, &str)> {
        let (v, x) = digits::<u64>(x)?;
        Some((v, x.strip_prefix(':')?))
    }
    fn ttr_take(x: &str) -> Option<(i64, &str)> {
        let (v, x) = take_int(x)?;
        Some((v, x.strip_prefix(':')?))
    }
    /// `(true|false+):` — the reference regex really allows `falseee`.
    fn ccd_take(x: &str) -> Option<(bool, &str)> {
        if let Some(y) = eat_ci(x, "true:") {
            return Some((true, y));
        }
        let (_, y) = run1(eat_ci(x, "fals")?, |c| c == 'e' || c == 'E')?;
        Some((false, y.strip_prefix(':')?))
    }
    choice(r, &OPS).find_map(|(operation, r)| {
        choice(r, &MT).find_map(|(message_type, r)| {
            group(r, "ttl:", num_colon).find_map(|(ttl, r)| {
                group(r, "ttb:", num_colon).find_map(|(ttb, r)| {
                    group(r, "ttr:", ttr_take).find_map(|(ttr, r)| {
                        group(r, "ccd:", ccd_take).find_map(|(ccd, r)| {
                            let (recipients, r) = run(r, |c| c != ':' && !is_js_space(c));
                            let no_at = |c: char| c != '@' && c != ':' && !is_js_space(c);
                            let (key, r) = run1(r.strip_prefix(':')?, no_at)?;
                            let (owner, r) = match r.strip_prefix('@') {
                                Some(x) => {
                                    let (o, y) = run1(x, no_at)?;
                                    (Some(o), y)
                                }
                                None => (None, r),
                            };
                            let value = if r.is_empty() {
                                None
                            } else {
                                let v = r.strip_prefix(':')?;
                                let start = base - v.len();
                                if v.is_empty() || last_lt.is_some_and(|l| l >= start) {
                                    return None;
                                }
                                Some(v)
                            };
                            Some(Command::NotifyAll(NotifyAll {
                                operation,
                                message_type,
                                ttl,
                                ttb,
                                ttr,
                                ccd,
                                recipients,
                                key,
                                owner,
                                value,
                            }))
                        })
                    })
                })
            })
        })
    })
}

pub(crate) fn encode(c: &NotifyAll<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("notify:all:")?;
    write_opt_then(f, "", c.operation.map(notify_op_str), ":")?;
    write_opt_then(f, "messageType:", c.message_type.map(message_type_str), ":")?;
    write_opt_then(f, "ttl:", c.ttl, ":")?;
    write_opt_then(f, "ttb:", c.ttb, ":")?;
    write_opt_then(f, "ttr:", c.ttr, ":")?;
    write_opt_then(f, "ccd:", c.ccd.map(bool_str), ":")?;
    write!(f, "{}:{}", c.recipients, c.key)?;
    write_opt(f, "@", c.owner)?;
    write_opt(f, ":", c.value)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn notify_all_backtracks_over_optional_groups() {
        let Command::NotifyAll(a) = p("notify:all:update:x").unwrap() else {
            panic!()
        };
        assert_eq!((a.operation, a.recipients, a.key), (None, "update", "x"));
        let Command::NotifyAll(a) = p("notify:all:ccd:falseee:@a,@b:k@c:v").unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.ccd, a.recipients, a.owner, a.value),
            (Some(false), "@a,@b", Some("c"), Some("v"))
        );
    }
}
