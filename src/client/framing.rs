//! Reply framing without I/O: where the next frame the server wrote ends.
//!
//! The server writes three shapes (wire.md §2, §4, §9):
//! - `<payload>\n<prompt>`, the answer to one request. A payload never holds
//!   `\n@`, so the first `\n@` ends it. The prompt is `@` before
//!   authentication, `@alice@` after it, `@bob@` on a connection
//!   pol-authenticated as @bob (whose exception errors still end with `@`);
//! - a bare prompt: the `@` greeting, and the `@bob@` that answers a
//!   successful `pol`;
//! - `notification: <json>\n`, pushed on a monitor connection, with no
//!   prompt after it.
//!
//! The inbound-limit refusal `error:AT0012-…\n` has no prompt either, but the
//! server closes right after it, so it never becomes a frame: the client
//! reports the close together with the bytes.
//!
//! Where a prompt ends is decided by the byte after its first `@`: a named
//! prompt ends at its second `@`, and a bare `@` is followed by the next
//! frame, whose first word ends in `:` (`data:`, `error:`, `notification:`)
//! or which is itself a prompt. Only when the buffer ends right after the
//! `@` can the bytes not tell `@` from a cut `@alice@`; then the
//! [`ReplyFramer`] decides from what the connection expects ([`PromptMode`]).
//! The server writes a reply in one piece, so that guess is only needed when
//! a TLS record boundary falls exactly there.

use crate::limits::ATSIGN_CHARS_MAX;

/// One complete frame at the front of the buffer, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `<payload>\n<prompt>`: `payload` is `data:…` or `error:…` without the
    /// `\n`; `prompt` is `@` or `@name@`.
    Reply { payload: &'a [u8], prompt: &'a [u8] },
    /// A prompt with nothing before it: the `@` greeting or a pol's `@bob@`.
    Prompt(&'a [u8]),
    /// A pushed `notification: <json>` line, without its `\n`.
    Notification(&'a [u8]),
}

impl<'a> Frame<'a> {
    /// The prompt that ended the frame (none for a notification).
    pub fn prompt(&self) -> Option<&'a [u8]> {
        match *self {
            Frame::Reply { prompt, .. } | Frame::Prompt(prompt) => Some(prompt),
            Frame::Notification(_) => None,
        }
    }
}

/// What the connection's next frames end with, as far as the client knows.
/// It only matters when the buffer ends right after a `\n@` (see the module
/// documentation); everywhere else the bytes decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptMode {
    /// Not authenticated: every reply ends with `@`.
    Anonymous,
    /// Owner-authenticated: every reply ends with the named prompt.
    Owner,
    /// Pol-authenticated: replies end with the named prompt, exception
    /// errors with `@`.
    Pol,
    /// The next reply answers a `cram:` or `pkam:`: `data:success` with the
    /// named prompt, or an error with `@` (a failed attempt drops the
    /// connection's authentication).
    AuthAttempt,
    /// The next frame answers a `pol`: the bare named prompt, or an error
    /// with `@`.
    PolAttempt,
    /// A monitor connection: replies end at their `\n` with no prompt
    /// (the server drops it there so line-reading clients keep working),
    /// between pushed notification lines.
    Monitor,
}

/// The text before a pushed notification's JSON.
const NOTIFICATION_PREFIX: &[u8] = b"notification:";

/// The anonymous prompt, and the first byte of every prompt.
const BARE_PROMPT: &[u8] = b"@";

/// Longest name between the two `@` of a prompt: an atSign name has at most
/// [`ATSIGN_CHARS_MAX`] characters of up to four UTF-8 bytes. An `@` followed
/// by more name bytes than this is a bare prompt.
const PROMPT_NAME_BYTES_MAX: usize = ATSIGN_CHARS_MAX * 4;

/// Frames a connection's byte stream, remembering which prompt it expects
/// and how much of a partial frame it has already searched, so a long reply
/// arriving in many reads is scanned once. Allocates only when the prompt
/// changes.
#[derive(Debug, Clone)]
pub struct ReplyFramer {
    /// How the next frames are expected to end.
    mode: PromptMode,
    /// The named prompt (`@alice@`) of the modes that have one; empty until
    /// the connection first authenticates, and kept after it drops
    /// authentication, as it is usually regained with the same atSign.
    named_prompt: Vec<u8>,
    /// Leading bytes of the pending frame already searched without finding
    /// its end; see [`ReplyFramer::next_frame`] for the contract that keeps
    /// this valid.
    scanned: usize,
}

