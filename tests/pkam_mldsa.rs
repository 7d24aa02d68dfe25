//! `pkam:signingAlgo:mldsa65:<sig>` over real TLS (changes §5.1): an owner
//! installs an ML-DSA-65 public key as the legacy pkam key on a cram
//! connection, then a new connection signs its `from:` challenge with the
//! private half. The signatures are made with the same crate that verifies
//! them; the known-answer vectors are `src/auth/mldsa.rs`'s unit tests.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "runtime")]

mod common;

use std::sync::OnceLock;

use atserver::client::auth::PkamKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Client, TestServer};
use ml_dsa::{KeyExport, Keypair, MlDsa65, Signer, SigningKey};
use ring::rand::{SecureRandom, SystemRandom};

const SECRET: &str = "pkam-mldsa-test-secret";

/// What every refused pkam gets; the connection stays open, unauthenticated.
const REFUSED: &str = "error:AT0401-Exception: pkam authentication failed\n@";

// Every failed login from 127.0.0.1 counts against the source address, and
// only `LOGIN_FREE_FAILURES_PER_SOURCE` (10) are answered without a delay:
// the tests below fail 6 times in all, and at most 3 times per atSign.

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let atsigns: Vec<(&str, &str)> = ["@mldsa", "@mldsawrong", "@mldsarsa"]
            .iter()
            .map(|a| (*a, SECRET))
            .collect();
        common::start(&atsigns)
    })
}

/// A fresh ML-DSA-65 key pair from a random seed, as a client makes one.
fn new_key() -> SigningKey<MlDsa65> {
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).expect("random seed");
    SigningKey::from_seed(&seed.into())
}

/// The stored form: standard base64 of the raw 1,952-byte public key.
fn public_key_text(key: &SigningKey<MlDsa65>) -> String {
    STANDARD.encode(key.verifying_key().to_bytes())
}

/// The wire form: standard base64 of the raw 3,309-byte signature over the
/// challenge's UTF-8 bytes (FIPS 204 ML-DSA.Sign, empty context).
fn sign(key: &SigningKey<MlDsa65>, challenge: &str) -> String {
    STANDARD.encode(key.try_sign(challenge.as_bytes()).expect("sign").encode())
}

/// Stores `public_key` as `atsign`'s legacy pkam key on a cram connection.
fn install_pkam_key(atsign: &str, public_key: &str) {
    let mut c = Client::connect(server());
    c.cram(atsign, SECRET);
    assert_eq!(
        c.send(&format!("update:privatekey:at_pkam_publickey {public_key}")),
        format!("data:-1\n{atsign}@")
    );
}

#[test]
fn an_ml_dsa_65_pkam_key_installed_with_cram_authenticates_a_new_connection() {
    let key = new_key();
    let public = public_key_text(&key);
    assert_eq!(public.len(), 2604);
    install_pkam_key("@mldsa", &public);

    let mut c = Client::connect(server());
    let challenge = c.challenge("@mldsa");
    let signature = sign(&key, &challenge);
    assert_eq!(signature.len(), 4412);
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{signature}")),
        "data:success\n@mldsa@"
    );
    assert_eq!(c.send("noop:0"), "data:ok\n@mldsa@");

    // hashingAlgo is ignored for mldsa65.
    let mut c = Client::connect(server());
    let challenge = c.challenge("@mldsa");
    assert_eq!(
        c.send(&format!(
            "pkam:signingAlgo:mldsa65:hashingAlgo:sha512:{}",
            sign(&key, &challenge)
        )),
        "data:success\n@mldsa@"
    );
}

#[test]
fn a_wrong_ml_dsa_65_signature_is_refused_and_the_connection_stays_usable() {
    let key = new_key();
    install_pkam_key("@mldsawrong", &public_key_text(&key));
    let mut c = Client::connect(server());

    // A signature over another challenge.
    c.challenge("@mldsawrong");
    let other = sign(&key, "_other@mldsawrong:nonce");
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{other}")),
        REFUSED
    );

    // The right challenge, one bit flipped in the signature.
    let challenge = c.challenge("@mldsawrong");
    let mut flipped = STANDARD.decode(sign(&key, &challenge)).expect("own base64");
    flipped[100] ^= 0x04;
    let flipped = STANDARD.encode(flipped);
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{flipped}")),
        REFUSED
    );

    // Not base64 at all, of the right length.
    c.challenge("@mldsawrong");
    let garbage = "*".repeat(4412);
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{garbage}")),
        REFUSED
    );

    let challenge = c.challenge("@mldsawrong");
    assert_eq!(
        c.send(&format!(
            "pkam:signingAlgo:mldsa65:{}",
            sign(&key, &challenge)
        )),
        "data:success\n@mldsawrong@"
    );
}

#[test]
fn mldsa65_against_an_installed_rsa_key_fails_cleanly() {
    let rsa = PkamKey::rsa_from_pkcs8(include_bytes!("../src/auth/testdata/rsa2048.pk8"))
        .expect("RSA key");
    install_pkam_key(
        "@mldsarsa",
        include_str!("../src/auth/testdata/rsa2048.spki.b64"),
    );
    let mut c = Client::connect(server());

    // A real ML-DSA-65 signature, but the stored key is an RSA SPKI.
    let challenge = c.challenge("@mldsarsa");
    let mldsa = sign(&new_key(), &challenge);
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{mldsa}")),
        REFUSED
    );

    // The prefix with nothing after it.
    c.challenge("@mldsarsa");
    assert_eq!(c.send("pkam:signingAlgo:mldsa65:"), REFUSED);

    // A valid RSA signature under the mldsa65 algorithm.
    let challenge = c.challenge("@mldsarsa");
    let rsa_signature = rsa.sign(&challenge).expect("RSA sign");
    assert_eq!(
        c.send(&format!("pkam:signingAlgo:mldsa65:{rsa_signature}")),
        REFUSED
    );

    // Under its own algorithm the RSA key still works.
    let challenge = c.challenge("@mldsarsa");
    assert_eq!(
        c.send(&format!(
            "pkam:signingAlgo:rsa2048:hashingAlgo:sha256:{}",
            rsa.sign(&challenge).expect("RSA sign")
        )),
        "data:success\n@mldsarsa@"
    );
}
