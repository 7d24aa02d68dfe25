//! Owner authentication: `from:` challenges, `cram`, `pkam` (with
//! `mldsa`, its ML-DSA-65 verifier); and the server's own signing key pair,
//! which proves its atSigns to other atServers (`pol`).

pub mod challenge;
pub mod cram;
pub mod enrollment;
pub mod mldsa;
pub mod namespaces;
pub mod otp;
pub mod pkam;
pub mod signing;
pub mod throttle;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_unequal_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
