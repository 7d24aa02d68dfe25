//! The owner's reads of another atSign's data through that atSign's server
//! (server-to-server.md §5): always a remote `lookup:all:`, rendered here as
//! the operation the client asked for.

use std::sync::Arc;

use super::metadata::{write_all_json, write_meta_json};
use super::{Reply, now_ms, remote_cache};
use crate::client::Reply as RemoteReply;
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::protocol::command::LookupOp;
use crate::protocol::json::{self, JsonValue};
use crate::remote::outbound::relay;
use crate::remote::peers::PeerAccess;
use crate::storage::StoredRecord;

/// How the remote server is asked.
pub(super) enum Asking {
    /// On a connection pol-authenticated as the owner (`lookup`: the
    /// remote server reads `@me:<key>@<owner>`).
    AsOwner,
    /// Unauthenticated (`plookup`: the remote server reads its public key).
    Anonymously,
}

/// One read of another atSign's data.
pub(super) struct RemoteRead<'a> {
    /// The owner asking, whose store keeps the `cached:` copy.
    pub me: &'a Arc<Tenant>,
    pub op: LookupOp,
    /// The key the remote record is known by: `@me:<name>@<owner>` (asked
    /// as the owner) or `public:<name>@<owner>` (asked anonymously); its
    /// copy here is `cached:<remote_key>`.
    pub remote_key: &'a str,
    /// `bypassCache:true`: ask the owner's server even when a fresh copy
    /// is here (the copy is still refreshed).
    pub bypass_cache: bool,
}

/// Where a remote key lives and how it is asked for.
pub(super) struct Origin<'a> {
    pub asking: Asking,
    /// The other atSign, with its `@`.
    pub owner: &'a str,
    /// The key name as sent, without the owner.
    pub name: &'a str,
}

/// `public:<name>@<owner>` is asked for anonymously, `@me:<name>@<owner>`
/// as the owner; anything else names no other atSign's key.
pub(super) fn origin_of<'a>(remote_key: &'a str, me: &str) -> Option<Origin<'a>> {
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

/// Serves `read` from a fresh cached copy, or looks it up on the owner's
/// server (then keeps a copy as its metadata allows), and writes the `op`
/// rendering of the answer.
pub(super) async fn lookup(
    peers: &dyn PeerAccess,
    read: RemoteRead<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let origin = origin_of(read.remote_key, &read.me.atsign).ok_or_else(|| {
        AtError::new(
            AtCode::InvalidKey,
            format!("{} names no other atSign's key", read.remote_key),
        )
    })?;
    let now = now_ms();
    let store = &read.me.store;
    if !read.bypass_cache
        && let Some(copy) = remote_cache::fresh_copy(store, read.remote_key, now)?
    {
        render_copy(
            &copy,
            read.op,
            &remote_cache::cached_key(read.remote_key),
            payload,
        );
        return Ok(Reply::Data);
    }
    let line = format!("lookup:all:{}{}", origin.name, origin.owner);
    let answer = match origin.asking {
        Asking::AsOwner => peers.request_as(read.me, origin.owner, &line).await,
        Asking::Anonymously => peers.request_anonymous(origin.owner, &line).await,
    };
    let answer = answer.map_err(|e| e.to_at_error())?;
    let record = match remote_record(&answer, read.remote_key) {
        Ok(record) => record,
        Err(error) => {
            if error.code == AtCode::KeyNotFound {
                remote_cache::forget(store, read.remote_key).await;
            }
            return Err(error);
        }
    };
    render(&record, read.op, payload)?;
    let public = matches!(origin.asking, Asking::Anonymously);
    if let Some(copy) = remote_cache::copy_of(&record, public, origin.owner, now) {
        remote_cache::keep(store, read.remote_key, copy).await;
    }
    Ok(Reply::Data)
}

/// A cached copy as the operation asked: the `all` object shows the copy's
/// own name (`cached:…`), which clients use to tell cache hits.
fn render_copy(copy: &StoredRecord, op: LookupOp, cached_key: &str, payload: &mut String) {
    match op {
        LookupOp::Value => payload.push_str(copy.value.as_deref().unwrap_or("null")),
        LookupOp::Meta => write_meta_json(payload, &copy.meta),
        LookupOp::All => write_all_json(payload, cached_key, copy),
    }
}

