//! The metadata fragment shared by `update`, `update:meta`, `notify` and
//! `notify:multi` (verbs.md §0.1, changes-since-2024-10.md §2.1).
//!
//! The reference matches it with one regex of optional groups in a fixed
//! order; a field out of order or repeated leaves text the rest of the verb
//! regex cannot match, so the whole command is AT0003. We mirror that by
//! consuming fields strictly in order and handing the remainder back to the
//! verb parser, which then fails on anything left over.

use std::fmt;

use super::grammar::{eat_ci, is_js_space};
use super::time::iso_prefix_len;
use crate::error::{AtCode, AtError};

/// The fragment names a field whose value does not fit its type; no reading
/// of the reference regex matches such a command (AT0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaSyntax {
    /// The wire name of the offending field.
    pub field: &'static str,
}

impl fmt::Display for MetaSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad value for metadata field {}", self.field)
    }
}

impl std::error::Error for MetaSyntax {}

/// The fragment as sent, borrowed from the command line. String fields keep
/// their case; the literal `null` is kept as text (it clears a field in
/// `update`, and travels as `null` in `notify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaFragment<'a> {
    pub ttl: Option<i64>,
    pub ttb: Option<i64>,
    pub ttr: Option<i64>,
    pub ccd: Option<bool>,
    pub c_at: Option<&'a str>,
    pub u_at: Option<&'a str>,
    pub e_at: Option<&'a str>,
    pub a_at: Option<&'a str>,
    pub data_signature: Option<&'a str>,
    pub shared_key_status: Option<&'a str>,
    pub is_binary: Option<bool>,
    pub is_encrypted: Option<bool>,
    pub shared_key_enc: Option<&'a str>,
    pub pub_key_cs: Option<&'a str>,
    pub pub_key_hash: Option<&'a str>,
    pub hashing_algo: Option<&'a str>,
    pub encoding: Option<&'a str>,
    pub enc_key_name: Option<&'a str>,
    pub enc_algo: Option<&'a str>,
    pub iv_nonce: Option<&'a str>,
    pub ske_enc_key_name: Option<&'a str>,
    pub ske_enc_algo: Option<&'a str>,
    pub immutable: Option<bool>,
    pub app_metadata: Option<&'a str>,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Bool,
    Time,
    Tok,
}

#[derive(Clone, Copy)]
enum Val<'a> {
    Int(i64),
    Bool(bool),
    Str(&'a str),
}

/// Wire names in the one order the grammar accepts.
pub const FIELD_NAMES: [&str; 24] = [
    "ttl",
    "ttb",
    "ttr",
    "ccd",
    "cAt",
    "uAt",
    "eAt",
    "aAt",
    "dataSignature",
    "sharedKeyStatus",
    "isBinary",
    "isEncrypted",
    "sharedKeyEnc",
    "pubKeyCS",
    "pubKeyHash",
    "hashingAlgo",
    "encoding",
    "encKeyName",
    "encAlgo",
    "ivNonce",
    "skeEncKeyName",
    "skeEncAlgo",
    "immutable",
    "appMetadata",
];

const KINDS: [Kind; 24] = {
    use Kind::*;
    [
        Int, Int, Int, Bool, Time, Time, Time, Time, Tok, Tok, Bool, Bool, Tok, Tok, Tok, Tok, Tok,
        Tok, Tok, Tok, Tok, Tok, Bool, Tok,
    ]
};

/// `<tok>` of the grammar: `[^:@\s]+`.
fn is_tok_char(c: char) -> bool {
    c != ':' && c != '@' && !is_js_space(c)
}

/// Takes `-?\d+` from the front of `s`.
pub(crate) fn take_int(s: &str) -> Option<(i64, &str)> {
    let neg = s.starts_with('-');
    let body = if neg { &s[1..] } else { s };
    let n = body.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let digits = &body[..n];
    let v: i64 = if neg {
        format_neg(digits)?
    } else {
        digits.parse().ok()?
    };
    Some((v, &body[n..]))
}

fn format_neg(digits: &str) -> Option<i64> {
    // i64::MIN has no positive counterpart, so accumulate negatively.
    digits.bytes().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_sub(i64::from(d - b'0'))
    })
}

