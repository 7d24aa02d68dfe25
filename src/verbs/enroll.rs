//! `enroll:<op>[:force][:]<json>`: APKAM enrollment requests and their
//! life cycle (auth.md §4, changes §4).
//!
//! - `request` on an unauthenticated connection needs a valid passcode
//!   (OTP or SPP, `auth::otp`) and stores a `pending` record, telling the
//!   owner's `selfNotifications` monitors; on a cram connection it is the
//!   first device's onboarding, approved at once with `*:rw` and
//!   `__manage:rw`; on a pkam connection it is pending without a passcode.
//! - `approve`, `deny`, `revoke` (cascading to what the target approved),
//!   `unrevoke`, `delete` change a record's state on the storage actor in
//!   one read-decide-write step; the in-memory states then close the
//!   connections of an enrollment that left `approved` on their next
//!   command (`gate`).
//! - `list`, `fetch`, `update` (self only), `listns`, `infons`.
//!
//! Who may change whom (auth.md §6.3): cram and legacy pkam connections
//! anything; an enrollment needs `__manage` and, for every namespace of
//! the target, a covering namespace with `rw` (or `r` when the target
//! asks only `r`).

use std::sync::Arc;

use super::Reply;
use crate::auth::enrollment::{self, Enrollment, State};
use crate::auth::namespaces::{self, Access, Namespaces};
use crate::clock::Clock;
use crate::connection::{AuthMethod, Caller, ConnectionState, Owner};
use crate::context::{ServerContext, Tenant};
use crate::error::{AtCode, AtError};
use crate::limits::{
    ENROLLMENT_PENDING_TTL_MS, ENROLLMENT_RECORD_BYTES_MAX, ENROLLMENTS_PENDING_MAX,
    NOTIFICATION_LIFETIME_MS_MAX,
};
use crate::protocol::command::{Enroll, EnrollOp};
use crate::protocol::json::{self, JsonValue, ObjectWriter};
use crate::storage::{Mutation, NotificationRecord, NotificationType};

pub async fn apply<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    clock: &C,
    cmd: Enroll<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let caller = state.caller();
    let owner = match &caller {
        Caller::Owner(owner) => Some(owner.clone()),
        _ if cmd.op == EnrollOp::Request => None,
        _ => {
            return Err(AtError::new(
                AtCode::AuthFailed,
                format!("Cannot {} enrollment without authentication", cmd.op.name()),
            ));
        }
    };
    let params = Params::parse(cmd.params, cmd.op)?;
    match (cmd.op, owner) {
        (EnrollOp::Request, None) => {
            let Some(tenant) = state.tenant().cloned() else {
                return Err(AtError::new(
                    AtCode::InternalServerException,
                    "name the atSign first (from:@<atsign>)",
                ));
            };
            if !state.admit_enroll_request(clock.now()) {
                return Err(too_many_requests());
            }
            request_by_passcode(server, &tenant, clock, &params, state.session_id(), payload).await
        }
        (EnrollOp::Request, Some(owner)) => {
            if !state.admit_enroll_request(clock.now()) {
                return Err(too_many_requests());
            }
            request_by_owner(server, &owner, &params, state.session_id(), payload).await
        }
        (EnrollOp::Approve, Some(owner)) => approve(&owner, &params, payload).await,
        (EnrollOp::Deny, Some(owner)) => deny(&owner, &params, payload).await,
        (EnrollOp::Revoke, Some(owner)) => revoke(&owner, &params, cmd.force, payload).await,
        (EnrollOp::Unrevoke, Some(owner)) => unrevoke(&owner, &params, payload).await,
        (EnrollOp::Delete, Some(owner)) => delete(&owner, &params, payload).await,
        (EnrollOp::List, Some(owner)) => list(&owner, &params, payload),
        (EnrollOp::Fetch, Some(owner)) => fetch(&owner, &params, payload),
        (EnrollOp::Update, Some(owner)) => update(&owner, &params, payload).await,
        (EnrollOp::ListNs, Some(owner)) => list_namespace(&owner, cmd.params, payload),
        (EnrollOp::InfoNs, Some(owner)) => info_namespace(&owner, cmd.params, payload),
        (op, None) => Err(AtError::new(
            AtCode::AuthFailed,
            format!("Cannot {} enrollment without authentication", op.name()),
        )),
    }
}

/// The JSON parameters of an `enroll:` command (`EnrollParams`).
#[derive(Debug, Default)]
struct Params {
    value: Option<JsonValue>,
}

