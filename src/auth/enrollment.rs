//! APKAM enrollments: each app or device of an owner logs in with its own
//! key pair, limited to its namespaces (auth.md §4, changes §4).
//!
//! An enrollment is a record stored as the key
//! `<id>.new.enrollments.__manage@<atsign>` (never committed, so never
//! synced), its value the JSON of [`Enrollment`]. A pending request expires
//! with its record (`ENROLLMENT_PENDING_TTL_MS`); an approved one when its
//! `apkamKeysExpiryInMillis` passes (0: never). The state every connection
//! of an enrollment depends on is also kept in memory per atSign
//! ([`EnrollmentStates`]), so the gate can close a connection whose
//! enrollment left `approved` without a store read per command.

use std::collections::HashMap;
use std::sync::Mutex;

use super::namespaces::Namespaces;
use crate::error::{AtCode, AtError};
use crate::protocol::json::{self, JsonValue, ObjectWriter};
use crate::storage::{CommitOp, Mutation, StoredRecord, TenantStore, WriteError};

/// What the key of every enrollment record ends with, before `@<atsign>`.
pub const RECORD_SUFFIX: &str = ".new.enrollments.__manage";

/// An enrollment's approval state. `Expired` is never stored: it is what a
/// record past its expiry, or a missing one, reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Denied,
    Revoked,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Revoked => "revoked",
            State::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Denied,
            State::Revoked,
            State::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// The colon-form refusal `pkam` gives, and the gate when a connection's
    /// enrollment left `approved` (`error:AT0025/26/27/28:`, which
    /// at_lookup's `CredentialRefusal` parses).
    pub fn refusal(self, id: &str) -> AtError {
        let (code, what) = match self {
            State::Denied => (AtCode::ApkamDenied, "is denied"),
            State::Pending => (AtCode::ApkamPending, "is pending"),
            State::Revoked => (AtCode::ApkamRevoked, "is revoked"),
            State::Approved | State::Expired => (AtCode::ApkamExpired, "is expired or invalid"),
        };
        AtError::new(code, format!("enrollment_id: {id} {what}")).response_object()
    }
}

/// One enrollment record.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: String,
    pub session_id: String,
    pub app_name: String,
    pub device_name: String,
    pub namespaces: Namespaces,
    pub apkam_public_key: String,
    /// `rsa2048` (also when absent), `ecc_secp256r1` or `mldsa65`: the
    /// algorithm its pkam is verified with.
    pub signing_algo: Option<String>,
    pub state: State,
    pub encrypted_apkam_symmetric_key: Option<String>,
    /// Lifetime of an approved enrollment, ms (0: forever).
    pub keys_expiry_ms: i64,
    /// The client's opaque map, stored and returned as is.
    pub metadata: Option<JsonValue>,
    /// The client's signing-key map, published at approval.
    pub apsk: Option<JsonValue>,
    /// The enrollment that approved this one (revocation cascades to it).
    pub approved_by: Option<String>,
    pub requested_at: i64,
    /// When it was approved (its keys' lifetime runs from then), epoch ms.
    pub approved_at: Option<i64>,
    /// When it was last revoked (for `enroll:infons`), epoch ms.
    pub revoked_at: Option<i64>,
    /// When the record expires, epoch ms (from the stored record).
    pub expires_at: Option<i64>,
    /// Bumped by every change: the in-memory states keep the newest.
    pub version: u64,
}

impl Enrollment {
    /// The key of `id`'s record for `atsign`.
    pub fn key_of(id: &str, atsign: &str) -> String {
        format!("{id}{RECORD_SUFFIX}{atsign}")
    }

