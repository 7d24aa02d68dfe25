//! APKAM over real TLS: an enrollment's whole life (OTP from the owner,
//! request on an unauthenticated connection, the managers' notification,
//! pkam while pending, approval, pkam with the enrollment's key, its
//! encrypted keys by `keys:get`, its namespaces enforced, revocation that
//! closes its connection, un-revoke, delete), the first device onboarded
//! on a cram connection with an ML-DSA-65 key, wrong passcodes slowed down
//! as specified, and the per-connection request limit.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use atserver::client::auth::PkamKey;
use atserver::protocol::json::{self, JsonValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Client, TestServer};
use ml_dsa::{KeyExport, Keypair, MlDsa65, Signer, SigningKey};
use ring::rand::{SecureRandom, SystemRandom};

const SECRET: &str = "apkam-secret";

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        common::start(&[
            ("@life", SECRET),
            ("@slow", SECRET),
            ("@pq", SECRET),
            ("@limit", SECRET),
            ("@cascade", SECRET),
        ])
    })
}

fn owner(atsign: &str) -> Client {
    let mut c = Client::connect(server());
    c.cram(atsign, SECRET);
    c
}

fn rsa_key() -> PkamKey {
    PkamKey::rsa_from_pkcs8(include_bytes!("../src/auth/testdata/rsa2048.pk8")).expect("key")
}

/// The JSON payload of a `data:` reply ending in `prompt`.
fn payload(reply: &str, prompt: &str) -> JsonValue {
    let text = reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{prompt}")))
        .unwrap_or_else(|| panic!("not a data reply: {reply:?}"));
    json::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn text<'a>(v: &'a JsonValue, name: &str) -> &'a str {
    v.get(name)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

/// pkam on a fresh connection with `key` as `enrollment`.
fn pkam(atsign: &str, key: &PkamKey, enrollment: &str) -> (Client, String) {
    let mut c = Client::connect(server());
    let challenge = c.challenge(atsign);
    let line = key
        .pkam_line(&challenge, Some(enrollment))
        .expect("pkam line");
    let reply = c.send(&line);
    (c, reply)
}

fn request_line(otp: &str, public_key: &str, device: &str) -> String {
    format!(
        r#"enroll:request:{{"appName":"wavi","deviceName":"{device}","namespaces":{{"wavi":"rw"}},"otp":"{otp}","apkamPublicKey":"{public_key}","encryptedAPKAMSymmetricKey":"c3ltbWV0cmlj"}}"#
    )
}

