//! `info`, `info:brief`: version, uptime and the features this server serves.

use super::Reply;
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
const FEATURES_JSON: &str = concat!(
    r#"[{"name":"notify.multi","status":"GA","description":"one notification to several atSigns"},"#,
    r#"{"name":"notify.eAtn","status":"GA","description":"a notification's own expiry as a timestamp"},"#,
    r#"{"name":"notify.all","status":"Deprecated","description":"superseded by notify.multi"}]"#
);

pub fn apply(server: &ServerContext, cmd: Info, payload: &mut String) -> Result<Reply, AtError> {
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
    obj.finish();
    Ok(Reply::Data)
}
