//! From a request line to a [`Command`]: normalisation (wire.md §5),
//! verb identification in the reference's dispatch order (wire.md §6) and a
//! hand-written parser per verb.
//!
//! Each parser reproduces what the reference's case-insensitive verb regex
//! (`AC/verb/syntax.dart`, plus the post-2024 additions) would capture,
//! including where that regex backtracks: optional groups are tried present
//! first, then absent, exactly as a backtracking engine would. Literals match
//! in any case; captured text keeps its case. Nothing here allocates except
//! `normalize` when it has to change the line and the `stats` id list.

use std::borrow::Cow;

use super::command::*;
use super::grammar::{
    changes_when_lowercased, choice, digits, dot_all, eat_ci, flag, group, is_js_space,
    is_line_terminator, is_tok, is_word, opt_owner, run, run1, take_ts, validated, with_scope,
};
use super::metadata::{MetaFragment, take_bool, take_int};
use crate::error::{AtCode, AtError};

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No verb accepts the line (AT0003 `invalid command`).
    InvalidCommand,
    /// The verb was recognised but its grammar did not match
    /// (AT0003 `Invalid syntax. <usage>`).
    Syntax(VerbId),
    /// The grammar matched but a value is refused (negative ttl, bad ttr,
    /// a field `notify:multi` does not take).
    Meta(AtError),
}

impl std::convert::From<ParseError> for AtError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::InvalidCommand => AtError::invalid_command(),
            ParseError::Syntax(v) => AtError::new(
                AtCode::InvalidSyntax,
                format!("Invalid syntax. {}", v.usage()),
            ),
            ParseError::Meta(e) => e,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::InvalidCommand => f.write_str("invalid command"),
            ParseError::Syntax(v) => write!(f, "Invalid syntax. {}", v.usage()),
            ParseError::Meta(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The `[^:@]((?!:{2})[^@])+` key group: at least two chars, the first not
/// `:` or `@`, none of the others `@`, and no `::` starting after the first
/// char (`next` is the char after the key, which the lookahead also sees).
fn is_double_key(key: &str, next: Option<char>) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    if first == ':' || first == '@' || rest.is_empty() || rest.contains('@') || rest.contains("::")
    {
        return false;
    }
    !(rest.ends_with(':') && next == Some(':'))
}

// ---------------------------------------------------------------------------
// Normalisation and dispatch.

/// wire.md §5: a line without `:` is lower-cased entirely; otherwise the part
/// before the first `:` is lower-cased and its spaces removed. Borrows when
/// nothing changes, which is the common case.
pub fn normalize(line: &str) -> Cow<'_, str> {
    match line.find(':') {
        None => {
            if changes_when_lowercased(line) {
                Cow::Owned(line.to_lowercase())
            } else {
                Cow::Borrowed(line)
            }
        }
        Some(i) => {
            let head = &line[..i];
            if head.contains(' ') || changes_when_lowercased(head) {
                let mut s: String = head.to_lowercase().chars().filter(|&c| c != ' ').collect();
                s.push_str(&line[i..]);
                Cow::Owned(s)
            } else {
                Cow::Borrowed(line)
            }
        }
    }
}

/// The verb whose handler would accept the normalised line, tried in the
/// reference's order. These tests are case-sensitive as in the reference
/// (`startsWith` on the normalised command).
pub fn identify(n: &str) -> Option<VerbId> {
    let s = |p: &str| n.starts_with(p);
    let v = if s("from:") {
        VerbId::From
    } else if s("cram:") {
        VerbId::Cram
    } else if s("pkam:") {
        VerbId::Pkam
    } else if s("update:") && !s("update:meta") {
        VerbId::Update
    } else if s("update:meta:") {
        VerbId::UpdateMeta
    } else if s("llookup:") {
        VerbId::LLookup
    } else if s("plookup:") {
        VerbId::PLookup
    } else if s("lookup:") {
        VerbId::Lookup
    } else if s("scan") {
        VerbId::Scan
    } else if n == "pol" {
        VerbId::Pol
    } else if s("delete:") {
        VerbId::Delete
    } else if s("stats") {
        VerbId::Stats
    } else if s("config:") {
        VerbId::Config
    } else if s("monitor") {
        VerbId::Monitor
    } else if s("stream") {
        VerbId::Stream
    } else if s("notify:multi:") {
        // Checked before `notify` so that handler never sees it (changes §6.2).
        VerbId::NotifyMulti
    } else if s("notify:")
        && ![
            "notify:list",
            "notify:status",
            "notify:all",
            "notify:remove",
            "notify:fetch",
        ]
        .iter()
        .any(|p| s(p))
    {
        VerbId::Notify
    } else if s("notify:list") {
        VerbId::NotifyList
    } else if s("batch:") {
        VerbId::Batch
    } else if s("notify:status") {
        VerbId::NotifyStatus
    } else if s("notify:all") {
        VerbId::NotifyAll
    } else if s("sync:from") {
        VerbId::SyncFrom
    } else if matches!(n, "info" | "info:brief" | "info:mtls" | "info:mtlsbrief") {
        VerbId::Info
    } else if s("noop:") {
        VerbId::Noop
    } else if s("notify:remove:") {
        VerbId::NotifyRemove
    } else if s("notify:fetch") {
        VerbId::NotifyFetch
    } else if s("enroll:") {
        VerbId::Enroll
    } else if s("otp:") {
        VerbId::Otp
    } else if s("keys:") {
        VerbId::Keys
    } else if s("to:") {
        VerbId::To
    } else {
        return None;
    };
    Some(v)
}

/// Parses a normalised line for the verb [`identify`] chose.
pub fn parse(verb: VerbId, s: &str) -> Result<Command<'_>, ParseError> {
    let syntax = ParseError::Syntax(verb);
    let cmd = match verb {
        VerbId::From => p_from(s),
        VerbId::Cram => eat_ci(s, "cram:")
            .filter(|d| !d.is_empty() && dot_all(d))
            .map(|digest| Command::Cram(Cram { digest })),
        VerbId::Pkam => p_pkam(s),
        VerbId::Update => return p_update(s).ok_or(syntax)?,
        VerbId::UpdateMeta => return p_update_meta(s).ok_or(syntax)?,
        VerbId::LLookup => p_llookup(s),
        VerbId::PLookup => p_lookup(s, "plookup:", true).map(Command::PLookup),
        VerbId::Lookup => p_lookup(s, "lookup:", false).map(Command::Lookup),
        VerbId::Scan => p_scan(s),
        VerbId::Pol => eat_ci(s, "pol")
            .filter(|r| r.is_empty())
            .map(|_| Command::Pol),
        VerbId::Delete => p_delete(s),
        VerbId::Stats => p_stats(s),
        VerbId::Config => p_config(s),
        VerbId::Monitor => p_monitor(s),
        VerbId::Stream => p_stream(s),
        VerbId::Notify => return p_notify(s).ok_or(syntax)?,
        VerbId::NotifyList => p_notify_list(s),
        VerbId::Batch => eat_ci(s, "batch:")
            .filter(|j| !j.is_empty() && dot_all(j))
            .map(|json| Command::Batch(Batch { json })),
        VerbId::NotifyStatus => p_non_space_id(s, "notify:status:").map(Command::NotifyStatus),
        VerbId::NotifyAll => p_notify_all(s),
        VerbId::SyncFrom => p_sync_from(s),
        VerbId::Info => p_info(s),
        VerbId::Noop => eat_ci(s, "noop:")
            .and_then(digits::<u64>)
            .filter(|(_, r)| r.is_empty())
            .map(|(delay_ms, _)| Command::Noop(Noop { delay_ms })),
        VerbId::NotifyRemove => p_notify_remove(s),
        VerbId::NotifyFetch => p_non_space_id(s, "notify:fetch:").map(Command::NotifyFetch),
        VerbId::Enroll => p_enroll(s),
        VerbId::Otp => p_otp(s),
        VerbId::Keys => p_keys(s),
        VerbId::NotifyMulti => return p_notify_multi(s).ok_or(syntax)?,
        VerbId::To => p_to(s),
    };
    cmd.ok_or(syntax)
}

