//! ML-DSA-65 signatures (FIPS 204) for `pkam:signingAlgo:mldsa65`
//! (changes-since-2024-10.md §5.1), with the RustCrypto `ml-dsa` crate
//! (decision record 0007).
//!
//! What at_chops' `MlDsa65PureDartAlgo` produces and this checks:
//! - the public key is standard padded base64 of the raw FIPS 204 encoded
//!   key (`pkEncode`, 1,952 bytes), with no SubjectPublicKeyInfo around it;
//! - the signature is standard padded base64 of the raw 3,309-byte
//!   `sigEncode` output;
//! - the algorithm is ML-DSA.Verify (FIPS 204 Algorithm 3), the pure variant
//!   (not HashML-DSA), over the message bytes as given, with an empty
//!   context string.
//!
//! Lengths are checked on the base64 text before anything is decoded, so a
//! wrong-sized input costs nothing, and a right-sized one always costs the
//! same work: decode one key, decode one signature, verify once. Every
//! failure is a [`MlDsaFailure`], never a panic.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ml_dsa::{EncodedVerifyingKey, MlDsa65, Signature, VerifyingKey};

/// Bytes of an encoded ML-DSA-65 public key (FIPS 204 Table 2, `pkEncode`).
pub const PUBLIC_KEY_BYTES: usize = 1952;

/// Bytes of an encoded ML-DSA-65 signature (FIPS 204 Table 2, `sigEncode`).
pub const SIGNATURE_BYTES: usize = 3309;

/// Characters of the standard padded base64 of a public key.
pub const PUBLIC_KEY_BASE64_CHARS: usize = base64_chars(PUBLIC_KEY_BYTES);

/// Characters of the standard padded base64 of a signature.
pub const SIGNATURE_BASE64_CHARS: usize = base64_chars(SIGNATURE_BYTES);

/// Longest context string FIPS 204 allows (Algorithm 3 rejects longer).
const CONTEXT_BYTES_MAX: usize = 255;

/// Padded base64 length of `bytes` bytes.
const fn base64_chars(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

const _: () = assert!(PUBLIC_KEY_BASE64_CHARS == 2604);
const _: () = assert!(SIGNATURE_BASE64_CHARS == 4412);
// A whole ML-DSA pkam line (with an enrollment id of a UUID) fits in what an
// unauthenticated connection may send.
const _: () = assert!(
    "pkam:signingAlgo:mldsa65:enrollmentId::".len() + 36 + SIGNATURE_BASE64_CHARS
        < crate::limits::UNAUTH_LINE_BYTES_MAX
);

/// Why an ML-DSA-65 signature was refused (the caller logs it; the client
/// sees one generic error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlDsaFailure {
    /// The public key is not standard base64 of exactly
    /// [`PUBLIC_KEY_BYTES`] bytes.
    MalformedPublicKey,
    /// The signature is not standard base64 of exactly [`SIGNATURE_BYTES`]
    /// bytes, or those bytes are not a well-formed signature (hint encoding,
    /// the norm bound on `z`).
    MalformedSignature,
    /// Well formed, but not a signature of this message by this key.
    BadSignature,
}

/// Verifies `signature_b64` over `message` with `public_key_b64`, as pkam
/// does: ML-DSA.Verify with an empty context. Surrounding whitespace on the
/// two base64 texts is ignored, as for the other pkam algorithms.
pub fn verify(
    public_key_b64: &str,
    signature_b64: &str,
    message: &[u8],
) -> Result<(), MlDsaFailure> {
    verify_with_context(public_key_b64, signature_b64, message, &[])
}

/// ML-DSA.Verify with a context string. pkam always passes none; the
/// known-answer vectors carry one.
fn verify_with_context(
    public_key_b64: &str,
    signature_b64: &str,
    message: &[u8],
    context: &[u8],
) -> Result<(), MlDsaFailure> {
    let key = decode_exact::<PUBLIC_KEY_BYTES>(public_key_b64.trim())
        .ok_or(MlDsaFailure::MalformedPublicKey)?;
    let signature = decode_exact::<SIGNATURE_BYTES>(signature_b64.trim())
        .ok_or(MlDsaFailure::MalformedSignature)?;
    verify_bytes(&key, &signature, message, context)
}

