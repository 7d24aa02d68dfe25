//! normalise + identify + parse must never panic on any line, and whatever
//! parses must survive encode -> parse unchanged (the canonical encoder is
//! what outbound connections send).
#![no_main]

use atserver::protocol::parse::{normalize, parse_normalized};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let n = normalize(line);
    let Ok(cmd) = parse_normalized(&n) else {
        return;
    };
    let text = cmd.to_string();
    let n2 = normalize(&text);
    let again = parse_normalized(&n2);
    assert_eq!(
        again.as_ref(),
        Ok(&cmd),
        "line {line:?} encoded as {text:?}"
    );
});