impl Params {
    fn parse(text: Option<&str>, op: EnrollOp) -> Result<Params, AtError> {
        if matches!(op, EnrollOp::ListNs | EnrollOp::InfoNs) {
            return Ok(Params::default());
        }
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            if op == EnrollOp::List {
                return Ok(Params::default());
            }
            return Err(AtError::new(
                AtCode::IllegalArguments,
                "Enroll parameters not provided",
            ));
        };
        if text.len() > ENROLLMENT_RECORD_BYTES_MAX {
            return Err(AtError::new(
                AtCode::InternalServerException,
                format!("enroll parameters are limited to {ENROLLMENT_RECORD_BYTES_MAX} bytes"),
            ));
        }
        let value = json::parse(text).map_err(|e| {
            AtError::new(
                AtCode::InternalServerException,
                format!("invalid enroll parameters: {e}"),
            )
        })?;
        if !matches!(value, JsonValue::Object(_)) {
            return Err(AtError::new(
                AtCode::InternalServerException,
                "enroll parameters must be a JSON object",
            ));
        }
        Ok(Params { value: Some(value) })
    }

    fn get(&self, name: &str) -> Option<&JsonValue> {
        self.value.as_ref()?.get(name)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(JsonValue::as_str)
            .filter(|t| !t.is_empty())
    }

    fn required(&self, name: &str, op: EnrollOp) -> Result<&str, AtError> {
        self.text(name).ok_or_else(|| {
            AtError::new(
                AtCode::InternalServerException,
                format!("{name} is mandatory for enroll:{}", op.name()),
            )
        })
    }

    fn namespaces(&self) -> Result<Namespaces, AtError> {
        match self.get("namespaces") {
            None | Some(JsonValue::Null) => Ok(Namespaces::default()),
            Some(value) => Namespaces::from_json(value),
        }
    }

    fn enrollment_id(&self, op: EnrollOp) -> Result<&str, AtError> {
        self.required("enrollmentId", op)
    }
}

fn too_many_requests() -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        "Enrollment requests have exceeded the limit within the specified time frame",
    )
}

/// A new record for `params`, `pending` unless said otherwise.
fn new_record(
    server: &ServerContext,
    params: &Params,
    session_id: &str,
    namespaces: Namespaces,
    state: State,
) -> Result<Enrollment, AtError> {
    let op = EnrollOp::Request;
    let signing_algo = match params.text("signingAlgo") {
        None | Some("rsa2048") => None,
        Some("mldsa65") => Some("mldsa65".to_string()),
        Some(other) => {
            return Err(AtError::new(
                AtCode::InternalServerException,
                format!("signingAlgo {other} is not supported: rsa2048 or mldsa65"),
            ));
        }
    };
    if params.get("apsk").is_some() && params.get("apskLegacy").is_some() {
        return Err(AtError::new(
            AtCode::InternalServerException,
            "send apsk or apskLegacy, not both",
        ));
    }
    let keys_expiry_ms = params
        .get("apkamKeysExpiryInMillis")
        .or_else(|| params.get("apkamKeysExpiryDuration"))
        .and_then(JsonValue::as_i64)
        .unwrap_or(0)
        .max(0);
    Ok(Enrollment {
        id: crate::auth::challenge::uuid_v4(&server.rng)?,
        session_id: session_id.to_string(),
        app_name: params.required("appName", op)?.to_string(),
        device_name: params.required("deviceName", op)?.to_string(),
        namespaces,
        apkam_public_key: params.required("apkamPublicKey", op)?.to_string(),
        signing_algo,
        state,
        encrypted_apkam_symmetric_key: params
            .text("encryptedAPKAMSymmetricKey")
            .map(str::to_string),
        keys_expiry_ms,
        metadata: params
            .get("metadata")
            .filter(|v| **v != JsonValue::Null)
            .cloned(),
        apsk: params
            .get("apsk")
            .or_else(|| params.get("apskLegacy"))
            .filter(|v| **v != JsonValue::Null)
            .cloned(),
        approved_by: None,
        requested_at: super::now_ms(),
        approved_at: (state == State::Approved).then(super::now_ms),
        revoked_at: None,
        expires_at: None,
        version: 0,
    })
}

/// Refuses a request that repeats a live (app, device) pair or a key any
/// stored enrollment holds, and one past the pending bound.
fn check_unique(tenant: &Tenant, record: &Enrollment) -> Result<(), AtError> {
    let now = super::now_ms();
    let existing = enrollment::all(&tenant.store)?;
    let mut pending = 0usize;
    for other in &existing {
        let state = other.state_at(now);
        if state == State::Pending {
            pending += 1;
        }
        if other.apkam_public_key == record.apkam_public_key && state != State::Expired {
            return Err(AtError::new(
                AtCode::IllegalState,
                "the apkamPublicKey is already held by another enrollment",
            ));
        }
        if matches!(state, State::Pending | State::Approved)
            && other.app_name == record.app_name
            && other.device_name == record.device_name
        {
            return Err(AtError::new(
                AtCode::InternalServerException,
                format!(
                    "Another enrollment with id {} exists with the app name: {} and device name: {} in {} state",
                    other.id,
                    other.app_name,
                    other.device_name,
                    state.as_str()
                ),
            ));
        }
    }
    if record.state == State::Pending && pending >= ENROLLMENTS_PENDING_MAX {
        return Err(AtError::new(
            AtCode::InternalServerException,
            format!("at most {ENROLLMENTS_PENDING_MAX} enrollments may be pending at once"),
        ));
    }
    Ok(())
}