#[test]
fn an_enrollment_lives_from_otp_to_delete_and_its_connection_closes_when_revoked() {
    let atsign = "@life";
    let mut manager = owner(atsign);
    let mut monitor = owner(atsign);
    monitor.start_monitor("monitor:selfNotifications");
    let otp = manager.send("otp:get");
    let otp = otp
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{atsign}@")))
        .expect("an otp")
        .to_string();
    let key = rsa_key();
    // The new device: unauthenticated; `from:` names the atSign (this
    // process hosts several).
    let mut device = Client::connect(server());
    device.challenge(atsign);
    let pending = device.send(&request_line(&otp, key.public_key_text(), "pixel"));
    let pending = payload(&pending, "@");
    assert_eq!(text(&pending, "status"), "pending");
    let id = text(&pending, "enrollmentId").to_string();
    assert!(common::is_uuid(&id), "{id}");
    // The managers hear of it.
    let line = monitor
        .monitor_line_within(Duration::from_secs(5))
        .expect("the enrollment notification");
    assert!(
        line.contains(&format!(
            "\"key\":\"{id}.new.enrollments.__manage{atsign}\""
        )),
        "{line}"
    );
    // A used OTP does not work twice.
    let again = device.send(&request_line(&otp, "another-key", "tablet"));
    assert!(
        again.starts_with("error:AT0011-Exception: invalid otp. Cannot process enroll request"),
        "{again}"
    );
    // Pending: pkam says so in the colon form clients parse.
    let (_, reply) = pkam(atsign, &key, &id);
    assert_eq!(
        reply,
        format!("error:AT0026:enrollment_id: {id} is pending\n@")
    );
    let listed = payload(&manager.send("enroll:list"), &format!("{atsign}@"));
    let entry = listed
        .get(&format!("{id}.new.enrollments.__manage{atsign}"))
        .expect("listed");
    assert_eq!(text(entry, "status"), "pending");
    assert_eq!(
        manager.send(&format!(
            r#"enroll:approve:{{"enrollmentId":"{id}","encryptedDefaultEncryptionPrivateKey":"ZW5j","encryptedDefaultSelfEncryptionKey":"c2VsZg==","encPrivateKeyIV":"aXYx"}}"#
        )),
        format!("data:{{\"status\":\"approved\",\"enrollmentId\":\"{id}\"}}\n{atsign}@")
    );
    let (mut app, reply) = pkam(atsign, &key, &id);
    assert_eq!(reply, format!("data:success\n{atsign}@"));
    let prompt = format!("\n{atsign}@");
    assert_eq!(
        app.send(&format!(
            "keys:get:keyName:{id}.default_enc_private_key.__manage{atsign}"
        )),
        format!("data:{{\"value\":\"ZW5j\",\"iv\":\"aXYx\"}}{prompt}")
    );
    assert_eq!(
        app.send(&format!(
            "keys:get:keyName:{id}.default_self_enc_key.__manage{atsign}"
        )),
        format!("data:{{\"value\":\"c2VsZg==\"}}{prompt}")
    );
    // Its namespace only.
    assert!(app.send("update:phone.wavi@life 1").starts_with("data:"));
    manager.send("update:phone.other@life 2");
    for line in [
        "update:phone.other@life 3",
        "llookup:phone.other@life",
        "delete:phone.other@life",
    ] {
        let reply = app.send(line);
        assert!(reply.starts_with("error:AT0009-"), "{line}: {reply}");
    }
    assert_eq!(
        app.send("llookup:phone.wavi@life"),
        format!("data:1{prompt}")
    );
    // Listings show only what its namespaces cover; `info` shows its record.
    let listed = app.send("scan");
    assert!(listed.contains("\"phone.wavi@life\""), "{listed}");
    assert!(
        !listed.contains("phone.other") && !listed.contains("__manage"),
        "{listed}"
    );
    let synced = app.send("sync:from:-1:limit:100");
    assert!(synced.contains("\"atKey\":\"phone.wavi@life\""), "{synced}");
    assert!(!synced.contains("phone.other"), "{synced}");
    let info = app.send("info");
    assert!(
        info.contains(&format!("\"apkam_metadata\":{{\"enrollmentId\":\"{id}\"")),
        "{info}"
    );
    // Another enrollment's keys are not readable by name.
    let reply = app.send(&format!(
        "keys:get:keyName:00000000-0000-4000-8000-000000000000.default_enc_private_key.__manage{atsign}"
    ));
    assert!(reply.starts_with("error:AT0009-"), "{reply}");
    // Its own record, but not the manager's verbs.
    let fetched = payload(
        &app.send(&format!(r#"enroll:fetch:{{"enrollmentId":"{id}"}}"#)),
        &format!("{atsign}@"),
    );
    assert_eq!(text(&fetched, "status"), "approved");
    assert!(app.send("otp:get").starts_with("error:AT0009-"));
    // Revoked from the manager: the app's connection is closed on its
    // next command, with the code pkam would give.
    let revoked = manager.send(&format!(r#"enroll:revoke:{{"enrollmentId":"{id}"}}"#));
    assert_eq!(
        revoked,
        format!("data:{{\"status\":\"revoked\",\"enrollmentId\":\"{id}\"}}{prompt}")
    );
    assert_eq!(
        app.send("llookup:phone.wavi@life"),
        format!("error:AT0027:enrollment_id: {id} is revoked{prompt}")
    );
    assert!(
        app.is_closed(),
        "the revoked enrollment's connection is closed"
    );
    let (_, reply) = pkam(atsign, &key, &id);
    assert_eq!(
        reply,
        format!("error:AT0027:enrollment_id: {id} is revoked\n@")
    );
    // Un-revoked, it works again; approved records cannot be deleted.
    let unrevoked = manager.send(&format!(r#"enroll:unrevoke:{{"enrollmentId":"{id}"}}"#));
    assert!(unrevoked.contains("\"status\":\"approved\""), "{unrevoked}");
    assert_eq!(
        pkam(atsign, &key, &id).1,
        format!("data:success\n{atsign}@")
    );
    let refused = manager.send(&format!(r#"enroll:delete:{{"enrollmentId":"{id}"}}"#));
    assert!(refused.starts_with("error:AT0011-"), "{refused}");
    manager.send(&format!(r#"enroll:deny:{{"enrollmentId":"{id}"}}"#));
    assert_eq!(
        manager.send(&format!(r#"enroll:delete:{{"enrollmentId":"{id}"}}"#)),
        format!("data:{{\"enrollmentId\":\"{id}\",\"status\":\"deleted\"}}{prompt}")
    );
    let (_, reply) = pkam(atsign, &key, &id);
    assert_eq!(
        reply,
        format!("error:AT0028:enrollment_id: {id} is expired or invalid\n@")
    );
}

#[test]
fn wrong_passcodes_are_answered_after_growing_delays() {
    let mut device = Client::connect(server());
    device.challenge("@slow");
    let mut waited = Vec::new();
    for guess in ["AAAAA1", "AAAAA2"] {
        let start = Instant::now();
        let reply = device.send(&request_line(guess, &format!("key-{guess}"), guess));
        waited.push(start.elapsed());
        assert!(reply.starts_with("error:AT0011-"), "{reply}");
    }
    // The series starts 1 s, 2 s (auth.md §4.2): lower bounds only.
    assert!(waited[0] >= Duration::from_millis(950), "{waited:?}");
    assert!(waited[1] >= Duration::from_millis(1_950), "{waited:?}");
}

#[test]
fn the_first_device_onboards_on_cram_with_an_ml_dsa_key_and_pkams_by_its_record() {
    let atsign = "@pq";
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).expect("seed");
    let key: SigningKey<MlDsa65> = SigningKey::from_seed(&seed.into());
    let public = STANDARD.encode(key.verifying_key().to_bytes());
    let mut first = owner(atsign);
    let approved = first.send(&format!(
        r#"enroll:request:{{"appName":"cli","deviceName":"box","apkamPublicKey":"{public}","signingAlgo":"mldsa65","encryptedDefaultEncryptionPrivateKey":"ZQ==","encryptedDefaultSelfEncryptionKey":"cw==","encPrivateKeyIV":"aXY=","selfEncKeyIV":"aXYy"}}"#
    ));
    let approved = payload(&approved, &format!("{atsign}@"));
    assert_eq!(text(&approved, "status"), "approved");
    let id = text(&approved, "enrollmentId").to_string();
    let mut c = Client::connect(server());
    let challenge = c.challenge(atsign);
    let signature = STANDARD.encode(key.try_sign(challenge.as_bytes()).expect("sign").encode());
    // No signingAlgo on the wire: the record's applies.
    assert_eq!(
        c.send(&format!("pkam:enrollmentId:{id}:{signature}")),
        format!("data:success\n{atsign}@")
    );
    // `*:rw` and `__manage:rw`: anything, and the manager's verbs.
    assert!(c.send("update:x.anything@pq 1").starts_with("data:"));
    assert!(c.send("otp:get").starts_with("data:"));
    assert_eq!(
        c.send(&format!(
            "keys:get:keyName:{id}.default_self_enc_key.__manage{atsign}"
        )),
        format!("data:{{\"value\":\"cw==\",\"iv\":\"aXYy\"}}\n{atsign}@")
    );
    // An RSA signature for the same enrollment does not verify.
    let mut rsa = Client::connect(server());
    let challenge = rsa.challenge(atsign);
    let line = rsa_key().pkam_line(&challenge, Some(&id)).expect("line");
    assert!(rsa.send(&line).starts_with("error:AT0401-"));
}

#[test]
fn a_connection_may_send_five_enrollment_requests_an_hour() {
    let atsign = "@limit";
    let mut c = owner(atsign);
    let key = rsa_key();
    let mut pkam_conn = {
        // A pkam owner asks for pending enrollments without a passcode.
        let mut setup = owner(atsign);
        assert!(
            setup
                .send(&format!(
                    "update:privatekey:at_pkam_publickey {}",
                    key.public_key_text()
                ))
                .starts_with("data:-1")
        );
        let mut conn = Client::connect(server());
        let challenge = conn.challenge(atsign);
        assert!(
            conn.send(&key.pkam_line(&challenge, None).expect("line"))
                .starts_with("data:success")
        );
        conn
    };
    for n in 0..6 {
        let reply = pkam_conn.send(&format!(
            r#"enroll:request:{{"appName":"app","deviceName":"d{n}","namespaces":{{"ns":"r"}},"apkamPublicKey":"key-{n}"}}"#
        ));
        if n < 5 {
            assert!(reply.contains("\"status\":\"pending\""), "{n}: {reply}");
        } else {
            assert!(
                reply.starts_with(
                    "error:AT0011-Internal server exception : Enrollment requests have exceeded the limit"
                ),
                "{reply}"
            );
        }
    }
    // The same (app, device) pair twice is refused while pending.
    let reply = c.send(r#"enroll:request:{"appName":"app","deviceName":"d0","apkamPublicKey":"other","encryptedDefaultEncryptionPrivateKey":"a","encryptedDefaultSelfEncryptionKey":"b"}"#);
    assert!(reply.contains("Another enrollment with id"), "{reply}");
}

/// A fresh ML-DSA-65 key pair and its stored form.
fn mldsa_key() -> (SigningKey<MlDsa65>, String) {
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).expect("seed");
    let key: SigningKey<MlDsa65> = SigningKey::from_seed(&seed.into());
    let public = STANDARD.encode(key.verifying_key().to_bytes());
    (key, public)
}

fn mldsa_sign(key: &SigningKey<MlDsa65>, text: &str) -> String {
    STANDARD.encode(key.try_sign(text.as_bytes()).expect("sign").encode())
}

/// pkam with an ML-DSA-65 enrollment key on a fresh connection.
fn mldsa_pkam(atsign: &str, key: &SigningKey<MlDsa65>, id: &str) -> (Client, String) {
    let mut c = Client::connect(server());
    let challenge = c.challenge(atsign);
    let reply = c.send(&format!(
        "pkam:enrollmentId:{id}:{}",
        mldsa_sign(key, &challenge)
    ));
    (c, reply)
}

#[test]
fn managers_approve_within_their_namespaces_updates_prove_the_new_key_and_revocation_cascades() {
    let atsign = "@cascade";
    let prompt = format!("{atsign}@");
    let data = |reply: String| payload(&reply, &prompt);
    // The manager: the first device, onboarded on cram (`*:rw`, `__manage:rw`).
    let (manager_key, manager_public) = mldsa_key();
    let mut cram = owner(atsign);
    let onboarded = data(cram.send(&format!(
        r#"enroll:request:{{"appName":"manager","deviceName":"phone","apkamPublicKey":"{manager_public}","signingAlgo":"mldsa65","encryptedDefaultEncryptionPrivateKey":"ZQ==","encryptedDefaultSelfEncryptionKey":"cw=="}}"#
    )));
    let manager_id = text(&onboarded, "enrollmentId").to_string();
    let (mut manager, reply) = mldsa_pkam(atsign, &manager_key, &manager_id);
    assert_eq!(reply, format!("data:success\n{prompt}"));
    // Two devices ask, by OTP, for `wavi` (rw) and `wavi` (r).
    let mut request = |namespaces: &str, device: &str, public: &str| -> String {
        let otp = manager.send("otp:get");
        let otp = otp
            .strip_prefix("data:")
            .and_then(|r| r.strip_suffix(&format!("\n{prompt}")))
            .expect("otp")
            .to_string();
        let mut c = Client::connect(server());
        c.challenge(atsign);
        let reply = c.send(&format!(
            r#"enroll:request:{{"appName":"wavi","deviceName":"{device}","namespaces":{namespaces},"otp":"{otp}","apkamPublicKey":"{public}","signingAlgo":"mldsa65","encryptedAPKAMSymmetricKey":"aw=="}}"#
        ));
        text(&payload(&reply, "@"), "enrollmentId").to_string()
    };
    let (a_key, a_public) = mldsa_key();
    let (b_key, b_public) = mldsa_key();
    let a = request(r#"{"wavi":"rw"}"#, "a", &a_public);
    let b = request(r#"{"wavi":"r"}"#, "b", &b_public);
    let approve = |id: &str| {
        format!(
            r#"enroll:approve:{{"enrollmentId":"{id}","encryptedDefaultEncryptionPrivateKey":"ZQ==","encryptedDefaultSelfEncryptionKey":"cw=="}}"#
        )
    };
    assert!(
        manager
            .send(&approve(&a))
            .contains("\"status\":\"approved\"")
    );
    let (mut device_a, reply) = mldsa_pkam(atsign, &a_key, &a);
    assert_eq!(reply, format!("data:success\n{prompt}"));
    // Without `__manage`, device A cannot approve B.
    let refused = device_a.send(&approve(&b));
    assert!(
        refused.contains(
            "The approving enrollment does not have access to \\\"__manage\\\" namespace"
        ) || refused.contains("does not have access to \"__manage\" namespace"),
        "{refused}"
    );
    assert!(
        manager
            .send(&approve(&b))
            .contains("\"status\":\"approved\"")
    );
    // listns: the approved enrollments holding `wavi` (the manager by `*`).
    let listed = device_a.send("enroll:listns:wavi");
    for id in [&manager_id, &a, &b] {
        assert!(
            listed.contains(&format!("\"enrollmentId\":\"{id}\"")),
            "{listed}"
        );
    }
    assert!(
        listed.contains(&format!("\"enrollmentId\":\"{b}\",\"access\":\"r\"")),
        "{listed}"
    );
    // update: metadata merged; a new key needs a signature by that key.
    let updated = device_a.send(&format!(
        r#"enroll:update:{{"enrollmentId":"{a}","metadata":{{"k":"v"}}}}"#
    ));
    assert_eq!(
        updated,
        format!("data:{{\"enrollmentId\":\"{a}\",\"status\":\"approved\"}}\n{prompt}")
    );
    let fetched = device_a.send(&format!(r#"enroll:fetch:{{"enrollmentId":"{a}"}}"#));
    assert!(fetched.contains(r#""metadata":{"k":"v"}"#), "{fetched}");
    let (new_key, new_public) = mldsa_key();
    let unsigned = device_a.send(&format!(
        r#"enroll:update:{{"enrollmentId":"{a}","apkamPublicKey":"{new_public}","apkamPublicKeySignature":"{}"}}"#,
        mldsa_sign(&a_key, &format!("{a}|{new_public}|mldsa65"))
    ));
    assert!(
        unsigned.starts_with("error:AT0401-"),
        "signed by the old key: {unsigned}"
    );
    let rotated = device_a.send(&format!(
        r#"enroll:update:{{"enrollmentId":"{a}","apkamPublicKey":"{new_public}","apkamPublicKeySignature":"{}"}}"#,
        mldsa_sign(&new_key, &format!("{a}|{new_public}|mldsa65"))
    ));
    assert!(rotated.contains("\"status\":\"approved\""), "{rotated}");
    assert!(
        mldsa_pkam(atsign, &a_key, &a)
            .1
            .starts_with("error:AT0401-")
    );
    assert_eq!(
        mldsa_pkam(atsign, &new_key, &a).1,
        format!("data:success\n{prompt}")
    );
    // infons: when an enrollment holding `wavi` was last revoked.
    assert_eq!(
        device_a.send("enroll:infons:wavi"),
        format!("data:{{\"lastRevokedAt\":null}}\n{prompt}")
    );
    assert!(
        manager
            .send(&format!(r#"enroll:revoke:{{"enrollmentId":"{b}"}}"#))
            .contains("revoked")
    );
    let info = data(device_a.send("enroll:infons:wavi"));
    assert!(
        info.get("lastRevokedAt")
            .and_then(JsonValue::as_str)
            .is_some(),
        "{info:?}"
    );
    assert!(
        mldsa_pkam(atsign, &b_key, &b)
            .1
            .starts_with("error:AT0027:")
    );
    // Revoking the manager from the cram connection takes what it approved.
    let revoked = data(cram.send(&format!(
        r#"enroll:revoke:{{"enrollmentId":"{manager_id}"}}"#
    )));
    assert_eq!(text(&revoked, "status"), "revoked");
    let cascaded = revoked.get("cascadedEnrollmentIds").expect("cascaded");
    assert_eq!(
        cascaded,
        &JsonValue::Array(vec![JsonValue::String(a.clone())]),
        "B was already revoked"
    );
    assert!(
        device_a
            .send("noop:0")
            .starts_with(&format!("error:AT0027:enrollment_id: {a} is revoked"))
    );
    assert!(device_a.is_closed());
    // `primary` names the legacy key.
    let key = rsa_key();
    cram.send(&format!(
        "update:privatekey:at_pkam_publickey {}",
        key.public_key_text()
    ));
    let (_, reply) = pkam(atsign, &key, "primary");
    assert_eq!(reply, format!("data:success\n{prompt}"));
}
