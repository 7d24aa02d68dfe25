//! `notify:status`, `notify:fetch` and `notify:remove`: the three verbs that
//! take nothing but the id of a notification, one submodule each.

use crate::protocol::grammar::{eat_ci, is_js_space};

/// The id of the notification a verb is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyId<'a> {
    pub id: &'a str,
}

/// `^<prefix>(\S+)$`
fn non_space_id<'a>(s: &'a str, prefix: &str) -> Option<NotifyId<'a>> {
    let id = eat_ci(s, prefix)?;
    (!id.is_empty() && !id.contains(is_js_space)).then_some(NotifyId { id })
}

/// `notify:status`: whether a sent notification was delivered.
pub(crate) mod status {
    use std::fmt::{self, Formatter};

    use super::{NotifyId, non_space_id};
    use crate::protocol::command::{Command, VerbId};
    use crate::protocol::parse::ParseError;

    pub(crate) const USAGE: &str = "e.g notify:status:<notification-id>";

    /// Any line starting `notify:status`, with or without a colon after it.
    #[inline(always)]
    pub(crate) fn accepts(line: &str) -> bool {
        line.starts_with("notify:status")
    }

    /// `^notify:status:(\S+)$`
    pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
        non_space_id(s, "notify:status:")
            .map(Command::NotifyStatus)
            .ok_or(ParseError::Syntax(VerbId::NotifyStatus))
    }

    pub(crate) fn encode(c: &NotifyId<'_>, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "notify:status:{}", c.id)
    }
}

/// `notify:fetch`: one received notification, by id.
pub(crate) mod fetch {
    use std::fmt::{self, Formatter};

    use super::{NotifyId, non_space_id};
    use crate::protocol::command::{Command, VerbId};
    use crate::protocol::parse::ParseError;

    pub(crate) const USAGE: &str = "e.g notify:fetch:<notification-id>";

    /// Any line starting `notify:fetch`, with or without a colon after it.
    #[inline(always)]
    pub(crate) fn accepts(line: &str) -> bool {
        line.starts_with("notify:fetch")
    }

    /// `^notify:fetch:(\S+)$`
    pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
        non_space_id(s, "notify:fetch:")
            .map(Command::NotifyFetch)
            .ok_or(ParseError::Syntax(VerbId::NotifyFetch))
    }

    pub(crate) fn encode(c: &NotifyId<'_>, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "notify:fetch:{}", c.id)
    }
}

/// `notify:remove`: delete one received notification, by id.
pub(crate) mod remove {
    use std::fmt::{self, Formatter};

    use super::NotifyId;
    use crate::protocol::command::{Command, VerbId};
    use crate::protocol::grammar::{is_word, run1};
    use crate::protocol::parse::ParseError;

    pub(crate) const USAGE: &str = "e.g notify:remove:<notificationId>";

    #[inline(always)]
    pub(crate) fn accepts(line: &str) -> bool {
        line.starts_with("notify:remove:")
    }

    /// `notify:remove:(?<id>[\w\d\-\_]+)` — searched, not anchored.
    pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
        const LIT: &[u8] = b"notify:remove:";
        let bytes = s.as_bytes();
        (LIT.len()..=bytes.len())
            .filter(|&i| bytes[i - LIT.len()..i].eq_ignore_ascii_case(LIT))
            .find_map(|i| run1(&s[i..], |c| is_word(c) || c == '-'))
            .map(|(id, _)| Command::NotifyRemove(NotifyId { id }))
            .ok_or(ParseError::Syntax(VerbId::NotifyRemove))
    }

    pub(crate) fn encode(c: &NotifyId<'_>, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "notify:remove:{}", c.id)
    }

    #[cfg(test)]
    mod tests {
        use super::super::super::test_support::p;
        use crate::protocol::command::Command;

        #[test]
        fn notify_remove_takes_the_first_id_it_finds() {
            let Command::NotifyRemove(r) = p("notify:remove:abc-1 trailing").unwrap() else {
                panic!()
            };
            assert_eq!(r.id, "abc-1");
        }
    }
}