/// `request` on an unauthenticated connection: the passcode first (its
/// failures are slowed down), then a pending record and the notification.
async fn request_by_passcode<C: Clock>(
    server: &ServerContext,
    tenant: &Arc<Tenant>,
    clock: &C,
    params: &Params,
    session_id: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let op = EnrollOp::Request;
    let passcode = params.text("otp").unwrap_or("");
    crate::auth::otp::check_passcode(
        &tenant.store,
        &tenant.atsign,
        &tenant.passcodes,
        clock,
        passcode,
    )
    .await?;
    params.required("encryptedAPKAMSymmetricKey", op)?;
    let namespaces = params.namespaces()?;
    if namespaces.is_empty() {
        return Err(AtError::new(
            AtCode::InternalServerException,
            "namespaces is mandatory for enroll:request",
        ));
    }
    let record = new_record(server, params, session_id, namespaces, State::Pending)?;
    store_pending(server, tenant, record, payload).await
}

/// `request` by the owner: a cram connection onboards its first device
/// (approved at once); a pkam connection asks for a pending one.
async fn request_by_owner(
    server: &ServerContext,
    owner: &Owner,
    params: &Params,
    session_id: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let op = EnrollOp::Request;
    let tenant = owner.tenant();
    let mut namespaces = params.namespaces()?;
    if owner.method() != AuthMethod::Cram {
        let record = new_record(server, params, session_id, namespaces, State::Pending)?;
        return store_pending(server, tenant, record, payload).await;
    }
    let encryption_key = params.required("encryptedDefaultEncryptionPrivateKey", op)?;
    let self_key = params.required("encryptedDefaultSelfEncryptionKey", op)?;
    namespaces.grant(namespaces::MANAGE, Access::ReadWrite);
    namespaces.grant(namespaces::ALL, Access::ReadWrite);
    let record = new_record(server, params, session_id, namespaces, State::Approved)?;
    check_unique(tenant, &record)?;
    store_keys(tenant, &record.id, encryption_key, self_key, params).await?;
    let stored = store_new(tenant, record).await?;
    publish_approval(tenant, &stored).await?;
    write_status(payload, &stored.id, State::Approved, IdFirst::Yes);
    Ok(Reply::Data)
}

async fn store_pending(
    server: &ServerContext,
    tenant: &Arc<Tenant>,
    record: Enrollment,
    payload: &mut String,
) -> Result<Reply, AtError> {
    check_unique(tenant, &record)?;
    let stored = store_new(tenant, record).await?;
    notify_managers(server, tenant, &stored).await;
    write_status(payload, &stored.id, State::Pending, IdFirst::Yes);
    Ok(Reply::Data)
}

/// Writes a new record (its id is fresh, so nothing can be there).
async fn store_new(tenant: &Tenant, record: Enrollment) -> Result<Enrollment, AtError> {
    let id = record.id.clone();
    let stored = enrollment::update(
        &tenant.store,
        &id,
        expiry_of,
        Box::new(move |existing| match existing {
            None => Ok(record),
            Some(_) => Err(AtError::new(
                AtCode::IllegalState,
                "an enrollment with this id exists",
            )),
        }),
    )
    .await?;
    tenant.enrollments.record(&stored);
    Ok(stored)
}

/// When a record expires: a pending one `ENROLLMENT_PENDING_TTL_MS` after
/// its request, an approved one its keys' lifetime after its approval (0:
/// never), others never (a denied or revoked record waits for `delete`).
fn expiry_of(record: &Enrollment) -> Option<i64> {
    match record.state {
        State::Pending => Some(
            record
                .requested_at
                .saturating_add(ENROLLMENT_PENDING_TTL_MS),
        ),
        State::Approved if record.keys_expiry_ms > 0 => Some(
            record
                .approved_at
                .unwrap_or(record.requested_at)
                .saturating_add(record.keys_expiry_ms),
        ),
        _ => None,
    }
}

/// The owner's `selfNotifications` monitors hear of a pending request
/// (auth.md §4.4): a self notification keyed by the record's name, its
/// value the request's summary.
async fn notify_managers(server: &ServerContext, tenant: &Arc<Tenant>, record: &Enrollment) {
    let mut value = String::new();
    let mut obj = ObjectWriter::new(&mut value);
    if let Some(key) = &record.encrypted_apkam_symmetric_key {
        obj.field_str("encryptedApkamSymmetricKey", key);
        obj.field_str("encryptedAPKAMSymmetricKey", key);
    }
    obj.field_str("appName", &record.app_name);
    obj.field_str("deviceName", &record.device_name);
    let mut namespaces = String::new();
    record.namespaces.write_json(&mut namespaces);
    obj.field_raw("namespace", &namespaces);
    obj.finish();
    let id = match crate::auth::challenge::uuid_v4(&server.rng) {
        Ok(id) => id,
        Err(error) => {
            tracing::warn!(%error, "no enrollment notification: no randomness");
            return;
        }
    };
    let created = tenant.notification_time(super::now_ms());
    let notification = NotificationRecord {
        notification_type: NotificationType::SelfNotification,
        at_value: Some(value),
        ..NotificationRecord::received(
            &id,
            &tenant.atsign,
            &tenant.atsign,
            Enrollment::key_of(&record.id, &tenant.atsign),
            created,
            created.saturating_add(NOTIFICATION_LIFETIME_MS_MAX.min(24 * 3_600_000)),
        )
    };
    match tenant.store.put_notification(notification.clone()).await {
        Ok(_) => super::monitor::publish_notification(tenant, &notification),
        Err(error) => tracing::warn!(%error, "the enrollment notification was not stored"),
    }
}

