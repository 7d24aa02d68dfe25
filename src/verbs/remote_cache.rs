//! This server's copies of other atSigns' data (`cached:` keys,
//! server-to-server.md §5.1–5.2): what a remote `lookup:all` answered is
//! kept per its `ttr` (time to refresh) and served until it is due for a
//! refresh; public data without a `ttr` is kept a day.

use std::sync::Arc;

use super::remote_lookup::{self, Asking, RemoteRead};
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::limits::{CACHE_REFRESH_KEYS_MAX, CACHED_PUBLIC_DATA_TTL_MS};
use crate::protocol::command::LookupOp;
use crate::protocol::json::JsonValue;
use crate::protocol::metadata::MetaFragment;
use crate::protocol::time::parse_iso_utc;
use crate::remote::peers::PeerAccess;
use crate::storage::OpType;
use crate::storage::{CommitOp, Mutation, StoredMeta, StoredRecord, TenantStore};

/// The name of the copy of `remote_key` (`@me:phone@bob`,
/// `public:publickey@bob`): `cached:<remote_key>`.
pub(super) fn cached_key(remote_key: &str) -> String {
    format!("cached:{remote_key}")
}

/// The copy of `remote_key`, if one is active and not due for a refresh
/// (`ttr` -1 never is).
pub(super) fn fresh_copy(
    store: &TenantStore,
    remote_key: &str,
    now_ms: i64,
) -> Result<Option<StoredRecord>, AtError> {
    let Some(record) = store.get(&cached_key(remote_key))? else {
        return Ok(None);
    };
    let due = record.meta.ttr != Some(-1) && record.meta.refresh_at.is_some_and(|at| now_ms > at);
    Ok((record.is_active(now_ms) && !due).then_some(record))
}

