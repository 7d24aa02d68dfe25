//! Whole sessions (arbitrary lines, pipelined in arbitrary reads, anonymous
//! or logged in) through the real pipeline and stores; the properties are
//! `atserver::session::fuzzing::whole_session`'s (no panic, exactly one
//! well-formed reply per line, in order).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| atserver::app::fuzzing::whole_session(data));