/// [`identify`] then [`parse`] on an already normalised line.
pub fn parse_normalized(n: &str) -> Result<Command<'_>, ParseError> {
    let verb = identify(n).ok_or(ParseError::InvalidCommand)?;
    parse(verb, n)
}

// ---------------------------------------------------------------------------
// One parser per verb. `None` means the verb's regex does not match.

/// `^from:(?<atSign>@?[^:@\s]+)(:clientConfig:(?<clientConfig>\{.+\}))?$`
fn p_from(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "from:")?;
    let at = usize::from(r.starts_with('@'));
    let (name, rest) = run1(&r[at..], is_tok)?;
    let atsign = &r[..at + name.len()];
    let client_config = if rest.is_empty() {
        None
    } else {
        let cfg = eat_ci(rest, ":clientConfig:")?;
        if !(cfg.len() >= 3 && cfg.starts_with('{') && cfg.ends_with('}') && dot_all(cfg)) {
            return None;
        }
        Some(cfg)
    };
    Some(Command::From(From {
        atsign,
        client_config,
    }))
}

/// `^pkam:(signingAlgo:<a>:)?(hashingAlgo:<h>:)?(enrollmentId:(.+):)?(.+$)`.
/// Each optional group is taken when something is left for the signature.
fn p_pkam(s: &str) -> Option<Command<'_>> {
    let mut r = eat_ci(s, "pkam:")?;
    if r.is_empty() || !dot_all(r) {
        return None;
    }
    const SIGN: [(&str, SigningAlgo); 3] = [
        ("signingAlgo:ecc_secp256r1:", SigningAlgo::EccSecp256r1),
        ("signingAlgo:rsa2048:", SigningAlgo::Rsa2048),
        ("signingAlgo:mldsa65:", SigningAlgo::MlDsa65),
    ];
    const HASH: [(&str, HashingAlgo); 2] = [
        ("hashingAlgo:sha256:", HashingAlgo::Sha256),
        ("hashingAlgo:sha512:", HashingAlgo::Sha512),
    ];
    let signing_algo = choice(r, &SIGN)
        .find(|(_, rest)| !rest.is_empty())
        .and_then(|(a, rest)| {
            r = rest;
            a
        });
    let hashing_algo = choice(r, &HASH)
        .find(|(_, rest)| !rest.is_empty())
        .and_then(|(a, rest)| {
            r = rest;
            a
        });
    let mut enrollment_id = None;
    if let Some(e) = eat_ci(r, "enrollmentId:") {
        // Greedy `.+` then `:` then a non-empty signature: the last colon
        // that leaves at least one character after it.
        let cut = e
            .char_indices()
            .rev()
            .find(|&(i, c)| c == ':' && i >= 1 && i + 1 < e.len())
            .map(|(i, _)| i);
        if let Some(i) = cut {
            enrollment_id = Some(&e[..i]);
            r = &e[i + 1..];
        }
    }
    Some(Command::Pkam(Pkam {
        signing_algo,
        hashing_algo,
        enrollment_id,
        signature: r,
    }))
}

/// `^update(:nc)?(:json:(?<json>.+)|<meta>(:public|:@for)?:(?<atKey>[^:@\s]+|privatekey:at_pkam_publickey)(@owner)? (?<value>.+))$`
fn p_update(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "update")?;
    flag(r, ":nc").find_map(|(no_commit, r)| {
        if let Some(json) = eat_ci(r, ":json:") {
            if !json.is_empty() && dot_all(json) {
                return Some(Ok(Command::UpdateJson(UpdateJson { no_commit, json })));
            }
        }
        let (meta, r) = MetaFragment::parse(r).ok()?;
        with_scope(r, |scope, rest| {
            let k = rest.strip_prefix(':')?;
            let tail = |name, after| {
                let (owner, after) = opt_owner(after)?;
                let value = after
                    .strip_prefix(' ')
                    .filter(|v| !v.is_empty() && dot_all(v))?;
                let key = KeyRef {
                    cached: false,
                    scope,
                    name,
                    owner,
                };
                Some(validated(
                    &meta,
                    Command::Update(Update {
                        no_commit,
                        meta,
                        key,
                        value,
                    }),
                ))
            };
            if let Some(c) = run1(k, is_tok).and_then(|(name, after)| tail(name, after)) {
                return Some(c);
            }
            let after = eat_ci(k, "privatekey:at_pkam_publickey")?;
            tail(&k[..k.len() - after.len()], after)
        })
    })
}

/// `^update:meta(:nc)?(:public|:@for)?:(?<atKey>[^:@]((?!:{2})[^:@])+)@(?<atSign>[^:@\s]+)<meta>$`
fn p_update_meta(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "update:meta")?;
    flag(r, ":nc").find_map(|(no_commit, r)| {
        with_scope(r, |scope, rest| {
            let k = rest.strip_prefix(':')?;
            let (name, after) = run(k, |c| c != ':' && c != '@');
            // At least two characters.
            name.chars().nth(1)?;
            let (owner, after) = run1(after.strip_prefix('@')?, is_tok)?;
            let (meta, tail) = MetaFragment::parse(after).ok()?;
            if !tail.is_empty() {
                return None;
            }
            let key = KeyRef {
                cached: false,
                scope,
                name,
                owner: Some(owner),
            };
            Some(validated(
                &meta,
                Command::UpdateMeta(UpdateMeta {
                    no_commit,
                    key,
                    meta,
                }),
            ))
        })
    })
}

const LOOKUP_OPS: [(&str, LookupOp); 2] = [(":meta", LookupOp::Meta), (":all", LookupOp::All)];

/// `^llookup(:meta|:all)?(:cached)?(:public|:@for)?:(?<atKey>[^:]((?!:{2})[^@])+)@(?<atSign>[^:@\s]+)$`
fn p_llookup(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "llookup")?;
    choice(r, &LOOKUP_OPS).find_map(|(op, r)| {
        flag(r, ":cached").find_map(|(cached, r)| {
            with_scope(r, |scope, rest| {
                let k = rest.strip_prefix(':')?;
                let (name, owner) = k.rsplit_once('@')?;
                let first_ok = !name.starts_with(':');
                let mut chars = name.chars();
                chars.next();
                let tail = chars.as_str();
                let ok =
                    first_ok && !tail.is_empty() && !tail.contains('@') && !tail.contains("::");
                if !ok || owner.is_empty() || !owner.chars().all(is_tok) {
                    return None;
                }
                let key = KeyRef {
                    cached,
                    scope,
                    name,
                    owner: Some(owner),
                };
                Some(Command::LLookup(LLookup {
                    op: op.unwrap_or_default(),
                    key,
                }))
            })
        })
    })
}

