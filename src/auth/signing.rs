//! The atServer's own signing key pair (auth.md §0): the RSA-2048 key that
//! proves "this server speaks for @alice" to other atServers (`pol`).
//!
//! Stored as three keys of the atSign:
//! - `public:signing_publickey@alice`: base64 of the DER
//!   SubjectPublicKeyInfo (no PEM armour), committed, readable by anyone;
//! - `@alice:signing_privatekey@alice`: base64 of the DER PKCS#8 private
//!   key, committed (the owner's clients sync it), readable by the owner
//!   only: it is a self key, so no lookup path of another caller names it;
//! - `privatekey:signing_keypair_generated` = `true`, not committed: the
//!   flag that says the pair exists.
//!
//! Generation uses the RustCrypto `rsa` crate, because ring cannot generate
//! RSA keys; everything else (parsing the private key, signing, verifying)
//! is ring's (decision record 0004).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, RsaKeyPair};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::rand_core::CryptoRngCore;

use crate::error::AtError;
use crate::storage::actor::now_ms;
use crate::storage::{
    CommitOp, KeyWrite, Mutation, StoreError, StoredRecord, TenantStore, WriteError, WriteRequest,
};

/// The modulus size the reference generates, and what every Dart verifier
/// accepts.
pub const SIGNING_KEY_BITS: usize = 2048;

/// The flag written once the pair is stored: its absence at start means
/// "generate a pair" (see [`provision`]).
pub const GENERATED_FLAG_KEY: &str = "privatekey:signing_keypair_generated";

/// `public:signing_publickey@alice` for `atsign` (with its `@`).
pub fn public_key_name(atsign: &str) -> String {
    format!("public:signing_publickey{atsign}")
}

/// `@alice:signing_privatekey@alice` for `atsign` (with its `@`).
pub fn private_key_name(atsign: &str) -> String {
    format!("{atsign}:signing_privatekey{atsign}")
}

/// Why a signing key could not be made, stored, read or used.
#[derive(Debug)]
pub enum SigningError {
    /// The `rsa` crate failed to generate a key (a random source failure).
    Generation,
    /// A generated key could not be encoded as DER.
    Encoding,
    /// The stored private key is not base64 of an RSA PKCS#8 key ring takes.
    MalformedPrivateKey,
    /// The atSign has no `@me:signing_privatekey@me` (or its value is null).
    MissingPrivateKey,
    /// ring refused to sign (a random source failure).
    Signing,
    /// Reading the store failed.
    Store(StoreError),
    /// Writing the pair or its flag failed.
    Write(WriteError),
}

impl std::fmt::Display for SigningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningError::Generation => f.write_str("RSA key generation failed"),
            SigningError::Encoding => f.write_str("the generated RSA key could not be encoded"),
            SigningError::MalformedPrivateKey => {
                f.write_str("the stored signing private key is not a base64 RSA PKCS#8 key")
            }
            SigningError::MissingPrivateKey => f.write_str("no signing private key is stored"),
            SigningError::Signing => f.write_str("RSA signing failed"),
            SigningError::Store(error) => write!(f, "reading the signing key: {error}"),
            SigningError::Write(error) => write!(f, "storing the signing key pair: {error}"),
        }
    }
}

impl std::error::Error for SigningError {}

impl From<StoreError> for SigningError {
    fn from(error: StoreError) -> Self {
        SigningError::Store(error)
    }
}

impl From<WriteError> for SigningError {
    fn from(error: WriteError) -> Self {
        SigningError::Write(error)
    }
}

/// A freshly generated pair, as DER, ready to be stored.
pub struct SigningKeyPair {
    public_spki_der: Vec<u8>,
    private_pkcs8_der: rsa::pkcs8::SecretDocument,
}

impl SigningKeyPair {
    /// A new RSA-2048 pair from the operating system's random source.
    pub fn generate() -> Result<SigningKeyPair, SigningError> {
        SigningKeyPair::generate_with(&mut rsa::rand_core::OsRng)
    }