    /// The record's JSON, with the reference's field names.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let mut obj = ObjectWriter::new(&mut out);
        obj.field_str("enrollmentId", &self.id);
        obj.field_str("sessionId", &self.session_id);
        obj.field_str("appName", &self.app_name);
        obj.field_str("deviceName", &self.device_name);
        let mut namespaces = String::new();
        self.namespaces.write_json(&mut namespaces);
        obj.field_raw("namespaces", &namespaces);
        obj.field_str("apkamPublicKey", &self.apkam_public_key);
        if let Some(algo) = &self.signing_algo {
            obj.field_str("signingAlgo", algo);
        }
        obj.field_str("requestType", "newEnrollment");
        let mut approval = String::new();
        let mut state = ObjectWriter::new(&mut approval);
        state.field_str("state", self.state.as_str());
        state.finish();
        obj.field_raw("approval", &approval);
        if let Some(key) = &self.encrypted_apkam_symmetric_key {
            obj.field_str("encryptedAPKAMSymmetricKey", key);
        }
        obj.field_i64("apkamKeysExpiryInMillis", self.keys_expiry_ms);
        let raw = |value: &Option<JsonValue>| {
            value.as_ref().map(|v| {
                let mut text = String::new();
                v.write(&mut text);
                text
            })
        };
        if let Some(metadata) = raw(&self.metadata) {
            obj.field_raw("metadata", &metadata);
        }
        if let Some(apsk) = raw(&self.apsk) {
            obj.field_raw("apsk", &apsk);
        }
        if let Some(by) = &self.approved_by {
            obj.field_str("parentEnrollmentId", by);
        }
        obj.field_i64("requestedAt", self.requested_at);
        if let Some(at) = self.approved_at {
            obj.field_i64("approvedAt", at);
        }
        if let Some(at) = self.revoked_at {
            obj.field_i64("revokedAt", at);
        }
        obj.field_i64("recordVersion", self.version as i64);
        obj.finish();
        out
    }

    /// Reads a stored record back (`expires_at` from the stored record).
    pub fn from_json(text: &str, expires_at: Option<i64>) -> Result<Enrollment, String> {
        let value = json::parse(text).map_err(|e| e.to_string())?;
        let text_of = |name: &str| {
            value
                .get(name)
                .and_then(JsonValue::as_str)
                .map(str::to_string)
        };
        let required = |name: &str| text_of(name).ok_or_else(|| format!("no {name}"));
        let state = value
            .get("approval")
            .and_then(|a| a.get("state"))
            .and_then(JsonValue::as_str)
            .and_then(State::parse)
            .ok_or("no approval state")?;
        let namespaces = match value.get("namespaces") {
            Some(ns) => Namespaces::from_json(ns).map_err(|e| e.message)?,
            None => Namespaces::default(),
        };
        let int = |name: &str| value.get(name).and_then(JsonValue::as_i64);
        Ok(Enrollment {
            id: required("enrollmentId")?,
            session_id: text_of("sessionId").unwrap_or_default(),
            app_name: required("appName")?,
            device_name: required("deviceName")?,
            namespaces,
            apkam_public_key: required("apkamPublicKey")?,
            signing_algo: text_of("signingAlgo"),
            state,
            encrypted_apkam_symmetric_key: text_of("encryptedAPKAMSymmetricKey"),
            keys_expiry_ms: int("apkamKeysExpiryInMillis").unwrap_or(0),
            metadata: value.get("metadata").cloned(),
            apsk: value.get("apsk").cloned(),
            approved_by: text_of("parentEnrollmentId"),
            requested_at: int("requestedAt").unwrap_or(0),
            approved_at: int("approvedAt"),
            revoked_at: int("revokedAt"),
            expires_at,
            version: int("recordVersion")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
        })
    }

    /// The state as of `now` (a record past its expiry reads `Expired`).
    pub fn state_at(&self, now: i64) -> State {
        match self.expires_at {
            Some(at) if at <= now => State::Expired,
            _ => self.state,
        }
    }
}

