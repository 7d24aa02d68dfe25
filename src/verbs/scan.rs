//! `scan[:showhidden:true|false][:@atsign][:page:<n>][ <regex>]`.
//!
//! Owner: every live key except `private:`/`privatekey:` keys, `public:_x`
//! keys, keys without an owner, and (unless `showhidden:true`) keys whose name
//! starts with `_`. Unauthenticated: live `public:` keys not starting with
//! `public:_`, shown without `public:`. The regex is tested with search
//! semantics against the full stored key name.

use std::sync::Arc;

use super::{Reply, now_ms};
use crate::connection::Caller;
use crate::context::{ServerContext, Tenant};
use crate::error::{AtCode, AtError};
use crate::limits::{SCAN_KEYS_MAX, SCAN_PAGE_KEYS, SCAN_REPLY_BYTES_MAX};
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::Scan;
use crate::protocol::json;
use crate::remote::outbound::relay;
use crate::remote::peers::PeerAccess;

/// What a scan shows and of which keys.
struct View<'a> {
    /// Only keys whose stored name starts with this are read: `public:`
    /// for callers that see public keys only, so their scan costs what it
    /// returns rather than what the store holds.
    prefix: &'a str,
    /// Whether a key (live, matching) is listed, and how it is shown.
    shown: &'a dyn Fn(&str) -> Option<String>,
}

/// Scans page by page ([`SCAN_PAGE_KEYS`] keys each), giving the shard to
/// other connections between pages, and stops with an error past
/// [`SCAN_KEYS_MAX`] keys or [`SCAN_REPLY_BYTES_MAX`] bytes.
pub async fn apply(
    server: &ServerContext,
    peers: &dyn PeerAccess,
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
    if let (Caller::Owner(me), Some(other)) = (caller, cmd.for_atsign) {
        let other = normalize_atsign(other).map_err(AtError::from)?;
        if other != me.atsign() {
            return match server.tenant(&other).cloned() {
                // Hosted here: what @other shared with the owner, as @other's
                // server would list it to a pol connection.
                Some(tenant) => {
                    let mut listing = Listing::start(payload);
                    list_shared_with(&mut listing, &tenant, me.atsign(), &matches).await?;
                    listing.finish();
                    Ok(Reply::Data)
                }
                None => remote_scan(peers, me.tenant(), &other, cmd.regex, payload).await,
            };
        }
    }
    let mut listing = Listing::start(payload);
    match caller {
        Caller::Owner(me) => {
            let show_hidden = cmd.show_hidden.unwrap_or(false);
            let enrolled = me.enrollment();
            let shown = |key: &str| {
                let granted = enrolled.is_none_or(|e| enrollment_sees(&e.namespaces, key));
                (granted && owner_sees(key, show_hidden) && matches(key)).then(|| key.to_string())
            };
            let view = View {
                prefix: "",
                shown: &shown,
            };
            listing.scan(me.tenant(), &view).await?;
        }
        Caller::Peer(peer) => {
            if cmd.for_atsign.is_some() {
                return Err(AtError::needs_auth());
            }
            list_shared_with(&mut listing, peer.tenant(), peer.atsign(), &matches).await?;
        }
        Caller::Anonymous(anonymous) => {
            if cmd.for_atsign.is_some() {
                return Err(AtError::needs_auth());
            }
            let tenants: Vec<_> = match anonymous.tenant() {
                Some(tenant) => vec![tenant.clone()],
                None => server.tenants.values().cloned().collect(),
            };
            let shown = |key: &str| {
                (!key.starts_with("public:_") && matches(key)).then(|| key.replace("public:", ""))
            };
            let view = View {
                prefix: "public:",
                shown: &shown,
            };
            for tenant in &tenants {
                listing.scan(tenant, &view).await?;
            }
        }
    }
    listing.finish();
    Ok(Reply::Data)
}

/// Lists the keys of `tenant` shared with `with` (`@bob:<key>@alice`),
/// shown without the `@bob:` prefix: what a pol connection as @bob sees.
async fn list_shared_with(
    listing: &mut Listing<'_>,
    tenant: &Arc<Tenant>,
    with: &str,
    matches: &dyn Fn(&str) -> bool,
) -> Result<(), AtError> {
    let prefix = format!("{with}:");
    let shown = |key: &str| {
        (!key.starts_with("public:_") && matches(key))
            .then(|| key.strip_prefix(prefix.as_str()).unwrap_or(key).to_string())
    };
    let view = View {
        prefix: &prefix,
        shown: &shown,
    };
    listing.scan(tenant, &view).await
}

/// `scan:@other` for an atSign hosted elsewhere: a `scan[ <regex>]` on a
/// connection pol-authenticated as the owner, whose list is relayed.
async fn remote_scan(
    peers: &dyn PeerAccess,
    me: &Arc<Tenant>,
    other: &str,
    regex: Option<&str>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let line = match regex {
        Some(regex) => format!("scan {regex}"),
        None => "scan".to_string(),
    };
    let answer = peers
        .request_as(me, other, &line)
        .await
        .map_err(|e| e.to_at_error())?;
    if answer.is_error() {
        return Err(relay(answer.payload()));
    }
    let list = answer
        .data()
        .and_then(|d| std::str::from_utf8(d).ok())
        .filter(|d| matches!(json::parse(d), Ok(json::JsonValue::Array(_))))
        .ok_or_else(|| AtError::new(AtCode::SecondaryConnect, "the remote scan is not a list"))?;
    if list.len() > SCAN_REPLY_BYTES_MAX {
        return Err(AtError::new(
            AtCode::IllegalArguments,
            format!("the remote scan is longer than {SCAN_REPLY_BYTES_MAX} bytes"),
        ));
    }
    payload.push_str(list);
    Ok(Reply::Data)
}

