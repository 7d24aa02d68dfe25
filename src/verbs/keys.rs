//! `keys:<put|get|delete>…`: an APKAM enrollment's own key store
//! (verbs.md §12), and how a new device fetches the encrypted keys its
//! approver left for it (`keys:get:keyName:<id>.default_enc_private_key.__manage@<atsign>`).
//!
//! Only connections of an enrollment may use it. **Differs** from the
//! reference, which gives any approved enrollment any key by name (a
//! hole): `keys:get:keyName:` and `keys:delete:keyName:` reach only the
//! caller's own enrollment keys and the keys-verb keys it stored itself;
//! `keys:put` writes only into `__global` or a namespace it holds `rw`.

use super::Reply;
use super::enroll::enrollment_key_name;
use crate::auth::enrollment::Enrolled;
use crate::auth::namespaces::{self, Access};
use crate::connection::Owner;
use crate::error::{AtCode, AtError};
use crate::protocol::command::{KeyVisibility, Keys, KeysOp};
use crate::protocol::json::{self, JsonValue, ObjectWriter};
use crate::storage::Mutation;

/// The namespace every enrollment may keep keys in.
const GLOBAL: &str = "__global";

/// The names of an enrollment's two approval keys.
const ENROLLMENT_KEYS: [&str; 2] = ["default_enc_private_key", "default_self_enc_key"];

pub async fn apply(owner: &Owner, cmd: Keys<'_>, payload: &mut String) -> Result<Reply, AtError> {
    let Some(enrolled) = owner.enrollment() else {
        return Err(AtError::new(
            AtCode::InternalServerException,
            "Keys verb cannot be accessed without an enrollmentId",
        ));
    };
    match (cmd.op, cmd.key_name) {
        (KeysOp::Put, _) => put(owner, enrolled, &cmd, payload).await,
        (KeysOp::Get, Some(name)) => get_by_name(owner, enrolled, name, payload),
        (KeysOp::Get, None) => list(owner, enrolled, cmd.visibility, payload),
        (KeysOp::Delete, Some(name)) => delete(owner, enrolled, name, payload).await,
        (KeysOp::Delete, None) => Err(AtError::new(
            AtCode::InvalidSyntax,
            "keys:delete needs keyName:<name>",
        )),
    }
}

/// The store key a `keys:put` of `visibility` writes.
fn key_for(
    visibility: KeyVisibility,
    namespace: &str,
    app: &str,
    device: &str,
    name: &str,
    atsign: &str,
) -> String {
    match visibility {
        KeyVisibility::Public => format!("public:{name}.__public_keys.{namespace}{atsign}"),
        KeyVisibility::Private => {
            format!("private:{app}.{device}.{name}.__private_keys.{namespace}{atsign}")
        }
        KeyVisibility::SelfKey => format!("{app}.{device}.{name}.__self_keys.{namespace}{atsign}"),
    }
}

async fn put(
    owner: &Owner,
    enrolled: &Enrolled,
    cmd: &Keys<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let missing =
        |what: &str| AtError::new(AtCode::InvalidSyntax, format!("keys:put needs {what}"));
    let visibility = cmd
        .visibility
        .ok_or_else(|| missing("public, private or self"))?;
    let namespace = cmd
        .namespace
        .ok_or_else(|| missing("namespace:<ns>"))?
        .to_ascii_lowercase();
    let name = cmd.key_name.ok_or_else(|| missing("keyName:<name>"))?;
    let value = cmd
        .value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("a value"))?;
    let may_write = namespace == GLOBAL
        || (namespace != namespaces::MANAGE
            && enrolled.namespaces.exactly(&namespace) == Some(Access::ReadWrite));
    if !may_write {
        return Err(AtError::new(
            AtCode::Unauthorized,
            format!(
                "enrollment {} may not keep keys in {namespace}",
                enrolled.id
            ),
        ));
    }
    let app = cmd.app_name.unwrap_or("");
    let device = cmd.device_name.unwrap_or("");
    let tenant = owner.tenant();
    let key = key_for(visibility, &namespace, app, device, name, &tenant.atsign);
    super::checks::check_key_length(&key)?;
    let mut stored = String::new();
    let mut obj = ObjectWriter::new(&mut stored);
    obj.field_str("value", value);
    match cmd.key_type {
        Some(t) => obj.field_str("keyType", t),
        None => obj.field_raw("keyType", "null"),
    };
    obj.field_str("enrollmentId", &enrolled.id);
    match cmd.encryption_key_name {
        Some(e) => obj.field_str("encryptionKeyName", e),
        None => obj.field_raw("encryptionKeyName", "null"),
    };
    obj.finish();
    super::write::put_uncommitted(tenant, key, stored).await?;
    payload.push_str("-1");
    Ok(Reply::Data)
}