/// Reads `id`'s enrollment of `store`'s atSign; `None` when missing (a
/// record that does not parse is logged and reads as missing: expired or
/// invalid to every caller).
pub fn load(store: &TenantStore, id: &str) -> Result<Option<Enrollment>, AtError> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    let key = Enrollment::key_of(id, store.atsign());
    let Some(record) = store.get(&key)? else {
        return Ok(None);
    };
    let Some(text) = record.value.as_deref() else {
        return Ok(None);
    };
    match Enrollment::from_json(text, record.meta.expires_at) {
        Ok(enrollment) if enrollment.id == id => Ok(Some(enrollment)),
        Ok(_) | Err(_) => {
            tracing::error!(
                key,
                "an enrollment record does not parse; treated as missing"
            );
            Ok(None)
        }
    }
}

/// Every enrollment of `store`'s atSign (a scan of its keys: `enroll:list`
/// and the rare checks that need all of them).
pub fn all(store: &TenantStore) -> Result<Vec<Enrollment>, AtError> {
    let suffix = format!("{RECORD_SUFFIX}{}", store.atsign());
    let mut found = Vec::new();
    store.for_each(|name, record| {
        if name.ends_with(&suffix)
            && let Some(text) = record.value_str()
        {
            let expires_at = record.meta.expires_at.as_ref().map(|at| at.to_native());
            match Enrollment::from_json(text, expires_at) {
                Ok(enrollment) => found.push(enrollment),
                Err(problem) => {
                    tracing::error!(name, problem, "an enrollment record does not parse")
                }
            }
        }
        true
    })?;
    Ok(found)
}

/// What a change made of the record: the new record, or why it refused.
pub type Change = Box<dyn FnOnce(Option<Enrollment>) -> Result<Enrollment, AtError> + Send>;

/// Applies `change` to `id`'s record on the storage actor (read, decide and
/// write in one step, so two connections changing one enrollment cannot
/// interleave), storing the result with `expires_at` (epoch ms, `None`:
/// never). The record's version is bumped. Returns the stored record.
pub async fn update(
    store: &TenantStore,
    id: &str,
    expires_at: impl FnOnce(&Enrollment) -> Option<i64> + Send + 'static,
    change: Change,
) -> Result<Enrollment, AtError> {
    let key = Enrollment::key_of(id, store.atsign());
    let writer = store.atsign().to_string();
    let id_owned = id.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .write(key, false, move |old| {
            let now = crate::storage::actor::now_ms();
            let previous = old.and_then(|record| {
                let text = record.value.as_deref()?;
                Enrollment::from_json(text, record.meta.expires_at)
                    .ok()
                    .filter(|e| e.id == id_owned && e.state_at(now) != State::Expired)
            });
            let version = previous.as_ref().map_or(0, |e| e.version + 1);
            let mut next = change(previous)?;
            next.version = version;
            let expiry = expires_at(&next);
            next.expires_at = expiry;
            let mut record = StoredRecord::written_by(Some(next.to_json()), &writer, now);
            record.meta.expires_at = expiry;
            let _ = tx.send(next);
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        })
        .await
        .map_err(|error| match error {
            WriteError::Refused(refusal) => refusal,
            other => AtError::from(other),
        })?;
    rx.try_recv().map_err(|_| {
        AtError::new(
            AtCode::InternalServerError,
            "the enrollment change produced no record",
        )
    })
}

/// Removes `id`'s record.
pub async fn remove(store: &TenantStore, id: &str) -> Result<(), AtError> {
    let key = Enrollment::key_of(id, store.atsign());
    store.write(key, false, |_| Ok(Mutation::Delete)).await?;
    Ok(())
}

/// An enrollment id as this server issues them: a lower-case UUID (and the
/// `primary` some clients name); anything else is never looked up.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What a connection logged in with an enrollment carries: its id and a
/// snapshot of its namespaces (an enrollment's namespaces never change
/// while it is approved; `enroll:update` refuses to change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub id: String,
    pub namespaces: Namespaces,
}

