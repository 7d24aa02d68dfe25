//! What an APKAM enrollment may touch: its namespaces, each `r` or `rw`
//! (auth.md §6.2).
//!
//! A key's namespace is the text after the last `.` of its name (before
//! `@owner`). An enrolled namespace `ns` covers a key when `.<keyNamespace>`
//! ends with `.<ns>`, or when `<name>` ends with `.<ns>` for a namespace
//! with dots (enrolling `foo.bar` covers `x.foo.bar@alice`). No match: `*`
//! applies if enrolled. Keys without a namespace are reachable only
//! through `*`. `__manage` is never reached through `*`: it is held
//! explicitly or not at all.

use crate::error::{AtCode, AtError};
use crate::protocol::atkey;
use crate::protocol::json::{JsonValue, ObjectWriter};

/// The namespace of enrollment bookkeeping (records, encrypted keys, OTPs).
pub const MANAGE: &str = "__manage";

/// Every namespace (`"*":"rw"`).
pub const ALL: &str = "*";

/// An enrollment's access to one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    ReadWrite,
}

impl Access {
    pub fn parse(text: &str) -> Option<Access> {
        match text {
            "r" => Some(Access::Read),
            "rw" => Some(Access::ReadWrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::ReadWrite => "rw",
        }
    }

    /// Whether this access allows what `needed` asks for.
    pub fn allows(self, needed: Access) -> bool {
        self >= needed
    }
}

/// An enrollment's namespaces, in the order they were requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    entries: Vec<(String, Access)>,
}

impl Namespaces {
    pub fn new(entries: Vec<(String, Access)>) -> Namespaces {
        Namespaces { entries }
    }

    /// From the JSON object of a request (`{"wavi":"rw","__manage":"r"}`):
    /// names lower-cased, access letters `r` or `rw` only (AT0011 naming
    /// the namespace otherwise, as 3.15.0 refuses them).
    pub fn from_json(value: &JsonValue) -> Result<Namespaces, AtError> {
        let JsonValue::Object(members) = value else {
            return Err(invalid("namespaces must be a JSON object"));
        };
        let mut entries: Vec<(String, Access)> = Vec::with_capacity(members.len());
        for (name, access) in members {
            let access = access
                .as_str()
                .and_then(Access::parse)
                .ok_or_else(|| invalid(&format!("access to {name} must be r or rw")))?;
            let name = name.to_ascii_lowercase();
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c == '@' || c == ':')
            {
                return Err(invalid(&format!("invalid namespace {name:?}")));
            }
            match entries.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = slot.1.max(access),
                None => entries.push((name, access)),
            }
        }
        Ok(Namespaces { entries })
    }

    /// `{"wavi":"rw",…}` in request order.
    pub fn write_json(&self, out: &mut String) {
        let mut obj = ObjectWriter::new(out);
        for (name, access) in &self.entries {
            obj.field_str(name, access.as_str());
        }
        obj.finish();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Access)> {
        self.entries.iter().map(|(n, a)| (n.as_str(), *a))
    }

    /// The access held to exactly `name` (no `*`).
    pub fn exactly(&self, name: &str) -> Option<Access> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, access)| *access)
    }

    /// Adds (or raises) `name` to `access`.
    pub fn grant(&mut self, name: &str, access: Access) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = slot.1.max(access),
            None => self.entries.push((name.to_string(), access)),
        }
    }

    /// The access this enrollment has to `key` by the reference's rule:
    /// the enrolled namespace that covers the key's, else `*` (which never
    /// covers `__manage`). `None`: no access.
    pub fn access_to(&self, key: &str) -> Option<Access> {
        let name = key.rsplit_once('@').map_or(key, |(name, _)| name);
        let name = strip_visibility(name);
        let key_namespace = atkey::namespace(key);
        if let Some(key_namespace) = key_namespace {
            let dotted = format!(".{key_namespace}");
            let covering = self.entries.iter().find(|(ns, _)| {
                ns != ALL && (ends_with_dotted(&dotted, ns) || ends_with_dotted(name, ns))
            });
            if let Some((_, access)) = covering {
                return Some(*access);
            }
            if key_namespace == MANAGE {
                return None;
            }
        }
        self.exactly(ALL)
    }

    /// Whether `key`'s namespace is one this enrollment holds by name, or
    /// it has `*` or `__manage` (the `sync:from` filter, auth.md §6.4);
    /// keys without a namespace always pass.
    pub fn syncs(&self, key: &str) -> bool {
        match atkey::namespace(key) {
            None => true,
            Some(ns) => {
                self.exactly(ALL).is_some()
                    || self.exactly(MANAGE).is_some()
                    || self.exactly(&ns.to_ascii_lowercase()).is_some()
            }
        }
    }
}