/// `^lookup:(bypassCache:(true|false):)?((meta|all):)?(?<atKey>[^:].+)@(?<atSign>[^:@\s]+)$`
/// and `^plookup:…(?<atKey>[^@\s]+)@(?<atSign>[^:@\s]+)$`.
fn p_lookup<'a>(s: &'a str, prefix: &str, proxy: bool) -> Option<Lookup<'a>> {
    const BYPASS: [(&str, bool); 2] = [("bypassCache:true:", true), ("bypassCache:false:", false)];
    const OPS: [(&str, LookupOp); 2] = [("meta:", LookupOp::Meta), ("all:", LookupOp::All)];
    let r = eat_ci(s, prefix)?;
    choice(r, &BYPASS).find_map(|(bypass_cache, r)| {
        choice(r, &OPS).find_map(|(op, r)| {
            let (name, owner) = r.rsplit_once('@')?;
            if owner.is_empty() || !owner.chars().all(is_tok) {
                return None;
            }
            let ok = if proxy {
                !name.is_empty() && !name.contains(|c| c == '@' || is_js_space(c))
            } else {
                let mut chars = name.chars();
                chars.next().is_some_and(|c| c != ':')
                    && !chars.as_str().is_empty()
                    && dot_all(chars.as_str())
            };
            ok.then_some(Lookup {
                bypass_cache,
                op: op.unwrap_or_default(),
                name,
                owner,
            })
        })
    })
}

/// `^scan$|scan(:cl)?(:showhidden:(true|false))?(:(?<forAtSign>@[^:@\s]+))?(:page:(\d+))?( (?<regex>\S+))?$`
/// The second alternative is not anchored at the start, so like the
/// reference we also accept it at a later `scan` in the line.
fn p_scan(s: &str) -> Option<Command<'_>> {
    fn at(r: &str) -> Option<Scan<'_>> {
        let (commit_log, r) = match eat_ci(r, ":cl") {
            Some(x) => (true, x),
            None => (false, r),
        };
        let (show_hidden, r) = match eat_ci(r, ":showhidden:").and_then(take_bool) {
            Some((b, x)) => (Some(b), x),
            None => (None, r),
        };
        let (for_atsign, r) = match r.strip_prefix(":@").and_then(|x| run1(x, is_tok)) {
            Some((name, x)) => (Some(&r[1..2 + name.len()]), x),
            None => (None, r),
        };
        let (page, r) = match eat_ci(r, ":page:").and_then(digits::<u64>) {
            Some((p, x)) => (Some(p), x),
            None => (None, r),
        };
        let (regex, r) = match r
            .strip_prefix(' ')
            .and_then(|x| run1(x, |c| !is_js_space(c)))
        {
            Some((re, x)) => (Some(re), x),
            None => (None, r),
        };
        r.is_empty().then_some(Scan {
            commit_log,
            show_hidden,
            for_atsign,
            page,
            regex,
        })
    }
    let bytes = s.as_bytes();
    (0..bytes.len().saturating_sub(3))
        .filter(|&i| bytes[i..i + 4].eq_ignore_ascii_case(b"scan"))
        .find_map(|i| at(&s[i + 4..]))
        .map(Command::Scan)
}

/// `^delete(:dAt:<ts>)?(:nc)?(:force)?(:priority:<p>)?(:cached)?(:public|:@for)?:(?<atKey>[^:@\s]+|privatekey:at_secret)(@owner)?$`
fn p_delete(s: &str) -> Option<Command<'_>> {
    const PRIO: [(&str, Priority); 3] = [
        (":priority:low", Priority::Low),
        (":priority:medium", Priority::Medium),
        (":priority:high", Priority::High),
    ];
    let r = eat_ci(s, "delete")?;
    group(r, ":dAt:", take_ts).find_map(|(d_at, r)| {
        flag(r, ":nc").find_map(|(no_commit, r)| {
            flag(r, ":force").find_map(|(force, r)| {
                choice(r, &PRIO).find_map(|(priority, r)| {
                    flag(r, ":cached").find_map(|(cached, r)| {
                        with_scope(r, |scope, rest| {
                            let k = rest.strip_prefix(':')?;
                            let tail = |name, after| {
                                let (owner, after) = opt_owner(after)?;
                                after.is_empty().then_some(KeyRef {
                                    cached,
                                    scope,
                                    name,
                                    owner,
                                })
                            };
                            let key =
                                run1(k, is_tok).and_then(|(n, a)| tail(n, a)).or_else(|| {
                                    let after = eat_ci(k, "privatekey:at_secret")?;
                                    tail(&k[..k.len() - after.len()], after)
                                })?;
                            Some(Command::Delete(Delete {
                                d_at,
                                no_commit,
                                force,
                                priority,
                                key,
                            }))
                        })
                    })
                })
            })
        })
    })
}

/// `^stats(?<statId>:((?!0)\d+)?(,(\d+))*)?(:(?<regex>(?<=:3:|:15:).+))?$`
fn p_stats(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "stats")?;
    if r.is_empty() {
        return Some(Command::Stats(Stats::default()));
    }
    let mut r = r.strip_prefix(':')?;
    let mut ids = Vec::new();
    if !r.starts_with('0') {
        if let Some((id, rest)) = digits::<u32>(r) {
            ids.push(id);
            r = rest;
        } else if r.starts_with(|c: char| c.is_ascii_digit()) {
            return None; // too large
        }
    }
    while let Some(rest) = r.strip_prefix(',') {
        let (id, rest) = digits::<u32>(rest)?;
        ids.push(id);
        r = rest;
    }
    let regex = if r.is_empty() {
        None
    } else {
        // The lookbehind only holds when the id list is exactly `:3` or `:15`.
        let id_text = &s[eat_ci(s, "stats:").map_or(0, |x| s.len() - x.len())..s.len() - r.len()];
        let re = r
            .strip_prefix(':')
            .filter(|re| !re.is_empty() && dot_all(re))?;
        if id_text != "3" && id_text != "15" {
            return None;
        }
        Some(re)
    };
    Some(Command::Stats(Stats { ids, regex }))
}

/// `^config:(?:block:(add|remove|show)(?:(?<=show)\s?$|(?<=add|remove):(?<atSign>@[^:@\s]+( @[^\s@]+)*$)))|(?:(?<=config:)(set|reset|print):(?<configNew>.+)$)`.
/// The second alternative is unanchored: it may start after any `config:`.
fn p_config(s: &str) -> Option<Command<'_>> {
    if let Some(b) = eat_ci(s, "config:block:") {
        if let Some(r) = eat_ci(b, "show") {
            let mut c = r.chars();
            if c.next().is_none_or(is_js_space) && c.next().is_none() {
                return Some(Command::Config(Config::BlockShow));
            }
        }
        for (lit, add) in [("add:", true), ("remove:", false)] {
            if let Some(list) = eat_ci(b, lit) {
                if is_block_list(list) {
                    return Some(Command::Config(if add {
                        Config::BlockAdd(list)
                    } else {
                        Config::BlockRemove(list)
                    }));
                }
            }
        }
    }
    let bytes = s.as_bytes();
    // Each candidate's `.+$` runs to the end of the line: find the last line
    // terminator once instead of rescanning the tail per candidate.
    let last_lt = s.rfind(is_line_terminator);
    (7..=bytes.len())
        .filter(|&i| bytes[i - 7..i].eq_ignore_ascii_case(b"config:"))
        .find_map(|i| {
            let r = &s[i..];
            let (op, rest) = [("set:", 0), ("reset:", 1), ("print:", 2)]
                .iter()
                .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
            if rest.is_empty() || last_lt.is_some_and(|l| l >= s.len() - rest.len()) {
                return None;
            }
            Some(Command::Config(match op {
                0 => Config::Set(rest),
                1 => Config::Reset(rest),
                _ => Config::Print(rest),
            }))
        })
}

