//! Authentication costs on the server side: pkam verification (RSA-2048
//! PKCS#1 v1.5 SHA-256 and ECDSA P-256) and the cram digest.
//!
//! `cargo bench --bench auth` (`cargo test --benches` runs each once).

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use atserver::auth::{cram, pkam};
use atserver::client::auth::PkamKey;
use atserver::protocol::command::{HashingAlgo, SigningAlgo};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

const RSA_PKCS8: &[u8] = include_bytes!("../src/auth/testdata/rsa2048.pk8");
const RSA_SPKI_B64: &str = include_str!("../src/auth/testdata/rsa2048.spki.b64");
const CHALLENGE: &str =
    "_0b3c5b52-2f0a-4d8e-a1a8-4b8c6b0f8e1e@alice:d6cac849-9c29-42b0-b0c5-493db62728b9";

fn auth(c: &mut Criterion) {
    // The signatures a client sends, made by the library client.
    let rsa_sig = PkamKey::rsa_from_pkcs8(RSA_PKCS8)
        .expect("RSA test key")
        .sign(CHALLENGE)
        .expect("sign");
    let ec_key = PkamKey::generate_ecdsa().expect("ECDSA key");
    let ec_public = ec_key.public_key_text();
    let ec_sig = ec_key.sign(CHALLENGE).expect("sign");

    let mut group = c.benchmark_group("pkam_verify");
    group.bench_function("rsa2048_sha256", |b| {
        b.iter(|| {
            let r = pkam::verify(
                Some(SigningAlgo::Rsa2048),
                Some(HashingAlgo::Sha256),
                black_box(RSA_SPKI_B64),
                black_box(CHALLENGE),
                black_box(&rsa_sig),
            );
            assert_eq!(r, Ok(()));
        })
    });
    group.bench_function("ecdsa_p256_sha256", |b| {
        b.iter(|| {
            let r = pkam::verify(
                Some(SigningAlgo::EccSecp256r1),
                None,
                black_box(ec_public),
                black_box(CHALLENGE),
                black_box(&ec_sig),
            );
            assert_eq!(r, Ok(()));
        })
    });
    group.finish();

    // What one full TLS handshake costs the server in its CertificateVerify
    // signature, by certificate type (ring, as rustls uses it here).
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("RSA test key");
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("ECDSA key");
    let ec = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("ECDSA key");
    let mut group = c.benchmark_group("tls_server_signature");
    group.bench_function("rsa2048_pkcs1_sha256", |b| {
        let mut out = vec![0; rsa.public().modulus_len()];
        b.iter(|| {
            rsa.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                black_box(CHALLENGE.as_bytes()),
                &mut out,
            )
            .expect("sign")
        })
    });
    group.bench_function("ecdsa_p256_sha256", |b| {
        b.iter(|| {
            ec.sign(&rng, black_box(CHALLENGE.as_bytes()))
                .expect("sign")
        })
    });
    group.finish();

    let digest = cram::expected_digest(
        "a-cram-secret-of-typical-length-0123456789abcdef",
        CHALLENGE,
    );
    let mut group = c.benchmark_group("cram");
    group.bench_function("digest", |b| {
        b.iter(|| {
            black_box(cram::expected_digest(
                black_box("a-cram-secret-of-typical-length-0123456789abcdef"),
                black_box(CHALLENGE),
            ))
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            assert!(cram::verify(
                black_box("a-cram-secret-of-typical-length-0123456789abcdef"),
                black_box(CHALLENGE),
                black_box(&digest)
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