/// Takes `true|false` in any case from the front of `s`.
pub(crate) fn take_bool(s: &str) -> Option<(bool, &str)> {
    if let Some(r) = eat_ci(s, "true") {
        Some((true, r))
    } else {
        eat_ci(s, "false").map(|r| (false, r))
    }
}

impl<'a> MetaFragment<'a> {
    fn get(&self, i: usize) -> Option<Val<'a>> {
        let s = |v: Option<&'a str>| v.map(Val::Str);
        let b = |v: Option<bool>| v.map(Val::Bool);
        match i {
            0 => self.ttl.map(Val::Int),
            1 => self.ttb.map(Val::Int),
            2 => self.ttr.map(Val::Int),
            3 => b(self.ccd),
            4 => s(self.c_at),
            5 => s(self.u_at),
            6 => s(self.e_at),
            7 => s(self.a_at),
            8 => s(self.data_signature),
            9 => s(self.shared_key_status),
            10 => b(self.is_binary),
            11 => b(self.is_encrypted),
            12 => s(self.shared_key_enc),
            13 => s(self.pub_key_cs),
            14 => s(self.pub_key_hash),
            15 => s(self.hashing_algo),
            16 => s(self.encoding),
            17 => s(self.enc_key_name),
            18 => s(self.enc_algo),
            19 => s(self.iv_nonce),
            20 => s(self.ske_enc_key_name),
            21 => s(self.ske_enc_algo),
            22 => b(self.immutable),
            _ => s(self.app_metadata),
        }
    }

    fn set(&mut self, i: usize, v: Val<'a>) {
        let (int, bool_, str_) = match v {
            Val::Int(x) => (Some(x), None, None),
            Val::Bool(x) => (None, Some(x), None),
            Val::Str(x) => (None, None, Some(x)),
        };
        match i {
            0 => self.ttl = int,
            1 => self.ttb = int,
            2 => self.ttr = int,
            3 => self.ccd = bool_,
            4 => self.c_at = str_,
            5 => self.u_at = str_,
            6 => self.e_at = str_,
            7 => self.a_at = str_,
            8 => self.data_signature = str_,
            9 => self.shared_key_status = str_,
            10 => self.is_binary = bool_,
            11 => self.is_encrypted = bool_,
            12 => self.shared_key_enc = str_,
            13 => self.pub_key_cs = str_,
            14 => self.pub_key_hash = str_,
            15 => self.hashing_algo = str_,
            16 => self.encoding = str_,
            17 => self.enc_key_name = str_,
            18 => self.enc_algo = str_,
            19 => self.iv_nonce = str_,
            20 => self.ske_enc_key_name = str_,
            21 => self.ske_enc_algo = str_,
            22 => self.immutable = bool_,
            _ => self.app_metadata = str_,
        }
    }

    /// Consumes `:name:value` fields from the front of `s` in the fixed order
    /// and returns the fragment and the unconsumed text. A field whose name
    /// is present but whose value does not fit is an error: no reading of the
    /// reference regex can match such a command.
    pub fn parse(s: &'a str) -> Result<(MetaFragment<'a>, &'a str), MetaSyntax> {
        let mut m = MetaFragment::default();
        let mut rest = s;
        for (i, (name, kind)) in FIELD_NAMES.iter().zip(KINDS).enumerate() {
            let Some(after) = rest
                .strip_prefix(':')
                .and_then(|r| eat_ci(r, name))
                .and_then(|r| r.strip_prefix(':'))
            else {
                continue;
            };
            let bad = MetaSyntax { field: name };
            let (val, r) = match kind {
                Kind::Int => take_int(after).map(|(v, r)| (Val::Int(v), r)).ok_or(bad)?,
                Kind::Bool => take_bool(after)
                    .map(|(v, r)| (Val::Bool(v), r))
                    .ok_or(bad)?,
                Kind::Time => {
                    let n = iso_prefix_len(after).ok_or(bad)?;
                    (Val::Str(&after[..n]), &after[n..])
                }
                Kind::Tok => {
                    let n = after.find(|c| !is_tok_char(c)).unwrap_or(after.len());
                    if n == 0 {
                        return Err(bad);
                    }
                    (Val::Str(&after[..n]), &after[n..])
                }
            };
            m.set(i, val);
            rest = r;
        }
        Ok((m, rest))
    }

    pub fn is_empty(&self) -> bool {
        *self == MetaFragment::default()
    }

    /// Wire names of the fields that are set, in order.
    pub fn present_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        FIELD_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.get(*i).is_some())
            .map(|(_, n)| *n)
    }

    /// The reference's value checks (`AU/atmetadata_utils.dart`), run after
    /// the syntax matched.
    pub fn validate(&self) -> Result<(), AtError> {
        if self.ttl.is_some_and(|v| v < 0) {
            return Err(AtError::new(
                AtCode::InvalidSyntax,
                "Valid value for TTL should be greater than or equal to 0",
            ));
        }
        if self.ttb.is_some_and(|v| v < 0) {
            return Err(AtError::new(
                AtCode::InvalidSyntax,
                "Valid value for TTB should be greater than or equal to 0",
            ));
        }
        if self.ttr.is_some_and(|v| v <= -2) {
            return Err(AtError::new(
                AtCode::InvalidSyntax,
                "Valid values for TTR are -1 and greater than or equal to 1",
            ));
        }
        Ok(())
    }
}

