//! Request framing: one command per `\n`-terminated line.
//!
//! The reference treats a whole TCP chunk as one command; we split on `\n` and
//! answer in order, which is a compatible superset (wire.md §3). The framer
//! only looks at bytes: it proves a complete line is buffered and under the
//! limit before anything is decoded, and never allocates.

/// What [`next_line`] found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(&'a [u8]),
    /// No `\n` yet and the buffer is still under the limit: read more.
    Incomplete,
    /// The line (or the unterminated buffer) exceeds the limit; the caller
    /// answers AT0005 and closes, as the reference does.
    TooLong,
}

/// Finds the next line in `buf`.
///
/// Returns the frame and how many bytes it consumed (line plus `\n`; zero for
/// `Incomplete` and `TooLong`, so the caller decides what to discard).
pub fn next_line(buf: &[u8], max_line_bytes: usize) -> (Frame<'_>, usize) {
    next_line_after(buf, max_line_bytes, 0)
}

/// [`next_line`] for a caller that already knows the first `scanned` bytes
/// of `buf` hold no `\n` (they were `Incomplete` before more bytes came).
/// A long line arriving in many reads is then scanned once, not once per
/// read: without it a 10 MB line cost ~800 MB of scanning.
pub fn next_line_after(buf: &[u8], max_line_bytes: usize, scanned: usize) -> (Frame<'_>, usize) {
    // Only the first max+2 bytes (line, `\r`, `\n`) can hold a legal
    // terminator; scanning further would let a slow-drip peer cost quadratic time.
    let window = &buf[..buf.len().min(max_line_bytes.saturating_add(2))];
    let start = scanned.min(window.len());
    let found = window
        .get(start..)
        .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
        .map(|offset| start + offset);
    match found {
        Some(nl) => {
            let mut line = &buf[..nl];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > max_line_bytes {
                (Frame::TooLong, 0)
            } else {
                (Frame::Line(line), nl + 1)
            }
        }
        // One byte over is still fine if it is the `\r` of a `\r\n` to come.
        None if buf.len() > max_line_bytes
            && !(buf.len() == max_line_bytes + 1 && buf.last() == Some(&b'\r')) =>
        {
            (Frame::TooLong, 0)
        }
        None => (Frame::Incomplete, 0),
    }
}

/// Trims ASCII whitespace at both ends, as the reference `trim()`s every
/// decoded command (so trailing blanks of a value are lost, wire.md §3).
pub fn trim_line(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_newline_free_prefix_is_not_rescanned_and_gives_the_same_frames() {
        let buf = b"abcdef\nrest";
        for scanned in 0..=6 {
            assert_eq!(
                next_line_after(buf, 64, scanned),
                (Frame::Line(b"abcdef"), 7)
            );
        }
        assert_eq!(next_line_after(b"abc", 64, 3), (Frame::Incomplete, 0));
        assert_eq!(next_line_after(b"abc", 64, 99), (Frame::Incomplete, 0));
        assert_eq!(next_line_after(b"abcdef", 4, 2), (Frame::TooLong, 0));
    }

    #[test]
    fn splits_pipelined_lines_in_order() {
        let buf = b"scan\nllookup:x@alice\r\npartial";
        let (f, n) = next_line(buf, 100);
        assert_eq!(f, Frame::Line(b"scan"));
        let (f, m) = next_line(&buf[n..], 100);
        assert_eq!(f, Frame::Line(b"llookup:x@alice"));
        assert_eq!(next_line(&buf[n + m..], 100), (Frame::Incomplete, 0));
    }

    #[test]
    fn only_one_trailing_cr_is_removed() {
        assert_eq!(next_line(b"a\r\r\n", 10).0, Frame::Line(b"a\r"));
        assert_eq!(next_line(b"\n", 10), (Frame::Line(b""), 1));
    }

    #[test]
    fn line_at_the_limit_is_accepted_and_one_over_is_too_long() {
        assert_eq!(next_line(b"abcd\n", 4), (Frame::Line(b"abcd"), 5));
        assert_eq!(next_line(b"abcd\r\n", 4), (Frame::Line(b"abcd"), 6));
        assert_eq!(next_line(b"abcde\n", 4), (Frame::TooLong, 0));
        assert_eq!(next_line(b"abcd", 4), (Frame::Incomplete, 0));
        assert_eq!(next_line(b"abcde", 4), (Frame::TooLong, 0));
    }

    #[test]
    fn trim_removes_ascii_blanks_both_ends() {
        assert_eq!(trim_line(b" \t scan x \r"), b"scan x");
        assert_eq!(trim_line(b"   "), b"");
    }
}