/// How long a copy of a remote answer is kept, from its metadata: `ttr` >
/// 0 or -1 as the owner set it; otherwise public data for a day and
/// shared data not at all (the owner did not allow caching).
fn keep_for(meta: Option<&JsonValue>, public: bool) -> Option<Keep> {
    let ttr = meta.and_then(|m| m.get("ttr")).and_then(JsonValue::as_i64);
    match ttr {
        Some(ttr) if ttr > 0 || ttr == -1 => Some(Keep::Ttr(ttr)),
        _ if public => Some(Keep::Ttl(CACHED_PUBLIC_DATA_TTL_MS)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Refresh after this many seconds (-1: never).
    Ttr(i64),
    /// Expire after this many milliseconds.
    Ttl(i64),
}

/// The record to keep for a remote `{key, data, metaData}` answer, if its
/// metadata allows a copy.
pub(super) fn copy_of(
    answer: &JsonValue,
    public: bool,
    writer: &str,
    now_ms: i64,
) -> Option<StoredRecord> {
    let meta = answer.get("metaData");
    let keep = keep_for(meta, public)?;
    let value = match answer.get("data") {
        Some(JsonValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let mut record = StoredRecord {
        value,
        meta: remote_meta(meta, writer, now_ms),
    };
    match keep {
        Keep::Ttr(ttr) => {
            record.meta.ttr = Some(ttr);
            record.meta.refresh_at =
                (ttr > 0).then(|| now_ms.saturating_add(ttr.saturating_mul(1_000)));
        }
        Keep::Ttl(ttl) => {
            record.meta.ttl = Some(ttl);
            record.meta.expires_at = Some(now_ms.saturating_add(ttl));
        }
    }
    Some(record)
}

/// The metadata of a copy: the owner's own fields (encryption, signature,
/// lifetimes), this server's times.
fn remote_meta(meta: Option<&JsonValue>, writer: &str, now_ms: i64) -> StoredMeta {
    let text = |name: &str| {
        meta.and_then(|m| m.get(name))
            .and_then(JsonValue::as_str)
            .map(str::to_string)
    };
    let number = |name: &str| meta.and_then(|m| m.get(name)).and_then(JsonValue::as_i64);
    let flag = |name: &str| meta.and_then(|m| m.get(name)).and_then(JsonValue::as_bool);
    let ttl = number("ttl").filter(|ttl| *ttl > 0);
    // The owner's expiry holds for the copy too (it may be sooner than the
    // refresh); a date this server cannot read leaves it to the ttl.
    let expires_at = text("expiresAt")
        .and_then(|at| parse_iso_utc(&at))
        .or_else(|| ttl.map(|ttl| now_ms.saturating_add(ttl)));
    let pub_key_hash = meta.and_then(|m| m.get("pubKeyHash"));
    StoredMeta {
        created_by: text("createdBy").or_else(|| Some(writer.to_string())),
        updated_by: Some(writer.to_string()),
        created_at: now_ms,
        updated_at: now_ms,
        available_at: None,
        expires_at,
        refresh_at: None,
        version: 0,
        ttl,
        ttb: None,
        ttr: None,
        ccd: flag("ccd"),
        is_binary: flag("isBinary").unwrap_or(false),
        is_encrypted: flag("isEncrypted").unwrap_or(false),
        data_signature: text("dataSignature"),
        shared_key_enc: text("sharedKeyEnc"),
        pub_key_cs: text("pubKeyCS"),
        pub_key_hash: pub_key_hash
            .and_then(|h| h.get("hash"))
            .and_then(JsonValue::as_str)
            .map(str::to_string),
        hashing_algo: pub_key_hash
            .and_then(|h| h.get("hashingAlgo"))
            .and_then(JsonValue::as_str)
            .map(str::to_string),
        encoding: text("encoding"),
        enc_key_name: text("encKeyName"),
        enc_algo: text("encAlgo"),
        iv_nonce: text("ivNonce"),
        ske_enc_key_name: text("skeEncKeyName"),
        ske_enc_algo: text("skeEncAlgo"),
        immutable: flag("immutable").unwrap_or(false),
        app_metadata: text("appMetadata"),
    }
}

/// Keeps `record` as the copy of `remote_key` (a committed write, so the
/// owner's devices see `cached:` keys as the reference's do). The reply to
/// the client does not wait for it.
pub(super) async fn keep(store: &TenantStore, remote_key: &str, record: StoredRecord) {
    let key = cached_key(remote_key);
    let submitted = store
        .submit(
            key,
            true,
            Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::Update))),
        )
        .await;
    if let Err(error) = submitted {
        tracing::warn!(remote_key, %error, "a remote answer could not be cached");
    }
}

/// Drops the copy of `remote_key` (its owner no longer has it). The copy
/// of an atSign's encryption public key stays: the reference keeps it so a
/// re-onboarded atSign can be noticed.
pub(super) async fn forget(store: &TenantStore, remote_key: &str) {
    if remote_key.starts_with("public:publickey@") {
        return;
    }
    let key = cached_key(remote_key);
    match store.get(&key) {
        Ok(Some(_)) => {}
        _ => return,
    }
    let submitted = store
        .submit(key, true, Box::new(|_| Ok(Mutation::Delete)))
        .await;
    if let Err(error) = submitted {
        tracing::warn!(remote_key, %error, "a stale cached copy could not be removed");
    }
}

/// Re-fetches `tenant`'s copies whose refresh is due (`ttr` set, not -1,
/// `refreshAt` passed), at most [`CACHE_REFRESH_KEYS_MAX`] per call: an
/// answer replaces the copy, a "not found" removes it, a failure keeps it
/// for the next round. Returns how many were fetched. Copies nobody reads
/// stay current this way, as the reference's daily refresh job keeps them.
pub async fn refresh_due_copies(
    tenant: &Arc<Tenant>,
    peers: &dyn PeerAccess,
    now_ms: i64,
) -> Result<usize, AtError> {
    let mut cached = Vec::new();
    tenant
        .store
        .for_each_page("cached:", None, CACHE_REFRESH_KEYS_MAX, |key, _| {
            cached.push(key.to_string());
            true
        })?;
    let mut fetched = 0;
    let mut payload = String::new();
    for key in cached {
        let Some(record) = tenant.store.get(&key)? else {
            continue;
        };
        let due = record.meta.ttr.is_some_and(|ttr| ttr != -1)
            && record.meta.refresh_at.is_some_and(|at| at <= now_ms);
        let Some(remote_key) = key.strip_prefix("cached:") else {
            continue;
        };
        let Some(origin) = origin_of(remote_key, &tenant.atsign).filter(|_| due) else {
            continue;
        };
        payload.clear();
        let read = RemoteRead {
            me: tenant,
            asking: origin.asking,
            owner: origin.owner,
            name: origin.name,
            op: LookupOp::All,
            remote_key,
            bypass_cache: true,
        };
        fetched += 1;
        if let Err(error) = remote_lookup::lookup(peers, read, &mut payload).await
            && error.code != AtCode::KeyNotFound
        {
            tracing::debug!(key, %error, "a cached copy could not be refreshed; kept for now");
        }
    }
    Ok(fetched)
}

/// Where a copy came from: whose it is, under which name, and how it was
/// asked for.
struct Origin<'a> {
    asking: Asking,
    owner: &'a str,
    name: &'a str,
}

/// `public:<name>@<owner>` was asked for anonymously, `@me:<name>@<owner>`
/// as the owner; anything else is no copy this server made.
fn origin_of<'a>(remote_key: &'a str, me: &str) -> Option<Origin<'a>> {
    let (asking, rest) = if let Some(rest) = remote_key.strip_prefix("public:") {
        (Asking::Anonymously, rest)
    } else {
        let rest = remote_key.strip_prefix(me)?.strip_prefix(':')?;
        (Asking::AsOwner, rest)
    };
    let at = rest.rfind('@')?;
    let (name, owner) = rest.split_at(at);
    (!name.is_empty() && owner.len() > 1 && owner != me).then_some(Origin {
        asking,
        owner,
        name,
    })
}

