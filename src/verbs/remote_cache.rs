//! This server's copies of other atSigns' data (`cached:` keys,
//! server-to-server.md §5.1–5.2): what a remote `lookup:all` answered is
//! kept per its `ttr` (time to refresh) and served until it is due for a
//! refresh; public data without a `ttr` is kept a day.

use std::sync::Arc;

use super::metadata::{MetaUpdate, refresh_at};
use super::remote_lookup::{self, RemoteRead, origin_of};
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::limits::{CACHE_REFRESH_KEYS_MAX, CACHED_PUBLIC_DATA_TTL_MS};
use crate::protocol::command::LookupOp;
use crate::protocol::json::JsonValue;
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
            record.meta.refresh_at = refresh_at(Some(ttr), now_ms);
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
            Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::UpdateAll))),
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
/// The copies are read page by page, so every one is looked at however
/// many there are; a refreshed copy is not due again until its next
/// `refreshAt`, so a round that stops at the bound leaves the rest first
/// in line for the next.
pub async fn refresh_due_copies(
    tenant: &Arc<Tenant>,
    peers: &dyn PeerAccess,
    now_ms: i64,
) -> Result<usize, AtError> {
    let mut fetched = 0;
    let mut payload = String::new();
    let mut after: Option<String> = None;
    loop {
        let mut page = Vec::new();
        let scanned = tenant.store.for_each_page(
            "cached:",
            after.as_deref(),
            CACHE_REFRESH_KEYS_MAX,
            |key, _| {
                page.push(key.to_string());
                true
            },
        )?;
        for key in page {
            if fetched >= CACHE_REFRESH_KEYS_MAX {
                return Ok(fetched);
            }
            let Some(record) = tenant.store.get(&key)? else {
                continue;
            };
            let due = record.meta.ttr.is_some_and(|ttr| ttr != -1)
                && record.meta.refresh_at.is_some_and(|at| at <= now_ms);
            let Some(remote_key) = key.strip_prefix("cached:") else {
                continue;
            };
            if !due || origin_of(remote_key, &tenant.atsign).is_none() {
                continue;
            }
            payload.clear();
            let read = RemoteRead {
                me: tenant,
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
        match scanned.resume_after {
            Some(last) => after = Some(last),
            None => return Ok(fetched),
        }
    }
}

/// What a received notification about `key` (`@me:<key>@<owner>`) does
/// to this server's copy of it (notifications.md §5): an update with a
/// `ttr` and a value writes the copy; one with a `ttr` and no value
/// refreshes the metadata of an existing copy; a delete removes the copy
/// only if its owner asked for cascade deletes (`ccd`). The metadata is
/// merged by the rules of `update` ([`MetaUpdate::merge`]); `ccd` is false
/// unless the sender said otherwise. The copy is durable before this
/// returns: the sender takes `data:success` as delivered.
pub(super) async fn apply_notification(
    store: &TenantStore,
    key: &str,
    op: OpType,
    value: Option<&str>,
    meta: MetaUpdate,
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
            if meta.ttr.is_none_or(|ttr| ttr == 0) {
                return Ok(());
            }
            // An expired copy counts as absent, as for `update`.
            let existing = store
                .get(&copy_name)?
                .filter(|copy| copy.meta.expires_at.is_none_or(|at| at > now_ms));
            let (value, old_meta) = match (value, existing) {
                (Some(value), existing) => (Some(value.to_string()), existing.map(|c| c.meta)),
                (None, Some(copy)) => (copy.value, Some(copy.meta)),
                (None, None) => return Ok(()),
            };
            let writer = key.rsplit_once('@').map_or(key, |(_, owner)| owner);
            let mut merged = meta.merge(old_meta, &format!("@{writer}"), now_ms);
            merged.ccd.get_or_insert(false);
            let record = StoredRecord {
                value,
                meta: merged,
            };
            store
                .write(copy_name, true, move |_| {
                    Ok(Mutation::Put(Box::new(record), CommitOp::UpdateAll))
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
