//! `scan[:showhidden:true|false][:@atsign][:page:<n>][ <regex>]`.
//!
//! Owner: every live key except `private:`/`privatekey:` keys, `public:_x`
//! keys, keys without an owner, and (unless `showhidden:true`) keys whose name
//! starts with `_`. Unauthenticated: live `public:` keys not starting with
//! `public:_`, shown without `public:`. The regex is tested with search
//! semantics against the full stored key name.

use super::lookup::remote_not_supported;
use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::command::Scan;
use crate::protocol::json;

pub fn apply(
    server: &ServerContext,
    caller: &Caller,
    cmd: Scan<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    if cmd.commit_log {
        return Err(AtError::new(
            AtCode::InternalServerException,
            "scan:cl is not supported by this server yet",
        ));
    }
    let regex = match cmd.regex {
        Some(text) => Some(super::pattern::compile(text)?),
        None => None,
    };
    let matches = |key: &str| regex.as_ref().is_none_or(|r| r.is_match(key));
    let now = now_ms();
    payload.push('[');
    let mut first = true;
    let mut emit = |payload: &mut String, shown: &str| {
        if !first {
            payload.push(',');
        }
        first = false;
        json::write_str(payload, shown);
    };
    if let Caller::Owner(me) = caller {
        if let Some(other) = cmd.for_atsign {
            return Err(remote_not_supported(other));
        }
        let show_hidden = cmd.show_hidden.unwrap_or(false);
        me.tenant().store.for_each(|key, record| {
            if record.is_active(now) && owner_sees(key, show_hidden) && matches(key) {
                emit(payload, key);
            }
            true
        })?;
    } else {
        if cmd.for_atsign.is_some() {
            return Err(AtError::needs_auth());
        }
        let named = match caller {
            Caller::Anonymous(anonymous) => anonymous.tenant(),
            Caller::Peer(peer) => Some(peer.tenant()),
            Caller::Owner(owner) => Some(owner.tenant()),
        };
        let tenants: Vec<_> = match named {
            Some(tenant) => vec![tenant.clone()],
            None => server.tenants.values().cloned().collect(),
        };
        for tenant in tenants {
            tenant.store.for_each(|key, record| {
                if key.starts_with("public:")
                    && !key.starts_with("public:_")
                    && record.is_active(now)
                    && matches(key)
                {
                    emit(payload, &key.replace("public:", ""));
                }
                true
            })?;
        }
    }
    payload.push(']');
    Ok(Reply::Data)
}

fn owner_sees(key: &str, show_hidden: bool) -> bool {
    if key.starts_with("private:") || key.starts_with("privatekey:") || !key.contains('@') {
        return false;
    }
    if key.starts_with("public:__") || key.starts_with('_') {
        return show_hidden;
    }
    !key.starts_with("public:_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_see_hidden_keys_only_when_asked() {
        assert!(owner_sees("phone@alice", false));
        assert!(owner_sees("public:x@alice", false));
        assert!(owner_sees("@bob:x@alice", false));
        assert!(owner_sees("cached:public:publickey@bob", false));
        assert!(!owner_sees("_hidden@alice", false));
        assert!(owner_sees("_hidden@alice", true));
        assert!(!owner_sees("public:__x@alice", false));
        assert!(owner_sees("public:__x@alice", true));
        assert!(!owner_sees("public:_x@alice", true));
        assert!(!owner_sees("privatekey:at_pkam_publickey", true));
        assert!(!owner_sees("private:blocklist@alice", true));
    }
}
