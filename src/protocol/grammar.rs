//! The pieces every verb grammar is built from: the character classes of the
//! reference's (JavaScript-flavoured) regexes and small parsers over a
//! borrowed `&str` cursor.
//!
//! A cursor helper takes the text still to match and returns what it
//! captured plus the rest, or `None` when it does not match. Helpers for an
//! optional group (`flag`, `choice`, `group`) instead yield every reading a
//! backtracking regex engine would try, present first, then absent, so a verb
//! parser can `find_map` over them. Literals match in any case; captured text
//! keeps its case. Nothing here allocates.
//!
//! The small non-generic helpers are `#[inline]`: the verb parsers live in
//! other modules, hence often other codegen units, and without the hint some
//! of these stayed calls in the per-verb hot loops: `sync:from:`, `stats`,
//! `scan` and `lookup:` lines parsed 15-30% slower than when every parser
//! shared one file. With it none is slower.

use super::command::Scope;
use super::metadata::MetaFragment;
use super::parse::ParseError;
use super::time::iso_prefix_len;

/// `\s` in a Dart `RegExp`: the ECMAScript white space and line terminators.
#[inline]
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// The characters `.` does not match in a Dart `RegExp`.
#[inline]
pub(crate) fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// `.+` / `.*` over the whole of `s`.
#[inline]
pub(crate) fn dot_all(s: &str) -> bool {
    !s.contains(is_line_terminator)
}

/// `\w` without the unicode flag.
#[inline]
pub(crate) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[^:@\s]`: atSign names and plain key names.
#[inline]
pub(crate) fn is_tok(c: char) -> bool {
    c != ':' && c != '@' && !is_js_space(c)
}

/// Whether `to_lowercase` would change `s` (ASCII fast path; titlecase
/// letters change although they are not upper-case).
#[inline]
pub(crate) fn changes_when_lowercased(s: &str) -> bool {
    s.chars().any(|c| {
        if c.is_ascii() {
            c.is_ascii_uppercase()
        } else {
            c.to_lowercase().ne(std::iter::once(c))
        }
    })
}

/// Strips an ASCII literal from the front of `s`, in any case.
#[inline]
pub(crate) fn eat_ci<'a>(s: &'a str, lit: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..lit.len())?;
    // An ASCII literal matched bytewise ends on a char boundary.
    head.eq_ignore_ascii_case(lit.as_bytes())
        .then(|| &s[lit.len()..])
}

/// The maximal prefix of `s` whose chars satisfy `f`, and the rest.
pub(crate) fn run(s: &str, f: impl Fn(char) -> bool) -> (&str, &str) {
    let n = s.find(|c| !f(c)).unwrap_or(s.len());
    s.split_at(n)
}

/// Like [`run`] but the prefix must be non-empty.
pub(crate) fn run1(s: &str, f: impl Fn(char) -> bool) -> Option<(&str, &str)> {
    let (a, b) = run(s, f);
    (!a.is_empty()).then_some((a, b))
}

/// `\d+` as a number. Too large for the type counts as no match: the
/// reference would throw a FormatException on it anyway.
pub(crate) fn digits<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let (d, rest) = run1(s, |c| c.is_ascii_digit())?;
    Some((d.parse().ok()?, rest))
}

/// An optional literal flag: the present reading first, then the absent one.
pub(crate) fn flag<'a>(s: &'a str, lit: &str) -> impl Iterator<Item = (bool, &'a str)> {
    eat_ci(s, lit)
        .map(|r| (true, r))
        .into_iter()
        .chain(std::iter::once((false, s)))
}

/// An optional choice among literals, present readings first in order.
pub(crate) fn choice<'a, 'b, T: Copy + 'b>(
    s: &'a str,
    alts: &'b [(&'b str, T)],
) -> impl Iterator<Item = (Option<T>, &'a str)> + 'b
where
    'a: 'b,
{
    alts.iter()
        .filter_map(move |(lit, v)| eat_ci(s, lit).map(|r| (Some(*v), r)))
        .chain(std::iter::once((None, s)))
}

/// An optional `<lit><value>` group whose value is taken by `take`.
pub(crate) fn group<'a, T>(
    s: &'a str,
    lit: &str,
    take: impl Fn(&'a str) -> Option<(T, &'a str)>,
) -> impl Iterator<Item = (Option<T>, &'a str)> {
    eat_ci(s, lit)
        .and_then(take)
        .map(|(v, r)| (Some(v), r))
        .into_iter()
        .chain(std::iter::once((None, s)))
}

/// An ISO-8601 timestamp at the front of `s` (`dAt`, `eAtn`).
#[inline]
pub(crate) fn take_ts(s: &str) -> Option<(&str, &str)> {
    let n = iso_prefix_len(s)?;
    Some(s.split_at(n))
}

/// `(:((?<publicScope>public)|(@(?<forAtSign>[^:@\s]+))))?` followed by what
/// `f` parses; the scoped readings are tried first.
pub(crate) fn with_scope<'a, T>(
    s: &'a str,
    f: impl Fn(Scope<'a>, &'a str) -> Option<T>,
) -> Option<T> {
    if let Some(r) = eat_ci(s, ":public") {
        if let Some(t) = f(Scope::Public, r) {
            return Some(t);
        }
    }
    if let Some(r) = s.strip_prefix(":@") {
        if let Some((name, rest)) = run1(r, is_tok) {
            if let Some(t) = f(Scope::SharedWith(name), rest) {
                return Some(t);
            }
        }
    }
    f(Scope::None, s)
}

/// `(@(?<atSign>[^:@\s]+))?` at the front of `s`.
#[inline]
pub(crate) fn opt_owner(s: &str) -> Option<(Option<&str>, &str)> {
    match s.strip_prefix('@') {
        Some(r) => run1(r, is_tok).map(|(o, rest)| (Some(o), rest)),
        None => Some((None, s)),
    }
}

/// `cmd`, unless the metadata it carries holds a value the verb refuses
/// (negative ttl, bad ttr): the grammar matched, so that is not AT0003
/// syntax but the value's own error.
pub(crate) fn validated<C>(m: &MetaFragment<'_>, cmd: C) -> Result<C, ParseError> {
    m.validate().map_err(ParseError::Meta)?;
    Ok(cmd)
}