/// The `{key, data, metaData}` object a remote `lookup:all` answered, or
/// the error to relay: the remote error itself, and for `data:null` (a
/// record that is not born or has expired there) "not found".
fn remote_record(answer: &RemoteReply, shown_key: &str) -> Result<JsonValue, AtError> {
    if answer.is_error() {
        return Err(relay(answer.payload()));
    }
    let data = answer.data().unwrap_or_default();
    if data == b"null" {
        return Err(inactive_remote_record(shown_key));
    }
    let text = std::str::from_utf8(data)
        .map_err(|_| AtError::new(AtCode::SecondaryConnect, "the remote answer is not UTF-8"))?;
    let record = json::parse(text).map_err(|_| {
        AtError::new(
            AtCode::SecondaryConnect,
            "the remote answer is not a lookup:all object",
        )
    })?;
    if record.get("data").is_none() && record.get("metaData").is_none() {
        return Err(AtError::new(
            AtCode::SecondaryConnect,
            "the remote answer is not a lookup:all object",
        ));
    }
    Ok(record)
}

/// The error for another atSign's record that exists but is not born yet
/// or has expired: the owner's server answers `data:null`, which the
/// reference's requester turns into "not found".
pub(super) fn inactive_remote_record(key: &str) -> AtError {
    AtError::new(
        AtCode::KeyNotFound,
        format!("remoteLookUp: remote atServer returned String value 'null' for {key}"),
    )
}

/// Writes the value, the metadata object or the whole object.
fn render(record: &JsonValue, op: LookupOp, payload: &mut String) -> Result<(), AtError> {
    match op {
        LookupOp::All => record.write(payload),
        LookupOp::Meta => match record.get("metaData") {
            Some(meta) => meta.write(payload),
            None => payload.push_str("null"),
        },
        LookupOp::Value => match record.get("data") {
            Some(JsonValue::String(value)) => payload.push_str(value),
            Some(JsonValue::Null) | None => payload.push_str("null"),
            Some(other) => other.write(payload),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn reply(bytes: &str) -> RemoteReply {
        RemoteReply::from_bytes_for_tests(bytes)
    }

    #[test]
    fn a_remote_record_renders_as_each_operation() {
        let answer = reply(
            "data:{\"key\":\"@alice:phone@bob\",\"data\":\"123\",\"metaData\":{\"ttl\":0}}\n@",
        );
        let record = remote_record(&answer, "@alice:phone@bob").expect("record");
        let mut out = String::new();
        render(&record, LookupOp::Value, &mut out).expect("value");
        assert_eq!(out, "123");
        out.clear();
        render(&record, LookupOp::Meta, &mut out).expect("meta");
        assert_eq!(out, "{\"ttl\":0}");
        out.clear();
        render(&record, LookupOp::All, &mut out).expect("all");
        assert_eq!(
            out,
            "{\"key\":\"@alice:phone@bob\",\"data\":\"123\",\"metaData\":{\"ttl\":0}}"
        );
    }

    #[test]
    fn remote_errors_and_nulls_become_the_reference_errors() {
        let missing =
            reply("error:AT0015-Exception: @alice:nokey@bob does not exist in keystore\n@");
        let e = remote_record(&missing, "@alice:nokey@bob").expect_err("relayed");
        assert_eq!(e.code, AtCode::KeyNotFound);
        assert_eq!(
            e.message,
            "Exception: @alice:nokey@bob does not exist in keystore"
        );
        let null = reply("data:null\n@");
        let e = remote_record(&null, "@alice:x@bob").expect_err("null");
        assert_eq!(e.code, AtCode::KeyNotFound);
        let junk = reply("data:[1,2]\n@");
        assert_eq!(
            remote_record(&junk, "@alice:x@bob").expect_err("junk").code,
            AtCode::SecondaryConnect
        );
    }
}
