//! The receive side both clients share: bytes read and not yet handed out,
//! framed by a [`ReplyFramer`]. Reading itself is the client's business;
//! this only lends it space to read into.

use super::framing::{Frame, ReplyFramer};
use super::{ClientError, Operation};
use crate::limits::{
    CLIENT_KEPT_BYTES_MAX as STORAGE_KEPT_BYTES_MAX, CLIENT_READ_CHUNK_BYTES as READ_CHUNK_BYTES,
    CLIENT_REPLY_BYTES_MAX as REPLY_BYTES_MAX,
};

/// A whole `<payload>\n<prompt>` reply, copied out of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply's bytes as they arrived, prompt included.
    bytes: Vec<u8>,
    /// Where the payload ends: the index of the `\n` before the prompt.
    payload_len: usize,
}

impl Reply {
    /// The reply as it arrived: `data:…\n@alice@`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// `data:…` or `error:…`, without the `\n` and the prompt.
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(..self.payload_len).unwrap_or_default()
    }

    /// `@` or `@alice@`.
    pub fn prompt(&self) -> &[u8] {
        self.bytes.get(self.payload_len + 1..).unwrap_or_default()
    }

    /// What follows `data:` on success (`data: ` for the spaced replies of
    /// `stats` keeps its space); `None` for an error.
    pub fn data(&self) -> Option<&[u8]> {
        self.payload().strip_prefix(b"data:")
    }

    pub fn is_error(&self) -> bool {
        self.payload().starts_with(b"error:")
    }

    /// A reply made from its bytes (`<payload>\n<prompt>`), for tests of
    /// code that reads replies.
    #[cfg(test)]
    pub(crate) fn from_bytes_for_tests(text: &str) -> Reply {
        let payload_len = text.find("\n@").unwrap_or(text.len());
        Reply {
            bytes: text.as_bytes().to_vec(),
            payload_len,
        }
    }
}

/// What a monitor connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorFrame {
    /// `notification: {json}`, without the `\n`.
    Notification(Vec<u8>),
    /// The answer to a request sent on the monitor connection (no prompt).
    Reply(Reply),
}

/// `Ok` for `data:success`; the reply as the error otherwise.
pub(crate) fn expect_success(reply: Reply, during: Operation) -> Result<(), ClientError> {
    if reply.payload() == b"data:success" {
        Ok(())
    } else {
        Err(ClientError::UnexpectedReply {
            during,
            reply: reply.into_bytes(),
        })
    }
}

/// Received bytes and their framing.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Storage; only `consumed..filled` holds received, unframed bytes.
    storage: Vec<u8>,
    /// Bytes at the front already handed out.
    consumed: usize,
    /// End of the received bytes.
    filled: usize,
    /// Decides where frames end and follows the connection's prompt.
    pub(crate) framer: ReplyFramer,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox::default()
    }

    /// Bytes received and not yet handed out.
    pub(crate) fn pending(&self) -> &[u8] {
        self.storage
            .get(self.consumed..self.filled)
            .unwrap_or_default()
    }

    fn consume(&mut self, len: usize) {
        self.consumed = (self.consumed + len).min(self.filled);
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
            if self.storage.len() > STORAGE_KEPT_BYTES_MAX {
                self.storage = Vec::new();
            }
        }
    }

    /// The next frame if a whole one is buffered, copied out and consumed:
    /// its shape, its bytes and the length of its payload.
    pub(crate) fn take_frame(&mut self) -> Option<(FrameKind, Vec<u8>, usize)> {
        let pending = self.storage.get(self.consumed..self.filled)?;
        let (frame, len) = self.framer.next_frame(pending)?;
        let (kind, payload_len) = match frame {
            Frame::Reply { payload, .. } => (FrameKind::Reply, payload.len()),
            Frame::Prompt(_) => (FrameKind::Prompt, 0),
            Frame::Notification(line) => (FrameKind::Notification, line.len()),
        };
        let bytes = pending.get(..len).unwrap_or_default().to_vec();
        self.consume(len);
        Some((kind, bytes, payload_len))
    }

    /// The next reply if one is buffered; any other frame is an error.
    pub(crate) fn take_reply(&mut self, during: Operation) -> Result<Option<Reply>, ClientError> {
        match self.take_frame() {
            None => Ok(None),
            Some((FrameKind::Reply, bytes, payload_len)) => Ok(Some(Reply { bytes, payload_len })),
            Some((_, reply, _)) => Err(ClientError::UnexpectedReply { during, reply }),
        }
    }

    /// The next frame of a monitor connection if one is buffered: a pushed
    /// notification line (without its `\n`) or a reply.
    pub(crate) fn take_monitor_frame(&mut self) -> Option<MonitorFrame> {
        let (kind, bytes, payload_len) = self.take_frame()?;
        Some(match kind {
            FrameKind::Notification => MonitorFrame::Notification(bytes[..payload_len].to_vec()),
            FrameKind::Reply | FrameKind::Prompt => {
                MonitorFrame::Reply(Reply { bytes, payload_len })
            }
        })
    }

    /// The next bare prompt (greeting, pol answer) if one is buffered.
    pub(crate) fn take_prompt(
        &mut self,
        during: Operation,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        match self.take_frame() {
            None => Ok(None),
            Some((FrameKind::Prompt, bytes, _)) => Ok(Some(bytes)),
            Some((_, reply, _)) => Err(ClientError::UnexpectedReply { during, reply }),
        }
    }

    /// The answer to a `pol` if one is buffered: `Ok(Some(()))` for the
    /// bare prompt the framer expects (`@me@`; the framer is then in its
    /// pol-authenticated mode), an error for any other frame (the refusal).
    pub(crate) fn take_pol_answer(&mut self) -> Result<Option<()>, ClientError> {
        let expected = self.framer.expected_prompt().to_vec();
        match self.take_frame() {
            None => Ok(None),
            Some((FrameKind::Prompt, bytes, _)) if bytes == expected => Ok(Some(())),
            Some((_, reply, _)) => {
                self.framer.expect_anonymous();
                Err(ClientError::UnexpectedReply {
                    during: Operation::Pol,
                    reply,
                })
            }
        }
    }

    /// Exactly `n` raw bytes if that many are buffered, bypassing framing.
    pub(crate) fn take_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let bytes = self.pending().get(..n)?.to_vec();
        self.consume(n);
        // The framer's scan offset no longer matches the buffer's front.
        self.framer.reset_scan();
        Some(bytes)
    }

    /// Everything buffered, handed out raw (for a caller taking over).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let bytes = self.pending().to_vec();
        self.consume(bytes.len());
        self.framer.reset_scan();
        bytes
    }

    /// Space to read at least one TLS record into; pass what was read to
    /// [`Inbox::filled`]. Fails when a frame has grown past the limit.
    pub(crate) fn read_space(&mut self) -> Result<&mut [u8], ClientError> {
        if self.filled - self.consumed > REPLY_BYTES_MAX {
            return Err(ClientError::ReplyTooLong {
                limit_bytes: REPLY_BYTES_MAX,
            });
        }
        if self.consumed > 0 {
            self.storage.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        if self.storage.len() - self.filled < READ_CHUNK_BYTES {
            self.storage.resize(self.filled + READ_CHUNK_BYTES, 0);
        }
        Ok(self.storage.get_mut(self.filled..).unwrap_or_default())
    }

    /// Records that `n` bytes were read into the space lent last.
    pub(crate) fn filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.storage.len());
    }

    /// Takes the outcome of one read into the space lent last: bytes are
    /// kept, end of stream and socket errors become the client's error with
    /// whatever had arrived so far.
    pub(crate) fn settle_read(
        &mut self,
        during: Operation,
        read: std::io::Result<usize>,
    ) -> Result<(), ClientError> {
        match read {
            Ok(0) => Err(ClientError::Closed {
                during,
                pending: self.pending().to_vec(),
            }),
            Ok(n) => {
                self.filled(n);
                Ok(())
            }
            Err(e) => Err(ClientError::from_io(during, e, self.pending())),
        }
    }
}

