//! PKAM: proof of an owner's private key by a signature over the challenge.
//!
//! Allow-listed algorithms only: RSA (2048–8192 bits) PKCS#1 v1.5 with
//! SHA-256 or SHA-512, ECDSA P-256 with SHA-256, and ML-DSA-65 (FIPS 204,
//! empty context; [`super::mldsa`]). Everything else, and every malformed
//! key or signature, is one failure: the caller answers
//! `AT0401 pkam authentication failed` and the connection stays usable.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature;

use super::mldsa::{self, MlDsaFailure};
use crate::protocol::command::{HashingAlgo, SigningAlgo};

/// Why a pkam attempt failed (logged; the client sees one generic error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkamFailure {
    MalformedPublicKey,
    MalformedSignature,
    BadSignature,
}

impl From<MlDsaFailure> for PkamFailure {
    fn from(failure: MlDsaFailure) -> Self {
        match failure {
            MlDsaFailure::MalformedPublicKey => PkamFailure::MalformedPublicKey,
            MlDsaFailure::MalformedSignature => PkamFailure::MalformedSignature,
            MlDsaFailure::BadSignature => PkamFailure::BadSignature,
        }
    }
}

/// Verifies `signature_b64` over `challenge` with the stored `public_key`:
/// base64 DER SubjectPublicKeyInfo for RSA, a hex EC point for ECDSA,
/// base64 of the raw 1,952-byte key for ML-DSA-65.
///
/// The caller decides the algorithm: for legacy pkam it is the wire's
/// `signingAlgo`, for an APKAM enrollment it will be the one its record
/// names (changes §5.1). Absent means `rsa2048`; `hashing` matters only for
/// RSA (absent means SHA-256) and is ignored for ECDSA and ML-DSA-65.
pub fn verify(
    signing: Option<SigningAlgo>,
    hashing: Option<HashingAlgo>,
    public_key: &str,
    challenge: &str,
    signature_b64: &str,
) -> Result<(), PkamFailure> {
    match signing.unwrap_or(SigningAlgo::Rsa2048) {
        SigningAlgo::Rsa2048 => verify_rsa(
            hashing.unwrap_or(HashingAlgo::Sha256),
            public_key,
            challenge,
            signature_b64,
        ),
        SigningAlgo::EccSecp256r1 => verify_ecdsa_p256(public_key, challenge, signature_b64),
        SigningAlgo::MlDsa65 => {
            mldsa::verify(public_key, signature_b64, challenge.as_bytes()).map_err(Into::into)
        }
    }
}

/// The standard-base64 signature of the wire, decoded.
fn decode_signature(signature_b64: &str) -> Result<Vec<u8>, PkamFailure> {
    STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| PkamFailure::MalformedSignature)
}

fn verify_rsa(
    hashing: HashingAlgo,
    public_key: &str,
    challenge: &str,
    signature_b64: &str,
) -> Result<(), PkamFailure> {
    let signature_bytes = decode_signature(signature_b64)?;
    let algorithm: &dyn signature::VerificationAlgorithm = match hashing {
        HashingAlgo::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        HashingAlgo::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
    };
    let spki = STANDARD
        .decode(public_key.trim())
        .map_err(|_| PkamFailure::MalformedPublicKey)?;
    let rsa_key = rsa_public_key_from_spki(&spki).ok_or(PkamFailure::MalformedPublicKey)?;
    signature::UnparsedPublicKey::new(algorithm, rsa_key)
        .verify(challenge.as_bytes(), &signature_bytes)
        .map_err(|_| PkamFailure::BadSignature)
}

