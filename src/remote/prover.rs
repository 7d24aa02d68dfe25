//! A hosted atSign as a `pol` prover: its signing key from its own store,
//! and its cookie published there for the verifier to look up.

use std::sync::Arc;

use super::outbound::Prover;
use crate::auth::signing::{self, SigningKey};
use crate::context::Tenant;
use crate::limits::POL_COOKIE_TTL_MS;
use crate::storage::{CommitOp, Mutation, StoredRecord};

/// Proves `tenant`'s atSign to other servers. The signing key is read
/// and parsed only when a new connection must be proven: a request on a
/// pooled connection, already authenticated, needs no signature (parsing
/// the RSA key cost about 20 µs per request).
pub struct TenantProver<'a> {
    tenant: &'a Arc<Tenant>,
    key: std::cell::OnceCell<Result<SigningKey, String>>,
}

impl<'a> TenantProver<'a> {
    /// A prover for `tenant`, whose key (`@me:signing_privatekey@me`) is
    /// loaded on first use.
    pub fn load(tenant: &'a Arc<Tenant>) -> TenantProver<'a> {
        TenantProver {
            tenant,
            key: std::cell::OnceCell::new(),
        }
    }

    fn key(&self) -> Result<&SigningKey, String> {
        self.key
            .get_or_init(|| {
                signing::load(&self.tenant.store, &self.tenant.atsign).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Prover for TenantProver<'_> {
    fn atsign(&self) -> &str {
        &self.tenant.atsign
    }

    fn sign(&self, token: &[u8]) -> Result<String, String> {
        self.key()?.sign_base64(token).map_err(|e| e.to_string())
    }

    async fn publish(&self, key: String, signature: String) -> Result<(), String> {
        let writer = self.tenant.atsign.clone();
        // Not committed: a cookie is no data of the owner's, and syncing it
        // to the owner's devices would only spread a dead value.
        self.tenant
            .store
            .write(key, false, move |_| {
                let now = crate::storage::actor::now_ms();
                let mut record = StoredRecord::written_by(Some(signature), &writer, now);
                let ttl = i64::try_from(POL_COOKIE_TTL_MS).unwrap_or(i64::MAX);
                record.meta.ttl = Some(ttl);
                record.meta.expires_at = Some(now.saturating_add(ttl));
                Ok(Mutation::Put(Box::new(record), CommitOp::Update))
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn saw_public_key(&self, remote: &str, key: Option<&str>) {
        if let Err(error) = keep_public_key(self.tenant, remote, key).await {
            tracing::warn!(atsign = %self.tenant.atsign, remote, %error,
                "the copy of another atSign's public key could not be kept");
        }
    }
}

/// Keeps `cached:public:publickey@remote` (ttr -1) as `remote`'s server
/// publishes it. When it changed (`remote` was onboarded again, so it can
/// no longer read what was encrypted for its old key), the shared key
/// `shared_key.<remote>@me` is first moved aside to
/// `shared_key.<remote>.until.<epoch ms>@me`, so the owner's clients make
/// a new one (server-to-server.md §5.3). Every write is committed: the
/// owner's devices see the change.
async fn keep_public_key(tenant: &Tenant, remote: &str, key: Option<&str>) -> Result<(), String> {
    let Some(key) = key else { return Ok(()) };
    let copy_name = format!("cached:public:publickey{remote}");
    let copy = tenant.store.get(&copy_name).map_err(|e| e.to_string())?;
    let known = copy.as_ref().and_then(|record| record.value.as_deref());
    if known == Some(key) {
        return Ok(());
    }
    let now = crate::storage::actor::now_ms();
    if known.is_some() {
        let name = remote.trim_start_matches('@');
        let shared = format!("shared_key.{name}{}", tenant.atsign);
        if let Some(record) = tenant.store.get(&shared).map_err(|e| e.to_string())? {
            let retired = format!("shared_key.{name}.until.{now}{}", tenant.atsign);
            write(tenant, retired, Some(record)).await?;
            write(tenant, shared, None).await?;
        }
    }
    let mut record = StoredRecord::written_by(Some(key.to_string()), remote, now);
    record.meta.ttr = Some(-1);
    write(tenant, copy_name, Some(record)).await
}

/// A committed write of `record` (or a delete) at `key`.
async fn write(tenant: &Tenant, key: String, record: Option<StoredRecord>) -> Result<(), String> {
    tenant
        .store
        .write(key, true, move |_| {
            Ok(match record {
                Some(record) => Mutation::Put(Box::new(record), CommitOp::Update),
                None => Mutation::Delete,
            })
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(tenant: &Tenant, key: &str) -> Option<String> {
        tenant.store.get(key).ok().flatten().and_then(|r| r.value)
    }

    #[test]
    fn a_changed_public_key_retires_the_shared_key_and_is_kept_again() {
        let tenant = crate::context::testing::tenant("@keeper");
        futures_lite::future::block_on(async {
            keep_public_key(&tenant, "@peer", Some("KEY1"))
                .await
                .expect("first");
            assert_eq!(
                value(&tenant, "cached:public:publickey@peer").as_deref(),
                Some("KEY1")
            );
            write(
                &tenant,
                "shared_key.peer@keeper".into(),
                Some(StoredRecord::written_by(Some("AES".into()), "@keeper", 1)),
            )
            .await
            .expect("shared key");
            // Unchanged: nothing moves.
            keep_public_key(&tenant, "@peer", Some("KEY1"))
                .await
                .expect("same");
            assert_eq!(
                value(&tenant, "shared_key.peer@keeper").as_deref(),
                Some("AES")
            );
            // No key published: nothing moves either.
            keep_public_key(&tenant, "@peer", None).await.expect("none");
            assert_eq!(
                value(&tenant, "shared_key.peer@keeper").as_deref(),
                Some("AES")
            );
            // Re-onboarded: the shared key is retired, the copy replaced.
            keep_public_key(&tenant, "@peer", Some("KEY2"))
                .await
                .expect("changed");
            assert_eq!(value(&tenant, "shared_key.peer@keeper"), None);
            assert_eq!(
                value(&tenant, "cached:public:publickey@peer").as_deref(),
                Some("KEY2")
            );
            let mut retired = Vec::new();
            tenant
                .store
                .for_each_page("shared_key.peer.until.", None, 10, |key, _| {
                    retired.push(key.to_string());
                    true
                })
                .expect("scan");
            assert_eq!(retired.len(), 1, "{retired:?}");
            assert!(retired[0].ends_with("@keeper"), "{retired:?}");
            assert_eq!(value(&tenant, &retired[0]).as_deref(), Some("AES"));
        });
    }
}