/// ML-DSA.Verify on the raw encodings.
fn verify_bytes(
    public_key: &[u8; PUBLIC_KEY_BYTES],
    signature: &[u8; SIGNATURE_BYTES],
    message: &[u8],
    context: &[u8],
) -> Result<(), MlDsaFailure> {
    if context.len() > CONTEXT_BYTES_MAX {
        return Err(MlDsaFailure::BadSignature);
    }
    // Every 1,952-byte string is a valid encoded key (t1 is 10-bit packed),
    // so only the length can be wrong, and it was checked.
    let encoded = EncodedVerifyingKey::<MlDsa65>::try_from(&public_key[..])
        .map_err(|_| MlDsaFailure::MalformedPublicKey)?;
    let key = VerifyingKey::<MlDsa65>::decode(&encoded);
    let signature = Signature::<MlDsa65>::try_from(&signature[..])
        .map_err(|_| MlDsaFailure::MalformedSignature)?;
    if key.verify_with_context(message, context, &signature) {
        Ok(())
    } else {
        Err(MlDsaFailure::BadSignature)
    }
}

/// Decodes standard padded base64 that must hold exactly `N` bytes. The
/// text length is checked first, so nothing longer is ever decoded.
fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != base64_chars(N) {
        return None;
    }
    let mut bytes = [0u8; N];
    match STANDARD.decode_slice(text, &mut bytes) {
        Ok(written) if written == N => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ml_dsa::{KeyExport, Keypair, Signer, SigningKey};
    use proptest::prelude::*;

    const CHALLENGE: &str =
        "_0b3c5b52-2f0a-4d8e-a1a8-4b8c6b0f8e1e@alice:d6cac849-9c29-42b0-b0c5-493db62728b9";

    /// One known-answer test case (testdata/mldsa65/README.md).
    struct Vector {
        id: u32,
        valid: bool,
        public_key: Vec<u8>,
        context: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    }

    fn hex(text: &str) -> Vec<u8> {
        assert!(text.len() % 2 == 0, "odd hex length");
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn vectors(file: &str) -> Vec<Vector> {
        let mut key = Vec::new();
        let mut found = Vec::new();
        for line in file.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["pk", k] => key = hex(k),
                [id, result, context, message, signature] => found.push(Vector {
                    id: id.parse().expect("tcId"),
                    valid: match *result {
                        "valid" => true,
                        "invalid" => false,
                        other => panic!("result {other}"),
                    },
                    public_key: key.clone(),
                    context: if *context == "-" {
                        Vec::new()
                    } else {
                        hex(context)
                    },
                    message: hex(message),
                    signature: hex(signature),
                }),
                other => panic!("unreadable vector line: {:?}", &other[..1]),
            }
        }
        found
    }

    fn acvp() -> Vec<Vector> {
        vectors(include_str!("testdata/mldsa65/acvp_sigver_tg3.txt"))
    }

    fn wycheproof() -> Vec<Vector> {
        vectors(include_str!("testdata/mldsa65/wycheproof_verify.txt"))
    }

    fn check(v: &Vector, context: &[u8]) -> Result<(), MlDsaFailure> {
        verify_with_context(
            &STANDARD.encode(&v.public_key),
            &STANDARD.encode(&v.signature),
            &v.message,
            context,
        )
    }

    /// Wycheproof tcId 1: "Hello world", no context, a valid signature.
    fn baseline() -> Vector {
        wycheproof()
            .into_iter()
            .find(|v| v.id == 1)
            .expect("tcId 1")
    }

    #[test]
    fn the_nist_acvp_vector_verifies_with_its_context_and_only_with_it() {
        let [v] = acvp().try_into().ok().expect("one ACVP case");
        assert_eq!((v.id, v.valid), (33, true));
        assert_eq!(v.context.len(), 230);
        assert_eq!(check(&v, &v.context), Ok(()));
        assert_eq!(check(&v, &[]), Err(MlDsaFailure::BadSignature));
        let mut other = v.context.clone();
        other[0] ^= 1;
        assert_eq!(check(&v, &other), Err(MlDsaFailure::BadSignature));
    }

    #[test]
    fn every_wycheproof_vector_gets_its_expected_result() {
        let all = wycheproof();
        assert_eq!(all.len(), 18);
        for v in &all {
            let result = check(v, &v.context);
            assert_eq!(result.is_ok(), v.valid, "tcId {}: {result:?}", v.id);
        }
    }

    #[test]
    fn an_empty_context_signature_verifies_through_the_pkam_entry_point() {
        let v = baseline();
        assert!(v.context.is_empty());
        let key = STANDARD.encode(&v.public_key);
        let signature = STANDARD.encode(&v.signature);
        assert_eq!(verify(&key, &signature, &v.message), Ok(()));
        assert_eq!(verify(&key, &signature, b"Hello world"), Ok(()));
        // Whitespace around the texts is ignored, as for RSA and ECDSA.
        assert_eq!(
            verify(&format!(" {key}\n"), &format!("{signature} "), &v.message),
            Ok(())
        );
    }

    #[test]
    fn a_flipped_bit_in_signature_message_or_key_fails() {
        let v = baseline();
        let key = STANDARD.encode(&v.public_key);
        let signature = STANDARD.encode(&v.signature);
        for i in [0, 1, 31, 32, 1000, SIGNATURE_BYTES - 1] {
            let mut bad = v.signature.clone();
            bad[i] ^= 0x01;
            assert!(
                verify(&key, &STANDARD.encode(&bad), &v.message).is_err(),
                "signature byte {i}"
            );
        }
        for i in 0..v.message.len() {
            let mut bad = v.message.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                verify(&key, &signature, &bad),
                Err(MlDsaFailure::BadSignature),
                "message byte {i}"
            );
        }
        for i in [0, 31, 32, 1000, PUBLIC_KEY_BYTES - 1] {
            let mut bad = v.public_key.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify(&STANDARD.encode(&bad), &signature, &v.message),
                Err(MlDsaFailure::BadSignature),
                "key byte {i}"
            );
        }
    }

    #[test]
    fn wrong_lengths_and_bad_base64_fail_without_panicking() {
        use MlDsaFailure::*;
        let v = baseline();
        let key = STANDARD.encode(&v.public_key);
        let signature = STANDARD.encode(&v.signature);
        let m = v.message.as_slice();
        for n in [0, 1, PUBLIC_KEY_BYTES - 1, PUBLIC_KEY_BYTES + 1, 3000] {
            let bytes = vec![7u8; n];
            assert_eq!(
                verify(&STANDARD.encode(&bytes), &signature, m),
                Err(MalformedPublicKey),
                "{n}-byte key"
            );
        }
        for n in [0, 1, SIGNATURE_BYTES - 1, SIGNATURE_BYTES + 1, 10_000] {
            let bytes = vec![7u8; n];
            assert_eq!(
                verify(&key, &STANDARD.encode(&bytes), m),
                Err(MalformedSignature),
                "{n}-byte signature"
            );
        }
        // Right length, not standard base64: bad characters, the URL-safe
        // alphabet, missing or misplaced padding, whitespace inside.
        let not_base64 = "!".repeat(SIGNATURE_BASE64_CHARS);
        assert_eq!(verify(&key, &not_base64, m), Err(MalformedSignature));
        let url_safe = signature.replace('+', "-").replace('/', "_");
        assert_ne!(url_safe, signature, "the vector has + or /");
        assert_eq!(verify(&key, &url_safe, m), Err(MalformedSignature));
        let unpadded = key.trim_end_matches('=');
        assert_eq!(verify(unpadded, &signature, m), Err(MalformedPublicKey));
        let spaced = format!("{} {}", &key[..100], &key[101..]);
        assert_eq!(verify(&spaced, &signature, m), Err(MalformedPublicKey));
        let early_pad = format!("{}=={}", &key[..8], &key[10..]);
        assert_eq!(verify(&early_pad, &signature, m), Err(MalformedPublicKey));
        // A non-canonical last character: 1,952 bytes end in a group of two,
        // whose third character carries two unused bits; `B` sets one.
        assert!(key.ends_with('=') && !key.ends_with("=="));
        let mut trailing = key.clone().into_bytes();
        trailing[PUBLIC_KEY_BASE64_CHARS - 2] = b'B';
        let trailing = String::from_utf8(trailing).expect("ascii");
        assert_eq!(verify(&trailing, &signature, m), Err(MalformedPublicKey));
        // An RSA SubjectPublicKeyInfo is not an ML-DSA key.
        let rsa = include_str!("testdata/rsa2048.spki.b64");
        assert_eq!(verify(rsa, &signature, m), Err(MalformedPublicKey));
        assert_eq!(verify("", "", m), Err(MalformedPublicKey));
    }

    #[test]
    fn signatures_made_by_the_crate_round_trip() {
        // Not a known-answer test (same implementation on both sides): it
        // checks the wire forms, a fresh key and a real challenge.
        let signer = SigningKey::<MlDsa65>::from_seed(&[42u8; 32].into());
        let key = STANDARD.encode(signer.verifying_key().to_bytes());
        assert_eq!(key.len(), PUBLIC_KEY_BASE64_CHARS);
        let signature = signer.try_sign(CHALLENGE.as_bytes()).expect("sign");
        let signature = STANDARD.encode(signature.encode());
        assert_eq!(signature.len(), SIGNATURE_BASE64_CHARS);
        assert_eq!(verify(&key, &signature, CHALLENGE.as_bytes()), Ok(()));
        assert_eq!(
            verify(&key, &signature, b"_other@alice:nonce"),
            Err(MlDsaFailure::BadSignature)
        );
    }

    #[test]
    fn the_sizes_are_the_crates() {
        use ml_dsa::EncodedSignature;
        assert_eq!(
            EncodedVerifyingKey::<MlDsa65>::default().len(),
            PUBLIC_KEY_BYTES
        );
        assert_eq!(
            EncodedSignature::<MlDsa65>::default().len(),
            SIGNATURE_BYTES
        );
    }

    proptest! {
        // Each right-sized case decodes a key and verifies (~10 ms in a
        // debug build), so fewer cases than the default.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_text_never_panics(key in ".{0,3000}", signature in ".{0,5000}") {
            let _ = verify(&key, &signature, CHALLENGE.as_bytes());
        }

        #[test]
        fn arbitrary_right_sized_bytes_never_verify(
            key in proptest::collection::vec(any::<u8>(), PUBLIC_KEY_BYTES),
            signature in proptest::collection::vec(any::<u8>(), SIGNATURE_BYTES),
            message in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let key = STANDARD.encode(&key);
            let signature = STANDARD.encode(&signature);
            prop_assert!(verify(&key, &signature, &message).is_err());
            let real_key = STANDARD.encode(&baseline().public_key);
            prop_assert!(verify(&real_key, &signature, &message).is_err());
        }

        #[test]
        fn arbitrary_base64_of_the_right_length_never_panics(
            key in proptest::string::string_regex("[A-Za-z0-9+/=]{2604}").expect("regex"),
            signature in proptest::string::string_regex("[A-Za-z0-9+/=]{4412}").expect("regex"),
        ) {
            prop_assert!(verify(&key, &signature, CHALLENGE.as_bytes()).is_err());
        }
    }
}
