//! Reading notifications and notify replies in tests.

use atserver::protocol::json::{self, JsonValue};

/// The JSON of one `notification: {…}` line.
pub fn parse_line(line: &str) -> JsonValue {
    let body = line
        .strip_prefix("notification: ")
        .unwrap_or_else(|| panic!("not a notification line: {line:?}"));
    json::parse(body).unwrap_or_else(|e| panic!("{e:?}: {body}"))
}

/// The string field `name` of a notification's JSON.
pub fn field<'a>(v: &'a JsonValue, name: &str) -> &'a str {
    v.get(name)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("no string {name} in {v:?}"))
}

/// The id in a `notify` reply `data:<id>\n<prompt>`.
pub fn id_of(reply: &str, prompt: &str) -> String {
    reply
        .strip_prefix("data:")
        .and_then(|r| r.strip_suffix(&format!("\n{prompt}")))
        .unwrap_or_else(|| panic!("not an id reply: {reply:?}"))
        .to_string()
}
