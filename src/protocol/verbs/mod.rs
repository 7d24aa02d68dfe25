//! One file per verb's wire grammar, each with the same shape:
//! - the struct(s) the verb parses into (re-exported from
//!   [`crate::protocol::command`], which is where callers name them);
//! - `USAGE`: the reference usage text AT0003 quotes ([`VerbId::usage`]);
//! - `accepts`: the reference handler's accept test on the normalised line,
//!   which [`crate::protocol::parse::identify`] tries in dispatch order.
//!   Each is `#[inline(always)]`: `identify` runs up to thirty of them on
//!   every request, and a single one left out of line (`notify`'s was) makes
//!   every call pay a register-saving prologue, +1.3 ns on `from:`;
//! - `parse`: the grammar, from the normalised line to a [`Command`] (its doc
//!   comment shows the reference regex it reproduces);
//! - `encode`: the canonical wire text that `parse` reads back unchanged;
//! - the unit tests about that verb alone.
//!
//! `notify:status`, `notify:fetch` and `notify:remove` take nothing but a
//! notification id and share [`notify_id`]. `plookup` reuses the `lookup`
//! grammar with a narrower key.
//!
//! [`VerbId::usage`]: crate::protocol::command::VerbId::usage
//! [`Command`]: crate::protocol::command::Command

pub(crate) mod batch;
pub(crate) mod config;
pub(crate) mod cram;
pub(crate) mod delete;
pub(crate) mod enroll;
pub(crate) mod from;
pub(crate) mod info;
pub(crate) mod keys;
pub(crate) mod llookup;
pub(crate) mod lookup;
pub(crate) mod monitor;
pub(crate) mod noop;
pub(crate) mod notify;
pub(crate) mod notify_all;
pub(crate) mod notify_id;
pub(crate) mod notify_list;
pub(crate) mod notify_multi;
pub(crate) mod otp;
pub(crate) mod pkam;
pub(crate) mod plookup;
pub(crate) mod pol;
pub(crate) mod scan;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod sync_from;
pub(crate) mod to;
pub(crate) mod update;
pub(crate) mod update_meta;

/// What the verb tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::protocol::command::{Command, KeyRef, Scope};
    use crate::protocol::parse::{ParseError, normalize, parse_normalized};

    /// The whole path a request line takes: normalise, identify, parse.
    pub(crate) fn p(line: &str) -> Result<Command<'static>, ParseError> {
        // Tests leak the normalised line so the command can outlive it.
        let n: &'static str = Box::leak(normalize(line).into_owned().into_boxed_str());
        parse_normalized(n)
    }

    pub(crate) fn key<'a>(
        cached: bool,
        scope: Scope<'a>,
        name: &'a str,
        owner: Option<&'a str>,
    ) -> KeyRef<'a> {
        KeyRef {
            cached,
            scope,
            name,
            owner,
        }
    }
}
