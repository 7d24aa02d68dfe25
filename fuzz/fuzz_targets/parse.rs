//! normalise + identify + parse on arbitrary input; the properties are
//! `atserver::protocol::fuzzing::parse_line`'s (no panic, and whatever
//! parses survives encode -> parse unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| atserver::protocol::fuzzing::parse_line(data));