/// `name` ends with `.<ns>` (a whole dotted suffix).
fn ends_with_dotted(name: &str, ns: &str) -> bool {
    name.len() > ns.len()
        && name.ends_with(ns)
        && name.as_bytes().get(name.len() - ns.len() - 1) == Some(&b'.')
}

/// The name without `public:`, `private:`, `cached:`, `@x:` prefixes.
fn strip_visibility(name: &str) -> &str {
    let mut rest = name;
    loop {
        let lower_prefix = |p: &str| {
            rest.get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
        };
        if let Some(p) = ["public:", "private:", "cached:", "local:"]
            .into_iter()
            .find(|p| lower_prefix(p))
        {
            rest = &rest[p.len()..];
        } else if rest.starts_with('@') {
            match rest.find(':') {
                Some(colon) => rest = &rest[colon + 1..],
                None => return rest,
            }
        } else {
            return rest;
        }
    }
}

fn invalid(message: &str) -> AtError {
    AtError::new(AtCode::InternalServerException, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(entries: &[(&str, Access)]) -> Namespaces {
        Namespaces::new(entries.iter().map(|(n, a)| (n.to_string(), *a)).collect())
    }

    #[test]
    fn a_namespace_covers_its_keys_and_dotted_namespaces_their_suffix() {
        let g = grant(&[("wavi", Access::ReadWrite), ("foo.bar", Access::Read)]);
        assert_eq!(g.access_to("phone.wavi@alice"), Some(Access::ReadWrite));
        assert_eq!(
            g.access_to("@bob:phone.wavi@alice"),
            Some(Access::ReadWrite)
        );
        assert_eq!(
            g.access_to("public:phone.wavi@alice"),
            Some(Access::ReadWrite)
        );
        assert_eq!(g.access_to("x.foo.bar@alice"), Some(Access::Read));
        assert_eq!(g.access_to("x.bar@alice"), None);
        assert_eq!(g.access_to("phone.other@alice"), None);
        assert_eq!(g.access_to("nonamespace@alice"), None);
        // `xwavi` is not `wavi`.
        assert_eq!(g.access_to("phone.xwavi@alice"), None);
    }

    #[test]
    fn star_covers_the_rest_but_never_manage() {
        let g = grant(&[("*", Access::Read), ("wavi", Access::ReadWrite)]);
        assert_eq!(g.access_to("phone.wavi@alice"), Some(Access::ReadWrite));
        assert_eq!(g.access_to("phone.other@alice"), Some(Access::Read));
        assert_eq!(g.access_to("nonamespace@alice"), Some(Access::Read));
        assert_eq!(g.access_to("e1.new.enrollments.__manage@alice"), None);
        let manage = grant(&[("__manage", Access::Read)]);
        assert_eq!(
            manage.access_to("e1.new.enrollments.__manage@alice"),
            Some(Access::Read)
        );
    }

    #[test]
    fn requests_are_parsed_strictly_and_echoed_in_order() {
        let parse =
            |text: &str| Namespaces::from_json(&crate::protocol::json::parse(text).unwrap());
        let g = parse(r#"{"Wavi":"rw","buzz":"r"}"#).expect("valid");
        let mut out = String::new();
        g.write_json(&mut out);
        assert_eq!(out, r#"{"wavi":"rw","buzz":"r"}"#);
        for bad in [
            r#"{"wavi":"w"}"#,
            r#"{"wavi":1}"#,
            r#"["wavi"]"#,
            r#"{"a@b":"r"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sync_passes_held_namespaces_star_manage_and_keys_without_one() {
        let g = grant(&[("wavi", Access::Read)]);
        assert!(g.syncs("phone.wavi@alice"));
        assert!(g.syncs("nonamespace@alice"));
        assert!(!g.syncs("phone.other@alice"));
        assert!(grant(&[("*", Access::Read)]).syncs("phone.other@alice"));
    }
}
