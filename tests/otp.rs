//! `otp:get` and `otp:put` (auth.md §5), byte for byte on the in-process
//! transcript driver (the real pipeline and stores, no socket). Each test
//! uses its own atSign, so they run in parallel on one server. The check
//! of a passcode by `enroll:request` is the enrollment tests'.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

mod common;

use atserver::app::ScratchServer;
use atserver::limits::{OTP_TTL_MS_MAX, PASSCODE_CHARS_MAX};
use atserver::session::Transcript;

const SECRET: &str = "otp-secret";

fn server() -> &'static ScratchServer {
    static SERVER: OnceLock<ScratchServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let names = ["@otpget", "@otptwice", "@otpput", "@otpttl", "@otpbad"];
        let atsigns: Vec<(&str, &str)> = names.iter().map(|a| (*a, SECRET)).collect();
        ScratchServer::open(&atsigns).expect("scratch server")
    })
}

fn owner(atsign: &str) -> Transcript {
    common::transcript_owner(server(), atsign, SECRET)
}

/// The payload of a `data:` reply on `atsign`'s authenticated connection.
fn data(reply: &str, atsign: &str) -> String {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{atsign}@")))
        .unwrap_or_else(|| panic!("not a data reply: {reply:?}"))
        .to_string()
}

/// Six upper-case letters and digits, at least one digit, no `0` nor `O`.
fn follows_the_rules(otp: &str) -> bool {
    otp.len() == 6
        && otp
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && otp.bytes().any(|c| c.is_ascii_digit())
        && !otp.contains(['0', 'O'])
}

#[test]
fn otp_get_answers_a_code_and_stores_it_under_its_lower_case_name() {
    let mut t = owner("@otpget");
    let otp = data(&t.send("otp:get"), "@otpget");
    assert!(follows_the_rules(&otp), "{otp:?}");
    let key = format!("private:{}.__otp@otpget", otp.to_ascii_lowercase());
    assert_eq!(
        t.send(&format!("llookup:{key}")),
        format!("data:{otp}\n@otpget@")
    );
    let meta = data(&t.send(&format!("llookup:meta:{key}")), "@otpget");
    assert!(meta.contains(r#""ttl":300000"#), "{meta}");
}

#[test]
fn every_otp_get_answers_a_new_code() {
    let mut t = owner("@otptwice");
    let codes: Vec<String> = (0..20)
        .map(|_| data(&t.send("otp:get"), "@otptwice"))
        .collect();
    assert!(codes.iter().all(|c| follows_the_rules(c)), "{codes:?}");
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len(), "{codes:?}");
}

#[test]
fn otp_put_stores_the_spp_and_answers_ok() {
    let mut t = owner("@otpput");
    assert_eq!(t.send("otp:put:ABC123"), "data:ok\n@otpput@");
    assert_eq!(
        t.send("llookup:private:spp.__otp@otpput"),
        "data:ABC123\n@otpput@"
    );
    assert_eq!(t.send("otp:put:xyz789:ttl:60000"), "data:ok\n@otpput@");
    assert_eq!(
        t.send("llookup:private:spp.__otp@otpput"),
        "data:xyz789\n@otpput@",
        "one SPP at a time"
    );
}

#[test]
fn otp_without_authentication_is_at0401() {
    let mut t = Transcript::new(server().server.clone()).expect("transcript");
    let refused = "error:AT0401-Exception: Command cannot be executed without auth\n@";
    assert_eq!(t.send("otp:get"), refused);
    assert_eq!(t.send("otp:put:ABC123"), refused);
    t.send("from:@otpget");
    assert_eq!(t.send("otp:get"), refused, "named, not proven");
}

#[test]
fn an_otp_ttl_must_be_from_1_ms_to_the_maximum() {
    let mut t = owner("@otpttl");
    let refused = format!(
        "error:AT0022-Illegal arguments : otp:get:ttl:<ms> takes 1 to {OTP_TTL_MS_MAX} milliseconds (OTP_TTL_MS_MAX)\n@otpttl@"
    );
    for line in [
        format!("otp:get:ttl:{}", OTP_TTL_MS_MAX + 1),
        "otp:get:ttl:0".to_string(),
        format!("otp:get:ttl:{}", u64::MAX),
    ] {
        assert_eq!(t.send(&line), refused, "{line}");
    }
    let otp = data(&t.send(&format!("otp:get:ttl:{OTP_TTL_MS_MAX}")), "@otpttl");
    assert!(follows_the_rules(&otp), "{otp:?}");
    let key = format!("private:{}.__otp@otpttl", otp.to_ascii_lowercase());
    let meta = data(&t.send(&format!("llookup:meta:{key}")), "@otpttl");
    assert!(
        meta.contains(&format!(r#""ttl":{OTP_TTL_MS_MAX}"#)),
        "{meta}"
    );
}

#[test]
fn a_malformed_otp_command_is_refused_and_the_connection_stays() {
    let mut t = owner("@otpbad");
    assert_eq!(
        t.send("otp:put"),
        "error:AT0003-Invalid syntax : Invalid syntax. otp:get or otp:validate:<otp>\n@otpbad@"
    );
    assert_eq!(
        t.send("otp:put:ABC12"),
        "error:AT0003-Invalid syntax : Invalid syntax. otp:get or otp:validate:<otp>\n@otpbad@",
        "shorter than the grammar's six"
    );
    assert_eq!(
        t.send(&format!("otp:put:{}", "A".repeat(PASSCODE_CHARS_MAX + 1))),
        format!(
            "error:AT0022-Illegal arguments : otp:put:<passcode> takes 6 to {PASSCODE_CHARS_MAX} word characters (PASSCODE_CHARS_MAX)\n@otpbad@"
        )
    );
    assert_eq!(
        t.send("llookup:private:spp.__otp@otpbad"),
        "error:AT0015-key not found : private:spp.__otp@otpbad does not exist in keystore\n@otpbad@",
        "nothing stored"
    );
    assert!(!t.is_closed());
}
