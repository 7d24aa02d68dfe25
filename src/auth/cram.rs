//! CRAM: `cram:<lowercase hex SHA-512(secret + challenge)>`.

use super::constant_time_eq;

/// The digest a client must send for `secret` and `challenge`.
pub fn expected_digest(secret: &str, challenge: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(secret.as_bytes());
    ctx.update(challenge.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `digest` proves knowledge of `secret`. An empty secret never
/// verifies: it would let anyone in.
pub fn verify(secret: &str, challenge: &str, digest: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    constant_time_eq(
        expected_digest(secret, challenge).as_bytes(),
        digest.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_lowercase_hex_sha512_of_secret_then_challenge() {
        // sha512("abc") — FIPS 180-2 test vector.
        assert_eq!(
            expected_digest("a", "bc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn verification_accepts_only_the_exact_digest() {
        let d = expected_digest("secret", "_s@alice:n");
        assert!(verify("secret", "_s@alice:n", &d));
        assert!(!verify("secret", "_s@alice:n", &d.to_uppercase()));
        assert!(!verify("other", "_s@alice:n", &d));
        assert!(!verify(
            "",
            "_s@alice:n",
            &expected_digest("", "_s@alice:n")
        ));
    }
}
