//! The authentication lines a client sends (auth.md §1–§3), built from the
//! server's own definitions: the cram digest is
//! [`crate::auth::cram::expected_digest`] and the lines are encoded by
//! [`crate::protocol::encode`], so what we send is what we accept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

use crate::protocol::command::{Command, Cram, From, HashingAlgo, Pkam, SigningAlgo};

/// `from:<atsign>`, which asks for a challenge.
pub fn from_line(atsign: &str) -> String {
    Command::From(From {
        atsign,
        client_config: None,
    })
    .to_string()
}

/// The challenge in the payload of a `from:` reply for the owner:
/// `data:_<session>@alice:<nonce>` gives `_<session>@alice:<nonce>`. `None`
/// for errors and for the `data:proof:…` another atSign gets.
pub fn challenge_of(payload: &[u8]) -> Option<&str> {
    let challenge = std::str::from_utf8(payload.strip_prefix(b"data:")?).ok()?;
    if challenge.starts_with("proof:") || challenge.is_empty() {
        return None;
    }
    Some(challenge)
}

/// The atSign a challenge was issued for: `_<session>@alice:<nonce>` gives
/// `@alice` (the server's normalised spelling, as its prompt prints it).
pub fn challenge_atsign(challenge: &str) -> Option<&str> {
    let at = challenge.find('@')?;
    let rest = challenge.get(at..)?;
    let end = rest.find(':')?;
    rest.get(..end).filter(|atsign| atsign.len() > 1)
}

/// `cram:<digest>` proving `secret` for `challenge`.
pub fn cram_line(secret: &str, challenge: &str) -> String {
    let digest = crate::auth::cram::expected_digest(secret, challenge);
    Command::Cram(Cram { digest: &digest }).to_string()
}

/// Whether `line` is a `cram:` or `pkam:` request, whose reply changes the
/// prompt (the server lower-cases the verb and drops its spaces, wire.md §5).
pub fn is_auth_line(line: &str) -> bool {
    let Some((verb, _)) = line.trim_start().split_once(':') else {
        return false;
    };
    let mut name = [0u8; 4];
    let mut len = 0;
    for byte in verb.bytes().filter(|&b| b != b' ') {
        let Some(slot) = name.get_mut(len) else {
            return false;
        };
        *slot = byte.to_ascii_lowercase();
        len += 1;
    }
    len == name.len() && (&name == b"cram" || &name == b"pkam")
}

