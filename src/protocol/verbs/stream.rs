//! `stream` (legacy): set up and drive a file transfer between two atSigns'
//! clients, relayed by their servers.

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::encode::write_opt;
use crate::protocol::grammar::{choice, digits, dot_all, eat_ci, is_js_space, is_word, run, run1};
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOp {
    Init,
    Send,
    Receive,
    Done,
    Resume,
}

/// The legacy `stream:` verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stream<'a> {
    pub op: Option<StreamOp>,
    pub receiver: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub start_byte: Option<u64>,
    pub stream_id: Option<&'a str>,
    /// The file name without the space that terminates it on the wire.
    pub file_name: Option<&'a str>,
    pub length: Option<u64>,
}

/// The reference has no usage text for `stream`.
pub(crate) const USAGE: &str = "";

/// Any line starting `stream`, with or without a colon.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    line.starts_with("stream")
}

/// `^stream:(init|send|receive|done|resume)?(@(?<receiver>[^@:\s]+))?( ?namespace:(?<namespace>[\w-]+))?( ?startByte:(\d+))?( (?<streamId>[\w-]*))?( (?<fileName>.* ))?(?<length>\d*)$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    captures(s)
        .map(Command::Stream)
        .ok_or(ParseError::Syntax(VerbId::Stream))
}

fn captures(s: &str) -> Option<Stream<'_>> {
    const OPS: [(&str, StreamOp); 5] = [
        ("init", StreamOp::Init),
        ("send", StreamOp::Send),
        ("receive", StreamOp::Receive),
        ("done", StreamOp::Done),
        ("resume", StreamOp::Resume),
    ];
    let r = eat_ci(s, "stream:")?;
    choice(r, &OPS).find_map(|(op, r)| {
        // The receiver is greedy but may have to give back a `namespace` or
        // `startByte` it swallowed (`@bobnamespace:ns`): those are the only
        // shorter readings that can match, so try just them.
        let receivers = r.strip_prefix('@').into_iter().flat_map(|x| {
            let (name, _) = run(x, |c| c != '@' && c != ':' && !is_js_space(c));
            let n = name.len();
            let give_back = n
                .checked_sub(9)
                .filter(|&e| e > 0 && name.is_char_boundary(e))
                .filter(|&e| {
                    name[e..].eq_ignore_ascii_case("namespace")
                        || name[e..].eq_ignore_ascii_case("startbyte")
                });
            std::iter::once(n)
                .chain(give_back)
                .filter(|&e| e > 0)
                .map(move |e| (Some(&name[..e]), &x[e..]))
        });
        receivers
            .chain(std::iter::once((None, r)))
            .find_map(|(receiver, r)| {
                let mut st = stream_tail(r)?;
                st.op = op;
                st.receiver = receiver;
                Some(st)
            })
    })
}

/// `( ?<lit>` with the optional leading space.
fn eat_spaced<'a>(r: &'a str, lit: &str) -> Option<&'a str> {
    r.strip_prefix(' ')
        .and_then(|x| eat_ci(x, lit))
        .or_else(|| eat_ci(r, lit))
}

fn is_word_dash(c: char) -> bool {
    is_word(c) || c == '-'
}

/// `stream` after the receiver: namespace, startByte, streamId, fileName, length.
fn stream_tail(r: &str) -> Option<Stream<'_>> {
    let (namespace, r) = match eat_spaced(r, "namespace:").and_then(|x| run1(x, is_word_dash)) {
        Some((ns, x)) => (Some(ns), x),
        None => (None, r),
    };
    let (start_byte, r) = match eat_spaced(r, "startByte:").and_then(digits::<u64>) {
        Some((b, x)) => (Some(b), x),
        None => (None, r),
    };
    let base = Stream {
        namespace,
        start_byte,
        ..Stream::default()
    };
    if let Some(x) = r.strip_prefix(' ') {
        let (id, rest) = run(x, is_word_dash);
        if let Some((file_name, length)) = stream_file_length(rest) {
            return Some(Stream {
                stream_id: Some(id),
                file_name,
                length,
                ..base
            });
        }
    }
    let (file_name, length) = stream_file_length(r)?;
    Some(Stream {
        file_name,
        length,
        ..base
    })
}

/// `( (?<fileName>.* ))?(?<length>\d*)$`: the file name runs to the last
/// space, since only digits may follow it.
#[allow(clippy::type_complexity)] // a private helper's pair of captures
fn stream_file_length(r: &str) -> Option<(Option<&str>, Option<u64>)> {
    let (file_name, len_text) = match r
        .strip_prefix(' ')
        .and_then(|x| x.rfind(' ').map(|j| (x, j)))
    {
        Some((x, j)) if dot_all(&x[..j]) => (Some(&x[..j]), &x[j + 1..]),
        _ => (None, r),
    };
    if !len_text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let length = if len_text.is_empty() {
        None
    } else {
        Some(len_text.parse().ok()?)
    };
    Some((file_name, length))
}

pub(crate) fn encode(c: &Stream<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("stream:")?;
    write_opt(
        f,
        "",
        c.op.map(|o| match o {
            StreamOp::Init => "init",
            StreamOp::Send => "send",
            StreamOp::Receive => "receive",
            StreamOp::Done => "done",
            StreamOp::Resume => "resume",
        }),
    )?;
    write_opt(f, "@", c.receiver)?;
    write_opt(f, " namespace:", c.namespace)?;
    write_opt(f, " startByte:", c.start_byte)?;
    write_opt(f, " ", c.stream_id)?;
    if let Some(n) = c.file_name {
        write!(f, " {n} ")?;
    }
    write_opt(f, "", c.length)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::p;
    use super::StreamOp;
    use crate::protocol::command::Command;

    #[test]
    fn stream_forms() {
        let Command::Stream(s) = p("stream:init@bob namespace:wavi abc-1 ZmlsZQ== 1024").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                s.op,
                s.receiver,
                s.namespace,
                s.stream_id,
                s.file_name,
                s.length
            ),
            (
                Some(StreamOp::Init),
                Some("bob"),
                Some("wavi"),
                Some("abc-1"),
                Some("ZmlsZQ=="),
                Some(1024)
            )
        );
        let Command::Stream(s) = p("stream:receive abc-1").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.op, s.stream_id),
            (Some(StreamOp::Receive), Some("abc-1"))
        );
        let Command::Stream(s) = p("stream:init@bobnamespace:ns").unwrap() else {
            panic!()
        };
        assert_eq!((s.receiver, s.namespace), (Some("bob"), Some("ns")));
    }
}