/// Stores the two encrypted keys of an approved enrollment as
/// `{"value":"<encrypted>","iv":"<iv>"}` (the `iv` only when sent).
async fn store_keys(
    tenant: &Tenant,
    id: &str,
    encryption_key: &str,
    self_key: &str,
    params: &Params,
) -> Result<(), AtError> {
    let keys = [
        (
            "default_enc_private_key",
            encryption_key,
            params.text("encPrivateKeyIV"),
        ),
        (
            "default_self_enc_key",
            self_key,
            params.text("selfEncKeyIV"),
        ),
    ];
    for (name, value, iv) in keys {
        let mut json = String::new();
        let mut obj = ObjectWriter::new(&mut json);
        obj.field_str("value", value);
        if let Some(iv) = iv {
            obj.field_str("iv", iv);
        }
        obj.finish();
        let key = enrollment_key_name(id, name, &tenant.atsign);
        super::write::put_uncommitted(tenant, key, json).await?;
    }
    Ok(())
}

/// `<id>.<name>.__manage@<atsign>`.
pub fn enrollment_key_name(id: &str, name: &str, atsign: &str) -> String {
    format!("{id}.{name}.{}{atsign}", namespaces::MANAGE)
}

/// At approval: the informational APKAM key record and, when the request
/// carried one, the signing-key map at `public:_apsk.<id>.a.__e@<atsign>`.
async fn publish_approval(tenant: &Tenant, record: &Enrollment) -> Result<(), AtError> {
    let mut value = String::new();
    let mut obj = ObjectWriter::new(&mut value);
    obj.field_str("apkamPublicKey", &record.apkam_public_key);
    obj.finish();
    let key = format!(
        "public:{}.{}.pkam.__pkams.__public_keys{}",
        record.app_name, record.device_name, tenant.atsign
    );
    super::write::put_uncommitted(tenant, key, value).await?;
    if let Some(apsk) = &record.apsk {
        let text = match apsk {
            JsonValue::String(legacy) => legacy.clone(),
            other => {
                let mut text = String::new();
                other.write(&mut text);
                text
            }
        };
        let key = format!("public:_apsk.{}.a.__e{}", record.id, tenant.atsign);
        super::write::put_uncommitted(tenant, key, text).await?;
    }
    Ok(())
}

/// May `owner` change (approve, deny, revoke, unrevoke, delete, fetch)
/// `target`? Cram and legacy pkam may; an enrollment needs `__manage` and
/// a covering namespace for each of the target's (auth.md §6.3).
fn check_manager(owner: &Owner, target: &Enrollment, op: EnrollOp) -> Result<(), AtError> {
    let Some(enrolled) = owner.enrollment() else {
        return Ok(());
    };
    let refuse = |why: &str| {
        AtError::new(
            AtCode::InternalServerException,
            format!(
                "Failed to {} enrollment id: {}. {why}",
                op.name(),
                target.id
            ),
        )
    };
    if enrolled.namespaces.exactly(namespaces::MANAGE).is_none() {
        return Err(refuse(
            "The approving enrollment does not have access to \"__manage\" namespace",
        ));
    }
    for (name, wanted) in target.namespaces.iter() {
        let held = if name == namespaces::ALL || name == namespaces::MANAGE {
            enrolled.namespaces.exactly(name)
        } else {
            enrolled.namespaces.access_to(&format!("x.{name}@x"))
        };
        if !held.is_some_and(|held| held.allows(wanted)) {
            return Err(refuse(
                "Client is not authorized for namespaces in the enrollment request",
            ));
        }
    }
    Ok(())
}

/// Loads `id` for a change, or the colon-form AT0028 when it is missing or
/// expired.
fn load_live(tenant: &Tenant, id: &str) -> Result<Enrollment, AtError> {
    let now = super::now_ms();
    enrollment::load(&tenant.store, id)?
        .filter(|e| e.state_at(now) != State::Expired)
        .ok_or_else(|| State::Expired.refusal(id))
}