/// Why a pkam key could not be loaded, made or used.
#[derive(Debug, Clone, Copy)]
pub enum KeyError {
    /// ring refused the PKCS#8 document (it says why: encoding, size, …).
    Rejected(ring::error::KeyRejected),
    /// The system random generator failed while making a key.
    Generate,
    /// The signature could not be computed.
    Sign,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Rejected(why) => write!(f, "the private key was refused: {why}"),
            KeyError::Generate => f.write_str("no key could be generated"),
            KeyError::Sign => f.write_str("the signature could not be computed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The private half a pkam client signs challenges with, and the public text
/// the server stores in `privatekey:at_pkam_publickey` to check them.
pub struct PkamKey {
    /// The key pair.
    signer: Signer,
    /// What the server stores: base64 DER SubjectPublicKeyInfo for RSA,
    /// the hex uncompressed point for ECDSA (auth.md §3.2).
    public_key_text: String,
    /// ring's randomness for signing (PSS-free RSA needs none, ECDSA does).
    rng: SystemRandom,
}

/// The algorithms the verifier in [`crate::auth::pkam`] accepts that a key
/// can sign with.
enum Signer {
    /// RSA (2048 bits for current clients), PKCS#1 v1.5 with SHA-256.
    Rsa(RsaKeyPair),
    /// ECDSA P-256 with SHA-256.
    Ecdsa(EcdsaKeyPair),
}

impl std::fmt::Debug for PkamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkamKey")
            .field("signing_algo", &self.signing_algo())
            .field("public_key_text", &self.public_key_text)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    // Both indices are a nibble, below 16: always in bounds.
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Appends a DER element: `tag`, its definite length, `contents`.
fn der_push(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
    out.extend_from_slice(contents);
}

/// The DER SubjectPublicKeyInfo of a PKCS#1 `RSAPublicKey`: the form the
/// server (and the Dart clients) store, `MIIBIjAN…` in base64.
fn rsa_spki_der(rsa_public_key: &[u8]) -> Vec<u8> {
    /// AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(rsa_public_key);
    let mut body = RSA_ALGORITHM.to_vec();
    der_push(&mut body, 0x03, &bits);
    let mut spki = Vec::with_capacity(body.len() + 4);
    der_push(&mut spki, 0x30, &body);
    spki
}

impl PkamKey {
    /// An RSA key from its PKCS#8 DER (the committed fixtures).
    pub fn rsa_from_pkcs8(pkcs8: &[u8]) -> Result<PkamKey, KeyError> {
        let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(KeyError::Rejected)?;
        let spki = rsa_spki_der(key.public_key().as_ref());
        Ok(PkamKey {
            public_key_text: STANDARD.encode(spki),
            signer: Signer::Rsa(key),
            rng: SystemRandom::new(),
        })
    }

    /// An ECDSA P-256 key from its PKCS#8 DER.
    pub fn ecdsa_from_pkcs8(pkcs8: &[u8]) -> Result<PkamKey, KeyError> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(KeyError::Rejected)?;
        Ok(PkamKey {
            public_key_text: hex(key.public_key().as_ref()),
            signer: Signer::Ecdsa(key),
            rng,
        })
    }

    /// A fresh ECDSA P-256 key (ring makes EC keys, not RSA ones).
    pub fn generate_ecdsa() -> Result<PkamKey, KeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::Generate)?;
        PkamKey::ecdsa_from_pkcs8(pkcs8.as_ref())
    }

    pub fn signing_algo(&self) -> SigningAlgo {
        match self.signer {
            Signer::Rsa(_) => SigningAlgo::Rsa2048,
            Signer::Ecdsa(_) => SigningAlgo::EccSecp256r1,
        }
    }

    /// The value to store in `privatekey:at_pkam_publickey`.
    pub fn public_key_text(&self) -> &str {
        &self.public_key_text
    }

    /// The signature over exactly the challenge text, as the wire carries
    /// it: base64 of the RSA signature, or base64 of the ASCII hex of the
    /// ECDSA `r‖s` (the double encoding the Dart clients use).
    pub fn sign(&self, challenge: &str) -> Result<String, KeyError> {
        match &self.signer {
            Signer::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    challenge.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(STANDARD.encode(sig))
            }
            Signer::Ecdsa(key) => {
                let sig = key
                    .sign(&self.rng, challenge.as_bytes())
                    .map_err(|_| KeyError::Sign)?;
                Ok(STANDARD.encode(hex(sig.as_ref())))
            }
        }
    }

    /// `pkam:signingAlgo:…:hashingAlgo:sha256:[enrollmentId:<id>:]<signature>`,
    /// the form current Dart clients send.
    pub fn pkam_line(
        &self,
        challenge: &str,
        enrollment_id: Option<&str>,
    ) -> Result<String, KeyError> {
        let signature = self.sign(challenge)?;
        Ok(Command::Pkam(Pkam {
            signing_algo: Some(self.signing_algo()),
            hashing_algo: Some(HashingAlgo::Sha256),
            enrollment_id,
            signature: &signature,
        })
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::pkam::{PkamFailure, verify};

    const RSA_PKCS8: &[u8] = include_bytes!("../auth/testdata/rsa2048.pk8");
    const RSA_SPKI_B64: &str = include_str!("../auth/testdata/rsa2048.spki.b64");
    const CHALLENGE: &str =
        "_0b3c5b52-2f0a-4d8e-a1a8-4b8c6b0f8e1e@alice:d6cac849-9c29-42b0-b0c5-493db62728b9";

    /// Splits a `pkam:` line the way the server's parser does.
    fn parse_pkam(
        line: &str,
    ) -> (
        Option<SigningAlgo>,
        Option<HashingAlgo>,
        Option<String>,
        String,
    ) {
        match crate::protocol::parse::parse_normalized(line) {
            Ok(Command::Pkam(p)) => (
                p.signing_algo,
                p.hashing_algo,
                p.enrollment_id.map(str::to_string),
                p.signature.to_string(),
            ),
            other => panic!("not a pkam line: {line} → {other:?}"),
        }
    }

    #[test]
    fn the_rsa_public_key_text_is_the_stored_spki() {
        let key = PkamKey::rsa_from_pkcs8(RSA_PKCS8).expect("fixture");
        assert_eq!(key.public_key_text(), RSA_SPKI_B64.trim());
        assert_eq!(key.signing_algo(), SigningAlgo::Rsa2048);
    }

    #[test]
    fn rsa_pkam_lines_verify_against_the_server() {
        let key = PkamKey::rsa_from_pkcs8(RSA_PKCS8).expect("fixture");
        let line = key.pkam_line(CHALLENGE, None).expect("sign");
        assert!(
            line.starts_with("pkam:signingAlgo:rsa2048:hashingAlgo:sha256:"),
            "{line}"
        );
        let (signing, hashing, enrollment, signature) = parse_pkam(&line);
        assert_eq!(enrollment, None);
        assert_eq!(
            verify(
                signing,
                hashing,
                key.public_key_text(),
                CHALLENGE,
                &signature
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                signing,
                hashing,
                key.public_key_text(),
                "_x@alice:y",
                &signature
            ),
            Err(PkamFailure::BadSignature)
        );
        // The bare signature is what the legacy `pkam:<signature>` carries.
        let bare = key.sign(CHALLENGE).expect("sign");
        assert_eq!(verify(None, None, RSA_SPKI_B64, CHALLENGE, &bare), Ok(()));
    }

    #[test]
    fn ecdsa_pkam_lines_verify_against_the_server() {
        let key = PkamKey::generate_ecdsa().expect("key");
        assert_eq!(key.public_key_text().len(), 130);
        assert!(key.public_key_text().starts_with("04"));
        let line = key.pkam_line(CHALLENGE, Some("e1")).expect("sign");
        assert!(
            line.starts_with("pkam:signingAlgo:ecc_secp256r1:hashingAlgo:sha256:enrollmentId:e1:"),
            "{line}"
        );
        let (signing, hashing, enrollment, signature) = parse_pkam(&line);
        assert_eq!(enrollment.as_deref(), Some("e1"));
        assert_eq!(
            verify(
                signing,
                hashing,
                key.public_key_text(),
                CHALLENGE,
                &signature
            ),
            Ok(())
        );
        let decoded = STANDARD.decode(&signature).expect("base64");
        assert_eq!(decoded.len(), 128, "base64 of 128 hex digits");
        assert_eq!(
            verify(
                signing,
                hashing,
                key.public_key_text(),
                "_x@alice:y",
                &signature
            ),
            Err(PkamFailure::BadSignature)
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(matches!(
            PkamKey::rsa_from_pkcs8(b"not a key"),
            Err(KeyError::Rejected(_))
        ));
        assert!(matches!(
            PkamKey::ecdsa_from_pkcs8(RSA_PKCS8),
            Err(KeyError::Rejected(_))
        ));
    }

    #[test]
    fn the_cram_line_verifies_against_the_server() {
        let line = cram_line("secret", CHALLENGE);
        let digest = line.strip_prefix("cram:").expect("cram line");
        assert!(crate::auth::cram::verify("secret", CHALLENGE, digest));
        assert!(!crate::auth::cram::verify("other", CHALLENGE, digest));
        assert!(matches!(
            crate::protocol::parse::parse_normalized(&line),
            Ok(Command::Cram(Cram { digest: d })) if d == digest
        ));
    }

    #[test]
    fn challenges_and_their_atsign_are_read_from_the_from_reply() {
        assert_eq!(from_line("@alice"), "from:@alice");
        let payload = format!("data:{CHALLENGE}");
        assert_eq!(challenge_of(payload.as_bytes()), Some(CHALLENGE));
        assert_eq!(challenge_atsign(CHALLENGE), Some("@alice"));
        assert_eq!(challenge_of(b"data:proof:_s@bob:n"), None);
        assert_eq!(challenge_of(b"error:AT0011-x"), None);
        assert_eq!(challenge_atsign("no atsign"), None);
        assert_eq!(challenge_atsign("_s@:n"), None);
    }

    #[test]
    fn auth_lines_are_recognised_as_the_server_normalises_verbs() {
        for line in [
            "cram:00",
            "pkam:sig",
            "PKAM:signingAlgo:rsa2048:x",
            " cr am:00",
        ] {
            assert!(is_auth_line(line), "{line}");
        }
        for line in ["from:@alice", "cram", "pkamx:1", "llookup:cram:x", "noop:0"] {
            assert!(!is_auth_line(line), "{line}");
        }
    }
}
