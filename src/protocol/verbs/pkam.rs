//! `pkam`: the client proves it holds the atSign's (or an APKAM
//! enrollment's) private key by signing the challenge `from` handed out.

use std::fmt::{self, Display, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt_then;
use crate::protocol::grammar::{choice, dot_all, eat_ci};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgo {
    Rsa2048,
    EccSecp256r1,
    MlDsa65,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingAlgo {
    Sha256,
    Sha512,
}

impl Display for SigningAlgo {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigningAlgo::Rsa2048 => "rsa2048",
            SigningAlgo::EccSecp256r1 => "ecc_secp256r1",
            SigningAlgo::MlDsa65 => "mldsa65",
        })
    }
}

impl Display for HashingAlgo {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashingAlgo::Sha256 => "sha256",
            HashingAlgo::Sha512 => "sha512",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkam<'a> {
    pub signing_algo: Option<SigningAlgo>,
    pub hashing_algo: Option<HashingAlgo>,
    pub enrollment_id: Option<&'a str>,
    pub signature: &'a str,
}

pub(crate) const USAGE: &str = "pkam:<signature>";

#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("pkam:")
}

/// `^pkam:(signingAlgo:<a>:)?(hashingAlgo:<h>:)?(enrollmentId:(.+):)?(.+$)`.
/// Each optional group is taken when something is left for the signature.
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Pkam)
        .ok_or(ParseError::Syntax(VerbId::Pkam))
}

fn captures(s: &str) -> Option<Pkam<'_>> {
    let mut r = eat_ci(s, "pkam:")?;
    if r.is_empty() || !dot_all(r) {
        return None;
    }
    const SIGN: [(&str, SigningAlgo); 3] = [
        ("signingAlgo:ecc_secp256r1:", SigningAlgo::EccSecp256r1),
        ("signingAlgo:rsa2048:", SigningAlgo::Rsa2048),
        ("signingAlgo:mldsa65:", SigningAlgo::MlDsa65),
    ];
    const HASH: [(&str, HashingAlgo); 2] = [
        ("hashingAlgo:sha256:", HashingAlgo::Sha256),
        ("hashingAlgo:sha512:", HashingAlgo::Sha512),
    ];
    let signing_algo = choice(r, &SIGN)
        .find(|(_, rest)| !rest.is_empty())
        .and_then(|(a, rest)| {
            r = rest;
            a
        });
    let hashing_algo = choice(r, &HASH)
        .find(|(_, rest)| !rest.is_empty())
        .and_then(|(a, rest)| {
            r = rest;
            a
        });
    let mut enrollment_id = None;
    if let Some(e) = eat_ci(r, "enrollmentId:") {
        // Greedy `.+` then `:` then a non-empty signature: the last colon
        // that leaves at least one character after it.
        let cut = e
            .char_indices()
            .rev()
            .find(|&(i, c)| c == ':' && i >= 1 && i + 1 < e.len())
            .map(|(i, _)| i);
        if let Some(i) = cut {
            enrollment_id = Some(&e[..i]);
            r = &e[i + 1..];
        }
    }
    Some(Pkam {
        signing_algo,
        hashing_algo,
        enrollment_id,
        signature: r,
    })
}

pub(crate) fn encode(c: &Pkam<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("pkam:")?;
    write_opt_then(f, "signingAlgo:", c.signing_algo, ":")?;
    write_opt_then(f, "hashingAlgo:", c.hashing_algo, ":")?;
    if let Some(e) = c.enrollment_id {
        write!(f, "enrollmentId:{e}:")?;
    }
    f.write_str(c.signature)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::SigningAlgo;
    use crate::protocol::command::Command;

    #[test]
    fn pkam_forms() {
        let Command::Pkam(k) = p("pkam:signingAlgo:mldsa65:enrollmentId:abc:def:").unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.signing_algo, k.enrollment_id, k.signature),
            (Some(SigningAlgo::MlDsa65), Some("abc"), "def:")
        );
        let Command::Pkam(k) = p("pkam:signingAlgo:rsa2048:").unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.signing_algo, k.signature),
            (None, "signingAlgo:rsa2048:")
        );
        assert!(p("pkam:").is_err());
    }
}
