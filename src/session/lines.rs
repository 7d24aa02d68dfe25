//! A connection's unanswered input, from which whole lines are taken.
//!
//! Bytes are appended as they arrive; [`LineBuffer::next_line`] hands out
//! each complete line once, through the framer, which never rescans bytes it
//! has already searched for `\n` (a long line arriving over many reads is
//! scanned once).

use crate::limits::IDLE_BUFFER_BYTES_MAX;
use crate::protocol::frame::{self, Frame};

/// Input bytes of one connection.
#[derive(Debug)]
pub struct LineBuffer {
    bytes: Vec<u8>,
    /// Leading bytes already handed out as lines.
    consumed: usize,
    /// Bytes after `consumed` known to hold no `\n`.
    scanned: usize,
    /// Longest line accepted; beyond it the framer says `TooLong`.
    line_bytes_max: usize,
    /// Lines handed out so far.
    lines_taken: u64,
}

impl LineBuffer {
    pub fn new(line_bytes_max: usize) -> LineBuffer {
        LineBuffer {
            bytes: Vec::new(),
            consumed: 0,
            scanned: 0,
            line_bytes_max,
            lines_taken: 0,
        }
    }

    /// Changes the longest line accepted from the next line on (it grows
    /// once a connection authenticates).
    pub fn set_line_bytes_max(&mut self, line_bytes_max: usize) {
        self.line_bytes_max = line_bytes_max;
    }

    pub fn line_bytes_max(&self) -> usize {
        self.line_bytes_max
    }

    /// How many lines were handed out so far: a connection that completes
    /// none is idle, however many bytes it trickles.
    pub fn lines_taken(&self) -> u64 {
        self.lines_taken
    }

    /// Bytes allocated for input (what the input budget counts).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Room for a read of up to `len` bytes at the end of the buffer; call
    /// [`LineBuffer::filled`] with what the read returned.
    pub fn spare(&mut self, len: usize) -> &mut [u8] {
        let filled = self.bytes.len();
        self.bytes.resize(filled + len, 0);
        self.bytes.get_mut(filled..).unwrap_or_default()
    }

    /// Keeps `read` bytes of the room [`LineBuffer::spare`] gave out.
    pub fn filled(&mut self, spare_len: usize, read: usize) {
        let keep = self
            .bytes
            .len()
            .saturating_sub(spare_len)
            .saturating_add(read.min(spare_len));
        self.bytes.truncate(keep);
    }

    /// Appends bytes that arrived (transcripts, tests).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// The next complete line (without `\n` and a trailing `\r`), or why
    /// there is none. A line is handed out once.
    pub fn next_line(&mut self) -> Frame<'_> {
        let rest = self.bytes.get(self.consumed..).unwrap_or_default();
        match frame::next_line_after(rest, self.line_bytes_max, self.scanned) {
            (Frame::Line(line), used) => {
                let start = self.consumed;
                let end = start + line.len();
                self.consumed += used;
                self.scanned = 0;
                self.lines_taken += 1;
                Frame::Line(self.bytes.get(start..end).unwrap_or_default())
            }
            (Frame::Incomplete, _) => {
                self.scanned = rest.len();
                Frame::Incomplete
            }
            (Frame::TooLong, _) => Frame::TooLong,
        }
    }

    /// Forgets the lines handed out, keeping an unfinished one.
    pub fn compact(&mut self) {
        self.bytes.drain(..self.consumed.min(self.bytes.len()));
        self.consumed = 0;
    }

    /// Gives back the memory a burst grew, once nothing is buffered.
    pub fn release_if_idle(&mut self) {
        if self.bytes.is_empty() && self.bytes.capacity() > IDLE_BUFFER_BYTES_MAX {
            self.bytes = Vec::new();
        }
    }

    /// Bytes held, answered or not.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buffer: &mut LineBuffer) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        while let Frame::Line(line) = buffer.next_line() {
            found.push(line.to_vec());
        }
        found
    }

    #[test]
    fn lines_are_handed_out_once_and_an_unfinished_one_is_kept() {
        let mut buffer = LineBuffer::new(64);
        buffer.extend(b"a\r\nbb\nc");
        assert_eq!(lines(&mut buffer), [b"a".to_vec(), b"bb".to_vec()]);
        buffer.compact();
        assert_eq!(buffer.len(), 1);
        buffer.extend(b"c\n");
        assert_eq!(lines(&mut buffer), [b"cc".to_vec()]);
        assert!(lines(&mut buffer).is_empty());
    }

    #[test]
    fn reads_land_in_the_spare_room() {
        let mut buffer = LineBuffer::new(64);
        let room = buffer.spare(16);
        room[..3].copy_from_slice(b"x\ny");
        buffer.filled(16, 3);
        assert_eq!(buffer.len(), 3);
        assert_eq!(lines(&mut buffer), [b"x".to_vec()]);
    }

    #[test]
    fn a_line_over_the_limit_is_too_long() {
        let mut buffer = LineBuffer::new(4);
        buffer.extend(b"12345");
        assert_eq!(buffer.next_line(), Frame::TooLong);
    }
}
