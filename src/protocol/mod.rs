//! The wire protocol, without I/O.
//!
//! Everything here is pure and allocation-conscious so it can be fuzzed and
//! benchmarked without the `runtime` feature:
//! - [`frame`]: splits the inbound byte stream into request lines;
//! - [`parse`](mod@parse): normalises a line, picks the verb in the reference's dispatch
//!   order and parses it into a borrowed [`command::Command`];
//! - `verbs/<verb>.rs` (private): one file per verb's wire grammar: its
//!   struct, accept test, parser, encoder, usage text and tests; the structs
//!   are named through [`command`];
//! - `grammar` (private): the character classes and cursor helpers the verb
//!   parsers share;
//! - [`encode`]: writes a `Command` back as canonical wire text (used by
//!   outbound connections and by the round-trip fuzzers);
//! - [`reply`]: the only place that turns results and [`crate::error::AtError`]s
//!   into response bytes;
//! - [`atsign`], [`atkey`], [`metadata`], [`json`], [`time`]: the shared rules
//!   the verbs build on;
//! - [`fuzzing`]: the properties the fuzz targets (and the property tests)
//!   check, so each target is a one-line shim.

pub mod atkey;
pub mod atsign;
pub mod command;
pub mod encode;
pub mod frame;
pub mod fuzzing;
mod grammar;
pub mod json;
pub mod metadata;
pub mod parse;
pub mod reply;
pub mod time;
mod verbs;

#[cfg(test)]
mod proptests;

pub use command::{Command, VerbId};
pub use frame::{Frame, next_line, next_line_after, trim_line};
pub use parse::{ParseError, identify, normalize, parse, parse_normalized};