    /// A new RSA-2048 pair from `rng` (tests pass a seeded one).
    pub fn generate_with(rng: &mut impl CryptoRngCore) -> Result<SigningKeyPair, SigningError> {
        let private =
            rsa::RsaPrivateKey::new(rng, SIGNING_KEY_BITS).map_err(|_| SigningError::Generation)?;
        let private_pkcs8_der = private.to_pkcs8_der().map_err(|_| SigningError::Encoding)?;
        let public_spki_der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| SigningError::Encoding)?
            .into_vec();
        Ok(SigningKeyPair {
            public_spki_der,
            private_pkcs8_der,
        })
    }

    /// Base64 (standard, padded) of the DER SubjectPublicKeyInfo: the value
    /// of `public:signing_publickey@me`.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(&self.public_spki_der)
    }

    /// Base64 (standard, padded) of the DER PKCS#8 private key: the value of
    /// `@me:signing_privatekey@me`.
    pub fn private_key_base64(&self) -> String {
        STANDARD.encode(self.private_pkcs8_der.as_bytes())
    }

    /// The private half parsed by ring, to sign with.
    pub fn signing_key(&self) -> Result<SigningKey, SigningError> {
        SigningKey::from_pkcs8_der(self.private_pkcs8_der.as_bytes())
    }
}

/// A private key ring signs with: RSA PKCS#1 v1.5 over SHA-256.
pub struct SigningKey {
    key: RsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("SigningKey")
            .field("modulus_bits", &(self.key.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a base64 DER PKCS#8 RSA private key (the stored form).
    pub fn from_pkcs8_base64(text: &str) -> Result<SigningKey, SigningError> {
        let der = STANDARD
            .decode(text.trim())
            .map_err(|_| SigningError::MalformedPrivateKey)?;
        SigningKey::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, SigningError> {
        RsaKeyPair::from_pkcs8(der)
            .map(|key| SigningKey { key })
            .map_err(|_| SigningError::MalformedPrivateKey)
    }

    /// Base64 (standard, padded) of the RSA PKCS#1 v1.5 SHA-256 signature
    /// of `message`: what a Dart verifier expects as a `pol` proof.
    pub fn sign_base64(&self, message: &[u8]) -> Result<String, SigningError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        // ring blinds the private-key operation with fresh randomness; the
        // signature itself is deterministic.
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SigningError::Signing)?;
        Ok(STANDARD.encode(signature))
    }
}

/// Reads `atsign`'s signing private key (`@me:signing_privatekey@me`) from
/// its store and parses it. Does not block on the write path.
pub fn load(store: &TenantStore, atsign: &str) -> Result<SigningKey, SigningError> {
    let value = store
        .get(&private_key_name(atsign))?
        .and_then(|record| record.value)
        .ok_or(SigningError::MissingPrivateKey)?;
    SigningKey::from_pkcs8_base64(&value)
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFailure {
    /// Not base64 of a DER RSA SubjectPublicKeyInfo ring accepts (2048 to
    /// 8192 bits).
    MalformedPublicKey,
    MalformedSignature,
    BadSignature,
}

/// Checks an RSA PKCS#1 v1.5 SHA-256 signature (`signature_b64`, standard
/// base64) of `message` against a base64 DER SubjectPublicKeyInfo, as a
/// `pol` verifier does with `signing_publickey@peer`.
pub fn check_signature(
    spki_b64: &str,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), SignatureFailure> {
    let signature_bytes = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| SignatureFailure::MalformedSignature)?;
    let spki = STANDARD
        .decode(spki_b64.trim())
        .map_err(|_| SignatureFailure::MalformedPublicKey)?;
    let rsa_key =
        super::pkam::rsa_public_key_from_spki(&spki).ok_or(SignatureFailure::MalformedPublicKey)?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, rsa_key)
        .verify(message, &signature_bytes)
        .map_err(|_| SignatureFailure::BadSignature)
}