fn verify_ecdsa_p256(
    public_key: &str,
    challenge: &str,
    signature_b64: &str,
) -> Result<(), PkamFailure> {
    let signature_bytes = decode_signature(signature_b64)?;
    let point = decode_hex(public_key.trim()).ok_or(PkamFailure::MalformedPublicKey)?;
    if point.len() != 65 || point.first() != Some(&4) {
        return Err(PkamFailure::MalformedPublicKey);
    }
    // The base64 payload is ASCII hex of r‖s (double encoded).
    let text =
        std::str::from_utf8(&signature_bytes).map_err(|_| PkamFailure::MalformedSignature)?;
    let fixed = decode_hex(text.trim()).ok_or(PkamFailure::MalformedSignature)?;
    if fixed.len() != 64 {
        return Err(PkamFailure::MalformedSignature);
    }
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(challenge.as_bytes(), &fixed)
        .map_err(|_| PkamFailure::BadSignature)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digits = text.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first_len, rest) = rest.split_first()?;
    let (len, rest) = if first_len < 0x80 {
        (first_len as usize, rest)
    } else {
        let count = (first_len & 0x7f) as usize;
        if count == 0 || count > 4 {
            return None;
        }
        let (len_bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
        (
            len_bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | b as usize),
            rest,
        )
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// DER of OID 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Extracts the PKCS#1 `RSAPublicKey` that ring verifies with from a DER
/// SubjectPublicKeyInfo, checking that the algorithm is rsaEncryption.
pub(super) fn rsa_public_key_from_spki(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, body, []) = der_element(spki)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_element(body)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION_OID {
        return None;
    }
    let (0x03, bits, []) = der_element(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    const RSA_PKCS8: &[u8] = include_bytes!("testdata/rsa2048.pk8");
    const RSA_SPKI_B64: &str = include_str!("testdata/rsa2048.spki.b64");
    const CHALLENGE: &str =
        "_0b3c5b52-2f0a-4d8e-a1a8-4b8c6b0f8e1e@alice:d6cac849-9c29-42b0-b0c5-493db62728b9";

    fn rsa_sign(alg: &'static dyn signature::RsaEncoding, message: &str) -> String {
        let key = RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("test key");
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(alg, &SystemRandom::new(), message.as_bytes(), &mut sig)
            .expect("sign");
        STANDARD.encode(sig)
    }

    #[test]
    fn rsa_sha256_and_sha512_signatures_verify() {
        let sig = rsa_sign(&signature::RSA_PKCS1_SHA256, CHALLENGE);
        assert_eq!(verify(None, None, RSA_SPKI_B64, CHALLENGE, &sig), Ok(()));
        assert_eq!(
            verify(
                Some(SigningAlgo::Rsa2048),
                Some(HashingAlgo::Sha256),
                RSA_SPKI_B64,
                CHALLENGE,
                &sig
            ),
            Ok(())
        );
        let sig512 = rsa_sign(&signature::RSA_PKCS1_SHA512, CHALLENGE);
        assert_eq!(
            verify(
                Some(SigningAlgo::Rsa2048),
                Some(HashingAlgo::Sha512),
                RSA_SPKI_B64,
                CHALLENGE,
                &sig512
            ),
            Ok(())
        );
        assert_eq!(
            verify(None, None, RSA_SPKI_B64, CHALLENGE, &sig512),
            Err(PkamFailure::BadSignature)
        );
    }

    #[test]
    fn a_signature_over_another_challenge_fails() {
        let sig = rsa_sign(&signature::RSA_PKCS1_SHA256, "_x@alice:y");
        assert_eq!(
            verify(None, None, RSA_SPKI_B64, CHALLENGE, &sig),
            Err(PkamFailure::BadSignature)
        );
    }

    #[test]
    fn malformed_inputs_fail_without_panicking() {
        assert_eq!(
            verify(None, None, RSA_SPKI_B64, CHALLENGE, "!!!"),
            Err(PkamFailure::MalformedSignature)
        );
        assert_eq!(
            verify(None, None, "AAAA", CHALLENGE, "AAAA"),
            Err(PkamFailure::MalformedPublicKey)
        );
        // An RSA key where an ML-DSA-65 one belongs is refused by its length.
        assert_eq!(
            verify(
                Some(SigningAlgo::MlDsa65),
                None,
                RSA_SPKI_B64,
                CHALLENGE,
                "AAAA"
            ),
            Err(PkamFailure::MalformedPublicKey)
        );
        assert_eq!(
            verify(
                Some(SigningAlgo::EccSecp256r1),
                None,
                "04zz",
                CHALLENGE,
                "AAAA"
            ),
            Err(PkamFailure::MalformedPublicKey)
        );
    }

    #[test]
    fn mldsa65_signatures_verify_whatever_the_hashing_algo() {
        use ml_dsa::{KeyExport, Keypair, MlDsa65, Signer, SigningKey};
        let signer = SigningKey::<MlDsa65>::from_seed(&[7u8; 32].into());
        let key = STANDARD.encode(signer.verifying_key().to_bytes());
        let sig = signer.try_sign(CHALLENGE.as_bytes()).expect("sign");
        let sig = STANDARD.encode(sig.encode());
        let mldsa = Some(SigningAlgo::MlDsa65);
        for hashing in [None, Some(HashingAlgo::Sha256), Some(HashingAlgo::Sha512)] {
            assert_eq!(verify(mldsa, hashing, &key, CHALLENGE, &sig), Ok(()));
        }
        assert_eq!(
            verify(mldsa, None, &key, "_other@alice:n", &sig),
            Err(PkamFailure::BadSignature)
        );
        // The same key and signature under another algorithm are refused.
        for other in [None, Some(SigningAlgo::EccSecp256r1)] {
            assert_eq!(
                verify(other, None, &key, CHALLENGE, &sig),
                Err(PkamFailure::MalformedPublicKey)
            );
        }
        // An RSA signature is not an ML-DSA one.
        let rsa_sig = rsa_sign(&signature::RSA_PKCS1_SHA256, CHALLENGE);
        assert_eq!(
            verify(mldsa, None, &key, CHALLENGE, &rsa_sig),
            Err(PkamFailure::MalformedSignature)
        );
    }

    #[test]
    fn ecdsa_p256_double_encoded_signatures_verify() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate");
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let public_hex: String = key
            .public_key()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sig = key.sign(&rng, CHALLENGE.as_bytes()).expect("sign");
        let sig_hex: String = sig.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let wire = STANDARD.encode(sig_hex.as_bytes());
        assert_eq!(
            verify(
                Some(SigningAlgo::EccSecp256r1),
                None,
                &public_hex,
                CHALLENGE,
                &wire
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                Some(SigningAlgo::EccSecp256r1),
                None,
                &public_hex,
                "_other@alice:n",
                &wire
            ),
            Err(PkamFailure::BadSignature)
        );
    }
}
