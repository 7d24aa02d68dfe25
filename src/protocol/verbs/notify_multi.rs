//! `notify:multi` (post-2024): one notification to several atSigns, with a
//! narrower metadata set than `notify`.

use std::fmt::{self, Formatter};

use super::notify::e_atn_eph;
use crate::error::{AtCode, AtError};
use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::{write_flag, write_opt};
use crate::protocol::grammar::{digits, dot_all, eat_ci, is_tok, run1, validated};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::parse::ParseError;

/// `notify:multi[:update][:ttln:n][:eAtn:<ts>][:eph]<meta>:@r1[,@r2…]:<key>@<sender>[:<value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyMulti<'a> {
    /// `:update` was written (it is the only operation anyway).
    pub explicit_update: bool,
    pub ttln: Option<u64>,
    pub e_atn: Option<&'a str>,
    pub eph: bool,
    pub meta: MetaFragment<'a>,
    /// `@a,@b` as sent; iterate with [`NotifyMulti::recipient_list`].
    pub recipients: &'a str,
    pub key: &'a str,
    /// Captured without the `@`.
    pub owner: &'a str,
    pub value: Option<&'a str>,
}

impl<'a> NotifyMulti<'a> {
    pub fn recipient_list(&self) -> impl Iterator<Item = &'a str> {
        self.recipients.split(',')
    }
}

pub(crate) const USAGE: &str = "e.g notify:multi:@bob,@colin:key@alice:value";

/// `notify:multi:` with its colon. Tried before `notify`, whose accept test
/// would take it too (changes §6.2).
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("notify:multi:")
}

/// Metadata `notify:multi` refuses by name (changes §6.2).
const MULTI_REFUSED: [&str; 12] = [
    "ttr",
    "ccd",
    "sharedKeyEnc",
    "pubKeyCS",
    "pubKeyHash",
    "hashingAlgo",
    "skeEncKeyName",
    "skeEncAlgo",
    "isBinary",
    "encoding",
    "sharedKeyStatus",
    "dataSignature",
];

/// `notify:multi[:update][:ttln:<ms>][:eAtn:<ts>][:eph]<meta>:@r1[,@r2…]:<key>@<sender>[:<value>]`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).unwrap_or(Err(ParseError::Syntax(VerbId::NotifyMulti)))
}

fn captures(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "notify:multi")?;
    let (explicit_update, r) = match eat_ci(r, ":update") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let (ttln, r) = match eat_ci(r, ":ttln:") {
        Some(x) => {
            let (t, y) = digits::<u64>(x)?;
            (Some(t), y)
        }
        None => (None, r),
    };
    let (e_atn, eph, r) = e_atn_eph(r);
    let (meta, r) = MetaFragment::parse(r).ok()?;
    let rec = r.strip_prefix(':')?;
    let is_rec = |c: char| is_tok(c) && c != ',';
    let mut x = rec;
    loop {
        let (_, y) = run1(x.strip_prefix('@')?, is_rec)?;
        x = y;
        match x.strip_prefix(',') {
            Some(y) => x = y,
            None => break,
        }
    }
    let recipients = &rec[..rec.len() - x.len()];
    let k = x.strip_prefix(':')?;
    let at = k.find('@')?;
    let key = &k[..at];
    if !is_double_key(key, Some('@')) {
        return None;
    }
    let (owner, r) = run1(&k[at + 1..], is_tok)?;
    let value = if r.is_empty() {
        None
    } else {
        Some(
            r.strip_prefix(':')
                .filter(|v| !v.is_empty() && dot_all(v))?,
        )
    };
    if let Some(bad) = meta.present_fields().find(|f| MULTI_REFUSED.contains(f)) {
        return Some(Err(ParseError::Meta(AtError::new(
            AtCode::InvalidSyntax,
            format!("notify:multi does not take {bad}"),
        ))));
    }
    let cmd = Command::NotifyMulti(NotifyMulti {
        explicit_update,
        ttln,
        e_atn,
        eph,
        meta,
        recipients,
        key,
        owner,
        value,
    });
    Some(validated(&meta, cmd))
}

/// The `[^:@]((?!:{2})[^@])+` key group: at least two chars, the first not
/// `:` or `@`, none of the others `@`, and no `::` starting after the first
/// char (`next` is the char after the key, which the lookahead also sees).
fn is_double_key(key: &str, next: Option<char>) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    if first == ':' || first == '@' || rest.is_empty() || rest.contains('@') || rest.contains("::")
    {
        return false;
    }
    !(rest.ends_with(':') && next == Some(':'))
}

pub(crate) fn encode(c: &NotifyMulti<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("notify:multi")?;
    write_flag(f, ":update", c.explicit_update)?;
    write_opt(f, ":ttln:", c.ttln)?;
    write_opt(f, ":eAtn:", c.e_atn)?;
    write_flag(f, ":eph", c.eph)?;
    write!(f, "{}:{}:{}@{}", c.meta, c.recipients, c.key, c.owner)?;
    write_opt(f, ":", c.value)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::error::AtError;
    use crate::protocol::command::Command;

    #[test]
    fn notify_multi_refuses_fields_by_name() {
        let e = p("notify:multi:ttr:5:@bob:msg.chat@alice:v").unwrap_err();
        assert_eq!(AtError::from(e).message, "notify:multi does not take ttr");
        let Command::NotifyMulti(m) = p("notify:multi:@bob,@colin:msg.chat@alice").unwrap() else {
            panic!()
        };
        assert_eq!(m.recipient_list().collect::<Vec<_>>(), ["@bob", "@colin"]);
        assert!(p("notify:multi:@bob,colin:msg.chat@alice").is_err());
        assert!(p("notify:multi:@bob:msg.chat").is_err());
    }
}
