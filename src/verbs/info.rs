//! `info`, `info:brief`: version, uptime and the features this server serves.

use super::Reply;
use crate::connection::Caller;
use crate::context::{PROTOCOL_VERSION, ServerContext};
use crate::error::{AtCode, AtError};
use crate::protocol::command::{Info, InfoForm};
use crate::protocol::json::ObjectWriter;
use crate::protocol::time::uptime_words;

/// Optional protocol features this server implements (changes §8). Clients
/// use only what is listed: `notify.multi` and `notify.eAtn` are served;
/// `notify.all` is served but deprecated, as upstream lists it; `notify.eph`
/// is not listed, because an ephemeral notification here is kept on disk
/// like any other (only its lifetime is clamped), not in memory only.
/// `pkam:signingAlgo:mldsa65` is served but not listed: the reference names
/// no feature for it (changes §8), so none is invented here.
const FEATURES_JSON: &str = concat!(
    r#"[{"name":"notify.multi","status":"GA","description":"one notification to several atSigns"},"#,
    r#"{"name":"notify.eAtn","status":"GA","description":"a notification's own expiry as a timestamp"},"#,
    r#"{"name":"notify.all","status":"Deprecated","description":"superseded by notify.multi"}]"#
);

/// On an APKAM connection `info` also shows the caller's enrollment
/// (`apkam_metadata`, auth.md §4.2).
pub fn apply(
    server: &ServerContext,
    caller: &Caller,
    cmd: Info,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let uptime_ms = u64::try_from(server.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut obj = ObjectWriter::new(payload);
    obj.field_str("version", PROTOCOL_VERSION);
    match cmd.form {
        InfoForm::Plain => {
            obj.field_str("uptimeAsWords", &uptime_words(uptime_ms));
        }
        InfoForm::Brief => {
            obj.field_i64(
                "uptimeAsMillis",
                i64::try_from(uptime_ms).unwrap_or(i64::MAX),
            );
        }
        InfoForm::Mtls | InfoForm::MtlsBrief => {
            return Err(AtError::new(
                AtCode::InternalServerException,
                "info:mtls is not supported by this server yet",
            ));
        }
    }
    obj.field_raw("features", FEATURES_JSON);
    if let Caller::Owner(owner) = caller
        && let Some(enrolled) = owner.enrollment()
        && let Some(record) = crate::auth::enrollment::load(&owner.tenant().store, &enrolled.id)?
    {
        obj.field_raw("apkam_metadata", &record.to_json());
    }
    obj.finish();
    Ok(Reply::Data)
}
