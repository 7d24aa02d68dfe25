//! `enroll`: APKAM enrollment requests and their approval, denial,
//! revocation and listing.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_flag;
use crate::protocol::grammar::{dot_all, eat_ci};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOp {
    Request,
    Approve,
    Deny,
    Revoke,
    ListNs,
    InfoNs,
    List,
    Fetch,
    Unrevoke,
    Delete,
    Update,
}

impl EnrollOp {
    /// Wire spellings, longest-first where one is a prefix of another
    /// (`listns` before `list`), which is the order the grammar tries them.
    pub const ALL: [(&'static str, EnrollOp); 11] = [
        ("request", EnrollOp::Request),
        ("approve", EnrollOp::Approve),
        ("deny", EnrollOp::Deny),
        ("revoke", EnrollOp::Revoke),
        ("listns", EnrollOp::ListNs),
        ("infons", EnrollOp::InfoNs),
        ("list", EnrollOp::List),
        ("fetch", EnrollOp::Fetch),
        ("unrevoke", EnrollOp::Unrevoke),
        ("delete", EnrollOp::Delete),
        ("update", EnrollOp::Update),
    ];

    pub fn name(self) -> &'static str {
        EnrollOp::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("request", |(n, _)| n)
    }
}

/// `enroll:<op>[:force][:]<json>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enroll<'a> {
    pub op: EnrollOp,
    pub force: bool,
    pub params: Option<&'a str>,
}

pub(crate) const USAGE: &str = r#"enroll:request:{"appName":"wavi","deviceName":"iPhone","namespaces":{"wavi":"rw"},"otp":"<otp>":"apkamPublicKey":"<public_key>"}"#;

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("enroll:")
}

/// `^enroll:(?<operation>…)(:(?<force>force))?(?::)?(?<enrollParams>.+)?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s).ok_or(ParseError::Syntax(VerbId::Enroll))
}

fn captures(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "enroll:")?;
    let (op, r) = EnrollOp::ALL
        .iter()
        .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
    let (force, r) = match eat_ci(r, ":force") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let r = r.strip_prefix(':').unwrap_or(r);
    if !dot_all(r) {
        return None;
    }
    let params = (!r.is_empty()).then_some(r);
    Some(Command::Enroll(Enroll { op, force, params }))
}

pub(crate) fn encode(c: &Enroll<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    write!(f, "enroll:{}", c.op.name())?;
    write_flag(f, ":force", c.force)?;
    match c.params {
        // Without `:force`, a params text that itself starts with
        // `force` must not be separated by a colon, or it would be
        // read back as the flag.
        Some(p) if !c.force && p.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("force")) => {
            f.write_str(p)
        }
        Some(p) => write!(f, ":{p}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::EnrollOp;
    use crate::protocol::command::Command;

    #[test]
    fn enroll_op_names_round_trip() {
        for (name, op) in EnrollOp::ALL {
            assert_eq!(op.name(), name);
        }
    }

    #[test]
    fn enroll_takes_its_params_after_the_op() {
        let Command::Enroll(e) = p("enroll:listns:wavi").unwrap() else {
            panic!()
        };
        assert_eq!((e.op, e.params), (EnrollOp::ListNs, Some("wavi")));
    }
}
