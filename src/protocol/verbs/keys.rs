//! `keys`: store, fetch and delete the encryption keys an APKAM client
//! keeps on the server.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{dot_all, eat_ci, is_js_space, is_word, run1};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOp {
    Put,
    Get,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVisibility {
    Public,
    Private,
    SelfKey,
}

/// `keys:<op>[:<visibility>][:namespace:…][:appName:…][:deviceName:…][:keyType:…][:encryptionKeyName:…][:keyName:<k>][ <value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    pub op: KeysOp,
    pub visibility: Option<KeyVisibility>,
    pub namespace: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub device_name: Option<&'a str>,
    pub key_type: Option<&'a str>,
    pub encryption_key_name: Option<&'a str>,
    pub key_name: Option<&'a str>,
    pub value: Option<&'a str>,
}

pub(crate) const USAGE: &str = "e.g. keys:put:public:keyName:encryptionPublicKey:namespace:__global:keyType:rsa2048:<public_key>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("keys:")
}

/// `^keys:(put|get|delete):?(public|private|self)?:?(namespace:…:?)?…(keyName:(\S+) ?)?(?<keyValue>.*)$`.
/// The trailing `.*` absorbs anything, so the greedy reading always wins.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::Keys))
}

fn captures(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "keys:")?;
    let (op, r) = [
        ("put", KeysOp::Put),
        ("get", KeysOp::Get),
        ("delete", KeysOp::Delete),
    ]
    .iter()
    .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
    fn colon(r: &str) -> &str {
        r.strip_prefix(':').unwrap_or(r)
    }
    let mut r = colon(r);
    let visibility = [
        ("public", KeyVisibility::Public),
        ("private", KeyVisibility::Private),
        ("self", KeyVisibility::SelfKey),
    ]
    .iter()
    .find_map(|(lit, v)| eat_ci(r, lit).map(|x| (*v, x)))
    .map(|(v, x)| {
        r = colon(x);
        v
    });
    let alnum = |c: char| is_word(c);
    let alnum_dash = |c: char| is_word(c) || c == '-';
    let mut field = |lit: &str, f: &dyn Fn(char) -> bool| -> Option<&'_ str> {
        let (v, x) = eat_ci(r, lit).and_then(|x| run1(x, f))?;
        r = colon(x);
        Some(v)
    };
    let namespace = field("namespace:", &alnum);
    let app_name = field("appName:", &alnum);
    let device_name = field("deviceName:", &alnum);
    let key_type = field("keyType:", &alnum_dash);
    let encryption_key_name = field("encryptionKeyName:", &alnum_dash);
    let key_name = match eat_ci(r, "keyName:").and_then(|x| run1(x, |c| !is_js_space(c))) {
        Some((k, x)) => {
            r = x.strip_prefix(' ').unwrap_or(x);
            Some(k)
        }
        None => None,
    };
    if !dot_all(r) {
        return None;
    }
    let value = (!r.is_empty()).then_some(r);
    Some(Command::Keys(Keys {
        op,
        visibility,
        namespace,
        app_name,
        device_name,
        key_type,
        encryption_key_name,
        key_name,
        value,
    }))
}

pub(crate) fn encode(c: &Keys<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str(match c.op {
        KeysOp::Put => "keys:put",
        KeysOp::Get => "keys:get",
        KeysOp::Delete => "keys:delete",
    })?;
    write_opt(
        f,
        ":",
        c.visibility.map(|v| match v {
            KeyVisibility::Public => "public",
            KeyVisibility::Private => "private",
            KeyVisibility::SelfKey => "self",
        }),
    )?;
    write_opt(f, ":namespace:", c.namespace)?;
    write_opt(f, ":appName:", c.app_name)?;
    write_opt(f, ":deviceName:", c.device_name)?;
    write_opt(f, ":keyType:", c.key_type)?;
    write_opt(f, ":encryptionKeyName:", c.encryption_key_name)?;
    write_opt(f, ":keyName:", c.key_name)?;
    match (c.key_name, c.value) {
        (Some(_), Some(v)) => write!(f, " {v}"),
        (None, Some(v)) => write!(f, ":{v}"),
        (_, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::KeysOp;
    use crate::protocol::command::Command;

    #[test]
    fn keys_get_by_key_name() {
        let Command::Keys(k) =
            p("keys:get:keyName:abc.default_enc_private_key.__manage@alice").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (k.op, k.key_name, k.value),
            (
                KeysOp::Get,
                Some("abc.default_enc_private_key.__manage@alice"),
                None
            )
        );
    }
}