/// Writes the fragment back in wire order (`:ttl:60000:isEncrypted:true…`).
impl fmt::Display for MetaFragment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            match self.get(i) {
                None => {}
                Some(Val::Int(v)) => write!(f, ":{name}:{v}")?,
                Some(Val::Bool(v)) => write!(f, ":{name}:{v}")?,
                Some(Val::Str(v)) => write!(f, ":{name}:{v}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_in_order_and_returns_the_rest() {
        let s = ":TTL:60000:ccd:TRUE:cAt:2026-05-05T11:59:44.123456Z:isEncrypted:true:pubKeyHash:ab12:hashingAlgo:sha512:appMetadata:e30=:@bob:x@alice v";
        let (m, rest) = MetaFragment::parse(s).unwrap();
        assert_eq!(m.ttl, Some(60000));
        assert_eq!(m.ccd, Some(true));
        assert_eq!(m.c_at, Some("2026-05-05T11:59:44.123456Z"));
        assert_eq!(m.is_encrypted, Some(true));
        assert_eq!(m.pub_key_hash, Some("ab12"));
        assert_eq!(m.app_metadata, Some("e30="));
        assert_eq!(rest, ":@bob:x@alice v");
        assert_eq!(
            m.to_string(),
            ":ttl:60000:ccd:true:cAt:2026-05-05T11:59:44.123456Z:isEncrypted:true:pubKeyHash:ab12:hashingAlgo:sha512:appMetadata:e30="
        );
    }

    #[test]
    fn out_of_order_fields_are_left_for_the_verb_to_reject() {
        let (m, rest) = MetaFragment::parse(":isEncrypted:true:ttl:5:x@a v").unwrap();
        assert_eq!(m.is_encrypted, Some(true));
        assert_eq!(m.ttl, None);
        assert_eq!(rest, ":ttl:5:x@a v");
    }

    #[test]
    fn a_named_field_with_a_bad_value_fails() {
        assert!(MetaFragment::parse(":ttl:abc:x@a v").is_err());
        assert!(MetaFragment::parse(":ccd:yes:x@a v").is_err());
        assert!(MetaFragment::parse(":cAt:2026-05-05:x@a v").is_err());
        assert!(MetaFragment::parse(":dataSignature::x@a v").is_err());
        assert!(MetaFragment::parse(":ttl:99999999999999999999:x").is_err());
    }

    #[test]
    fn validation_messages_match_the_reference() {
        let m = MetaFragment {
            ttl: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            m.validate().unwrap_err().message,
            "Valid value for TTL should be greater than or equal to 0"
        );
        let m = MetaFragment {
            ttb: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            m.validate().unwrap_err().message,
            "Valid value for TTB should be greater than or equal to 0"
        );
        let m = MetaFragment {
            ttr: Some(-2),
            ..Default::default()
        };
        assert_eq!(m.validate().unwrap_err().code, AtCode::InvalidSyntax);
        let m = MetaFragment {
            ttr: Some(-1),
            ttl: Some(0),
            ..Default::default()
        };
        assert!(m.validate().is_ok());
    }

    #[test]
    fn extreme_ints_parse() {
        assert_eq!(take_int("-9223372036854775808:"), Some((i64::MIN, ":")));
        assert_eq!(take_int("9223372036854775808"), None);
        assert_eq!(take_int("-"), None);
    }
}