/// `@[^:@\s]+( @[^\s@]+)*` over the whole of `s`.
fn is_block_list(s: &str) -> bool {
    let Some(first) = s.strip_prefix('@') else {
        return false;
    };
    let Some((_, mut r)) = run1(first, is_tok) else {
        return false;
    };
    while !r.is_empty() {
        let Some(next) = r.strip_prefix(" @") else {
            return false;
        };
        let Some((_, rest)) = run1(next, |c| c != '@' && !is_js_space(c)) else {
            return false;
        };
        r = rest;
    }
    true
}

/// `^monitor(:strict)?(:selfNotifications)?(:multiplexed)?(:(\d+))?( (?<regex>.+))?$`
fn p_monitor(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "monitor")?;
    let take = |r: &mut &str, lit: &str| match eat_ci(r, lit) {
        Some(x) => {
            *r = x;
            true
        }
        None => false,
    };
    let mut r = r;
    let strict = take(&mut r, ":strict");
    let self_notifications = take(&mut r, ":selfNotifications");
    let multiplexed = take(&mut r, ":multiplexed");
    let mut epoch_ms = None;
    if let Some(x) = r.strip_prefix(':') {
        let (e, rest) = digits::<u64>(x)?;
        epoch_ms = Some(e);
        r = rest;
    }
    let regex = match r.strip_prefix(' ') {
        Some(re) if !re.is_empty() && dot_all(re) => Some(re),
        None if r.is_empty() => None,
        _ => return None,
    };
    Some(Command::Monitor(Monitor {
        strict,
        self_notifications,
        multiplexed,
        epoch_ms,
        regex,
    }))
}

/// `^stream:(init|send|receive|done|resume)?(@(?<receiver>[^@:\s]+))?( ?namespace:(?<namespace>[\w-]+))?( ?startByte:(\d+))?( (?<streamId>[\w-]*))?( (?<fileName>.* ))?(?<length>\d*)$`
fn p_stream(s: &str) -> Option<Command<'_>> {
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
                Some(Command::Stream(st))
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

/// The `:<key>[@owner][:value]$` tail of `notify`, where the key may contain
/// single colons: the longest key that lets the rest match wins, as with the
/// reference's greedy `[^:@]((?!:{2})[^@])+`.
fn notify_key_tail(r: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let first = r.chars().next()?;
    if first == ':' || first == '@' {
        return None;
    }
    let fl = first.len_utf8();
    let limit = r.find('@').unwrap_or(r.len());
    let dc = r[fl..].find("::").map_or(r.len(), |i| i + fl);
    // Values must be free of line terminators; find the last one once.
    let last_lt = r.rfind(is_line_terminator);
    let value_ok = |start: usize| start < r.len() && last_lt.is_none_or(|l| l < start);
    let two_chars = |k: usize| r[fl..k].chars().next().is_some();
    if limit == r.len() && r.len() <= dc && two_chars(r.len()) {
        return Some((r, None, None));
    }
    if limit < r.len() && limit <= dc && two_chars(limit) {
        if let Some((owner, rest)) = run1(&r[limit + 1..], is_tok) {
            if rest.is_empty() {
                return Some((&r[..limit], Some(owner), None));
            }
            if rest.starts_with(':') {
                let start = r.len() - rest.len() + 1;
                if value_ok(start) {
                    return Some((&r[..limit], Some(owner), Some(&r[start..])));
                }
            }
        }
    }
    // A key may end right before a `::` (the value then starts with `:`).
    let end = if dc < limit { dc + 1 } else { limit };
    r[..end]
        .char_indices()
        .rev()
        .filter(|&(i, c)| c == ':' && i >= fl && two_chars(i))
        .find(|&(i, _)| value_ok(i + 1))
        .map(|(i, _)| (&r[..i], None, Some(&r[i + 1..])))
}

/// The notify header fields after `:ttln` (changes §6.1): `[:eAtn:<ts>][:eph]`.
fn e_atn_eph(r: &str) -> (Option<&str>, bool, &str) {
    let (e_atn, r) = match eat_ci(r, ":eAtn:").and_then(take_ts) {
        Some((t, x)) => (Some(t), x),
        None => (None, r),
    };
    match eat_ci(r, ":eph") {
        Some(x) => match x.strip_prefix(':').and_then(take_bool) {
            Some((b, y)) => (e_atn, b, y),
            None => (e_atn, true, x),
        },
        None => (e_atn, false, r),
    }
}

/// The full `notify` grammar (notifications.md §2 plus changes §6.1).
fn p_notify(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let mut r = eat_ci(s, "notify")?;
    fn opt<'a, T>(
        r: &mut &'a str,
        lit: &str,
        take: impl Fn(&'a str) -> Option<(T, &'a str)>,
    ) -> Option<Option<T>> {
        match eat_ci(r, lit) {
            None => Some(None),
            Some(x) => {
                let (v, rest) = take(x)?;
                *r = rest;
                Some(Some(v))
            }
        }
    }
    fn pick<'a, 'b, T: Copy>(
        alts: &'b [(&'b str, T)],
    ) -> impl Fn(&'a str) -> Option<(T, &'a str)> + 'b {
        move |x| {
            alts.iter()
                .find_map(|(lit, v)| eat_ci(x, lit).map(|r| (*v, r)))
        }
    }
    let id = opt(&mut r, ":id:", |x| run1(x, |c| is_word(c) || c == '-'))?;
    let operation = [(":update", NotifyOp::Update), (":delete", NotifyOp::Delete)]
        .iter()
        .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))
        .map(|(op, x)| {
            r = x;
            op
        });
    let message_type = opt(
        &mut r,
        ":messageType:",
        pick(&[("key", MessageType::Key), ("text", MessageType::Text)]),
    )?;
    let priority = opt(
        &mut r,
        ":priority:",
        pick(&[
            ("low", Priority::Low),
            ("medium", Priority::Medium),
            ("high", Priority::High),
        ]),
    )?;
    let strategy = opt(
        &mut r,
        ":strategy:",
        pick(&[
            ("all", NotifyStrategy::All),
            ("latest", NotifyStrategy::Latest),
        ]),
    )?;
    let latest_n = opt(&mut r, ":latestN:", digits::<u64>)?;
    let notifier = opt(&mut r, ":notifier:", |x| {
        run1(x, |c| c != ':' && !is_js_space(c))
    })?;
    let ttln = opt(&mut r, ":ttln:", digits::<u64>)?;
    let (e_atn, eph, r) = e_atn_eph(r);
    let (meta, r) = MetaFragment::parse(r).ok()?;
    let (target, r) = if let Some(x) = eat_ci(r, ":public:") {
        (NotifyTarget::Public, x)
    } else {
        let (name, x) = run1(r.strip_prefix(":@")?, is_tok)?;
        (NotifyTarget::AtSign(name), x.strip_prefix(':')?)
    };
    let (key, owner, value) = notify_key_tail(r)?;
    let cmd = Command::Notify(Notify {
        id,
        operation,
        message_type,
        priority,
        strategy,
        latest_n,
        notifier,
        ttln,
        e_atn,
        eph,
        meta,
        target,
        key,
        owner,
        value,
    });
    Some(validated(&meta, cmd))
}

