//! The only place that turns results and errors into response bytes
//! (wire.md §4, errors.md §1–§2).
//!
//! Every ordinary response is `<payload>\n<prompt>`; the Dart reader treats
//! `\n@` as the end of a response, so payload text never contains a newline:
//! messages are flattened to one line here.

use crate::error::{AtCode, AtError};

/// The prompt written after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt<'a> {
    /// `@`: not authenticated.
    Anonymous,
    /// `@alice@`: owner-authenticated; carries `"@alice"`.
    Owner(&'a str),
    /// `@bob@`: pol-authenticated as another atSign; carries `"@bob"`.
    Pol(&'a str),
    /// Nothing: a connection in monitor mode, whose clients read it line by
    /// line and would take a prompt for the start of the next line
    /// (clients.md, Monitor).
    Silent,
}

impl Prompt<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Prompt::Anonymous => out.push(b'@'),
            Prompt::Silent => {}
            Prompt::Owner(a) | Prompt::Pol(a) => {
                if !a.starts_with('@') {
                    out.push(b'@');
                }
                out.extend_from_slice(a.as_bytes());
                out.push(b'@');
            }
        }
    }
}

/// Which exception-error format the client asked for (errors.md §1.1/§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `error:AT0015-<description>`.
    Legacy,
    /// `error:{"errorCode":"AT0015","errorDescription":"<description>"}`,
    /// for clients that announced a version above 3.0.37.
    Json,
}

/// Appends `s` with every CR/LF replaced by a space, so nothing we write can
/// end a response early or fake a prompt.
fn push_line(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
    }
}

/// `data:<payload>\n<prompt>`.
pub fn data(out: &mut Vec<u8>, payload: &str, prompt: Prompt<'_>) {
    out.extend_from_slice(b"data:");
    push_line(out, payload);
    out.push(b'\n');
    prompt.write(out);
}

/// `data: <payload>\n<prompt>`: the spaced form `stats` and `notify:all` use.
pub fn data_spaced(out: &mut Vec<u8>, payload: &str, prompt: Prompt<'_>) {
    out.extend_from_slice(b"data: ");
    push_line(out, payload);
    out.push(b'\n');
    prompt.write(out);
}

/// The prompt alone: the answer to a successful `pol` (`@bob@`, no
/// payload, no newline).
pub fn bare_prompt(out: &mut Vec<u8>, prompt: Prompt<'_>) {
    prompt.write(out);
}

/// The description of an exception error: `<generic> : <message>` on an
/// owner-authenticated connection, `Exception: <message>` otherwise.
pub fn description(err: &AtError, owner_authenticated: bool) -> String {
    if owner_authenticated {
        format!("{} : {}", err.code.description(), err.message)
    } else {
        format!("Exception: {}", err.message)
    }
}

/// An exception error (errors.md §1.1/§1.2). The prompt is `@alice@` when
/// owner-authenticated and `@` otherwise — never the pol prompt, as the
/// reference's global exception handler only knows owner auth.
/// `owner_prompt` is the owner atSign (`"@alice"`).
pub fn error(
    out: &mut Vec<u8>,
    err: &AtError,
    style: ErrorStyle,
    owner_authenticated: bool,
    owner_prompt: &str,
) {
    let prompt = if owner_authenticated {
        Prompt::Owner(owner_prompt)
    } else {
        Prompt::Anonymous
    };
    error_with_prompt(out, err, style, owner_authenticated, prompt);
}

/// [`error`] with the prompt chosen by the caller (a monitor connection
/// writes none).
pub fn error_with_prompt(
    out: &mut Vec<u8>,
    err: &AtError,
    style: ErrorStyle,
    owner_authenticated: bool,
    prompt: Prompt<'_>,
) {
    let desc = description(err, owner_authenticated);
    out.extend_from_slice(b"error:");
    match style {
        ErrorStyle::Legacy => {
            out.extend_from_slice(err.code.code().as_bytes());
            out.push(b'-');
            push_line(out, &desc);
        }
        ErrorStyle::Json => {
            let mut j = String::with_capacity(desc.len() + 48);
            let mut w = super::json::ObjectWriter::new(&mut j);
            w.field_str("errorCode", err.code.code())
                .field_str("errorDescription", &desc);
            w.finish();
            // JSON escaping already turned newlines into `\n` text.
            out.extend_from_slice(j.as_bytes());
        }
    }
    out.push(b'\n');
    prompt.write(out);
}