/// The enrollment a change names, once the caller may make it: its id from
/// the params, the live record (AT0028 colon form when missing or expired),
/// and the manager check.
fn target_of<'p>(
    owner: &Owner,
    params: &'p Params,
    op: EnrollOp,
) -> Result<(&'p str, Enrollment), AtError> {
    let id = params.enrollment_id(op)?;
    let target = load_live(owner.tenant(), id)?;
    check_manager(owner, &target, op)?;
    Ok((id, target))
}

/// Moves `id` from one of `from` to `to` on the actor, refusing with the
/// reference's wording when its state is another.
async fn transition(
    tenant: &Tenant,
    id: &str,
    op: EnrollOp,
    from: &'static [State],
    to: State,
    edit: impl FnOnce(&mut Enrollment) + Send + 'static,
) -> Result<Enrollment, AtError> {
    let id_owned = id.to_string();
    let stored = enrollment::update(
        &tenant.store,
        id,
        expiry_of,
        Box::new(move |existing| {
            let Some(mut record) = existing else {
                return Err(State::Expired.refusal(&id_owned));
            };
            if !from.contains(&record.state) {
                return Err(wrong_state(op, &id_owned, record.state));
            }
            record.state = to;
            edit(&mut record);
            Ok(record)
        }),
    )
    .await?;
    tenant.enrollments.record(&stored);
    Ok(stored)
}

fn wrong_state(op: EnrollOp, id: &str, state: State) -> AtError {
    let rule = match op {
        EnrollOp::Approve => "Only pending enrollments can be approved",
        EnrollOp::Revoke => "Only approved enrollments can be revoked",
        EnrollOp::Unrevoke => "Only revoked enrollments can be un-revoked",
        EnrollOp::Delete => "Only denied or revoked enrollments can be deleted",
        _ => "The enrollment is not in a state this allows",
    };
    AtError::new(
        AtCode::InternalServerException,
        format!(
            "Failed to {} enrollment id: {id}. Cannot {} a {} enrollment. {rule}",
            op.name(),
            op.name(),
            state.as_str()
        ),
    )
}

async fn approve(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Approve;
    let tenant = owner.tenant();
    let (id, target) = target_of(owner, params, op)?;
    if target.state != State::Pending {
        return Err(wrong_state(op, id, target.state));
    }
    let encryption_key = params.required("encryptedDefaultEncryptionPrivateKey", op)?;
    let self_key = params.required("encryptedDefaultSelfEncryptionKey", op)?;
    store_keys(tenant, id, encryption_key, self_key, params).await?;
    let approver = owner.enrollment().map(|e| e.id.clone());
    let now = super::now_ms();
    let stored = transition(
        tenant,
        id,
        op,
        &[State::Pending],
        State::Approved,
        move |r| {
            r.approved_by = approver;
            r.approved_at = Some(now);
        },
    )
    .await?;
    publish_approval(tenant, &stored).await?;
    write_status(payload, id, State::Approved, IdFirst::No);
    Ok(Reply::Data)
}

async fn deny(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Deny;
    let tenant = owner.tenant();
    let (id, _) = target_of(owner, params, op)?;
    let from = &[
        State::Pending,
        State::Approved,
        State::Revoked,
        State::Denied,
    ];
    transition(tenant, id, op, from, State::Denied, |_| {}).await?;
    write_status(payload, id, State::Denied, IdFirst::No);
    Ok(Reply::Data)
}

async fn revoke(
    owner: &Owner,
    params: &Params,
    force: bool,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let op = EnrollOp::Revoke;
    let tenant = owner.tenant();
    let (id, _) = target_of(owner, params, op)?;
    let own = owner.enrollment().is_some_and(|e| e.id == id);
    if own && !force {
        return Err(AtError::new(
            AtCode::CannotRevokeSelf,
            "Current client cannot revoke its own enrollment",
        ));
    }
    let now = super::now_ms();
    transition(
        tenant,
        id,
        op,
        &[State::Approved],
        State::Revoked,
        move |r| {
            r.revoked_at = Some(now);
        },
    )
    .await?;
    let cascaded = revoke_approved_by(tenant, id, now).await?;
    let mut obj = ObjectWriter::new(payload);
    obj.field_str("status", "revoked");
    obj.field_str("enrollmentId", id);
    if !cascaded.is_empty() {
        let mut list = String::from("[");
        for (i, child) in cascaded.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            json::write_str(&mut list, child);
        }
        list.push(']');
        obj.field_raw("cascadedEnrollmentIds", &list);
    }
    if own {
        obj.field_str(
            "message",
            "Enrollment is revoked. Closing the connection in 10 seconds",
        );
    }
    obj.finish();
    Ok(Reply::Data)
}

