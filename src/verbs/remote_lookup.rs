//! The owner's reads of another atSign's data through that atSign's server
//! (server-to-server.md §5): always a remote `lookup:all:`, rendered here as
//! the operation the client asked for.

use std::sync::Arc;

use super::Reply;
use crate::client::Reply as RemoteReply;
use crate::context::Tenant;
use crate::error::{AtCode, AtError};
use crate::protocol::command::LookupOp;
use crate::protocol::json::{self, JsonValue};
use crate::remote::outbound::relayed_error;
use crate::remote::peers::PeerAccess;

/// How the remote server is asked.
pub(super) enum Asking<'a> {
    /// On a connection pol-authenticated as `me` (`lookup`: the remote
    /// server reads `@me:<key>@<owner>`).
    As(&'a Arc<Tenant>),
    /// Unauthenticated (`plookup`: the remote server reads its public key).
    Anonymously,
}

/// Looks up `name@owner` on `owner`'s server and writes the `op` rendering
/// of the answer; `shown_key` is the key the remote record is known by
/// (`@me:<name>@<owner>` or `public:<name>@<owner>`), for messages.
pub(super) async fn lookup(
    peers: &dyn PeerAccess,
    asking: Asking<'_>,
    owner: &str,
    name: &str,
    op: LookupOp,
    shown_key: &str,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let line = format!("lookup:all:{name}{owner}");
    let answer = match asking {
        Asking::As(me) => peers.request_as(me, owner, &line).await,
        Asking::Anonymously => peers.request_anonymous(owner, &line).await,
    };
    let answer = answer.map_err(|e| e.to_at_error())?;
    let record = remote_record(&answer, shown_key)?;
    render(&record, op, payload)?;
    Ok(Reply::Data)
}

/// The `{key, data, metaData}` object a remote `lookup:all` answered, or
/// the error to relay: the remote error itself, and for `data:null` (a
/// record that is not born or has expired there) "not found".
fn remote_record(answer: &RemoteReply, shown_key: &str) -> Result<JsonValue, AtError> {
    if answer.is_error() {
        return Err(relayed_error(answer.payload()).unwrap_or_else(|| {
            AtError::new(
                AtCode::SecondaryConnect,
                "the remote atServer's error is unreadable",
            )
        }));
    }
    let data = answer.data().unwrap_or_default();
    if data == b"null" {
        return Err(AtError::new(
            AtCode::KeyNotFound,
            format!("remoteLookUp: remote atServer returned String value 'null' for {shown_key}"),
        ));
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
