//! `notify`: send a notification about one of the owner's keys (or a text
//! message) to another atSign or to the public.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, MessageType, NotifyOp, Priority, VerbId};
use crate::protocol::encode::{
    message_type_str, notify_op_str, priority_str, write_flag, write_opt,
};
use crate::protocol::grammar::{
    digits, eat_ci, is_js_space, is_line_terminator, is_tok, is_word, run1, take_ts, validated,
};
use crate::protocol::metadata::{MetaFragment, take_bool};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyStrategy {
    All,
    Latest,
}

/// `notify`'s recipient part: `:public` or `:@bob` (captured without `@`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyTarget<'a> {
    Public,
    AtSign(&'a str),
}

/// The full `notify` grammar (notifications.md §2, changes §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify<'a> {
    pub id: Option<&'a str>,
    pub operation: Option<NotifyOp>,
    pub message_type: Option<MessageType>,
    pub priority: Option<Priority>,
    pub strategy: Option<NotifyStrategy>,
    pub latest_n: Option<u64>,
    pub notifier: Option<&'a str>,
    pub ttln: Option<u64>,
    pub e_atn: Option<&'a str>,
    /// `:eph` (also accepted as `:eph:true|false` from older builders).
    pub eph: bool,
    pub meta: MetaFragment<'a>,
    pub target: NotifyTarget<'a>,
    /// The key (or, for text messages, the text); may contain single `:`s.
    pub key: &'a str,
    /// Captured without the `@`.
    pub owner: Option<&'a str>,
    pub value: Option<&'a str>,
}

impl<'a> Notify<'a> {
    /// A plain notification to `recipient` (without its `@`) about `key`:
    /// every optional field absent, as the grammar reads a bare
    /// `notify:@<recipient>:<key>`. The server builds the notifications it
    /// sends itself (`notify:multi`, `notify:all`, auto-notify) from it.
    pub fn to(recipient: &'a str, key: &'a str) -> Notify<'a> {
        Notify {
            id: None,
            operation: None,
            message_type: None,
            priority: None,
            strategy: None,
            latest_n: None,
            notifier: None,
            ttln: None,
            e_atn: None,
            eph: false,
            meta: MetaFragment::default(),
            target: NotifyTarget::AtSign(recipient),
            key,
            owner: None,
            value: None,
        }
    }
}

pub(crate) const USAGE: &str = "e.g notify:@colin:key@kevin";

/// `notify:` but not `notify:list`, `notify:status`, `notify:all`,
/// `notify:remove` or `notify:fetch`, which have their own handlers. The
/// reference's test does not exclude `notify:multi:`; that verb is simply
/// tried first (changes §6.2).
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    // Spelled out rather than a loop over the sub-verbs: this runs on every
    // request, and as a loop it stayed an out-of-line call in `identify`.
    line.strip_prefix("notify:").is_some_and(|sub| {
        !(sub.starts_with("list")
            || sub.starts_with("status")
            || sub.starts_with("all")
            || sub.starts_with("remove")
            || sub.starts_with("fetch"))
    })
}

/// The full `notify` grammar (notifications.md §2 plus changes §6.1):
/// `notify[:id:<id>][:update|:delete][:messageType:<t>][:priority:<p>][:strategy:<s>][:latestN:<n>][:notifier:<n>][:ttln:<ms>][:eAtn:<ts>][:eph]<meta>(:public:|:@<to>:)<key>[@owner][:<value>]`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).unwrap_or(Err(ParseError::Syntax(VerbId::Notify)))
}

fn captures(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let mut r = eat_ci(s, "notify")?;
    fn opt<'a, T>(
        r: &mut &'a str,
        lit: &str,
        take: impl Fn(&'a str) -> Option<(T, &'a str)>,
    ) -> Option<Option<T>> {
        match eat_ci(r, lit) {
            None => Some(None),
            Some(x) => {
                let (v, rest) = take(x)?;
                *r = rest;
                Some(Some(v))
            }
        }
    }
    fn pick<'a, 'b, T: Copy>(
        alts: &'b [(&'b str, T)],
    ) -> impl Fn(&'a str) -> Option<(T, &'a str)> + 'b {
        move |x| {
            alts.iter()
                .find_map(|(lit, v)| eat_ci(x, lit).map(|r| (*v, r)))
        }
    }
    let id = opt(&mut r, ":id:", |x| run1(x, |c| is_word(c) || c == '-'))?;
    let operation = [(":update", NotifyOp::Update), (":delete", NotifyOp::Delete)]
        .iter()
        .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))
        .map(|(op, x)| {
            r = x;
            op
        });
    let message_type = opt(
        &mut r,
        ":messageType:",
        pick(&[("key", MessageType::Key), ("text", MessageType::Text)]),
    )?;
    let priority = opt(
        &mut r,
        ":priority:",
        pick(&[
            ("low", Priority::Low),
            ("medium", Priority::Medium),
            ("high", Priority::High),
        ]),
    )?;
    let strategy = opt(
        &mut r,
        ":strategy:",
        pick(&[
            ("all", NotifyStrategy::All),
            ("latest", NotifyStrategy::Latest),
        ]),
    )?;
    let latest_n = opt(&mut r, ":latestN:", digits::<u64>)?;
    let notifier = opt(&mut r, ":notifier:", |x| {
        run1(x, |c| c != ':' && !is_js_space(c))
    })?;
    let ttln = opt(&mut r, ":ttln:", digits::<u64>)?;
    let (e_atn, eph, r) = e_atn_eph(r);
    let (meta, r) = MetaFragment::parse(r).ok()?;
    let (target, r) = if let Some(x) = eat_ci(r, ":public:") {
        (NotifyTarget::Public, x)
    } else {
        let (name, x) = run1(r.strip_prefix(":@")?, is_tok)?;
        (NotifyTarget::AtSign(name), x.strip_prefix(':')?)
    };
    let (key, owner, value) = notify_key_tail(r)?;
    let cmd = Command::Notify(Notify {
        id,
        operation,
        message_type,
        priority,
        strategy,
        latest_n,
        notifier,
        ttln,
        e_atn,
        eph,
        meta,
        target,
        key,
        owner,
        value,
    });
    Some(validated(&meta, cmd))
}