/// The JSON list being written, with the bounds it must stay within.
struct Listing<'p> {
    payload: &'p mut String,
    keys: usize,
    keys_max: usize,
    bytes_max: usize,
    page_keys: usize,
}

impl<'p> Listing<'p> {
    fn start(payload: &'p mut String) -> Listing<'p> {
        Listing::with_bounds(payload, SCAN_KEYS_MAX, SCAN_REPLY_BYTES_MAX, SCAN_PAGE_KEYS)
    }

    fn with_bounds(
        payload: &'p mut String,
        keys_max: usize,
        bytes_max: usize,
        page_keys: usize,
    ) -> Listing<'p> {
        payload.push('[');
        Listing {
            payload,
            keys: 0,
            keys_max,
            bytes_max,
            page_keys,
        }
    }

    fn finish(self) {
        self.payload.push(']');
    }

    /// Lists `tenant`'s live keys that `view` shows.
    async fn scan(&mut self, tenant: &Arc<Tenant>, view: &View<'_>) -> Result<(), AtError> {
        let now = now_ms();
        let mut after: Option<String> = None;
        loop {
            let mut over = false;
            let page = tenant.store.for_each_page(
                view.prefix,
                after.as_deref(),
                self.page_keys,
                |key, record| {
                    if !record.is_active(now) {
                        return true;
                    }
                    let Some(shown) = (view.shown)(key) else {
                        return true;
                    };
                    if self.keys > 0 {
                        self.payload.push(',');
                    }
                    json::write_str(self.payload, &shown);
                    self.keys += 1;
                    over = self.keys > self.keys_max || self.payload.len() > self.bytes_max;
                    !over
                },
            )?;
            if over {
                return Err(AtError::new(
                    AtCode::IllegalArguments,
                    format!(
                        "scan would list more than {} keys or {} bytes: narrow it with a regex",
                        self.keys_max, self.bytes_max
                    ),
                ));
            }
            match page.resume_after {
                Some(last) => {
                    after = Some(last);
                    // Give the shard to other connections between pages.
                    futures_lite::future::yield_now().await;
                }
                None => return Ok(()),
            }
        }
    }
}

/// What an APKAM connection lists besides what the owner sees (verbs.md
/// §11): everything with `*`; otherwise `public:` keys and keys of a
/// namespace it holds, never `__manage` ones, never keys without one.
fn enrollment_sees(namespaces: &crate::auth::namespaces::Namespaces, key: &str) -> bool {
    use crate::auth::namespaces::{ALL, MANAGE};
    let namespace = crate::protocol::atkey::namespace(key).map(str::to_ascii_lowercase);
    if namespace.as_deref() == Some(MANAGE) {
        return false;
    }
    if namespaces.exactly(ALL).is_some() || key.starts_with("public:") {
        return true;
    }
    namespace.is_some_and(|ns| namespaces.access_to(&format!("x.{ns}@x")).is_some())
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
    use crate::storage::{CommitOp, Mutation, StoredRecord};

    fn tenant_with(atsign: &str, keys: &[&str]) -> Arc<Tenant> {
        let tenant = crate::context::testing::tenant(atsign);
        for key in keys {
            let writer = atsign.to_string();
            let write = tenant.store.write(key.to_string(), false, move |_| {
                let record = StoredRecord::written_by(Some("v".into()), &writer, now_ms());
                Ok(Mutation::Put(Box::new(record), CommitOp::Update))
            });
            futures_lite::future::block_on(write).expect("write");
        }
        tenant
    }

    fn list(tenant: &Arc<Tenant>, view: &View<'_>, keys_max: usize) -> Result<String, AtError> {
        let mut payload = String::new();
        let mut listing = Listing::with_bounds(&mut payload, keys_max, usize::MAX, 2);
        futures_lite::future::block_on(listing.scan(tenant, view))?;
        listing.finish();
        Ok(payload)
    }

    #[test]
    fn a_scan_in_small_pages_lists_every_key_once_in_order() {
        let keys = [
            "a.x@pages",
            "b.x@pages",
            "c.x@pages",
            "public:d@pages",
            "e.x@pages",
        ];
        let tenant = tenant_with("@pages", &keys);
        let all = |key: &str| Some(key.to_string());
        let view = View {
            prefix: "",
            shown: &all,
        };
        assert_eq!(
            list(&tenant, &view, 100).expect("listed"),
            r#"["a.x@pages","b.x@pages","c.x@pages","e.x@pages","public:d@pages"]"#
        );
        let public = View {
            prefix: "public:",
            shown: &all,
        };
        assert_eq!(
            list(&tenant, &public, 100).expect("listed"),
            r#"["public:d@pages"]"#,
            "a prefix scan reads only its keys"
        );
    }

    #[test]
    fn a_scan_past_its_key_bound_is_at0022() {
        let tenant = tenant_with("@bounded", &["a@bounded", "b@bounded", "c@bounded"]);
        let all = |key: &str| Some(key.to_string());
        let view = View {
            prefix: "",
            shown: &all,
        };
        assert!(list(&tenant, &view, 3).is_ok());
        let error = list(&tenant, &view, 2).expect_err("over the bound");
        assert_eq!(error.code, AtCode::IllegalArguments);
        assert!(
            error.message.contains("more than 2 keys"),
            "{}",
            error.message
        );
    }

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