/// `\d{4}-[01]?\d?-[0123]?\d?` at the front of `s`, with the little
/// backtracking the optional parts need to find the second `-`.
fn take_list_date(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let month_first = b.get(5).is_some_and(|c| matches!(c, b'0' | b'1'));
    let at = |i: usize| b.get(i).copied();
    for (m1, m2) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut i = 5;
        if m1 {
            if !month_first {
                continue;
            }
            i += 1;
        }
        if m2 {
            if !at(i).is_some_and(|c| c.is_ascii_digit()) {
                continue;
            }
            i += 1;
        }
        if at(i) != Some(b'-') {
            continue;
        }
        i += 1;
        if at(i).is_some_and(|c| matches!(c, b'0'..=b'3')) {
            i += 1;
        }
        if at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        return Some(s.split_at(i));
    }
    None
}

/// `^notify:list(:<date>)?(:<date>)?(:(?<regex>[^:]+))?` — not end-anchored.
fn p_notify_list(s: &str) -> Option<Command<'_>> {
    let mut r = eat_ci(s, "notify:list")?;
    fn date<'a>(r: &mut &'a str) -> Option<&'a str> {
        let (d, rest) = r.strip_prefix(':').and_then(take_list_date)?;
        *r = rest;
        Some(d)
    }
    let from_date = date(&mut r);
    let to_date = date(&mut r);
    let regex = r
        .strip_prefix(':')
        .and_then(|x| run1(x, |c| c != ':'))
        .map(|(re, _)| re);
    Some(Command::NotifyList(NotifyList {
        from_date,
        to_date,
        regex,
    }))
}

/// `^<prefix>(\S+)$`
fn p_non_space_id<'a>(s: &'a str, prefix: &str) -> Option<NotifyId<'a>> {
    let id = eat_ci(s, prefix)?;
    (!id.is_empty() && !id.contains(is_js_space)).then_some(NotifyId { id })
}

/// `notify:remove:(?<id>[\w\d\-\_]+)` — searched, not anchored.
fn p_notify_remove(s: &str) -> Option<Command<'_>> {
    const LIT: &[u8] = b"notify:remove:";
    let bytes = s.as_bytes();
    (LIT.len()..=bytes.len())
        .filter(|&i| bytes[i - LIT.len()..i].eq_ignore_ascii_case(LIT))
        .find_map(|i| run1(&s[i..], |c| is_word(c) || c == '-'))
        .map(|(id, _)| Command::NotifyRemove(NotifyId { id }))
}

/// `^notify:all:((update|delete):)?(messageType:(key|text):)?(ttl:(\d+):)?(ttb:(\d+):)?(ttr:(-?\d+):)?(ccd:(true|false+):)?(?<forAtSign>[^:\s]*)(:(?<atKey>[^@:\s]+))(@(?<atSign>[^@:\s]+))?(:(?<value>.+))?$`
fn p_notify_all(s: &str) -> Option<Command<'_>> {
    const OPS: [(&str, NotifyOp); 2] =
        [("update:", NotifyOp::Update), ("delete:", NotifyOp::Delete)];
    const MT: [(&str, MessageType); 2] = [
        ("messageType:key:", MessageType::Key),
        ("messageType:text:", MessageType::Text),
    ];
    let r = eat_ci(s, "notify:all:")?;
    let last_lt = s.rfind(is_line_terminator);
    let base = s.len();
    fn num_colon(x: &str) -> Option<(u64, &str)> {
        let (v, x) = digits::<u64>(x)?;
        Some((v, x.strip_prefix(':')?))
    }
    fn ttr_take(x: &str) -> Option<(i64, &str)> {
        let (v, x) = take_int(x)?;
        Some((v, x.strip_prefix(':')?))
    }
    /// `(true|false+):` — the reference regex really allows `falseee`.
    fn ccd_take(x: &str) -> Option<(bool, &str)> {
        if let Some(y) = eat_ci(x, "true:") {
            return Some((true, y));
        }
        let (_, y) = run1(eat_ci(x, "fals")?, |c| c == 'e' || c == 'E')?;
        Some((false, y.strip_prefix(':')?))
    }
    choice(r, &OPS).find_map(|(operation, r)| {
        choice(r, &MT).find_map(|(message_type, r)| {
            group(r, "ttl:", num_colon).find_map(|(ttl, r)| {
                group(r, "ttb:", num_colon).find_map(|(ttb, r)| {
                    group(r, "ttr:", ttr_take).find_map(|(ttr, r)| {
                        group(r, "ccd:", ccd_take).find_map(|(ccd, r)| {
                            let (recipients, r) = run(r, |c| c != ':' && !is_js_space(c));
                            let no_at = |c: char| c != '@' && c != ':' && !is_js_space(c);
                            let (key, r) = run1(r.strip_prefix(':')?, no_at)?;
                            let (owner, r) = match r.strip_prefix('@') {
                                Some(x) => {
                                    let (o, y) = run1(x, no_at)?;
                                    (Some(o), y)
                                }
                                None => (None, r),
                            };
                            let value = if r.is_empty() {
                                None
                            } else {
                                let v = r.strip_prefix(':')?;
                                let start = base - v.len();
                                if v.is_empty() || last_lt.is_some_and(|l| l >= start) {
                                    return None;
                                }
                                Some(v)
                            };
                            Some(Command::NotifyAll(NotifyAll {
                                operation,
                                message_type,
                                ttl,
                                ttb,
                                ttr,
                                ccd,
                                recipients,
                                key,
                                owner,
                                value,
                            }))
                        })
                    })
                })
            })
        })
    })
}

/// `^sync:from:(?<from>[0-9]+|-1)(:limit:(\d+))?(:skipDeletesUntil:(\d+))?(:(?<regex>.+))?$`
fn p_sync_from(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "sync:from:")?;
    let (from, r) = match digits::<i64>(r) {
        Some(x) => x,
        None => (-1, r.strip_prefix("-1")?),
    };
    group(r, ":limit:", digits::<u32>).find_map(|(limit, r)| {
        group(r, ":skipDeletesUntil:", digits::<i64>).find_map(|(skip_deletes_until, r)| {
            let regex = if r.is_empty() {
                None
            } else {
                Some(
                    r.strip_prefix(':')
                        .filter(|x| !x.is_empty() && dot_all(x))?,
                )
            };
            Some(Command::SyncFrom(SyncFrom {
                from,
                limit,
                skip_deletes_until,
                regex,
            }))
        })
    })
}

/// `^info(:(brief|mtls|mtlsbrief))?$`
fn p_info(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "info")?;
    let form = if r.is_empty() {
        InfoForm::Plain
    } else if r.eq_ignore_ascii_case(":brief") {
        InfoForm::Brief
    } else if r.eq_ignore_ascii_case(":mtls") {
        InfoForm::Mtls
    } else if r.eq_ignore_ascii_case(":mtlsbrief") {
        InfoForm::MtlsBrief
    } else {
        return None;
    };
    Some(Command::Info(Info { form }))
}

