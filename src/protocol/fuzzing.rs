//! The properties the fuzz targets check, owned by the library so that each
//! target in `fuzz/fuzz_targets/` is a one-line shim (as rustls does it) and
//! the property tests in `proptests.rs` check exactly the same things.
//!
//! The `check_*` functions return the first property an input breaks as a
//! [`Violation`] and never panic themselves. The two entry points,
//! [`parse_line`] and [`frame_bytes`], turn a violation into the panic that
//! libFuzzer records as a find. Nothing in the server calls this module.

use std::fmt;

use super::frame::{Frame, next_line, next_line_after, trim_line};
use super::parse::{normalize, parse_normalized};

/// A property of the protocol code that an input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property, as a sentence that should have held.
    pub property: &'static str,
    /// The input and what was seen instead.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "violated: {} ({})", self.property, self.detail)
    }
}

impl std::error::Error for Violation {}

/// `Ok` when `holds`, else the violation of `property`; `detail` is only
/// formatted on failure.
fn ensure(
    holds: bool,
    property: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation {
            property,
            detail: detail(),
        })
    }
}

/// Reports a violation the way a fuzzer sees it.
fn found(result: Result<(), Violation>) {
    if let Err(violation) = result {
        // The panic is the fuzz oracle's only channel: libFuzzer saves the
        // input that caused it and prints this message.
        #[allow(clippy::panic)]
        {
            panic!("{violation}");
        }
    }
}

/// The `parse` fuzz target: any UTF-8 input goes through
/// [`check_round_trip`]; other bytes never reach the parser (the session
/// refuses them before it parses).
pub fn parse_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    found(check_round_trip(line));
}

/// The `frame` fuzz target: the first byte is the line limit, the rest the
/// buffer, which [`check_drain`] frames line by line.
pub fn frame_bytes(data: &[u8]) {
    let Some((&max, buf)) = data.split_first() else {
        return;
    };
    found(check_drain(buf, usize::from(max)));
}

/// Normalise + identify + parse never panics on any line, and whatever
/// parses survives encode -> normalise -> parse unchanged (the canonical
/// encoder is what outbound connections send).
pub fn check_round_trip(line: &str) -> Result<(), Violation> {
    let normalized = normalize(line);
    let Ok(command) = parse_normalized(&normalized) else {
        return Ok(());
    };
    let text = command.to_string();
    let normalized_again = normalize(&text);
    let again = parse_normalized(&normalized_again);
    ensure(
        again.as_ref() == Ok(&command),
        "parse -> encode -> parse gives the same command",
        || format!("line {line:?} encoded as {text:?} parses as {again:?}, not {command:?}"),
    )
}

/// One [`next_line`] call on `buf` with limit `max`: it never consumes more
/// than it was given; a line respects the limit, holds no `\n`, and is what
/// precedes the first `\n` (less one `\r`); `Incomplete` means no `\n` in a
/// buffer still within the limit; only a line consumes bytes.
pub fn check_next_line(buf: &[u8], max: usize) -> Result<(), Violation> {
    let (frame, used) = next_line(buf, max);
    let input = || format!("buffer {buf:?}, limit {max}, framed {frame:?} using {used}");
    ensure(
        used <= buf.len(),
        "the framer consumes at most the buffer",
        input,
    )?;
    match frame {
        Frame::Line(line) => {
            ensure(line.len() <= max, "a line respects the limit", input)?;
            ensure(!line.contains(&b'\n'), "a line holds no newline", input)?;
            let terminator = used.checked_sub(1).and_then(|last| buf.get(last));
            ensure(
                terminator == Some(&b'\n'),
                "a line is consumed up to its newline",
                input,
            )?;
            ensure(
                used == line.len() + 1 || used == line.len() + 2,
                "a line loses only its `\\n` or `\\r\\n`",
                input,
            )?;
            let before_terminator = used.checked_sub(1).and_then(|last| buf.get(..last));
            ensure(
                before_terminator.is_some_and(|head| !head.contains(&b'\n')),
                "a line ends at the first newline",
                input,
            )?;
            ensure(
                trim_line(line).len() <= line.len(),
                "trimming never grows a line",
                input,
            )
        }
        Frame::Incomplete => {
            ensure(used == 0, "an incomplete line consumes nothing", input)?;
            ensure(
                !buf.contains(&b'\n'),
                "an incomplete buffer holds no newline",
                input,
            )?;
            ensure(
                buf.len() <= max.saturating_add(1),
                "an incomplete buffer is within the limit (plus a `\\r`)",
                input,
            )
        }
        Frame::TooLong => ensure(used == 0, "a line too long consumes nothing", input),
    }
}

