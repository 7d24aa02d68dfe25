//! The whole table, exhaustively: every verb × every kind of caller and
//! grant × every kind of key, against an expectation written out by hand
//! (not derived from the code under test).

use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::auth::enrollment::{Enrolled, Enrollment};
use crate::auth::namespaces::Namespaces;
use crate::connection::ConnectionState;
use crate::protocol::command::VerbId;
use crate::protocol::parse;
use crate::verbs::table::{row_of, rows};

/// The grants an enrollment may hold, as the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    WaviR,
    WaviRw,
    StarR,
    StarRw,
    ManageR,
    ManageRw,
}

const GRANTS: [Grant; 6] = [
    Grant::WaviR,
    Grant::WaviRw,
    Grant::StarR,
    Grant::StarRw,
    Grant::ManageR,
    Grant::ManageRw,
];

fn enrolled(grant: Grant) -> Enrolled {
    let (name, access) = match grant {
        Grant::WaviR => ("wavi", Access::Read),
        Grant::WaviRw => ("wavi", Access::ReadWrite),
        Grant::StarR => ("*", Access::Read),
        Grant::StarRw => ("*", Access::ReadWrite),
        Grant::ManageR => ("__manage", Access::Read),
        Grant::ManageRw => ("__manage", Access::ReadWrite),
    };
    Enrolled {
        id: "e1".into(),
        namespaces: Namespaces::new(vec![(name.into(), access)]),
    }
}

/// The kinds of key, as the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    InNamespace,
    OtherNamespace,
    NoNamespace,
    SharedKey,
    Identity,
    Credential,
    Manage,
}

const KEY_KINDS: [KeyKind; 7] = [
    KeyKind::InNamespace,
    KeyKind::OtherNamespace,
    KeyKind::NoNamespace,
    KeyKind::SharedKey,
    KeyKind::Identity,
    KeyKind::Credential,
    KeyKind::Manage,
];

/// `(scope prefix, name)` of each kind, owned by @alice.
fn key_parts(kind: KeyKind) -> (&'static str, &'static str) {
    match kind {
        KeyKind::InNamespace => ("", "phone.wavi"),
        KeyKind::OtherNamespace => ("", "phone.other"),
        KeyKind::NoNamespace => ("", "phone"),
        KeyKind::SharedKey => ("@bob:", "shared_key"),
        KeyKind::Identity => ("public:", "publickey"),
        KeyKind::Credential => ("", "privatekey:at_pkam_publickey"),
        KeyKind::Manage => ("", "e1.default_enc_private_key.__manage"),
    }
}

/// The line of `verb` naming a key of `kind`, where the verb names keys
/// and can name that kind.
fn key_line(verb: VerbId, kind: KeyKind) -> Option<String> {
    let (scope, name) = key_parts(kind);
    let full = if kind == KeyKind::Credential {
        name.to_string()
    } else {
        format!("{scope}{name}@alice")
    };
    let plain = scope.is_empty() && kind != KeyKind::Credential;
    Some(match verb {
        VerbId::Update => format!("update:{full} v"),
        VerbId::UpdateMeta if kind != KeyKind::Credential => {
            format!("update:meta:{full}:ttl:1000")
        }
        VerbId::Delete if kind != KeyKind::Credential => format!("delete:{full}"),
        VerbId::LLookup if kind != KeyKind::Credential => format!("llookup:{full}"),
        VerbId::Lookup if plain => format!("lookup:{name}@alice"),
        VerbId::PLookup if plain => format!("plookup:{name}@alice"),
        VerbId::Notify if plain => format!("notify:update:@bob:{name}@alice:v"),
        VerbId::NotifyMulti if plain => format!("notify:multi:@bob,@carol:{name}@alice:v"),
        VerbId::NotifyAll if plain => format!("notify:all:@bob:{name}@alice:v"),
        _ => return None,
    })
}

/// What the table must say for a key verb: the expectation, by hand.
/// `write`: the verb needs `rw`.
fn expected_for_key(write: bool, grant: Grant, kind: KeyKind) -> bool {
    use Grant::*;
    use KeyKind::*;
    match (kind, write) {
        (Manage, _) => false,
        (Credential, true) => false,
        (Credential, false) | (SharedKey, _) => true,
        (Identity, false) => true,
        (Identity, true) => grant == StarRw,
        (InNamespace, false) => matches!(grant, WaviR | WaviRw | StarR | StarRw),
        (InNamespace, true) => matches!(grant, WaviRw | StarRw),
        (OtherNamespace | NoNamespace, false) => matches!(grant, StarR | StarRw),
        (OtherNamespace | NoNamespace, true) => grant == StarRw,
    }
}

/// Which grants may run a keyless line (`None`: every grant; handlers
/// filter what it shows).
type GrantRule = Option<fn(Grant) -> bool>;

