//! The test client's operations over an in-process transcript instead of a
//! TLS socket: for byte-exact cases that need no network.

// Test helpers fail the test loudly on anything unexpected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use atserver::app::ScratchServer;
use atserver::client::auth::{challenge_of, cram_line};
use atserver::session::Transcript;

/// One simulated connection with the same operations as `common::Client`.
pub struct Session {
    transcript: Transcript,
    /// Reply bytes produced by `write` and not read yet.
    unread: Vec<u8>,
}

impl Session {
    /// A new connection; its `@` greeting is not part of any reply.
    pub fn connect(server: &ScratchServer) -> Session {
        Session {
            transcript: Transcript::new(server.server.clone()).expect("transcript"),
            unread: Vec::new(),
        }
    }

    /// Sends one line and returns its reply, prompt included.
    pub fn send(&mut self, line: &str) -> String {
        assert!(self.unread.is_empty(), "unread replies before send");
        self.transcript.send(line)
    }

    /// Feeds raw bytes; their replies wait for `read_reply`.
    pub fn write(&mut self, bytes: &[u8]) {
        let replies = self.transcript.feed(bytes);
        self.unread.extend_from_slice(&replies);
    }

    /// The replies of what was written since the last read.
    pub fn read_reply(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.unread)).expect("utf-8 replies")
    }

    /// Whether the server side has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.transcript.is_closed()
    }

    /// Authenticates as `atsign` with its CRAM secret.
    pub fn cram(&mut self, atsign: &str, secret: &str) {
        let reply = self.send(&format!("from:{atsign}"));
        let payload = reply.split('\n').next().unwrap_or_default();
        let challenge = challenge_of(payload.as_bytes()).expect("a challenge");
        assert_eq!(
            self.send(&cram_line(secret, challenge)),
            format!("data:success\n{atsign}@")
        );
    }
}