impl Default for ReplyFramer {
    fn default() -> Self {
        ReplyFramer::new()
    }
}

impl ReplyFramer {
    /// A framer for a new connection: anonymous, expecting the `@` greeting.
    pub fn new() -> ReplyFramer {
        ReplyFramer {
            mode: PromptMode::Anonymous,
            named_prompt: Vec::new(),
            scanned: 0,
        }
    }

    pub fn mode(&self) -> PromptMode {
        self.mode
    }

    /// The prompt the next reply is expected to end with.
    pub fn expected_prompt(&self) -> &[u8] {
        match self.mode {
            PromptMode::Anonymous => BARE_PROMPT,
            _ => &self.named_prompt,
        }
    }

    pub fn expect_anonymous(&mut self) {
        self.mode = PromptMode::Anonymous;
    }

    /// Replies end with `@<atsign>@` from now on (`atsign` with or without
    /// its leading `@`).
    pub fn expect_owner(&mut self, atsign: &str) {
        self.set_named_prompt(atsign.as_bytes());
        self.mode = PromptMode::Owner;
    }

    /// The next reply answers a `cram:`/`pkam:` for `atsign`.
    pub fn expect_auth_attempt(&mut self, atsign: &str) {
        self.set_named_prompt(atsign.as_bytes());
        self.mode = PromptMode::AuthAttempt;
    }

    /// The connection ran `monitor`: replies carry no prompt from now on.
    pub fn expect_monitor(&mut self) {
        self.mode = PromptMode::Monitor;
    }

    /// The next frame answers a `pol` proving `atsign`.
    pub fn expect_pol_attempt(&mut self, atsign: &str) {
        self.set_named_prompt(atsign.as_bytes());
        self.mode = PromptMode::PolAttempt;
    }

    /// Stores `@<name>@` for `name` given as `alice`, `@alice` or `@alice@`,
    /// reusing the buffer's capacity.
    fn set_named_prompt(&mut self, atsign: &[u8]) {
        let name = atsign.strip_prefix(BARE_PROMPT).unwrap_or(atsign);
        let name = name.strip_suffix(BARE_PROMPT).unwrap_or(name);
        self.named_prompt.clear();
        self.named_prompt.push(b'@');
        self.named_prompt.extend_from_slice(name);
        self.named_prompt.push(b'@');
    }

    /// The frame at the front of `pending` and its length in bytes, or
    /// `None` when more bytes are needed.
    ///
    /// `pending` must begin where the previous frame ended, and between calls
    /// that return `None` it may only grow at its end; the caller consumes
    /// exactly the returned length before asking again. The frame's prompt
    /// becomes the expected one (a failed authentication drops back to `@`,
    /// a successful one nobody announced is adopted).
    pub fn next_frame<'a>(&mut self, pending: &'a [u8]) -> Option<(Frame<'a>, usize)> {
        let from = self.scanned.min(pending.len());
        match find_frame(pending, from, self.mode) {
            Ok((frame, len)) => {
                self.scanned = 0;
                self.observe(&frame);
                Some((frame, len))
            }
            Err(resume_at) => {
                self.scanned = resume_at;
                None
            }
        }
    }

    /// Forgets how far a partial frame was searched, for a caller that
    /// discards its buffer (the next call searches from the start).
    pub fn reset_scan(&mut self) {
        self.scanned = 0;
    }

    /// Follows the connection's authentication state from the prompts the
    /// server prints.
    fn observe(&mut self, frame: &Frame<'_>) {
        if self.mode == PromptMode::Monitor {
            return;
        }
        let Some(prompt) = frame.prompt() else {
            return;
        };
        if prompt == BARE_PROMPT {
            // A pol connection's exception errors end with `@` and leave it
            // authenticated; anywhere else `@` means not authenticated.
            if self.mode != PromptMode::Pol {
                self.mode = PromptMode::Anonymous;
            }
            return;
        }
        if prompt != self.named_prompt.as_slice() {
            self.named_prompt.clear();
            self.named_prompt.extend_from_slice(prompt);
        }
        let pol_answer = matches!(frame, Frame::Prompt(_));
        self.mode = if pol_answer || self.mode == PromptMode::Pol {
            PromptMode::Pol
        } else {
            PromptMode::Owner
        };
    }
}