/// A line of each verb that names no key, with what the table must say
/// for each grant.
fn keyless_line(verb: VerbId) -> (&'static str, GrantRule) {
    match verb {
        VerbId::From => ("from:@alice", None),
        VerbId::Cram => ("cram:abc", None),
        VerbId::Pkam => ("pkam:abc", None),
        VerbId::Scan => ("scan", None),
        VerbId::Pol => ("pol", None),
        VerbId::Stats => ("stats:3", None),
        VerbId::Config => ("config:block:add:@bob", Some(|g| g == Grant::ManageRw)),
        VerbId::Monitor => ("monitor", None),
        VerbId::Stream => ("stream:init@bob 1 file 5", None),
        VerbId::NotifyList => ("notify:list", None),
        VerbId::Batch => ("batch:[]", None),
        VerbId::NotifyStatus => ("notify:status:abc", None),
        VerbId::SyncFrom => ("sync:from:-1:limit:10", None),
        VerbId::Info => ("info", None),
        VerbId::Noop => ("noop:0", None),
        VerbId::NotifyRemove => ("notify:remove:abc", None),
        VerbId::NotifyFetch => ("notify:fetch:abc", None),
        VerbId::Enroll => ("enroll:list", None),
        VerbId::Otp => (
            "otp:get",
            Some(|g| matches!(g, Grant::ManageR | Grant::ManageRw)),
        ),
        VerbId::Keys => ("keys:get:self", None),
        VerbId::To => ("to:@alice", None),
        _ => ("", None),
    }
}

fn decided(line: &str, grant: Grant) -> Option<bool> {
    let verb = parse::identify(line)?;
    let command = parse::parse(verb, line).ok()?;
    Some(decide(row_of(verb), &command, &enrolled(grant)).is_ok())
}

#[test]
fn every_verb_every_grant_every_key_kind() {
    let mut checked = 0usize;
    for row in rows() {
        let verb = row.verb;
        let key_verb = matches!(
            row.namespaces,
            NamespaceRule::ReadsKey | NamespaceRule::WritesKey
        );
        if key_verb {
            let write = row.namespaces == NamespaceRule::WritesKey;
            let mut lines = 0;
            for kind in KEY_KINDS {
                let Some(line) = key_line(verb, kind) else {
                    continue;
                };
                for grant in GRANTS {
                    let got = decided(&line, grant).unwrap_or_else(|| panic!("{line} parses"));
                    let want = expected_for_key(write, grant, kind);
                    assert_eq!(got, want, "{line} with {grant:?} ({kind:?})");
                    checked += 1;
                }
                lines += 1;
            }
            assert!(lines >= 3, "{} is checked with several key kinds", row.name);
        } else {
            let (line, rule) = keyless_line(verb);
            if line.is_empty() {
                assert!(
                    matches!(verb, VerbId::Update | VerbId::UpdateMeta),
                    "{} has a line in the table test",
                    row.name
                );
                continue;
            }
            assert_eq!(parse::identify(line), Some(verb), "{line}");
            for grant in GRANTS {
                let got = decided(line, grant).unwrap_or_else(|| panic!("{line} parses"));
                let want = rule.is_none_or(|allowed| allowed(grant));
                assert_eq!(got, want, "{line} with {grant:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "{checked} decisions checked");
}

#[test]
fn otp_put_needs_manage_rw_and_refusals_say_who_and_what() {
    assert_eq!(decided("otp:put:ABC123", Grant::ManageR), Some(false));
    assert_eq!(decided("otp:put:ABC123", Grant::ManageRw), Some(true));
    let verb = VerbId::Update;
    let command = parse::parse(verb, "update:phone.other@alice v").unwrap();
    let error = decide(row_of(verb), &command, &enrolled(Grant::WaviRw)).unwrap_err();
    assert_eq!(error.code, AtCode::Unauthorized);
    assert_eq!(
        error.message,
        "Connection with enrollment ID e1 is not authorized to update key: phone.other@alice"
    );
}

/// The callers the table does not restrict, and an enrollment that left
/// `approved`, whose connection is closed with the colon-form code.
#[test]
fn only_approved_enrollments_are_restricted_and_others_close() {
    let tenant = crate::context::testing::tenant("@authz-callers");
    let verb = VerbId::Update;
    let command = parse::parse(verb, "update:phone.other@alice v").unwrap();
    let row = row_of(verb);
    let cram = super::super::testing::owner_of(&tenant);
    assert!(authorize(row, &command, &cram).is_ok(), "cram is the owner");
    let anonymous = super::super::testing::anonymous_to(&tenant);
    assert!(
        authorize(row, &command, &anonymous).is_ok(),
        "access classes handle them"
    );
    let mut state = ConnectionState::new("_s".into(), None, None, Instant::now());
    state.issue_challenge(tenant.clone(), "n", Instant::now());
    state.authenticate_enrolled(Arc::new(enrolled(Grant::WaviRw)));
    let enrolled_caller = state.caller();
    let mut record = Enrollment::from_json(
        r#"{"enrollmentId":"e1","appName":"a","deviceName":"d","apkamPublicKey":"k","approval":{"state":"approved"},"recordVersion":1}"#,
        None,
    )
    .unwrap();
    tenant.enrollments.record(&record);
    let refused = authorize(row, &command, &enrolled_caller).unwrap_err();
    assert_eq!(refused.code, AtCode::Unauthorized);
    assert!(!refused.close);
    let allowed = parse::parse(verb, "update:phone.wavi@alice v").unwrap();
    assert!(authorize(row, &allowed, &enrolled_caller).is_ok());
    for (state, code) in [
        (State::Revoked, "AT0027"),
        (State::Denied, "AT0025"),
        (State::Pending, "AT0026"),
    ] {
        record.state = state;
        record.version += 1;
        tenant.enrollments.record(&record);
        let error = authorize(row, &allowed, &enrolled_caller).unwrap_err();
        assert_eq!(error.code.code(), code);
        assert!(error.close && error.response_object, "{state:?}");
    }
    tenant.enrollments.forget("e1");
    let error = authorize(row, &allowed, &enrolled_caller).unwrap_err();
    assert_eq!(error.code.code(), "AT0028");
}