/// The `:<key>[@owner][:value]$` tail of `notify`, where the key may contain
/// single colons: the longest key that lets the rest match wins, as with the
/// reference's greedy `[^:@]((?!:{2})[^@])+`.
fn notify_key_tail(r: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let first = r.chars().next()?;
    if first == ':' || first == '@' {
        return None;
    }
    let fl = first.len_utf8();
    let limit = r.find('@').unwrap_or(r.len());
    let dc = r[fl..].find("::").map_or(r.len(), |i| i + fl);
    // Values must be free of line terminators; find the last one once.
    let last_lt = r.rfind(is_line_terminator);
    let value_ok = |start: usize| start < r.len() && last_lt.is_none_or(|l| l < start);
    let two_chars = |k: usize| r[fl..k].chars().next().is_some();
    if limit == r.len() && r.len() <= dc && two_chars(r.len()) {
        return Some((r, None, None));
    }
    if limit < r.len() && limit <= dc && two_chars(limit) {
        if let Some((owner, rest)) = run1(&r[limit + 1..], is_tok) {
            if rest.is_empty() {
                return Some((&r[..limit], Some(owner), None));
            }
            if rest.starts_with(':') {
                let start = r.len() - rest.len() + 1;
                if value_ok(start) {
                    return Some((&r[..limit], Some(owner), Some(&r[start..])));
                }
            }
        }
    }
    // A key may end right before a `::` (the value then starts with `:`).
    let end = if dc < limit { dc + 1 } else { limit };
    r[..end]
        .char_indices()
        .rev()
        .filter(|&(i, c)| c == ':' && i >= fl && two_chars(i))
        .find(|&(i, _)| value_ok(i + 1))
        .map(|(i, _)| (&r[..i], None, Some(&r[i + 1..])))
}

/// The notify header fields after `:ttln` (changes §6.1): `[:eAtn:<ts>][:eph]`.
pub(super) fn e_atn_eph(r: &str) -> (Option<&str>, bool, &str) {
    let (e_atn, r) = match eat_ci(r, ":eAtn:").and_then(take_ts) {
        Some((t, x)) => (Some(t), x),
        None => (None, r),
    };
    match eat_ci(r, ":eph") {
        Some(x) => match x.strip_prefix(':').and_then(take_bool) {
            Some((b, y)) => (e_atn, b, y),
            None => (e_atn, true, x),
        },
        None => (e_atn, false, r),
    }
}

pub(crate) fn encode(c: &Notify<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("notify")?;
    write_opt(f, ":id:", c.id)?;
    write_opt(f, ":", c.operation.map(notify_op_str))?;
    write_opt(f, ":messageType:", c.message_type.map(message_type_str))?;
    write_opt(f, ":priority:", c.priority.map(priority_str))?;
    write_opt(
        f,
        ":strategy:",
        c.strategy.map(|s| match s {
            NotifyStrategy::All => "all",
            NotifyStrategy::Latest => "latest",
        }),
    )?;
    write_opt(f, ":latestN:", c.latest_n)?;
    write_opt(f, ":notifier:", c.notifier)?;
    write_opt(f, ":ttln:", c.ttln)?;
    write_opt(f, ":eAtn:", c.e_atn)?;
    write_flag(f, ":eph", c.eph)?;
    write!(f, "{}", c.meta)?;
    match c.target {
        NotifyTarget::Public => f.write_str(":public")?,
        NotifyTarget::AtSign(a) => write!(f, ":@{a}")?,
    }
    write!(f, ":{}", c.key)?;
    write_opt(f, "@", c.owner)?;
    write_opt(f, ":", c.value)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::NotifyTarget;
    use crate::protocol::command::Command;

    #[test]
    fn notify_key_owner_value_split() {
        let Command::Notify(n) = p("notify:@bob:hello:world").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.owner, n.value), ("hello:world", None, None));
        let Command::Notify(n) = p("notify:@bob:ab:c@d e").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.owner, n.value), ("ab", None, Some("c@d e")));
        // A one-character key cannot absorb the rest, so nothing matches.
        assert!(p("notify:@bob:a:b@c d").is_err());
        let Command::Notify(n) = p("notify:@bob:public:phone.wavi@alice:v:w").unwrap() else {
            panic!()
        };
        assert_eq!(
            (n.target, n.key, n.owner, n.value),
            (
                NotifyTarget::AtSign("bob"),
                "public:phone.wavi",
                Some("alice"),
                Some("v:w")
            )
        );
        let Command::Notify(n) = p("notify:@bob:ab::cd").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.value), ("ab", Some(":cd")));
        let Command::Notify(n) = p("notify:eph:true:@bob:msg@alice").unwrap() else {
            panic!()
        };
        assert!(n.eph);
        assert!(p("notify:@bob:k@alice:").is_err());
    }
}