/// Whether `signature_b64` is a valid signature of `message` by the key in
/// `spki_b64` (see [`check_signature`]); malformed input is `false`.
pub fn verify_base64(spki_b64: &str, message: &[u8], signature_b64: &str) -> bool {
    check_signature(spki_b64, message, signature_b64).is_ok()
}

/// What [`provision`] found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The flag was there: the pair made at an earlier start is kept.
    Kept,
    /// A new pair was generated and stored.
    Generated,
}

/// Makes sure `store`'s atSign has a signing key pair: unless
/// [`GENERATED_FLAG_KEY`] exists, generates one and stores it.
///
/// Crash safety. The store applies at most two keys as one atomic request
/// (a write and its companion), so the pair is one request — the public
/// key first (commit id 0 on a fresh server), the private key as its
/// companion (commit id 1) — and the flag a second request, submitted only
/// once the pair is durable. So the flag never exists without the pair,
/// and the two halves never belong to different pairs. A crash between the
/// two requests leaves a pair without the flag; the next start then treats
/// the atSign as having no pair and replaces both halves, again in one
/// request, before writing the flag: every start ends with exactly one
/// consistent pair. (The replaced pair was never announced by the flag, so
/// nothing could rely on it: a `pol` proof made with it during the start
/// that crashed is not possible, as the server only serves after this.)
pub async fn provision(store: &TenantStore) -> Result<Provisioned, SigningError> {
    if store.get(GENERATED_FLAG_KEY)?.is_some() {
        return Ok(Provisioned::Kept);
    }
    let atsign = store.atsign().to_string();
    let pair = SigningKeyPair::generate()?;
    let public = put_committed(public_key_name(&atsign), pair.public_key_base64(), &atsign);
    let private = put_committed(
        private_key_name(&atsign),
        pair.private_key_base64(),
        &atsign,
    );
    let request_bytes = public.key.len() + private.key.len();
    store
        .submit_request(WriteRequest {
            write: public,
            companion: Some(private),
            request_bytes,
        })
        .await?
        .outcome()
        .await?;
    let writer = atsign.clone();
    store
        .write(GENERATED_FLAG_KEY.to_string(), false, move |_| {
            let record = StoredRecord::written_by(Some("true".into()), &writer, now_ms());
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        })
        .await?;
    Ok(Provisioned::Generated)
}