/// Feeding `buf` as reads would deliver it, growing prefixes ending at each
/// of `cuts` (clamped to the buffer, in order, then the whole buffer), and
/// carrying how much was already scanned, frames every prefix exactly as
/// framing it at once does, up to the first complete frame.
pub fn check_framing_in_pieces(buf: &[u8], max: usize, cuts: &[usize]) -> Result<(), Violation> {
    let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(buf.len())).collect();
    ends.push(buf.len());
    ends.sort_unstable();
    check_reads(buf, max, ends)
}

/// [`check_framing_in_pieces`] for read ends already in ascending order.
fn check_reads(
    buf: &[u8],
    max: usize,
    ends: impl IntoIterator<Item = usize>,
) -> Result<(), Violation> {
    let mut scanned = 0;
    for end in ends {
        let Some(prefix) = buf.get(..end) else {
            break;
        };
        let in_pieces = next_line_after(prefix, max, scanned);
        let at_once = next_line(prefix, max);
        ensure(
            in_pieces == at_once,
            "framing in pieces equals framing at once",
            || {
                format!(
                    "buffer {buf:?}, limit {max}, first {end} bytes after {scanned} scanned: \
                     {in_pieces:?} but at once {at_once:?}"
                )
            },
        )?;
        if in_pieces.0 != Frame::Incomplete {
            break;
        }
        scanned = end;
    }
    Ok(())
}

/// Drains `buf` line by line as a session does: every step satisfies
/// [`check_next_line`] and frames the same when its bytes arrive one read
/// per byte, and the drain ends in `Incomplete` or `TooLong`.
pub fn check_drain(buf: &[u8], max: usize) -> Result<(), Violation> {
    let mut rest = buf;
    loop {
        check_next_line(rest, max)?;
        check_reads(rest, max, 0..=rest.len())?;
        match next_line(rest, max) {
            (Frame::Line(_), used) => match rest.get(used..) {
                Some(after) => rest = after,
                None => {
                    return ensure(false, "the framer consumes at most the buffer", || {
                        format!("buffer {rest:?}, limit {max}, consumed {used}")
                    });
                }
            },
            (Frame::Incomplete | Frame::TooLong, _) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed the fuzz targets start from holds the properties, so the
    /// seeds double as regression inputs for `cargo test`.
    #[test]
    fn the_fuzz_seeds_hold_every_property() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut seeds = 0;
        for (target, entry_point) in [("parse", parse_line as fn(&[u8])), ("frame", frame_bytes)] {
            for file in std::fs::read_dir(corpus.join(target)).unwrap() {
                let path = file.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("seed")
                {
                    entry_point(&std::fs::read(&path).unwrap());
                    seeds += 1;
                }
            }
        }
        assert!(seeds >= 2, "found only {seeds} seeds under {corpus:?}");
    }

    #[test]
    fn framing_in_pieces_holds_across_a_pipelined_buffer() {
        let buf = b"scan\nllookup:x@alice\r\npartial";
        assert_eq!(check_framing_in_pieces(buf, 100, &[0, 3, 5, 9, 99]), Ok(()));
        assert_eq!(check_drain(buf, 100), Ok(()));
        assert_eq!(check_drain(buf, 4), Ok(()));
    }

    #[test]
    fn a_violation_names_its_property() {
        let violation = ensure(false, "one equals two", || "1 != 2".to_owned()).unwrap_err();
        assert_eq!(violation.to_string(), "violated: one equals two (1 != 2)");
    }
}