/// `^enroll:(?<operation>…)(:(?<force>force))?(?::)?(?<enrollParams>.+)?$`
fn p_enroll(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "enroll:")?;
    let (op, r) = EnrollOp::ALL
        .iter()
        .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
    let (force, r) = match eat_ci(r, ":force") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let r = r.strip_prefix(':').unwrap_or(r);
    if !dot_all(r) {
        return None;
    }
    let params = (!r.is_empty()).then_some(r);
    Some(Command::Enroll(Enroll { op, force, params }))
}

/// `^otp:(get|put)(:(?<otp>(?<=put:)\w{6,}))?(:ttl:(\d+))?$`
fn p_otp(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "otp:")?;
    let (op, r) = if let Some(x) = eat_ci(r, "get") {
        (OtpOp::Get, x)
    } else {
        (OtpOp::Put, eat_ci(r, "put")?)
    };
    let finish = |passcode, r| {
        let (ttl, r) = match eat_ci(r, ":ttl:").and_then(digits::<u64>) {
            Some((t, x)) => (Some(t), x),
            None => (None, r),
        };
        r.is_empty()
            .then_some(Command::Otp(Otp { op, passcode, ttl }))
    };
    // `\w{6,}` only right after `put:` (the lookbehind).
    let with_code = match op {
        OtpOp::Put => r
            .strip_prefix(':')
            .and_then(|x| run1(x, is_word))
            .filter(|(c, _)| c.len() >= 6),
        OtpOp::Get => None,
    };
    with_code
        .and_then(|(code, x)| finish(Some(code), x))
        .or_else(|| finish(None, r))
}

/// `^keys:(put|get|delete):?(public|private|self)?:?(namespace:…:?)?…(keyName:(\S+) ?)?(?<keyValue>.*)$`.
/// The trailing `.*` absorbs anything, so the greedy reading always wins.
fn p_keys(s: &str) -> Option<Command<'_>> {
    let r = eat_ci(s, "keys:")?;
    let (op, r) = [
        ("put", KeysOp::Put),
        ("get", KeysOp::Get),
        ("delete", KeysOp::Delete),
    ]
    .iter()
    .find_map(|(lit, op)| eat_ci(r, lit).map(|x| (*op, x)))?;
    fn colon(r: &str) -> &str {
        r.strip_prefix(':').unwrap_or(r)
    }
    let mut r = colon(r);
    let visibility = [
        ("public", KeyVisibility::Public),
        ("private", KeyVisibility::Private),
        ("self", KeyVisibility::SelfKey),
    ]
    .iter()
    .find_map(|(lit, v)| eat_ci(r, lit).map(|x| (*v, x)))
    .map(|(v, x)| {
        r = colon(x);
        v
    });
    let alnum = |c: char| is_word(c);
    let alnum_dash = |c: char| is_word(c) || c == '-';
    let mut field = |lit: &str, f: &dyn Fn(char) -> bool| -> Option<&'_ str> {
        let (v, x) = eat_ci(r, lit).and_then(|x| run1(x, f))?;
        r = colon(x);
        Some(v)
    };
    let namespace = field("namespace:", &alnum);
    let app_name = field("appName:", &alnum);
    let device_name = field("deviceName:", &alnum);
    let key_type = field("keyType:", &alnum_dash);
    let encryption_key_name = field("encryptionKeyName:", &alnum_dash);
    let key_name = match eat_ci(r, "keyName:").and_then(|x| run1(x, |c| !is_js_space(c))) {
        Some((k, x)) => {
            r = x.strip_prefix(' ').unwrap_or(x);
            Some(k)
        }
        None => None,
    };
    if !dot_all(r) {
        return None;
    }
    let value = (!r.is_empty()).then_some(r);
    Some(Command::Keys(Keys {
        op,
        visibility,
        namespace,
        app_name,
        device_name,
        key_type,
        encryption_key_name,
        key_name,
        value,
    }))
}

/// Metadata `notify:multi` refuses by name (changes §6.2).
const MULTI_REFUSED: [&str; 12] = [
    "ttr",
    "ccd",
    "sharedKeyEnc",
    "pubKeyCS",
    "pubKeyHash",
    "hashingAlgo",
    "skeEncKeyName",
    "skeEncAlgo",
    "isBinary",
    "encoding",
    "sharedKeyStatus",
    "dataSignature",
];

/// `notify:multi[:update][:ttln:<ms>][:eAtn:<ts>][:eph]<meta>:@r1[,@r2…]:<key>@<sender>[:<value>]`
fn p_notify_multi(s: &str) -> Option<Result<Command<'_>, ParseError>> {
    let r = eat_ci(s, "notify:multi")?;
    let (explicit_update, r) = match eat_ci(r, ":update") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let (ttln, r) = match eat_ci(r, ":ttln:") {
        Some(x) => {
            let (t, y) = digits::<u64>(x)?;
            (Some(t), y)
        }
        None => (None, r),
    };
    let (e_atn, eph, r) = e_atn_eph(r);
    let (meta, r) = MetaFragment::parse(r).ok()?;
    let rec = r.strip_prefix(':')?;
    let is_rec = |c: char| is_tok(c) && c != ',';
    let mut x = rec;
    loop {
        let (_, y) = run1(x.strip_prefix('@')?, is_rec)?;
        x = y;
        match x.strip_prefix(',') {
            Some(y) => x = y,
            None => break,
        }
    }
    let recipients = &rec[..rec.len() - x.len()];
    let k = x.strip_prefix(':')?;
    let at = k.find('@')?;
    let key = &k[..at];
    if !is_double_key(key, Some('@')) {
        return None;
    }
    let (owner, r) = run1(&k[at + 1..], is_tok)?;
    let value = if r.is_empty() {
        None
    } else {
        Some(
            r.strip_prefix(':')
                .filter(|v| !v.is_empty() && dot_all(v))?,
        )
    };
    if let Some(bad) = meta.present_fields().find(|f| MULTI_REFUSED.contains(f)) {
        return Some(Err(ParseError::Meta(AtError::new(
            AtCode::InvalidSyntax,
            format!("notify:multi does not take {bad}"),
        ))));
    }
    let cmd = Command::NotifyMulti(NotifyMulti {
        explicit_update,
        ttln,
        e_atn,
        eph,
        meta,
        recipients,
        key,
        owner,
        value,
    });
    Some(validated(&meta, cmd))
}

