//! Checks on the keys named by owner writes, shared by `update`,
//! `update:meta` and `delete`.

use crate::error::{AtCode, AtError};

/// Checks that a key's owner part, if present, is the caller's atSign.
pub(super) fn check_owner(
    owner: Option<&str>,
    tenant_atsign: &str,
    verb: &str,
) -> Result<(), AtError> {
    if let Some(owner) = owner {
        let owner = crate::protocol::atsign::normalize_atsign(owner).map_err(AtError::from)?;
        if owner != tenant_atsign {
            return Err(AtError::new(
                AtCode::InvalidKey,
                format!(
                    "Invalid {verb} command - sharedBy atsign {owner} should be same as current atsign {tenant_atsign}"
                ),
            ));
        }
    }
    Ok(())
}

/// The reference's key-length rule (AT0016).
pub(super) fn check_key_length(key: &str) -> Result<(), AtError> {
    let max = if key.starts_with("cached:") {
        crate::limits::CACHED_KEY_CHARS_MAX
    } else {
        crate::limits::KEY_CHARS_MAX
    };
    let len = crate::protocol::atkey::reference_len(key);
    if len > max {
        return Err(AtError::new(
            AtCode::InvalidKey,
            format!("key length {len} is greater than max allowed {max} chars"),
        ));
    }
    Ok(())
}