/// Which shape a taken frame has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Reply,
    Prompt,
    Notification,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(inbox: &mut Inbox, bytes: &[u8]) {
        let space = inbox.read_space().expect("space");
        space[..bytes.len()].copy_from_slice(bytes);
        inbox.filled(bytes.len());
    }

    #[test]
    fn replies_are_taken_whole_and_in_order() {
        let mut inbox = Inbox::new();
        receive(&mut inbox, b"@data:1\n@data:");
        assert_eq!(
            inbox.take_prompt(Operation::Greeting).expect("prompt"),
            Some(b"@".to_vec())
        );
        let first = inbox
            .take_reply(Operation::Receive)
            .expect("ok")
            .expect("reply");
        assert_eq!(
            (first.payload(), first.prompt(), first.data()),
            (&b"data:1"[..], &b"@"[..], Some(&b"1"[..]))
        );
        assert_eq!(inbox.take_reply(Operation::Receive).expect("ok"), None);
        receive(&mut inbox, b"error:AT0001-x\n@");
        let second = inbox
            .take_reply(Operation::Receive)
            .expect("ok")
            .expect("reply");
        assert_eq!(second.as_bytes(), b"data:error:AT0001-x\n@");
        assert!(inbox.pending().is_empty());
    }

    #[test]
    fn a_notification_where_a_reply_is_due_is_unexpected() {
        let mut inbox = Inbox::new();
        receive(&mut inbox, b"notification: {}\n");
        assert!(matches!(
            inbox.take_reply(Operation::Receive),
            Err(ClientError::UnexpectedReply { reply, .. }) if reply == b"notification: {}\n"
        ));
    }

    #[test]
    fn raw_bytes_bypass_framing() {
        let mut inbox = Inbox::new();
        receive(&mut inbox, b"error:AT0012-limit\n");
        assert_eq!(inbox.take_reply(Operation::Receive).expect("ok"), None);
        assert_eq!(inbox.take_exact(6), Some(b"error:".to_vec()));
        assert_eq!(inbox.take_exact(100), None);
        assert_eq!(inbox.take_all(), b"AT0012-limit\n");
    }

    #[test]
    fn a_frame_past_the_limit_is_refused() {
        let mut inbox = Inbox::new();
        let mut received = 0;
        while received <= REPLY_BYTES_MAX {
            let space = inbox.read_space().expect("under the limit");
            let n = space.len();
            space.fill(b'x');
            inbox.filled(n);
            received += n;
        }
        assert!(inbox.take_reply(Operation::Receive).expect("ok").is_none());
        assert!(matches!(
            inbox.read_space(),
            Err(ClientError::ReplyTooLong { .. })
        ));
    }
}
