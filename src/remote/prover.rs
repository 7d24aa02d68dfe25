//! A hosted atSign as a `pol` prover: its signing key from its own store,
//! and its cookie published there for the verifier to look up.

use std::sync::Arc;

use super::outbound::Prover;
use crate::auth::signing::{self, SigningKey};
use crate::context::Tenant;
use crate::limits::POL_COOKIE_TTL_MS;
use crate::storage::{CommitOp, Mutation, StoredRecord};

/// Proves `tenant`'s atSign to other servers.
pub struct TenantProver<'a> {
    tenant: &'a Arc<Tenant>,
    key: SigningKey,
}

impl<'a> TenantProver<'a> {
    /// Loads the tenant's signing key (`@me:signing_privatekey@me`).
    pub fn load(tenant: &'a Arc<Tenant>) -> Result<TenantProver<'a>, String> {
        let key = signing::load(&tenant.store, &tenant.atsign).map_err(|e| e.to_string())?;
        Ok(TenantProver { tenant, key })
    }
}

impl Prover for TenantProver<'_> {
    fn atsign(&self) -> &str {
        &self.tenant.atsign
    }

    fn sign(&self, token: &[u8]) -> Result<String, String> {
        self.key.sign_base64(token).map_err(|e| e.to_string())
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
}