/// Revokes, at any depth, the approved enrollments `root` approved;
/// returns their ids.
async fn revoke_approved_by(tenant: &Tenant, root: &str, now: i64) -> Result<Vec<String>, AtError> {
    let all = enrollment::all(&tenant.store)?;
    let mut revoked = Vec::new();
    let mut frontier = vec![root.to_string()];
    while let Some(parent) = frontier.pop() {
        for child in all
            .iter()
            .filter(|e| e.approved_by.as_deref() == Some(parent.as_str()))
        {
            if child.state_at(now) != State::Approved || revoked.contains(&child.id) {
                continue;
            }
            let set = move |r: &mut Enrollment| r.revoked_at = Some(now);
            match transition(
                tenant,
                &child.id,
                EnrollOp::Revoke,
                &[State::Approved],
                State::Revoked,
                set,
            )
            .await
            {
                Ok(_) => {
                    revoked.push(child.id.clone());
                    frontier.push(child.id.clone());
                }
                // Changed meanwhile (revoked, denied): nothing to cascade.
                Err(error) => tracing::debug!(%error, id = %child.id, "cascade skipped"),
            }
        }
    }
    Ok(revoked)
}

async fn unrevoke(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Unrevoke;
    let tenant = owner.tenant();
    let (id, target) = target_of(owner, params, op)?;
    if let Some(approver) = &target.approved_by {
        let now = super::now_ms();
        let approver_state =
            enrollment::load(&tenant.store, approver)?.map_or(State::Expired, |a| a.state_at(now));
        if approver_state != State::Approved {
            return Err(AtError::new(
                AtCode::InternalServerException,
                format!(
                    "Failed to unrevoke enrollment id: {id}. Its approver {approver} is {}",
                    approver_state.as_str()
                ),
            ));
        }
    }
    transition(tenant, id, op, &[State::Revoked], State::Approved, |_| {}).await?;
    write_status(payload, id, State::Approved, IdFirst::No);
    Ok(Reply::Data)
}

async fn delete(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Delete;
    let tenant = owner.tenant();
    let (id, target) = target_of(owner, params, op)?;
    if target.namespaces.is_empty() && owner.enrollment().is_some() {
        return Err(wrong_state(op, id, target.state));
    }
    if !matches!(target.state, State::Denied | State::Revoked) {
        return Err(wrong_state(op, id, target.state));
    }
    enrollment::remove(&tenant.store, id).await?;
    for name in ["default_enc_private_key", "default_self_enc_key"] {
        let key = enrollment_key_name(id, name, &tenant.atsign);
        tenant
            .store
            .write(key, false, |_| Ok(Mutation::Delete))
            .await?;
    }
    tenant.enrollments.forget(id);
    let mut obj = ObjectWriter::new(payload);
    obj.field_str("enrollmentId", id);
    obj.field_str("status", "deleted");
    obj.finish();
    Ok(Reply::Data)
}

/// Whether `owner` sees every enrollment (cram, legacy pkam, `__manage`)
/// rather than only its own, and whether with key material.
fn sees_all(owner: &Owner) -> (bool, bool) {
    match owner.enrollment() {
        None => (true, true),
        Some(enrolled) => match enrolled.namespaces.exactly(namespaces::MANAGE) {
            Some(Access::ReadWrite) => (true, true),
            Some(Access::Read) => (true, false),
            None => (false, true),
        },
    }
}

fn list(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let tenant = owner.tenant();
    let now = super::now_ms();
    let filter: Option<Vec<State>> = match params.get("enrollmentStatusFilter") {
        Some(JsonValue::Array(states)) => Some(
            states
                .iter()
                .filter_map(JsonValue::as_str)
                .filter_map(State::parse)
                .collect(),
        ),
        _ => None,
    };
    let (all, with_keys) = sees_all(owner);
    let own = owner.enrollment().map(|e| e.id.as_str());
    let mut obj = ObjectWriter::new(payload);
    for record in enrollment::all(&tenant.store)? {
        let state = record.state_at(now);
        if !all && own != Some(record.id.as_str()) {
            continue;
        }
        if filter.as_ref().is_some_and(|f| !f.contains(&state)) {
            continue;
        }
        let mut entry = String::new();
        write_summary(&mut entry, &record, state, with_keys, true);
        obj.field_raw(&Enrollment::key_of(&record.id, &tenant.atsign), &entry);
    }
    obj.finish();
    Ok(Reply::Data)
}

fn fetch(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Fetch;
    let tenant = owner.tenant();
    let id = params.enrollment_id(op)?;
    let now = super::now_ms();
    let target = enrollment::load(&tenant.store, id)?.ok_or_else(|| State::Expired.refusal(id))?;
    if owner.enrollment().is_none_or(|e| e.id != id) {
        check_manager(owner, &target, op).map_err(|_| {
            AtError::new(
                AtCode::Unauthorized,
                format!("enrollment {id} is not this connection's, nor one it manages"),
            )
        })?;
    }
    write_summary(payload, &target, target.state_at(now), true, false);
    Ok(Reply::Data)
}