/// Whether `name` is one of the caller's own enrollment keys.
fn is_own_enrollment_key(enrolled: &Enrolled, name: &str, atsign: &str) -> bool {
    ENROLLMENT_KEYS
        .iter()
        .any(|key| enrollment_key_name(&enrolled.id, key, atsign) == name)
}

/// The enrollment id a keys-verb record names, if it is one.
fn stored_by(value: &str) -> Option<String> {
    let parsed = json::parse(value).ok()?;
    parsed
        .get("enrollmentId")
        .and_then(JsonValue::as_str)
        .map(str::to_string)
}

fn is_keys_verb_key(name: &str) -> bool {
    ["__public_keys.", "__private_keys.", "__self_keys."]
        .iter()
        .any(|marker| name.contains(marker))
}

/// The stored value of `name`, if the caller may have it.
fn readable(owner: &Owner, enrolled: &Enrolled, name: &str) -> Result<Option<String>, AtError> {
    let tenant = owner.tenant();
    let name = name.to_ascii_lowercase();
    let own = is_own_enrollment_key(enrolled, &name, &tenant.atsign);
    if !own && !is_keys_verb_key(&name) {
        return Err(not_yours(enrolled, &name));
    }
    let Some(value) = tenant.store.get(&name)?.and_then(|r| r.value) else {
        return Ok(None);
    };
    if !own && stored_by(&value).as_deref() != Some(enrolled.id.as_str()) {
        return Err(not_yours(enrolled, &name));
    }
    Ok(Some(value))
}

fn not_yours(enrolled: &Enrolled, name: &str) -> AtError {
    AtError::new(
        AtCode::Unauthorized,
        format!("enrollment {} may not read or remove {name}", enrolled.id),
    )
}

fn get_by_name(
    owner: &Owner,
    enrolled: &Enrolled,
    name: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    match readable(owner, enrolled, name)? {
        Some(value) => {
            payload.push_str(&value);
            Ok(Reply::Data)
        }
        None => Err(AtError::new(
            AtCode::KeyNotFound,
            format!("key {name} not found in keystore"),
        )),
    }
}

/// `keys:get:<visibility>`: the names of the caller's keys of that
/// visibility (in `__global`, and `__manage` with `__manage:rw`), plus its
/// enrollment key of that kind.
fn list(
    owner: &Owner,
    enrolled: &Enrolled,
    visibility: Option<KeyVisibility>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let tenant = owner.tenant();
    let marker = match visibility {
        Some(KeyVisibility::Public) => "__public_keys.",
        Some(KeyVisibility::Private) => "__private_keys.",
        Some(KeyVisibility::SelfKey) | None => "__self_keys.",
    };
    let manage = enrolled.namespaces.exactly(namespaces::MANAGE) == Some(Access::ReadWrite);
    let mut names = Vec::new();
    tenant.store.for_each(|name, record| {
        let in_scope = name.contains(&format!("{marker}{GLOBAL}@"))
            || (manage && name.contains(&format!("{marker}{}@", namespaces::MANAGE)));
        if in_scope
            && let Some(value) = record.value_str()
            && stored_by(value).as_deref() == Some(enrolled.id.as_str())
        {
            names.push(name.to_string());
        }
        true
    })?;
    let own = match visibility {
        Some(KeyVisibility::Private) => Some(ENROLLMENT_KEYS[0]),
        Some(KeyVisibility::SelfKey) => Some(ENROLLMENT_KEYS[1]),
        _ => None,
    };
    if let Some(kind) = own {
        let name = enrollment_key_name(&enrolled.id, kind, &tenant.atsign);
        if tenant.store.get(&name)?.is_some() {
            names.push(name);
        }
    }
    payload.push('[');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            payload.push(',');
        }
        json::write_str(payload, name);
    }
    payload.push(']');
    Ok(Reply::Data)
}

async fn delete(
    owner: &Owner,
    enrolled: &Enrolled,
    name: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let lower = name.to_ascii_lowercase();
    if !is_keys_verb_key(&lower) {
        return Err(not_yours(enrolled, &lower));
    }
    if readable(owner, enrolled, &lower)?.is_some() {
        owner
            .tenant()
            .store
            .write(lower, false, |_| Ok(Mutation::Delete))
            .await?;
    }
    payload.push_str("-1");
    Ok(Reply::Data)
}
