//! atSign normalisation (`fixAtSign`, keys-and-metadata.md §1).

use crate::error::{AtCode, AtError};

/// An atSign the reference would refuse. It has no error code there, so it
/// maps to AT0011 and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAtSign {
    pub message: String,
}

impl std::fmt::Display for InvalidAtSign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidAtSign {}

impl From<InvalidAtSign> for AtError {
    fn from(e: InvalidAtSign) -> Self {
        AtError::new(AtCode::InternalServerException, e.message).closing()
    }
}

fn invalid(message: impl Into<String>) -> InvalidAtSign {
    InvalidAtSign {
        message: message.into(),
    }
}

const RESERVED: &str = "!*'`();:&=+$,/?#[]{}";

fn is_atsign_whitespace(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn is_atsign_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}' | '\u{2400}'..='\u{241f}' | '\u{2421}' | '\u{2424}' | '\u{2425}')
}

/// Lower-cases, prefixes `@`, removes dots from the name and refuses reserved,
/// whitespace and control characters, in the reference's order.
pub fn normalize_atsign(raw: &str) -> Result<String, InvalidAtSign> {
    if raw.is_empty() {
        return Err(invalid("invalid @sign: Cannot be null or empty"));
    }
    let lower = raw.to_lowercase();
    let name = lower.strip_prefix('@').unwrap_or(&lower);
    if name.contains('@') {
        return Err(invalid(format!(
            "invalid @sign: {raw} Cannot contain more than one @ character"
        )));
    }
    let name: String = name.chars().filter(|&c| c != '.').collect();
    if name.is_empty() {
        return Err(invalid("invalid @sign: Cannot be null or empty"));
    }
    if name.chars().any(|c| RESERVED.contains(c)) {
        return Err(invalid(format!(
            "invalid @sign: {raw} Cannot contain !*'`();:&=+$,/?#[]{{}} characters"
        )));
    }
    if name.chars().any(is_atsign_whitespace) {
        return Err(invalid(format!(
            "invalid @sign: {raw} Cannot contain whitespace characters"
        )));
    }
    if name.chars().any(is_atsign_control) {
        return Err(invalid(format!(
            "invalid @sign: {raw} Cannot contain control characters"
        )));
    }
    let mut out = String::with_capacity(name.len() + 1);
    out.push('@');
    out.push_str(&name);
    Ok(out)
}

/// The name without one leading `@` (`@alice` and `alice` both give `alice`).
pub fn name_without_at(atsign: &str) -> &str {
    atsign.strip_prefix('@').unwrap_or(atsign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_prefix_and_dots() {
        assert_eq!(normalize_atsign("Alice").unwrap(), "@alice");
        assert_eq!(
            normalize_atsign("@Colin.Constable").unwrap(),
            "@colinconstable"
        );
        assert_eq!(normalize_atsign("@🦄").unwrap(), "@🦄");
    }

    #[test]
    fn refuses_what_fix_atsign_refuses() {
        for bad in [
            "",
            "@",
            "@.",
            "a@b",
            "@@a",
            "@a b",
            "@a:b",
            "@a,b",
            "@a\u{3000}",
            "@a\u{1}",
            "@a\u{2424}",
            "@a{",
        ] {
            assert!(normalize_atsign(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_atsign_is_at0011_and_closes() {
        let e: AtError = normalize_atsign("").unwrap_err().into();
        assert_eq!(e.code, AtCode::InternalServerException);
        assert!(e.close);
    }

    #[test]
    fn strips_one_at() {
        assert_eq!(name_without_at("@alice"), "alice");
        assert_eq!(name_without_at("alice"), "alice");
    }
}
