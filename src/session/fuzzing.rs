//! Whole-session fuzzing logic, owned by the library so the fuzz target is a
//! thin shim (`fuzz/fuzz_targets/session.rs`).
//!
//! The input's first byte picks how the session starts (anonymous or as the
//! owner) and how the rest is cut into pipelined reads; the rest is the raw
//! request bytes. Whatever they are, the session must not panic, and the
//! replies must be exactly one per line that gets one, in order, each a
//! well-formed `data:`/`error:` payload followed by a prompt.

use std::sync::Arc;

use super::transcript::Transcript;
use crate::context::ServerContext;
use crate::protocol::frame::trim_line;

/// Longest read the input is cut into.
const CHUNK_BYTES_MAX: usize = 128;

/// Runs one session from fuzz input against `server`, which hosts
/// `owner = (atsign, cram secret)`. Panics when a property does not hold.
pub fn whole_session(server: &Arc<ServerContext>, owner: (&str, &str), data: &[u8]) {
    let Some((&mode, requests)) = data.split_first() else {
        return;
    };
    let Ok(mut transcript) = Transcript::new(server.clone()) else {
        return;
    };
    if mode & 1 == 1 {
        log_in(&mut transcript, owner);
    }
    let chunk = (usize::from(mode >> 1) % CHUNK_BYTES_MAX) + 1;
    let mut out = Vec::new();
    for piece in requests.chunks(chunk) {
        out.extend_from_slice(&transcript.feed(piece));
    }
    check_replies(requests, &out, transcript.is_closed());
}

/// `from:` then `cram:` with the owner's secret.
fn log_in(transcript: &mut Transcript, (atsign, secret): (&str, &str)) {
    let reply = transcript.send(&format!("from:{atsign}"));
    let challenge = reply
        .strip_prefix("data:")
        .and_then(|rest| rest.strip_suffix("\n@"))
        .unwrap_or_default();
    assert!(!challenge.is_empty(), "from: gave {reply:?}");
    let reply = transcript.send(&crate::client::auth::cram_line(secret, challenge));
    assert_eq!(reply, format!("data:success\n{atsign}@"));
}

/// How many replies the complete lines of `requests` call for (every line
/// gets one, blank lines included), stopping at `@exit`; and whether an
/// `@exit` was reached.
fn expected_replies(requests: &[u8]) -> (usize, bool) {
    let mut lines: Vec<&[u8]> = requests.split(|&b| b == b'\n').collect();
    // The piece after the last `\n` is not a line yet.
    lines.pop();
    let mut count = 0;
    for line in lines {
        let line = trim_line(line.strip_suffix(b"\r").unwrap_or(line));
        if line == b"@exit" {
            return (count, true);
        }
        count += 1;
    }
    (count, false)
}

/// Splits reply bytes into payloads, checking every prompt.
fn payloads(out: &[u8]) -> Vec<&[u8]> {
    if out.is_empty() {
        return Vec::new();
    }
    let mut segments: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    let last = segments.pop().unwrap_or_default();
    assert!(is_prompt(last), "output must end with a prompt: {last:?}");
    let mut found = Vec::new();
    for (i, segment) in segments.into_iter().enumerate() {
        let payload = if i == 0 {
            segment
        } else {
            let end = prompt_len(segment);
            assert!(end > 0, "a reply must start after a prompt: {segment:?}");
            segment.get(end..).unwrap_or_default()
        };
        assert!(
            payload.starts_with(b"data:") || payload.starts_with(b"error:"),
            "not a reply payload: {payload:?}"
        );
        found.push(payload);
    }
    found
}

/// `@` or `@<name>@`.
fn is_prompt(bytes: &[u8]) -> bool {
    match bytes {
        [b'@'] => true,
        [b'@', name @ .., b'@'] => !name.is_empty() && !name.contains(&b'@'),
        _ => false,
    }
}

/// The length of the prompt that starts `segment`, 0 if none does.
fn prompt_len(segment: &[u8]) -> usize {
    for kind in [&b"data:"[..], b"error:"] {
        if segment.get(1..).is_some_and(|rest| rest.starts_with(kind)) && segment[0] == b'@' {
            return 1;
        }
    }
    match segment
        .get(1..)
        .and_then(|rest| rest.iter().position(|&b| b == b'@'))
    {
        Some(at) if is_prompt(&segment[..at + 2]) => at + 2,
        _ => 0,
    }
}

fn check_replies(requests: &[u8], out: &[u8], closed: bool) {
    let (expected, exits) = expected_replies(requests);
    let replies = payloads(out);
    if !closed {
        assert!(!exits, "@exit must close the connection");
        assert_eq!(replies.len(), expected, "one reply per line: {out:?}");
        return;
    }
    assert!(
        replies.len() <= expected,
        "more replies than lines: {out:?}"
    );
    if replies.len() < expected || !exits {
        let last = replies.last().copied().unwrap_or_default();
        assert!(
            last.starts_with(b"error:"),
            "a connection closed early must end with an error: {out:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_split_at_their_prompts() {
        let out = b"data:a@b\n@alice@error:AT0003-x\n@data:ok\n@";
        let found = payloads(out);
        assert_eq!(found, [&b"data:a@b"[..], b"error:AT0003-x", b"data:ok"]);
        assert!(is_prompt(b"@") && is_prompt(b"@bob@") && !is_prompt(b"@b@c@"));
    }

    #[test]
    fn blank_lines_expect_a_reply_and_an_unfinished_tail_nothing() {
        assert_eq!(expected_replies(b"info\n \r\n\ninfo\nnoop:0"), (4, false));
        assert_eq!(expected_replies(b"info\n@exit\r\ninfo\n"), (1, true));
    }
}
