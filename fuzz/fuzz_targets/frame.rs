//! The framer on arbitrary bytes and limits; the properties are
//! `atserver::protocol::fuzzing::frame_bytes`'s (no panic, lines within the
//! limit and ending at the first `\n`, framing in pieces equals framing at
//! once, a drain ends in `Incomplete` or `TooLong`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| atserver::protocol::fuzzing::frame_bytes(data));