/// What a received notification about `key` (`@me:<key>@<owner>`) does
/// to this server's copy of it (notifications.md §5): an update with a
/// `ttr` and a value writes the copy; one with a `ttr` and no value
/// refreshes the metadata of an existing copy; a delete removes the copy
/// only if its owner asked for cascade deletes (`ccd`).
pub(super) async fn apply_notification(
    store: &TenantStore,
    key: &str,
    op: OpType,
    value: Option<&str>,
    meta: &MetaFragment<'_>,
    now_ms: i64,
) -> Result<(), AtError> {
    let copy_name = cached_key(key);
    super::checks::check_key_length(&copy_name)?;
    match op {
        OpType::Delete => {
            let cascades = store
                .get(&copy_name)?
                .is_some_and(|copy| copy.meta.ccd == Some(true));
            if cascades {
                store
                    .write(copy_name, true, |_| Ok(Mutation::Delete))
                    .await?;
            }
        }
        OpType::Update => {
            let Some(ttr) = meta.ttr.filter(|ttr| *ttr != 0) else {
                return Ok(());
            };
            let existing = store.get(&copy_name)?;
            let value = match (value, existing) {
                (Some(value), _) => Some(value.to_string()),
                (None, Some(copy)) => copy.value,
                (None, None) => return Ok(()),
            };
            let writer = key.rsplit_once('@').map_or(key, |(_, owner)| owner);
            let mut record = StoredRecord::written_by(value, &format!("@{writer}"), now_ms);
            record.meta.ttr = Some(ttr);
            record.meta.refresh_at =
                (ttr > 0).then(|| now_ms.saturating_add(ttr.saturating_mul(1_000)));
            record.meta.ccd = Some(meta.ccd.unwrap_or(false));
            record.meta.ttl = meta.ttl.filter(|ttl| *ttl > 0);
            record.meta.expires_at = record.meta.ttl.map(|ttl| now_ms.saturating_add(ttl));
            record.meta.is_encrypted = meta.is_encrypted.unwrap_or(false);
            record.meta.is_binary = meta.is_binary.unwrap_or(false);
            let text = |v: Option<&str>| v.map(str::to_string);
            record.meta.shared_key_enc = text(meta.shared_key_enc);
            record.meta.pub_key_cs = text(meta.pub_key_cs);
            record.meta.enc_key_name = text(meta.enc_key_name);
            record.meta.enc_algo = text(meta.enc_algo);
            record.meta.iv_nonce = text(meta.iv_nonce);
            record.meta.ske_enc_key_name = text(meta.ske_enc_key_name);
            record.meta.ske_enc_algo = text(meta.ske_enc_algo);
            record.meta.data_signature = text(meta.data_signature);
            record.meta.encoding = text(meta.encoding);
            // Acknowledged only once the copy is durable: the sender takes
            // `data:success` as delivered.
            store
                .write(copy_name, true, move |_| {
                    Ok(Mutation::Put(Box::new(record), CommitOp::Update))
                })
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json;

    fn answer(meta: &str) -> JsonValue {
        json::parse(&format!(
            "{{\"key\":\"@alice:phone@bob\",\"data\":\"v\",\"metaData\":{meta}}}"
        ))
        .expect("json")
    }

    #[test]
    fn a_copy_names_where_it_came_from() {
        let public = origin_of("public:publickey@bob", "@alice").expect("public");
        assert!(matches!(public.asking, Asking::Anonymously));
        assert_eq!((public.name, public.owner), ("publickey", "@bob"));
        let shared = origin_of("@alice:phone.wavi@bob", "@alice").expect("shared");
        assert!(matches!(shared.asking, Asking::AsOwner));
        assert_eq!((shared.name, shared.owner), ("phone.wavi", "@bob"));
        assert!(origin_of("@carol:phone@bob", "@alice").is_none());
        assert!(origin_of("@alice:phone@alice", "@alice").is_none());
        assert!(origin_of("public:@bob", "@alice").is_none());
    }

    #[test]
    fn only_what_the_owner_lets_refresh_is_kept_and_public_data_for_a_day() {
        let now = 1_000_000;
        let kept = copy_of(
            &answer("{\"ttr\":60,\"isEncrypted\":true}"),
            false,
            "@alice",
            now,
        )
        .expect("ttr 60 is cached");
        assert_eq!(kept.value.as_deref(), Some("v"));
        assert_eq!(kept.meta.ttr, Some(60));
        assert_eq!(kept.meta.refresh_at, Some(now + 60_000));
        assert!(kept.meta.is_encrypted);
        let forever = copy_of(&answer("{\"ttr\":-1}"), false, "@alice", now).expect("ttr -1");
        assert_eq!(forever.meta.refresh_at, None);
        assert!(copy_of(&answer("{\"ttr\":0}"), false, "@alice", now).is_none());
        assert!(copy_of(&answer("{}"), false, "@alice", now).is_none());
        let public = copy_of(&answer("{}"), true, "@alice", now).expect("public");
        assert_eq!(
            public.meta.expires_at,
            Some(now + CACHED_PUBLIC_DATA_TTL_MS)
        );
    }
}