/// How the bytes after a prompt's first `@` end it.
enum PromptEnd {
    /// `@` alone: the next frame follows.
    Bare,
    /// `@name@`, this many bytes long.
    Named(usize),
    /// The buffer ends inside what may still become `@name@`.
    Cut {
        /// Nothing at all follows the `@`.
        at_first_byte: bool,
    },
}

/// Whether `byte` can be part of an atSign name in a prompt: not ASCII
/// whitespace, control or one of the reserved characters atSigns refuse
/// (`:` among them, which is how `@data:…` reads as `@` then `data:…`).
fn is_prompt_name_byte(byte: u8) -> bool {
    const RESERVED: &[u8] = b"!*'`();:&=+$,/?#[]{}@";
    byte >= 0x80 || (byte.is_ascii_graphic() && !RESERVED.contains(&byte))
}

/// Reads the prompt at the front of `rest`, which starts with `@`.
fn prompt_end(rest: &[u8]) -> PromptEnd {
    let name = rest.get(1..).unwrap_or_default();
    for (i, &byte) in name.iter().enumerate() {
        if byte == b'@' {
            return if i == 0 {
                PromptEnd::Bare
            } else {
                PromptEnd::Named(i + 2)
            };
        }
        if i == PROMPT_NAME_BYTES_MAX || !is_prompt_name_byte(byte) {
            return PromptEnd::Bare;
        }
    }
    PromptEnd::Cut {
        at_first_byte: name.is_empty(),
    }
}

/// Whether `payload` is an exception error (`error:AT0015-…` or the JSON
/// `error:{…}`), which a pol connection ends with `@`, rather than a
/// response-object error (`error:AT0026:…`), which keeps the pol prompt.
fn is_exception_error(payload: &[u8]) -> bool {
    let Some(rest) = payload.strip_prefix(b"error:") else {
        return false;
    };
    rest.first() == Some(&b'{')
        || rest
            .iter()
            .find(|&&b| b == b'-' || b == b':')
            .is_some_and(|&b| b == b'-')
}

/// Whether a frame that ends with the buffer right after an `@` ends there
/// (`payload` is `None` for a frame that is only a prompt).
fn bare_prompt_may_end_buffer(mode: PromptMode, payload: Option<&[u8]>) -> bool {
    let payload = payload.unwrap_or_default();
    match mode {
        PromptMode::Anonymous => true,
        PromptMode::Owner => false,
        PromptMode::Pol => is_exception_error(payload),
        PromptMode::AuthAttempt | PromptMode::PolAttempt => payload.starts_with(b"error:"),
        PromptMode::Monitor => true,
    }
}

