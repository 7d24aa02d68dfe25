//! `update`: store a value under a key with optional metadata, or (as
//! `update:json`) a whole record given as JSON.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, KeyRef, VerbId};
use crate::protocol::encode::{write_flag, write_key_ref};
use crate::protocol::grammar::{
    dot_all, eat_ci, flag, is_tok, opt_owner, run1, validated, with_scope,
};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::parse::ParseError;

/// `update[:nc]<meta>[:public|:@for]:<key>[@owner] <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    pub no_commit: bool,
    pub meta: MetaFragment<'a>,
    pub key: KeyRef<'a>,
    pub value: &'a str,
}

/// `update[:nc]:json:<json>`; the JSON is parsed by the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateJson<'a> {
    pub no_commit: bool,
    pub json: &'a str,
}

pub(crate) const USAGE: &str = "e.g. update:@alice:location@bob San Francisco";

/// `update:` but not `update:meta`, which has its own handler (and
/// `update:metaX…` therefore belongs to neither).
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("update:") && !line.starts_with("update:meta")
}

/// `^update(:nc)?(:json:(?<json>.+)|<meta>(:public|:@for)?:(?<atKey>[^:@\s]+|privatekey:at_pkam_publickey)(@owner)? (?<value>.+))$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).unwrap_or(Err(ParseError::Syntax(VerbId::Update)))
}

fn captures(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "update")?;
    flag(r, ":nc").find_map(|(no_commit, r)| {
        if let Some(json) = eat_ci(r, ":json:") {
            if !json.is_empty() && dot_all(json) {
                return Some(Ok(Command::UpdateJson(UpdateJson { no_commit, json })));
            }
        }
        let (meta, r) = MetaFragment::parse(r).ok()?;
        with_scope(r, |scope, rest| {
            let k = rest.strip_prefix(':')?;
            let tail = |name, after| {
                let (owner, after) = opt_owner(after)?;
                let value = after
                    .strip_prefix(' ')
                    .filter(|v| !v.is_empty() && dot_all(v))?;
                let key = KeyRef {
                    cached: false,
                    scope,
                    name,
                    owner,
                };
                Some(validated(
                    &meta,
                    Command::Update(Update {
                        no_commit,
                        meta,
                        key,
                        value,
                    }),
                ))
            };
            if let Some(c) = run1(k, is_tok).and_then(|(name, after)| tail(name, after)) {
                return Some(c);
            }
            let after = eat_ci(k, "privatekey:at_pkam_publickey")?;
            tail(&k[..k.len() - after.len()], after)
        })
    })
}

pub(crate) fn encode(c: &Update<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("update")?;
    write_flag(f, ":nc", c.no_commit)?;
    write!(f, "{}", c.meta)?;
    write_key_ref(f, &c.key)?;
    write!(f, " {}", c.value)
}

pub(crate) fn encode_json(c: &UpdateJson<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("update")?;
    write_flag(f, ":nc", c.no_commit)?;
    write!(f, ":json:{}", c.json)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{key, p};
    use crate::protocol::command::{Command, Scope};

    #[test]
    fn update_shapes() {
        let Command::Update(u) = p("update:public:Location.wavi@alice San Francisco").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            u.key,
            key(false, Scope::Public, "Location.wavi", Some("alice"))
        );
        assert_eq!(u.value, "San Francisco");
        assert_eq!(u.key.assemble(), "public:location.wavi@alice");
        // A key called `public` (the scope reading fails, so it backtracks).
        let Command::Update(u) = p("update:public@alice v").unwrap() else {
            panic!()
        };
        assert_eq!(u.key, key(false, Scope::None, "public", Some("alice")));
        // `nc` as a key rather than the flag.
        let Command::Update(u) = p("update:nc v").unwrap() else {
            panic!()
        };
        assert!(!u.no_commit);
        assert_eq!(u.key.name, "nc");
        // Exactly one separator space is consumed.
        let Command::Update(u) = p("update:x@alice  two").unwrap() else {
            panic!()
        };
        assert_eq!(u.value, " two");
        let Command::Update(u) = p("UPDATE:privatekey:at_pkam_publickey MIIB").unwrap() else {
            panic!()
        };
        assert_eq!(u.key.assemble(), "privatekey:at_pkam_publickey");
        assert!(p("update:x@alice").is_err());
        assert!(p("update:isEncrypted:true:ttl:5:x@alice v").is_err());
        assert!(p("update:ttr:-2:x@alice v").is_err());
        let Command::UpdateJson(j) = p("update:json:{\"a\":1}").unwrap() else {
            panic!()
        };
        assert_eq!(j.json, "{\"a\":1}");
    }
}