/// `{"appName","deviceName","namespace","encryptedAPKAMSymmetricKey","status",…}`
/// (note the singular `namespace`, as the reference writes it).
fn write_summary(
    out: &mut String,
    record: &Enrollment,
    state: State,
    with_keys: bool,
    listing: bool,
) {
    let mut obj = ObjectWriter::new(out);
    obj.field_str("appName", &record.app_name);
    obj.field_str("deviceName", &record.device_name);
    let mut namespaces = String::new();
    record.namespaces.write_json(&mut namespaces);
    obj.field_raw("namespace", &namespaces);
    if with_keys {
        match &record.encrypted_apkam_symmetric_key {
            Some(key) => obj.field_str("encryptedAPKAMSymmetricKey", key),
            None => obj.field_raw("encryptedAPKAMSymmetricKey", "null"),
        };
        obj.field_str("apkamPublicKey", &record.apkam_public_key);
    }
    obj.field_str("status", state.as_str());
    match record.expires_at {
        Some(at) => obj.field_str("expiresAt", &crate::protocol::time::format_iso_utc(at)),
        None => obj.field_raw("expiresAt", "null"),
    };
    obj.field_raw("metadata", &metadata_json(record));
    if listing {
        match &record.approved_by {
            Some(by) => obj.field_str("parentEnrollmentId", by),
            None => obj.field_raw("parentEnrollmentId", "null"),
        };
    }
    obj.finish();
}

/// The record's `metadata` as JSON, `null` when unset (3.16.5 always
/// shows the member).
fn metadata_json(record: &Enrollment) -> String {
    let mut out = String::new();
    match &record.metadata {
        Some(value) => value.write(&mut out),
        None => out.push_str("null"),
    }
    out
}

/// `update`: the connection's own approved enrollment may change its key
/// (with a signature by the new key over `<id>|<key>|<signingAlgo>`), its
/// signing algorithm, `apsk` and `metadata` (merged member by member).
async fn update(owner: &Owner, params: &Params, payload: &mut String) -> Result<Reply, AtError> {
    let op = EnrollOp::Update;
    let tenant = owner.tenant();
    let id = params.enrollment_id(op)?.to_string();
    if owner.enrollment().is_none_or(|e| e.id != id) {
        return Err(AtError::new(
            AtCode::Unauthorized,
            "enroll:update changes only the connection's own enrollment",
        ));
    }
    for refused in ["namespaces", "approval", "status", "state"] {
        if params.get(refused).is_some() {
            return Err(AtError::new(
                AtCode::InternalServerException,
                format!("enroll:update cannot change {refused}"),
            ));
        }
    }
    let new_key = params.text("apkamPublicKey").map(str::to_string);
    let new_algo = params.text("signingAlgo").map(str::to_string);
    let apsk = params.get("apsk").cloned();
    let metadata = params.get("metadata").cloned();
    if new_key.is_none() && new_algo.is_none() && apsk.is_none() && metadata.is_none() {
        return Err(AtError::new(
            AtCode::InternalServerException,
            "enroll:update names nothing to change",
        ));
    }
    if let Some(algo) = &new_algo
        && !matches!(algo.as_str(), "rsa2048" | "mldsa65")
    {
        return Err(AtError::new(
            AtCode::InternalServerException,
            format!("signingAlgo {algo} is not supported: rsa2048 or mldsa65"),
        ));
    }
    let current = load_live(tenant, &id)?;
    if let Some(key) = &new_key {
        let algo = new_algo
            .clone()
            .or_else(|| current.signing_algo.clone())
            .unwrap_or_else(|| "rsa2048".to_string());
        let signature = params.required("apkamPublicKeySignature", op)?;
        let proof = format!("{id}|{key}|{algo}");
        let signing = match algo.as_str() {
            "mldsa65" => crate::protocol::command::SigningAlgo::MlDsa65,
            _ => crate::protocol::command::SigningAlgo::Rsa2048,
        };
        if crate::auth::pkam::verify(Some(signing), None, key, &proof, signature).is_err() {
            return Err(AtError::new(
                AtCode::AuthFailed,
                "apkamPublicKeySignature does not verify with the new key",
            ));
        }
        let now = super::now_ms();
        let held = enrollment::all(&tenant.store)?
            .into_iter()
            .any(|e| e.id != id && e.apkam_public_key == *key && e.state_at(now) != State::Expired);
        if held {
            return Err(AtError::new(
                AtCode::IllegalState,
                "the apkamPublicKey is already held by another enrollment",
            ));
        }
    }
    let stored = transition(
        tenant,
        &id,
        op,
        &[State::Approved],
        State::Approved,
        move |r| {
            if let Some(key) = new_key {
                r.apkam_public_key = key;
            }
            if let Some(algo) = new_algo {
                r.signing_algo = (algo != "rsa2048").then_some(algo);
            }
            if let Some(apsk) = apsk {
                r.apsk = (apsk != JsonValue::Null).then_some(apsk);
            }
            if let Some(JsonValue::Object(changes)) = metadata {
                let mut merged = match r.metadata.take() {
                    Some(JsonValue::Object(members)) => members,
                    _ => Vec::new(),
                };
                for (name, value) in changes {
                    match merged.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => merged.push((name, value)),
                    }
                }
                r.metadata = Some(JsonValue::Object(merged));
            }
        },
    )
    .await?;
    write_status(payload, &id, stored.state, IdFirst::Yes);
    Ok(Reply::Data)
}