/// Finds the frame at the front of `buf`, whose first `from` bytes are known
/// to end no frame. `Err` carries where to resume searching once more bytes
/// have arrived.
fn find_frame(buf: &[u8], from: usize, mode: PromptMode) -> Result<(Frame<'_>, usize), usize> {
    match buf.first() {
        None => return Err(0),
        Some(b'@') => {
            let len = match prompt_end(buf) {
                PromptEnd::Bare => 1,
                PromptEnd::Named(len) => len,
                PromptEnd::Cut {
                    at_first_byte: true,
                } if bare_prompt_may_end_buffer(mode, None) => 1,
                PromptEnd::Cut { .. } => return Err(0),
            };
            return Ok((Frame::Prompt(buf.get(..len).unwrap_or_default()), len));
        }
        Some(_) => {}
    }
    if buf.starts_with(NOTIFICATION_PREFIX) {
        let start = from.max(NOTIFICATION_PREFIX.len());
        let tail = buf.get(start..).unwrap_or_default();
        return match tail.iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let newline = start + offset;
                let line = buf.get(..newline).unwrap_or_default();
                Ok((Frame::Notification(line), newline + 1))
            }
            None => Err(buf.len()),
        };
    }
    if NOTIFICATION_PREFIX.starts_with(buf) {
        // Too short to tell a notification from a reply yet.
        return Err(0);
    }
    if mode == PromptMode::Monitor {
        // No prompt follows: the line is the reply.
        let tail = buf.get(from..).unwrap_or_default();
        return match tail.iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let newline = from + offset;
                let payload = buf.get(..newline).unwrap_or_default();
                Ok((
                    Frame::Reply {
                        payload,
                        prompt: &[],
                    },
                    newline + 1,
                ))
            }
            None => Err(buf.len()),
        };
    }
    let mut search = from;
    loop {
        let tail = buf.get(search..).unwrap_or_default();
        let Some(offset) = tail.iter().position(|&b| b == b'\n') else {
            return Err(buf.len());
        };
        let newline = search + offset;
        let after = newline + 1;
        let rest = buf.get(after..).unwrap_or_default();
        match rest.first() {
            // This `\n` may still be followed by a prompt.
            None => return Err(newline),
            Some(b'@') => {
                let payload = buf.get(..newline).unwrap_or_default();
                let len = match prompt_end(rest) {
                    PromptEnd::Bare => 1,
                    PromptEnd::Named(len) => len,
                    PromptEnd::Cut {
                        at_first_byte: true,
                    } if bare_prompt_may_end_buffer(mode, Some(payload)) => 1,
                    PromptEnd::Cut { .. } => return Err(newline),
                };
                let prompt = rest.get(..len).unwrap_or_default();
                return Ok((Frame::Reply { payload, prompt }, after + len));
            }
            Some(_) => search = after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames all of `buf` with a fresh framer; returns the frames and what
    /// was left over.
    fn frame_all(framer: &mut ReplyFramer, buf: &[u8]) -> (Vec<String>, usize) {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((frame, len)) = framer.next_frame(&buf[at..]) {
            frames.push(describe(&frame));
            at += len;
        }
        (frames, buf.len() - at)
    }

    fn describe(frame: &Frame<'_>) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match *frame {
            Frame::Reply { payload, prompt } => {
                format!("reply {} | {}", text(payload), text(prompt))
            }
            Frame::Prompt(prompt) => format!("prompt {}", text(prompt)),
            Frame::Notification(line) => format!("notification {}", text(line)),
        }
    }

    #[test]
    fn a_monitor_connection_frames_replies_without_a_prompt() {
        let mut framer = ReplyFramer::new();
        framer.expect_owner("@alice");
        framer.expect_monitor();
        let (frames, left) = frame_all(
            &mut framer,
            b"notification: {\"id\":\"1\"}\ndata:ok\nnotification: {}\ndata:x@y\ndata:part",
        );
        assert_eq!(
            frames,
            [
                "notification notification: {\"id\":\"1\"}",
                "reply data:ok | ",
                "notification notification: {}",
                "reply data:x@y | ",
            ]
        );
        assert_eq!(left, 9);
        assert_eq!(framer.mode(), PromptMode::Monitor);
    }

    #[test]
    fn replies_end_at_their_prompt_and_the_prompt_is_followed() {
        let mut framer = ReplyFramer::new();
        let (frames, left) = frame_all(
            &mut framer,
            b"@data:_s@alice:n\n@data:success\n@alice@data:1\n@alice@error:AT0401-x\n@data:ok\n@",
        );
        assert_eq!(
            frames,
            [
                "prompt @",
                "reply data:_s@alice:n | @",
                "reply data:success | @alice@",
                "reply data:1 | @alice@",
                "reply error:AT0401-x | @",
                "reply data:ok | @",
            ]
        );
        assert_eq!(left, 0);
        assert_eq!(framer.mode(), PromptMode::Anonymous);
    }

    #[test]
    fn a_prompt_cut_by_the_buffer_waits_unless_the_connection_expects_it_bare() {
        let mut owner = ReplyFramer::new();
        owner.expect_owner("@alice");
        assert_eq!(owner.next_frame(b"data:1\n@"), None);
        assert_eq!(owner.next_frame(b"data:1\n@ali"), None);
        assert_eq!(
            owner.next_frame(b"data:1\n@alice@"),
            Some((
                Frame::Reply {
                    payload: b"data:1",
                    prompt: b"@alice@"
                },
                14
            ))
        );
        let mut anonymous = ReplyFramer::new();
        assert_eq!(
            anonymous.next_frame(b"data:1\n@"),
            Some((
                Frame::Reply {
                    payload: b"data:1",
                    prompt: b"@"
                },
                8
            ))
        );
        // Something after the `@` that is not yet a whole name: wait.
        assert_eq!(anonymous.next_frame(b"data:1\n@da"), None);
        assert_eq!(
            anonymous.next_frame(b"data:1\n@data:2\n@").map(|f| f.1),
            Some(8)
        );
    }

    #[test]
    fn an_auth_attempt_ends_with_the_owner_prompt_on_success_and_bare_on_failure() {
        let mut framer = ReplyFramer::new();
        framer.expect_auth_attempt("@alice");
        assert_eq!(framer.next_frame(b"data:success\n@"), None);
        assert_eq!(
            framer.next_frame(b"data:success\n@alice@").map(|f| f.1),
            Some(20)
        );
        assert_eq!(framer.mode(), PromptMode::Owner);
        framer.expect_auth_attempt("@alice");
        assert_eq!(
            framer.next_frame(b"error:AT0401-Exception: pkam authentication failed\n@"),
            Some((
                Frame::Reply {
                    payload: b"error:AT0401-Exception: pkam authentication failed",
                    prompt: b"@"
                },
                52
            ))
        );
        assert_eq!(framer.mode(), PromptMode::Anonymous);
    }

    #[test]
    fn an_unannounced_prompt_change_is_adopted() {
        let mut framer = ReplyFramer::new();
        let (frames, _) = frame_all(&mut framer, b"data:success\n@bob@");
        assert_eq!(frames, ["reply data:success | @bob@"]);
        assert_eq!(framer.mode(), PromptMode::Owner);
        assert_eq!(framer.expected_prompt(), b"@bob@");
        // Owner errors keep the owner prompt; `@` drops back to anonymous.
        let (frames, _) = frame_all(
            &mut framer,
            b"error:AT0015-x\n@bob@error:AT0401-y\n@data:ok\n@",
        );
        assert_eq!(
            frames,
            [
                "reply error:AT0015-x | @bob@",
                "reply error:AT0401-y | @",
                "reply data:ok | @"
            ]
        );
        assert_eq!(framer.expected_prompt(), b"@");
    }

    #[test]
    fn a_pol_answer_is_a_bare_named_prompt_and_pol_errors_may_end_bare() {
        let mut framer = ReplyFramer::new();
        let (frames, _) = frame_all(&mut framer, b"@data:proof:_s@bob:n\n@");
        assert_eq!(frames, ["prompt @", "reply data:proof:_s@bob:n | @"]);
        framer.expect_pol_attempt("@bob");
        assert_eq!(framer.next_frame(b"@"), None);
        assert_eq!(framer.next_frame(b"@bo"), None);
        assert_eq!(
            framer.next_frame(b"@bob@data:x"),
            Some((Frame::Prompt(b"@bob@"), 5))
        );
        assert_eq!(framer.mode(), PromptMode::Pol);
        // An exception error ends with `@` and the connection stays pol.
        let (frames, _) = frame_all(
            &mut framer,
            b"error:AT0015-Exception: x\n@data:1\n@bob@error:AT0026:pending\n@bob@",
        );
        assert_eq!(
            frames,
            [
                "reply error:AT0015-Exception: x | @",
                "reply data:1 | @bob@",
                "reply error:AT0026:pending | @bob@",
            ]
        );
        assert_eq!(
            framer.next_frame(b"error:AT0015-y\n@").map(|f| f.1),
            Some(16)
        );
        assert_eq!(
            framer
                .next_frame(b"error:{\"errorCode\":\"AT0015\"}\n@")
                .map(|f| f.1),
            Some(30)
        );
        assert_eq!(framer.next_frame(b"error:AT0026:pending\n@"), None);
        assert_eq!(framer.next_frame(b"data:2\n@"), None);
        assert_eq!(framer.mode(), PromptMode::Pol);
        // A failed pol is an error with the bare prompt.
        let mut failed = ReplyFramer::new();
        failed.expect_pol_attempt("@bob");
        assert_eq!(
            failed.next_frame(b"error:AT0401-no\n@").map(|f| f.1),
            Some(17)
        );
        assert_eq!(failed.mode(), PromptMode::Anonymous);
    }

    #[test]
    fn notifications_are_lines_without_a_prompt_between_replies() {
        let mut framer = ReplyFramer::new();
        framer.expect_owner("@alice");
        let (frames, left) = frame_all(
            &mut framer,
            b"notification: {\"id\":\"1\",\"value\":\"a@b\"}\ndata:ok\n@alice@notification: {}\nnotif",
        );
        assert_eq!(
            frames,
            [
                "notification notification: {\"id\":\"1\",\"value\":\"a@b\"}",
                "reply data:ok | @alice@",
                "notification notification: {}",
            ]
        );
        assert_eq!(left, 5);
    }

    #[test]
    fn shapes_without_a_prompt_or_newline_never_complete() {
        let mut framer = ReplyFramer::new();
        assert_eq!(
            framer.next_frame(b"error:AT0012-Inbound connection limit exceeded\n"),
            None
        );
        assert_eq!(framer.next_frame(b""), None);
        assert_eq!(framer.next_frame(b"data:no newline yet @alice@"), None);
    }

    #[test]
    fn payload_newlines_not_followed_by_a_prompt_are_part_of_the_payload() {
        let mut framer = ReplyFramer::new();
        // The directory's `\r\n@`, and a `\n` inside a (foreign) payload.
        let (frames, _) = frame_all(&mut framer, b"127.0.0.1:6464\r\n@null\r\n@a\nb\n@");
        assert_eq!(
            frames,
            [
                "reply 127.0.0.1:6464\r | @",
                "reply null\r | @",
                "reply a\nb | @"
            ]
        );
    }

    #[test]
    fn an_overlong_name_after_at_is_not_a_prompt() {
        let mut framer = ReplyFramer::new();
        framer.expect_owner("@alice");
        let mut buf = b"data:1\n@".to_vec();
        buf.extend(std::iter::repeat_n(b'x', PROMPT_NAME_BYTES_MAX + 1));
        assert_eq!(
            framer.next_frame(&buf),
            Some((
                Frame::Reply {
                    payload: b"data:1",
                    prompt: b"@"
                },
                8
            ))
        );
    }

    #[test]
    fn a_long_reply_arriving_in_pieces_frames_like_the_whole() {
        let mut reply = b"data:".to_vec();
        reply.extend(std::iter::repeat_n(b'v', 100_000));
        reply.extend_from_slice(b"\n@alice@");
        let mut framer = ReplyFramer::new();
        framer.expect_owner("@alice");
        for end in (1..reply.len()).step_by(997) {
            assert_eq!(framer.next_frame(&reply[..end]), None);
        }
        assert_eq!(framer.next_frame(&reply).map(|f| f.1), Some(reply.len()));
    }

    mod split_streams {
        use super::*;
        use proptest::prelude::*;

        /// What the client tells the framer before one frame.
        #[derive(Debug, Clone, Copy)]
        enum Announce {
            AuthAttempt,
            PolAttempt,
        }

        /// One step of a conversation, in terms of what the server writes.
        #[derive(Debug, Clone)]
        enum Step {
            Data(Vec<u8>),
            ResponseObjectError(Vec<u8>),
            ExceptionError(Vec<u8>),
            Notification(Vec<u8>),
            AuthOk,
            AuthFailed,
            PolOk,
            PolFailed,
        }

        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Server {
            Anonymous,
            Owner,
            Pol,
        }

        /// The bytes of a conversation, the frames they hold and the
        /// announcements the client makes before some of them.
        struct Conversation {
            bytes: Vec<u8>,
            frames: Vec<String>,
            announce: Vec<Option<Announce>>,
        }

        fn text() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(
                any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
                0..24,
            )
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => text().prop_map(Step::Data),
                1 => text().prop_map(Step::ResponseObjectError),
                1 => text().prop_map(Step::ExceptionError),
                1 => text().prop_map(Step::Notification),
                1 => Just(Step::AuthOk),
                1 => Just(Step::AuthFailed),
                1 => Just(Step::PolOk),
                1 => Just(Step::PolFailed),
            ]
        }

        /// Appends one `<payload>\n<prompt>` reply.
        fn push(c: &mut Conversation, payload: &[u8], prompt: &[u8], announce: Option<Announce>) {
            c.bytes.extend_from_slice(payload);
            c.bytes.push(b'\n');
            c.bytes.extend_from_slice(prompt);
            c.frames.push(describe(&Frame::Reply { payload, prompt }));
            c.announce.push(announce);
        }

        /// Plays `steps` against a model of the server's prompt rules.
        fn converse(steps: &[Step]) -> Conversation {
            let mut c = Conversation {
                bytes: b"@".to_vec(),
                frames: vec!["prompt @".to_string()],
                announce: vec![None],
            };
            let mut server = Server::Anonymous;
            let prompt = |s: Server| -> &'static [u8] {
                match s {
                    Server::Anonymous => b"@",
                    Server::Owner => b"@alice@",
                    Server::Pol => b"@bob@",
                }
            };
            for step in steps {
                match step {
                    Step::Data(t) => {
                        push(&mut c, &[b"data:", &t[..]].concat(), prompt(server), None)
                    }
                    Step::ResponseObjectError(t) => push(
                        &mut c,
                        &[b"error:AT0026:", &t[..]].concat(),
                        prompt(server),
                        None,
                    ),
                    Step::ExceptionError(t) => {
                        let p = if server == Server::Pol {
                            b"@"
                        } else {
                            prompt(server)
                        };
                        push(&mut c, &[b"error:AT0015-", &t[..]].concat(), p, None)
                    }
                    Step::Notification(t) => {
                        let line = [b"notification: ", &t[..]].concat();
                        c.bytes.extend_from_slice(&line);
                        c.bytes.push(b'\n');
                        c.frames.push(describe(&Frame::Notification(&line)));
                        c.announce.push(None);
                    }
                    Step::AuthOk | Step::AuthFailed if server == Server::Pol => {}
                    Step::AuthOk => {
                        push(
                            &mut c,
                            b"data:success",
                            b"@alice@",
                            Some(Announce::AuthAttempt),
                        );
                        server = Server::Owner;
                    }
                    Step::AuthFailed => {
                        push(
                            &mut c,
                            b"error:AT0401-failed",
                            b"@",
                            Some(Announce::AuthAttempt),
                        );
                        server = Server::Anonymous;
                    }
                    Step::PolOk | Step::PolFailed if server != Server::Anonymous => {}
                    Step::PolOk => {
                        c.bytes.extend_from_slice(b"@bob@");
                        c.frames.push("prompt @bob@".to_string());
                        c.announce.push(Some(Announce::PolAttempt));
                        server = Server::Pol;
                    }
                    Step::PolFailed => {
                        push(&mut c, b"error:AT0401-no", b"@", Some(Announce::PolAttempt));
                    }
                }
            }
            c
        }

        /// Feeds `bytes` in pieces ending at `cuts` and frames as it goes.
        fn frame_in_pieces(c: &Conversation, cuts: &[usize]) -> Vec<String> {
            let mut framer = ReplyFramer::new();
            let mut buffer = Vec::new();
            let mut frames = Vec::new();
            let mut announced = 0;
            let mut fed = 0;
            let mut ends = cuts.to_vec();
            ends.push(c.bytes.len());
            ends.sort_unstable();
            for end in ends {
                buffer.extend_from_slice(&c.bytes[fed..end]);
                fed = end;
                loop {
                    if announced == frames.len() {
                        match c.announce.get(announced).copied().flatten() {
                            Some(Announce::AuthAttempt) => framer.expect_auth_attempt("@alice"),
                            Some(Announce::PolAttempt) => framer.expect_pol_attempt("@bob"),
                            None => {}
                        }
                        announced += 1;
                    }
                    let Some((frame, len)) = framer.next_frame(&buffer) else {
                        break;
                    };
                    frames.push(describe(&frame));
                    buffer.drain(..len);
                }
            }
            assert!(
                buffer.is_empty(),
                "left over: {:?}",
                String::from_utf8_lossy(&buffer)
            );
            frames
        }

        proptest! {
            #[test]
            fn any_split_of_a_conversation_frames_like_the_whole(
                steps in proptest::collection::vec(step(), 0..24),
                cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..12),
            ) {
                let c = converse(&steps);
                let whole = frame_in_pieces(&c, &[]);
                prop_assert_eq!(&whole, &c.frames);
                let cuts: Vec<usize> = cut_fractions
                    .iter()
                    .map(|f| (f * c.bytes.len() as f64) as usize)
                    .collect();
                prop_assert_eq!(frame_in_pieces(&c, &cuts), whole);
            }

            #[test]
            fn byte_by_byte_frames_like_the_whole(steps in proptest::collection::vec(step(), 0..12)) {
                let c = converse(&steps);
                let every_byte: Vec<usize> = (0..c.bytes.len()).collect();
                prop_assert_eq!(frame_in_pieces(&c, &every_byte), c.frames);
            }
        }
    }
}