/// An enrollment's monitors and notification lists see notifications
/// about keys it may read: `r` on the key's namespace, or `__manage` for
/// enrollment notifications (auth.md §4.4, §6.2).
impl crate::monitors::KeyGrant for Enrolled {
    fn sees(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.namespaces.access_to(&lower).is_some()
    }
}

/// The last known state of each enrollment that has (or had) connections,
/// per atSign, newest version wins. Shared by every shard.
#[derive(Debug, Default)]
pub struct EnrollmentStates {
    states: Mutex<HashMap<String, (u64, State)>>,
}

impl EnrollmentStates {
    /// Records `enrollment`'s state unless a newer version is known.
    pub fn record(&self, enrollment: &Enrollment) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let slot = states
            .entry(enrollment.id.clone())
            .or_insert((enrollment.version, enrollment.state));
        if slot.0 <= enrollment.version {
            *slot = (enrollment.version, enrollment.state);
        }
    }

    /// `id` was removed: its connections must go.
    pub fn forget(&self, id: &str) {
        if let Ok(mut states) = self.states.lock() {
            states.insert(id.to_string(), (u64::MAX, State::Expired));
        }
    }

    /// The state connections of `id` must see (`Expired` when unknown: a
    /// connection only exists for an enrollment its pkam recorded here).
    pub fn state_of(&self, id: &str) -> State {
        match self.states.lock() {
            Ok(states) => states.get(id).map_or(State::Expired, |(_, state)| *state),
            Err(_) => State::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::namespaces::Access;

    fn sample() -> Enrollment {
        Enrollment {
            id: "0b5c3d2e-1111-4222-8333-944445555666".into(),
            session_id: "_s".into(),
            app_name: "wavi".into(),
            device_name: "pixel".into(),
            namespaces: Namespaces::new(vec![("wavi".into(), Access::ReadWrite)]),
            apkam_public_key: "MIIB".into(),
            signing_algo: Some("mldsa65".into()),
            state: State::Pending,
            encrypted_apkam_symmetric_key: Some("k".into()),
            keys_expiry_ms: 0,
            metadata: Some(JsonValue::Object(vec![("a".into(), JsonValue::Int(1))])),
            apsk: None,
            approved_by: None,
            requested_at: 5,
            approved_at: Some(6),
            revoked_at: None,
            expires_at: Some(10),
            version: 3,
        }
    }

    #[test]
    fn a_record_survives_its_json() {
        let e = sample();
        assert_eq!(Enrollment::from_json(&e.to_json(), Some(10)), Ok(e));
    }

    #[test]
    fn an_expired_record_reads_expired() {
        let e = sample();
        assert_eq!(e.state_at(9), State::Pending);
        assert_eq!(e.state_at(10), State::Expired);
    }

    #[test]
    fn refusals_use_the_colon_codes_clients_parse() {
        let cases = [
            (State::Denied, "AT0025", "is denied"),
            (State::Pending, "AT0026", "is pending"),
            (State::Revoked, "AT0027", "is revoked"),
            (State::Expired, "AT0028", "is expired or invalid"),
        ];
        for (state, code, text) in cases {
            let error = state.refusal("e1");
            assert_eq!(error.code.code(), code);
            assert!(error.response_object);
            assert_eq!(error.message, format!("enrollment_id: e1 {text}"));
        }
    }

    #[test]
    fn newer_versions_win_in_memory() {
        let states = EnrollmentStates::default();
        let mut e = sample();
        e.state = State::Approved;
        e.version = 2;
        states.record(&e);
        let mut older = e.clone();
        older.state = State::Pending;
        older.version = 1;
        states.record(&older);
        assert_eq!(states.state_of(&e.id), State::Approved);
        e.state = State::Revoked;
        e.version = 3;
        states.record(&e);
        assert_eq!(states.state_of(&e.id), State::Revoked);
        assert_eq!(states.state_of("unknown"), State::Expired);
    }
}