/// `listns:<ns>`: the approved enrollments holding at least `r` on `ns`,
/// for a connection whose own approved enrollment holds it too.
fn list_namespace(
    owner: &Owner,
    namespace: Option<&str>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let holders = holders_of(owner, namespace, State::Approved)?;
    payload.push('[');
    for (i, (record, access)) in holders.iter().enumerate() {
        if i > 0 {
            payload.push(',');
        }
        let mut obj = ObjectWriter::new(payload);
        obj.field_str("enrollmentId", &record.id);
        obj.field_str("access", access.as_str());
        obj.field_str("apkamPubKey", &record.apkam_public_key);
        obj.field_raw("metadata", &metadata_json(record));
        obj.finish();
    }
    payload.push(']');
    Ok(Reply::Data)
}

/// `infons:<ns>`: when an enrollment holding `ns` was last revoked.
fn info_namespace(
    owner: &Owner,
    namespace: Option<&str>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let last = holders_of(owner, namespace, State::Revoked)?
        .into_iter()
        .filter_map(|(record, _)| record.revoked_at)
        .max();
    let mut obj = ObjectWriter::new(payload);
    match last {
        Some(at) => obj.field_str("lastRevokedAt", &crate::protocol::time::format_iso_utc(at)),
        None => obj.field_raw("lastRevokedAt", "null"),
    };
    obj.finish();
    Ok(Reply::Data)
}

/// The enrollments in `state` holding the namespace `listns`/`infons`
/// asks about, with their access to it.
fn holders_of(
    owner: &Owner,
    namespace: Option<&str>,
    state: State,
) -> Result<Vec<(Enrollment, Access)>, AtError> {
    let ns = namespace_asked(owner, namespace)?;
    let now = super::now_ms();
    Ok(enrollment::all(&owner.tenant().store)?
        .into_iter()
        .filter(|record| record.state_at(now) == state)
        .filter_map(|record| holds(&record.namespaces, &ns).map(|access| (record, access)))
        .collect())
}

/// The namespace of `listns`/`infons`, which only a connection whose own
/// enrollment holds it may ask about.
fn namespace_asked(owner: &Owner, namespace: Option<&str>) -> Result<String, AtError> {
    let ns = namespace
        .map(|n| n.trim_start_matches(':').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AtError::new(AtCode::IllegalArguments, "a namespace is required"))?;
    let allowed = owner
        .enrollment()
        .is_some_and(|e| holds(&e.namespaces, &ns).is_some());
    if !allowed {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!("this connection's enrollment does not hold {ns}"),
        ));
    }
    Ok(ns)
}

/// The access `namespaces` gives to `ns` itself: by name, or by `*`
/// except for `__manage`, which must be held by name.
fn holds(namespaces: &Namespaces, ns: &str) -> Option<Access> {
    namespaces.exactly(ns).or_else(|| {
        (ns != namespaces::MANAGE)
            .then(|| namespaces.exactly(namespaces::ALL))
            .flatten()
    })
}

/// Whether the reply names the id first (`request`, `update`) or the
/// status first (`approve`, `deny`, `unrevoke`), as the reference does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdFirst {
    Yes,
    No,
}

fn write_status(out: &mut String, id: &str, state: State, order: IdFirst) {
    let mut obj = ObjectWriter::new(out);
    if order == IdFirst::Yes {
        obj.field_str("enrollmentId", id);
        obj.field_str("status", state.as_str());
    } else {
        obj.field_str("status", state.as_str());
        obj.field_str("enrollmentId", id);
    }
    obj.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: State, keys_expiry_ms: i64) -> Enrollment {
        Enrollment {
            id: "e1".into(),
            session_id: String::new(),
            app_name: "a".into(),
            device_name: "d".into(),
            namespaces: Namespaces::default(),
            apkam_public_key: "k".into(),
            signing_algo: None,
            state,
            encrypted_apkam_symmetric_key: None,
            keys_expiry_ms,
            metadata: None,
            apsk: None,
            approved_by: None,
            requested_at: 1_000,
            approved_at: Some(5_000),
            revoked_at: None,
            // What the pending record had: an approval must not keep it.
            expires_at: Some(1_000 + ENROLLMENT_PENDING_TTL_MS),
            version: 0,
        }
    }

    #[test]
    fn pending_records_expire_and_approved_ones_by_their_keys_lifetime_only() {
        assert_eq!(
            expiry_of(&record(State::Pending, 0)),
            Some(1_000 + ENROLLMENT_PENDING_TTL_MS)
        );
        assert_eq!(expiry_of(&record(State::Approved, 0)), None);
        assert_eq!(expiry_of(&record(State::Approved, 60_000)), Some(65_000));
        for state in [State::Denied, State::Revoked] {
            assert_eq!(expiry_of(&record(state, 60_000)), None, "{state:?}");
        }
    }
}
