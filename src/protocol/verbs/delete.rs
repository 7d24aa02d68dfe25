//! `delete`: remove one of the owner's keys (or a cached copy).

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, KeyRef, Priority, VerbId};
use crate::protocol::encode::{priority_str, write_flag, write_key_ref, write_opt};
use crate::protocol::grammar::{
    choice, eat_ci, flag, group, is_tok, opt_owner, run1, take_ts, with_scope,
};
use crate::protocol::parse::ParseError;

/// `delete[:dAt:<ts>][:nc][:force][:priority:<p>][:cached][:public|:@for]:<key>[@owner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    pub d_at: Option<&'a str>,
    pub no_commit: bool,
    pub force: bool,
    pub priority: Option<Priority>,
    pub key: KeyRef<'a>,
}

pub(crate) const USAGE: &str = "syntax delete:@<atkey>   e.g delete:phone@alice";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("delete:")
}

/// `^delete(:dAt:<ts>)?(:nc)?(:force)?(:priority:<p>)?(:cached)?(:public|:@for)?:(?<atKey>[^:@\s]+|privatekey:at_secret)(@owner)?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Delete)
        .ok_or(ParseError::Syntax(VerbId::Delete))
}

fn captures(s: &str) -> Option<Delete<'_>> {
    const PRIO: [(&str, Priority); 3] = [
        (":priority:low", Priority::Low),
        (":priority:medium", Priority::Medium),
        (":priority:high", Priority::High),
    ];
    let r = eat_ci(s, "delete")?;
    group(r, ":dAt:", take_ts).find_map(|(d_at, r)| {
        flag(r, ":nc").find_map(|(no_commit, r)| {
            flag(r, ":force").find_map(|(force, r)| {
                choice(r, &PRIO).find_map(|(priority, r)| {
                    flag(r, ":cached").find_map(|(cached, r)| {
                        with_scope(r, |scope, rest| {
                            let k = rest.strip_prefix(':')?;
                            let tail = |name, after| {
                                let (owner, after) = opt_owner(after)?;
                                after.is_empty().then_some(KeyRef {
                                    cached,
                                    scope,
                                    name,
                                    owner,
                                })
                            };
                            let key =
                                run1(k, is_tok).and_then(|(n, a)| tail(n, a)).or_else(|| {
                                    let after = eat_ci(k, "privatekey:at_secret")?;
                                    tail(&k[..k.len() - after.len()], after)
                                })?;
                            Some(Delete {
                                d_at,
                                no_commit,
                                force,
                                priority,
                                key,
                            })
                        })
                    })
                })
            })
        })
    })
}

pub(crate) fn encode(c: &Delete<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("delete")?;
    write_opt(f, ":dAt:", c.d_at)?;
    write_flag(f, ":nc", c.no_commit)?;
    write_flag(f, ":force", c.force)?;
    write_opt(f, ":priority:", c.priority.map(priority_str))?;
    write_key_ref(f, &c.key)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use crate::protocol::command::Command;

    #[test]
    fn delete_flags_and_keys() {
        let Command::Delete(d) = p("delete:force").unwrap() else {
            panic!()
        };
        assert!(!d.force);
        assert_eq!(d.key.name, "force");
        let Command::Delete(d) = p("delete:cached:public:publickey@bob").unwrap() else {
            panic!()
        };
        assert_eq!(d.key.assemble(), "cached:public:publickey@bob");
        assert!(p("delete:a b@alice").is_err());
    }
}