/// `^to:(?<atSign>@?[^\s:]+)$`
fn p_to(s: &str) -> Option<Command<'_>> {
    let atsign = eat_ci(s, "to:")?;
    (!atsign.is_empty() && !atsign.contains(|c| c == ':' || is_js_space(c)))
        .then_some(Command::To(To { atsign }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command<'static>, ParseError> {
        // Tests leak the normalised line so the command can outlive it.
        let n: &'static str = Box::leak(normalize(line).into_owned().into_boxed_str());
        parse_normalized(n)
    }

    fn key<'a>(
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

    #[test]
    fn normalize_follows_wire_md_5() {
        assert!(matches!(normalize("llookup:Phone@alice"), Cow::Borrowed(_)));
        assert_eq!(normalize("SCAN .*Foo"), "scan .*foo");
        assert_eq!(normalize("UPDATE:Phone@alice V"), "update:Phone@alice V");
        assert_eq!(normalize("scan .*:x"), "scan.*:x");
        assert_eq!(normalize("Noop :5"), "noop:5");
        assert!(matches!(normalize("scan"), Cow::Borrowed(_)));
    }

    #[test]
    fn identify_follows_the_dispatch_table() {
        assert_eq!(identify("update:metaX@alice v"), None);
        assert_eq!(identify("update:meta"), None);
        assert_eq!(identify("update:meta:x@alice"), Some(VerbId::UpdateMeta));
        assert_eq!(identify("update:x@alice v"), Some(VerbId::Update));
        assert_eq!(identify("sync:5"), None);
        assert_eq!(identify("sync:from:5:limit:5"), Some(VerbId::SyncFrom));
        assert_eq!(identify("info"), Some(VerbId::Info));
        assert_eq!(identify("info:brief"), Some(VerbId::Info));
        assert_eq!(identify("info:x"), None);
        assert_eq!(identify("pol"), Some(VerbId::Pol));
        assert_eq!(identify("polx"), None);
        assert_eq!(identify("exit"), None);
        assert_eq!(identify("scanner"), Some(VerbId::Scan));
        assert_eq!(identify("notify:list:x"), Some(VerbId::NotifyList));
        assert_eq!(identify("notify:multi:@a:k@b"), Some(VerbId::NotifyMulti));
        assert_eq!(identify("notify:@bob:k@alice"), Some(VerbId::Notify));
        assert_eq!(identify("notify:remove:x"), Some(VerbId::NotifyRemove));
        assert_eq!(identify("to:@alice"), Some(VerbId::To));
        assert_eq!(identify("lookup:x@y"), Some(VerbId::Lookup));
        assert_eq!(identify("plookup:x@y"), Some(VerbId::PLookup));
    }

    #[test]
    fn errors_map_to_at0003_texts() {
        assert_eq!(
            AtError::from(p("exit").unwrap_err()).message,
            "invalid command"
        );
        let e = AtError::from(p("lookup:x").unwrap_err());
        assert_eq!(e.message, "Invalid syntax. e.g lookup:location@bob");
        assert_eq!(e.code, AtCode::InvalidSyntax);
        let e = AtError::from(p("update:ttl:-5:x@alice v").unwrap_err());
        assert_eq!(
            e.message,
            "Valid value for TTL should be greater than or equal to 0"
        );
    }

    #[test]
    fn update_shapes() {
        let Command::Update(u) = p("update:public:Location.wavi@alice San Francisco").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            u.key,
            key(false, Scope::Public, "Location.wavi", Some("alice"))
        );
        assert_eq!(u.value, "San Francisco");
        assert_eq!(u.key.assemble(), "public:location.wavi@alice");
        // A key called `public` (the scope reading fails, so it backtracks).
        let Command::Update(u) = p("update:public@alice v").unwrap() else {
            panic!()
        };
        assert_eq!(u.key, key(false, Scope::None, "public", Some("alice")));
        // `nc` as a key rather than the flag.
        let Command::Update(u) = p("update:nc v").unwrap() else {
            panic!()
        };
        assert!(!u.no_commit);
        assert_eq!(u.key.name, "nc");
        // Exactly one separator space is consumed.
        let Command::Update(u) = p("update:x@alice  two").unwrap() else {
            panic!()
        };
        assert_eq!(u.value, " two");
        let Command::Update(u) = p("UPDATE:privatekey:at_pkam_publickey MIIB").unwrap() else {
            panic!()
        };
        assert_eq!(u.key.assemble(), "privatekey:at_pkam_publickey");
        assert!(p("update:x@alice").is_err());
        assert!(p("update:isEncrypted:true:ttl:5:x@alice v").is_err());
        assert!(p("update:ttr:-2:x@alice v").is_err());
        let Command::UpdateJson(j) = p("update:json:{\"a\":1}").unwrap() else {
            panic!()
        };
        assert_eq!(j.json, "{\"a\":1}");
    }

    #[test]
    fn key_length_rules_of_0_2() {
        assert!(p("update:x@alice v").is_ok());
        assert!(p("delete:x@alice").is_ok());
        assert!(p("plookup:x@alice").is_ok());
        assert_eq!(
            p("llookup:x@alice"),
            Err(ParseError::Syntax(VerbId::LLookup))
        );
        assert_eq!(p("lookup:x@alice"), Err(ParseError::Syntax(VerbId::Lookup)));
        assert_eq!(
            p("update:meta:x@alice"),
            Err(ParseError::Syntax(VerbId::UpdateMeta))
        );
        assert_eq!(
            p("notify:@bob:x@alice"),
            Err(ParseError::Syntax(VerbId::Notify))
        );
        assert!(p("llookup:a::b@alice").is_err());
        assert!(p("notify:@bob:a::b@alice").is_err());
    }

    #[test]
    fn llookup_keys_may_contain_single_colons() {
        let Command::LLookup(l) = p("llookup:privatekey:xy@alice").unwrap() else {
            panic!()
        };
        assert_eq!(
            l.key,
            key(false, Scope::None, "privatekey:xy", Some("alice"))
        );
        let Command::LLookup(l) = p("llookup:meta:cached:@alice:phone@bob").unwrap() else {
            panic!()
        };
        assert_eq!(l.op, LookupOp::Meta);
        assert_eq!(l.key.assemble(), "cached:@alice:phone@bob");
    }

    #[test]
    fn lookup_backtracks_over_its_prefixes() {
        let Command::Lookup(l) = p("lookup:all:phone.wavi@bob").unwrap() else {
            panic!()
        };
        assert_eq!(
            (l.op, l.name, l.owner),
            (LookupOp::All, "phone.wavi", "bob")
        );
        // `all:` cannot be the prefix here (empty key), so it is the key.
        let Command::PLookup(l) = p("plookup:all:@bob").unwrap() else {
            panic!()
        };
        assert_eq!((l.op, l.name), (LookupOp::Value, "all:"));
        let Command::Lookup(l) = p("lookup:a b@c@bob").unwrap() else {
            panic!()
        };
        assert_eq!((l.name, l.owner), ("a b@c", "bob"));
        assert!(p("plookup:a b@bob").is_err());
    }

    #[test]
    fn scan_forms() {
        assert_eq!(p("scan").unwrap(), Command::Scan(Scan::default()));
        let Command::Scan(s) = p("scan:showhidden:TRUE:@bob:page:3 .*").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.show_hidden, s.for_atsign, s.page, s.regex),
            (Some(true), Some("@bob"), Some(3), Some(".*"))
        );
        assert!(p("scan a b").is_err());
        // The unanchored second alternative of the reference regex.
        let Command::Scan(s) = p("scanxscan:page:1").unwrap() else {
            panic!()
        };
        assert_eq!(s.page, Some(1));
    }

    #[test]
    fn delete_flags_and_keys() {
        let Command::Delete(d) = p("delete:force").unwrap() else {
            panic!()
        };
        assert!(!d.force);
        assert_eq!(d.key.name, "force");
        let Command::Delete(d) = p("delete:cached:public:publickey@bob").unwrap() else {
            panic!()
        };
        assert_eq!(d.key.assemble(), "cached:public:publickey@bob");
        assert!(p("delete:a b@alice").is_err());
    }

    #[test]
    fn stats_ids_and_regex() {
        let Command::Stats(s) = p("stats:3:.*wavi").unwrap() else {
            panic!()
        };
        assert_eq!((s.ids.as_slice(), s.regex), (&[3][..], Some(".*wavi")));
        assert!(p("stats:1,3:x").is_err());
        assert!(p("stats:13:x").is_err());
        assert!(p("stats:0").is_err());
        let Command::Stats(s) = p("stats:,0").unwrap() else {
            panic!()
        };
        assert_eq!(s.ids, vec![0]);
        assert!(p("statsx").is_err());
    }

    #[test]
    fn notify_key_owner_value_split() {
        let Command::Notify(n) = p("notify:@bob:hello:world").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.owner, n.value), ("hello:world", None, None));
        let Command::Notify(n) = p("notify:@bob:ab:c@d e").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.owner, n.value), ("ab", None, Some("c@d e")));
        // A one-character key cannot absorb the rest, so nothing matches.
        assert!(p("notify:@bob:a:b@c d").is_err());
        let Command::Notify(n) = p("notify:@bob:public:phone.wavi@alice:v:w").unwrap() else {
            panic!()
        };
        assert_eq!(
            (n.target, n.key, n.owner, n.value),
            (
                NotifyTarget::AtSign("bob"),
                "public:phone.wavi",
                Some("alice"),
                Some("v:w")
            )
        );
        let Command::Notify(n) = p("notify:@bob:ab::cd").unwrap() else {
            panic!()
        };
        assert_eq!((n.key, n.value), ("ab", Some(":cd")));
        let Command::Notify(n) = p("notify:eph:true:@bob:msg@alice").unwrap() else {
            panic!()
        };
        assert!(n.eph);
        assert!(p("notify:@bob:k@alice:").is_err());
    }

    #[test]
    fn notify_multi_refuses_fields_by_name() {
        let e = p("notify:multi:ttr:5:@bob:msg.chat@alice:v").unwrap_err();
        assert_eq!(AtError::from(e).message, "notify:multi does not take ttr");
        let Command::NotifyMulti(m) = p("notify:multi:@bob,@colin:msg.chat@alice").unwrap() else {
            panic!()
        };
        assert_eq!(m.recipient_list().collect::<Vec<_>>(), ["@bob", "@colin"]);
        assert!(p("notify:multi:@bob,colin:msg.chat@alice").is_err());
        assert!(p("notify:multi:@bob:msg.chat").is_err());
    }

    #[test]
    fn notify_all_backtracks_over_optional_groups() {
        let Command::NotifyAll(a) = p("notify:all:update:x").unwrap() else {
            panic!()
        };
        assert_eq!((a.operation, a.recipients, a.key), (None, "update", "x"));
        let Command::NotifyAll(a) = p("notify:all:ccd:falseee:@a,@b:k@c:v").unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.ccd, a.recipients, a.owner, a.value),
            (Some(false), "@a,@b", Some("c"), Some("v"))
        );
    }

    #[test]
    fn notify_list_is_not_end_anchored() {
        let Command::NotifyList(l) = p("notify:list ^foo").unwrap() else {
            panic!()
        };
        assert_eq!(l, NotifyList::default());
        let Command::NotifyList(l) = p("notify:list:2024-1-5:2024-12-31:wavi:garbage").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (l.from_date, l.to_date, l.regex),
            (Some("2024-1-5"), Some("2024-12-31"), Some("wavi"))
        );
        let Command::NotifyList(l) = p("notify:list:2024-21-05").unwrap() else {
            panic!()
        };
        assert_eq!((l.from_date, l.regex), (None, Some("2024-21-05")));
    }

    #[test]
    fn sync_from_forms() {
        let Command::SyncFrom(s) = p("sync:from:-1:limit:10:skipDeletesUntil:593700").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.from, s.limit, s.skip_deletes_until, s.regex),
            (-1, Some(10), Some(593_700), None)
        );
        // The 2024 grammar's mandatory limit is optional now.
        let Command::SyncFrom(s) = p("sync:from:41:.*\\.wavi").unwrap() else {
            panic!()
        };
        assert_eq!((s.from, s.limit, s.regex), (41, None, Some(".*\\.wavi")));
        let Command::SyncFrom(s) = p("sync:from:1:limit:5:").unwrap() else {
            panic!()
        };
        assert_eq!((s.limit, s.regex), (None, Some("limit:5:")));
        assert!(p("sync:from:-2").is_err());
    }

    #[test]
    fn pkam_forms() {
        let Command::Pkam(k) = p("pkam:signingAlgo:mldsa65:enrollmentId:abc:def:").unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.signing_algo, k.enrollment_id, k.signature),
            (Some(SigningAlgo::MlDsa65), Some("abc"), "def:")
        );
        let Command::Pkam(k) = p("pkam:signingAlgo:rsa2048:").unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.signing_algo, k.signature),
            (None, "signingAlgo:rsa2048:")
        );
        assert!(p("pkam:").is_err());
    }

    #[test]
    fn from_config_enroll_otp_keys_to() {
        let Command::From(f) = p("from:@alice:clientConfig:{\"version\":\"3.0.38\"}").unwrap()
        else {
            panic!()
        };
        assert_eq!(f.client_config, Some("{\"version\":\"3.0.38\"}"));
        assert!(p("from:@alice:clientConfig:{}").is_err());
        assert!(p("from:@al ice").is_err());
        assert_eq!(
            p("config:block:show").unwrap(),
            Command::Config(Config::BlockShow)
        );
        let Command::Config(Config::BlockAdd(l)) = p("config:block:add:@bob @colin").unwrap()
        else {
            panic!()
        };
        assert_eq!(Config::atsigns(l).collect::<Vec<_>>(), ["@bob", "@colin"]);
        assert!(p("config:block:add:bob").is_err());
        let Command::Enroll(e) = p("enroll:listns:wavi").unwrap() else {
            panic!()
        };
        assert_eq!((e.op, e.params), (EnrollOp::ListNs, Some("wavi")));
        let Command::Otp(o) = p("otp:put:ttl:5").unwrap() else {
            panic!()
        };
        assert_eq!((o.passcode, o.ttl), (None, Some(5)));
        assert!(p("otp:get:ABCDEF").is_err());
        let Command::Keys(k) =
            p("keys:get:keyName:abc.default_enc_private_key.__manage@alice").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (k.op, k.key_name, k.value),
            (
                KeysOp::Get,
                Some("abc.default_enc_private_key.__manage@alice"),
                None
            )
        );
        let Command::To(t) = p("to:@alice").unwrap() else {
            panic!()
        };
        assert_eq!(t.atsign, "@alice");
        assert!(p("to:@a b").is_err());
        assert!(p("noop:99999999999999999999999").is_err());
        let Command::NotifyRemove(r) = p("notify:remove:abc-1 trailing").unwrap() else {
            panic!()
        };
        assert_eq!(r.id, "abc-1");
    }

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

    #[test]
    fn parse_borrows_from_the_line() {
        let line = "llookup:phone.wavi@alice";
        let n = normalize(line);
        assert!(matches!(n, Cow::Borrowed(_)));
        let Ok(Command::LLookup(l)) = parse_normalized(&n) else {
            panic!()
        };
        assert!(std::ptr::eq(l.key.name.as_ptr(), line[8..].as_ptr()));
    }
}