/// A response-object error: `error:<code>:<message>\n<prompt>` (colon, never
/// JSON, normal prompt rules). `code` is e.g. `"AT0026"`, or `"null"` for the
/// reference's `stats` failures.
pub fn response_error(out: &mut Vec<u8>, code: &str, msg: &str, prompt: Prompt<'_>) {
    out.extend_from_slice(b"error:");
    push_line(out, code);
    out.push(b':');
    push_line(out, msg);
    out.push(b'\n');
    prompt.write(out);
}

/// The inbound-limit refusal: `error:AT0012-<detail>\n`, no prompt; the
/// connection is closed after it. `detail` starts with the reference's
/// `Inbound connection limit exceeded` and names the limit.
pub fn inbound_limit(out: &mut Vec<u8>, detail: &str) {
    out.extend_from_slice(b"error:");
    out.extend_from_slice(AtCode::InboundConnectionLimit.code().as_bytes());
    out.push(b'-');
    push_line(out, detail);
    out.push(b'\n');
}

/// A pushed monitor notification: `notification: <json>\n`, no prompt.
pub fn notification(out: &mut Vec<u8>, json: &str) {
    out.extend_from_slice(b"notification: ");
    push_line(out, json);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn data_and_prompts() {
        let mut o = Vec::new();
        data(&mut o, "5", Prompt::Owner("@alice"));
        data(&mut o, "null", Prompt::Anonymous);
        data(&mut o, "ok", Prompt::Pol("bob"));
        assert_eq!(s(o), "data:5\n@alice@data:null\n@data:ok\n@bob@");
        let mut o = Vec::new();
        data_spaced(
            &mut o,
            r#"[{"id":"3","name":"lastCommitID","value":"1"}]"#,
            Prompt::Owner("@alice"),
        );
        assert_eq!(
            s(o),
            "data: [{\"id\":\"3\",\"name\":\"lastCommitID\",\"value\":\"1\"}]\n@alice@"
        );
    }

    #[test]
    fn errors_match_errors_md_examples() {
        let e = AtError::invalid_command();
        let mut o = Vec::new();
        error(&mut o, &e, ErrorStyle::Legacy, false, "@alice");
        assert_eq!(s(o), "error:AT0003-Exception: invalid command\n@");
        let mut o = Vec::new();
        error(&mut o, &e, ErrorStyle::Legacy, true, "@alice");
        assert_eq!(
            s(o),
            "error:AT0003-Invalid syntax : invalid command\n@alice@"
        );
        let mut o = Vec::new();
        error(
            &mut o,
            &AtError::key_not_found("phone@alice"),
            ErrorStyle::Json,
            true,
            "@alice",
        );
        assert_eq!(
            s(o),
            "error:{\"errorCode\":\"AT0015\",\"errorDescription\":\"key not found : phone@alice does not exist in keystore\"}\n@alice@"
        );
    }

    #[test]
    fn no_payload_can_fake_a_prompt() {
        let mut o = Vec::new();
        error(
            &mut o,
            &AtError::new(AtCode::InvalidSyntax, "a\n@b\r\n"),
            ErrorStyle::Legacy,
            false,
            "@alice",
        );
        response_error(&mut o, "AT0026", "x\ny", Prompt::Anonymous);
        data(&mut o, "v\n@x", Prompt::Anonymous);
        let text = s(o);
        assert_eq!(text.matches("\n@").count(), 3, "{text:?}");
    }

    #[test]
    fn response_errors_inbound_limit_and_notifications() {
        let mut o = Vec::new();
        response_error(
            &mut o,
            "AT0026",
            "enrollment_id: 123 is pending",
            Prompt::Pol("@bob"),
        );
        inbound_limit(&mut o, "Inbound connection limit exceeded");
        notification(&mut o, "{\"id\":\"-1\"}");
        assert_eq!(
            s(o),
            "error:AT0026:enrollment_id: 123 is pending\n@bob@error:AT0012-Inbound connection limit exceeded\nnotification: {\"id\":\"-1\"}\n"
        );
    }
}