/// A committed write of `value` under `key`, created by `writer`. A plain
/// put (`+` in the commit log), as the reference's start-up writes are.
fn put_committed(key: String, value: String, writer: &str) -> KeyWrite {
    let writer = writer.to_string();
    KeyWrite::new(
        key,
        true,
        Box::new(move |_| -> Result<Mutation, AtError> {
            let record = StoredRecord::written_by(Some(value), &writer, now_ms());
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const KNOWN_PRIVATE_B64: &str = include_str!("testdata/signing/private.pk8.b64");
    const KNOWN_PUBLIC_B64: &str = include_str!("testdata/signing/public.spki.b64");
    const KNOWN_MESSAGE: &[u8] = include_bytes!("testdata/signing/message.txt");
    const KNOWN_SIGNATURE_B64: &str = include_str!("testdata/signing/message.sig.b64");

    fn fresh_pair() -> SigningKeyPair {
        SigningKeyPair::generate().expect("generate")
    }

    #[test]
    fn a_generated_pair_signs_and_its_public_half_verifies() {
        let started = Instant::now();
        let pair = fresh_pair();
        eprintln!("RSA-2048 generation took {:?}", started.elapsed());
        let key = pair.signing_key().expect("ring takes the PKCS#8");
        let message = b"d6cac849-9c29-42b0-b0c5-493db62728b9";
        let signature = key.sign_base64(message).expect("sign");
        assert!(verify_base64(
            &pair.public_key_base64(),
            message,
            &signature
        ));
        assert!(!verify_base64(
            &pair.public_key_base64(),
            b"another nonce",
            &signature
        ));
        // The stored private form parses back to the same key.
        let reloaded = SigningKey::from_pkcs8_base64(&pair.private_key_base64()).expect("parse");
        assert_eq!(reloaded.sign_base64(message).expect("sign"), signature);
    }

    #[test]
    fn the_stored_forms_are_bare_base64_der_of_spki_and_pkcs8() {
        let pair = fresh_pair();
        let public = pair.public_key_base64();
        let private = pair.private_key_base64();
        assert!(!public.contains("BEGIN") && !private.contains("BEGIN"));
        // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING }: every
        // RSA-2048 SPKI starts with these bytes, and so its base64.
        assert!(public.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        // PKCS#8: SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption, NULL }, … }.
        let der = STANDARD.decode(&private).expect("base64");
        assert_eq!(der.get(..2), Some(&[0x30, 0x82][..]));
        let version_and_algorithm = [
            0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
            0x01, 0x01, 0x05, 0x00,
        ];
        assert_eq!(der.get(4..22), Some(&version_and_algorithm[..]));
    }

    #[test]
    fn a_signature_by_another_key_fails() {
        let signer = fresh_pair();
        let other = fresh_pair();
        let signature = signer
            .signing_key()
            .expect("key")
            .sign_base64(KNOWN_MESSAGE)
            .expect("sign");
        assert_eq!(
            check_signature(&other.public_key_base64(), KNOWN_MESSAGE, &signature),
            Err(SignatureFailure::BadSignature)
        );
        assert!(!verify_base64(KNOWN_PUBLIC_B64, KNOWN_MESSAGE, &signature));
    }

    #[test]
    fn signatures_match_openssl_byte_for_byte() {
        let key = SigningKey::from_pkcs8_base64(KNOWN_PRIVATE_B64).expect("openssl's PKCS#8");
        assert_eq!(
            key.sign_base64(KNOWN_MESSAGE).expect("sign"),
            KNOWN_SIGNATURE_B64.trim()
        );
        assert_eq!(
            check_signature(KNOWN_PUBLIC_B64, KNOWN_MESSAGE, KNOWN_SIGNATURE_B64),
            Ok(())
        );
        assert!(!verify_base64(
            KNOWN_PUBLIC_B64,
            b"d6cac849-9c29-42b0-b0c5-493db62728b8",
            KNOWN_SIGNATURE_B64
        ));
    }

    #[test]
    fn malformed_keys_and_signatures_fail_without_panicking() {
        use SignatureFailure::*;
        let check = |spki: &str, sig: &str| check_signature(spki, KNOWN_MESSAGE, sig);
        assert_eq!(check(KNOWN_PUBLIC_B64, "!!!"), Err(MalformedSignature));
        assert_eq!(check(KNOWN_PUBLIC_B64, ""), Err(BadSignature));
        assert_eq!(check(KNOWN_PUBLIC_B64, "AAAA"), Err(BadSignature));
        assert_eq!(
            check("not base64", KNOWN_SIGNATURE_B64),
            Err(MalformedPublicKey)
        );
        assert_eq!(check("AAAA", KNOWN_SIGNATURE_B64), Err(MalformedPublicKey));
        assert_eq!(check("", KNOWN_SIGNATURE_B64), Err(MalformedPublicKey));
        // A PKCS#8 private key is not a public key.
        assert_eq!(
            check(KNOWN_PRIVATE_B64, KNOWN_SIGNATURE_B64),
            Err(MalformedPublicKey)
        );
        // A truncated SPKI.
        assert_eq!(
            check(&KNOWN_PUBLIC_B64[..100], KNOWN_SIGNATURE_B64),
            Err(MalformedPublicKey)
        );
        for bad in [
            "",
            "!!!",
            "AAAA",
            KNOWN_PUBLIC_B64,
            &KNOWN_PRIVATE_B64[..200],
        ] {
            assert!(
                matches!(
                    SigningKey::from_pkcs8_base64(bad),
                    Err(SigningError::MalformedPrivateKey)
                ),
                "{bad:?}"
            );
        }
    }

    mod provisioning {
        use super::*;
        use crate::health::FatalSink;
        use crate::storage::{Durability, Store};
        use futures_lite::future::block_on;

        fn store() -> (tempfile::TempDir, TenantStore) {
            let dir = tempfile::tempdir().expect("tempdir");
            let store =
                Store::open(dir.path(), Durability::Fast, FatalSink::log_only()).expect("open");
            (dir, store.tenant("@alice"))
        }

        fn value(store: &TenantStore, key: &str) -> Option<String> {
            store.get(key).expect("get").and_then(|r| r.value)
        }

        /// The stored halves belong together: what the private key signs,
        /// the public key verifies.
        fn assert_consistent(store: &TenantStore) {
            let key = load(store, "@alice").expect("load");
            let signature = key.sign_base64(b"nonce").expect("sign");
            let public = value(store, "public:signing_publickey@alice").expect("public half");
            assert!(verify_base64(&public, b"nonce", &signature));
        }

        #[test]
        fn a_fresh_store_gets_the_pair_at_commit_ids_0_and_1_and_then_the_flag() {
            let (_dir, store) = store();
            assert_eq!(
                block_on(provision(&store)).expect("provision"),
                Provisioned::Generated
            );
            let log: Vec<_> = store
                .commits_from(0, 10)
                .expect("log")
                .into_iter()
                .map(|(id, entry)| (id, entry.key, entry.op))
                .collect();
            assert_eq!(
                log,
                [
                    (
                        0,
                        "public:signing_publickey@alice".to_string(),
                        CommitOp::Update
                    ),
                    (
                        1,
                        "@alice:signing_privatekey@alice".to_string(),
                        CommitOp::Update
                    ),
                ]
            );
            assert_eq!(value(&store, GENERATED_FLAG_KEY).as_deref(), Some("true"));
            let record = store
                .get("public:signing_publickey@alice")
                .expect("get")
                .expect("there");
            assert_eq!(record.meta.created_by.as_deref(), Some("@alice"));
            assert_eq!(record.meta.updated_by.as_deref(), Some("@alice"));
            assert_consistent(&store);
        }

        #[test]
        fn a_restart_keeps_the_pair_it_made() {
            let (_dir, store) = store();
            block_on(provision(&store)).expect("first start");
            let public = value(&store, "public:signing_publickey@alice");
            assert_eq!(
                block_on(provision(&store)).expect("restart"),
                Provisioned::Kept
            );
            assert_eq!(value(&store, "public:signing_publickey@alice"), public);
            assert_eq!(store.last_commit_id().expect("last"), Some(1));
        }

        #[test]
        fn a_pair_without_its_flag_is_replaced_whole() {
            // What a crash between the pair's request and the flag's leaves.
            let (_dir, store) = store();
            block_on(provision(&store)).expect("first start");
            let old_public = value(&store, "public:signing_publickey@alice");
            block_on(store.write(GENERATED_FLAG_KEY.to_string(), false, |_| {
                Ok(Mutation::Delete)
            }))
            .expect("drop the flag");
            assert_eq!(
                block_on(provision(&store)).expect("restart"),
                Provisioned::Generated
            );
            assert_ne!(value(&store, "public:signing_publickey@alice"), old_public);
            assert_eq!(value(&store, GENERATED_FLAG_KEY).as_deref(), Some("true"));
            assert_consistent(&store);
        }

        #[test]
        fn loading_without_a_pair_is_a_typed_error() {
            let (_dir, store) = store();
            assert!(matches!(
                load(&store, "@alice"),
                Err(SigningError::MissingPrivateKey)
            ));
        }
    }
}
