//! Canonical wire text for every [`Command`]: lower-case literals, fields in
//! grammar order, captured text verbatim. For every command the parser can
//! produce, `parse(identify(normalize(cmd.to_string())))` gives it back; the
//! round-trip proptests and the `parse` fuzz target hold us to that.
//!
//! Outbound connections (remote lookup, notify delivery, `to:`) build their
//! requests through this too, so what we send is what we accept.

use std::fmt::{self, Display, Formatter, Write as _};

use super::command::*;
use super::grammar::changes_when_lowercased;

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn opt<T: Display>(f: &mut Formatter<'_>, prefix: &str, v: Option<T>) -> fmt::Result {
    match v {
        Some(v) => write!(f, "{prefix}{v}"),
        None => Ok(()),
    }
}

/// `<prefix><v><suffix>` when present.
fn opt_sfx<T: Display>(
    f: &mut Formatter<'_>,
    prefix: &str,
    v: Option<T>,
    suffix: &str,
) -> fmt::Result {
    match v {
        Some(v) => write!(f, "{prefix}{v}{suffix}"),
        None => Ok(()),
    }
}

fn flag(f: &mut Formatter<'_>, lit: &str, on: bool) -> fmt::Result {
    if on { f.write_str(lit) } else { Ok(()) }
}

fn scope(f: &mut Formatter<'_>, s: Scope<'_>) -> fmt::Result {
    match s {
        Scope::None => Ok(()),
        Scope::Public => f.write_str(":public"),
        Scope::SharedWith(w) => write!(f, ":@{w}"),
    }
}

fn lookup_op(op: LookupOp, colon_first: bool) -> &'static str {
    match (op, colon_first) {
        (LookupOp::Value, _) => "",
        (LookupOp::Meta, true) => ":meta",
        (LookupOp::All, true) => ":all",
        (LookupOp::Meta, false) => "meta:",
        (LookupOp::All, false) => "all:",
    }
}

fn priority(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
    }
}

fn notify_op(o: NotifyOp) -> &'static str {
    match o {
        NotifyOp::Update => "update",
        NotifyOp::Delete => "delete",
    }
}

fn message_type(m: MessageType) -> &'static str {
    match m {
        MessageType::Key => "key",
        MessageType::Text => "text",
    }
}

impl Display for SigningAlgo {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigningAlgo::Rsa2048 => "rsa2048",
            SigningAlgo::EccSecp256r1 => "ecc_secp256r1",
            SigningAlgo::MlDsa65 => "mldsa65",
        })
    }
}

impl Display for HashingAlgo {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashingAlgo::Sha256 => "sha256",
            HashingAlgo::Sha512 => "sha512",
        })
    }
}

fn lookup(f: &mut Formatter<'_>, verb: &str, l: &Lookup<'_>) -> fmt::Result {
    write!(f, "{verb}:")?;
    opt_sfx(f, "bypassCache:", l.bypass_cache.map(bool_str), ":")?;
    write!(f, "{}{}@{}", lookup_op(l.op, false), l.name, l.owner)
}

impl Display for Command<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Command::From(c) => {
                write!(f, "from:{}", c.atsign)?;
                opt(f, ":clientConfig:", c.client_config)
            }
            Command::Cram(c) => write!(f, "cram:{}", c.digest),
            Command::Pkam(c) => {
                f.write_str("pkam:")?;
                opt_sfx(f, "signingAlgo:", c.signing_algo, ":")?;
                opt_sfx(f, "hashingAlgo:", c.hashing_algo, ":")?;
                if let Some(e) = c.enrollment_id {
                    write!(f, "enrollmentId:{e}:")?;
                }
                f.write_str(c.signature)
            }
            Command::Update(c) => {
                f.write_str("update")?;
                flag(f, ":nc", c.no_commit)?;
                write!(f, "{}", c.meta)?;
                scope(f, c.key.scope)?;
                write!(f, ":{}", c.key.name)?;
                opt(f, "@", c.key.owner)?;
                write!(f, " {}", c.value)
            }
            Command::UpdateJson(c) => {
                f.write_str("update")?;
                flag(f, ":nc", c.no_commit)?;
                write!(f, ":json:{}", c.json)
            }
            Command::UpdateMeta(c) => {
                f.write_str("update:meta")?;
                flag(f, ":nc", c.no_commit)?;
                scope(f, c.key.scope)?;
                write!(f, ":{}", c.key.name)?;
                opt(f, "@", c.key.owner)?;
                write!(f, "{}", c.meta)
            }
            Command::LLookup(c) => {
                write!(f, "llookup{}", lookup_op(c.op, true))?;
                flag(f, ":cached", c.key.cached)?;
                scope(f, c.key.scope)?;
                write!(f, ":{}", c.key.name)?;
                opt(f, "@", c.key.owner)
            }
            Command::PLookup(c) => lookup(f, "plookup", c),
            Command::Lookup(c) => lookup(f, "lookup", c),
            Command::Scan(c) => {
                f.write_str("scan")?;
                let flagless = !c.commit_log
                    && c.show_hidden.is_none()
                    && c.for_atsign.is_none()
                    && c.page.is_none();
                if flagless
                    && c.regex
                        .is_some_and(|r| r.contains(':') || changes_when_lowercased(r))
                {
                    // A line without `:` is lower-cased whole, and a `:` in the
                    // regex would pull the space into the lower-cased,
                    // space-stripped verb part. `scan:` first keeps the regex
                    // out of it; the grammar's unanchored second alternative
                    // then matches at the second `scan` (only the reference's
                    // quirk can produce such a command in the first place).
                    f.write_str(":scan")?;
                }
                flag(f, ":cl", c.commit_log)?;
                opt(f, ":showhidden:", c.show_hidden.map(bool_str))?;
                opt(f, ":", c.for_atsign)?;
                opt(f, ":page:", c.page)?;
                opt(f, " ", c.regex)
            }
            Command::Pol => f.write_str("pol"),
            Command::Delete(c) => {
                f.write_str("delete")?;
                opt(f, ":dAt:", c.d_at)?;
                flag(f, ":nc", c.no_commit)?;
                flag(f, ":force", c.force)?;
                opt(f, ":priority:", c.priority.map(priority))?;
                flag(f, ":cached", c.key.cached)?;
                scope(f, c.key.scope)?;
                write!(f, ":{}", c.key.name)?;
                opt(f, "@", c.key.owner)
            }
            Command::Stats(c) => {
                f.write_str("stats")?;
                if !c.ids.is_empty() {
                    f.write_char(':')?;
                }
                for (i, id) in c.ids.iter().enumerate() {
                    // The first id may not start with 0; `stats:,0` is how
                    // the grammar spells a leading zero id.
                    if i > 0 || *id == 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{id}")?;
                }
                opt(f, ":", c.regex)
            }
            Command::Config(c) => match c {
                Config::BlockAdd(l) => write!(f, "config:block:add:{l}"),
                Config::BlockRemove(l) => write!(f, "config:block:remove:{l}"),
                Config::BlockShow => f.write_str("config:block:show"),
                Config::Set(a) => write!(f, "config:set:{a}"),
                Config::Reset(a) => write!(f, "config:reset:{a}"),
                Config::Print(a) => write!(f, "config:print:{a}"),
            },
            Command::Monitor(c) => {
                f.write_str("monitor")?;
                flag(f, ":strict", c.strict)?;
                flag(f, ":selfNotifications", c.self_notifications)?;
                flag(f, ":multiplexed", c.multiplexed)?;
                opt(f, ":", c.epoch_ms)?;
                opt(f, " ", c.regex)
            }
            Command::Stream(c) => {
                f.write_str("stream:")?;
                opt(
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
                opt(f, "@", c.receiver)?;
                opt(f, " namespace:", c.namespace)?;
                opt(f, " startByte:", c.start_byte)?;
                opt(f, " ", c.stream_id)?;
                if let Some(n) = c.file_name {
                    write!(f, " {n} ")?;
                }
                opt(f, "", c.length)
            }
            Command::Notify(c) => {
                f.write_str("notify")?;
                opt(f, ":id:", c.id)?;
                opt(f, ":", c.operation.map(notify_op))?;
                opt(f, ":messageType:", c.message_type.map(message_type))?;
                opt(f, ":priority:", c.priority.map(priority))?;
                opt(
                    f,
                    ":strategy:",
                    c.strategy.map(|s| match s {
                        NotifyStrategy::All => "all",
                        NotifyStrategy::Latest => "latest",
                    }),
                )?;
                opt(f, ":latestN:", c.latest_n)?;
                opt(f, ":notifier:", c.notifier)?;
                opt(f, ":ttln:", c.ttln)?;
                opt(f, ":eAtn:", c.e_atn)?;
                flag(f, ":eph", c.eph)?;
                write!(f, "{}", c.meta)?;
                match c.target {
                    NotifyTarget::Public => f.write_str(":public")?,
                    NotifyTarget::AtSign(a) => write!(f, ":@{a}")?,
                }
                write!(f, ":{}", c.key)?;
                opt(f, "@", c.owner)?;
                opt(f, ":", c.value)
            }
            Command::NotifyList(c) => {
                f.write_str("notify:list")?;
                opt(f, ":", c.from_date)?;
                opt(f, ":", c.to_date)?;
                opt(f, ":", c.regex)
            }
            Command::Batch(c) => write!(f, "batch:{}", c.json),
            Command::NotifyStatus(c) => write!(f, "notify:status:{}", c.id),
            Command::NotifyAll(c) => {
                f.write_str("notify:all:")?;
                opt_sfx(f, "", c.operation.map(notify_op), ":")?;
                opt_sfx(f, "messageType:", c.message_type.map(message_type), ":")?;
                opt_sfx(f, "ttl:", c.ttl, ":")?;
                opt_sfx(f, "ttb:", c.ttb, ":")?;
                opt_sfx(f, "ttr:", c.ttr, ":")?;
                opt_sfx(f, "ccd:", c.ccd.map(bool_str), ":")?;
                write!(f, "{}:{}", c.recipients, c.key)?;
                opt(f, "@", c.owner)?;
                opt(f, ":", c.value)
            }
            Command::SyncFrom(c) => {
                write!(f, "sync:from:{}", c.from)?;
                opt(f, ":limit:", c.limit)?;
                opt(f, ":skipDeletesUntil:", c.skip_deletes_until)?;
                opt(f, ":", c.regex)
            }
            Command::Info(c) => f.write_str(match c.form {
                InfoForm::Plain => "info",
                InfoForm::Brief => "info:brief",
                InfoForm::Mtls => "info:mtls",
                InfoForm::MtlsBrief => "info:mtlsbrief",
            }),
            Command::Noop(c) => write!(f, "noop:{}", c.delay_ms),
            Command::NotifyRemove(c) => write!(f, "notify:remove:{}", c.id),
            Command::NotifyFetch(c) => write!(f, "notify:fetch:{}", c.id),
            Command::Enroll(c) => {
                write!(f, "enroll:{}", c.op.name())?;
                flag(f, ":force", c.force)?;
                match c.params {
                    // Without `:force`, a params text that itself starts with
                    // `force` must not be separated by a colon, or it would be
                    // read back as the flag.
                    Some(p)
                        if !c.force
                            && p.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("force")) =>
                    {
                        f.write_str(p)
                    }
                    Some(p) => write!(f, ":{p}"),
                    None => Ok(()),
                }
            }
            Command::Otp(c) => {
                f.write_str(match c.op {
                    OtpOp::Get => "otp:get",
                    OtpOp::Put => "otp:put",
                })?;
                opt(f, ":", c.passcode)?;
                opt(f, ":ttl:", c.ttl)
            }
            Command::Keys(c) => {
                f.write_str(match c.op {
                    KeysOp::Put => "keys:put",
                    KeysOp::Get => "keys:get",
                    KeysOp::Delete => "keys:delete",
                })?;
                opt(
                    f,
                    ":",
                    c.visibility.map(|v| match v {
                        KeyVisibility::Public => "public",
                        KeyVisibility::Private => "private",
                        KeyVisibility::SelfKey => "self",
                    }),
                )?;
                opt(f, ":namespace:", c.namespace)?;
                opt(f, ":appName:", c.app_name)?;
                opt(f, ":deviceName:", c.device_name)?;
                opt(f, ":keyType:", c.key_type)?;
                opt(f, ":encryptionKeyName:", c.encryption_key_name)?;
                opt(f, ":keyName:", c.key_name)?;
                match (c.key_name, c.value) {
                    (Some(_), Some(v)) => write!(f, " {v}"),
                    (None, Some(v)) => write!(f, ":{v}"),
                    (_, None) => Ok(()),
                }
            }
            Command::NotifyMulti(c) => {
                f.write_str("notify:multi")?;
                flag(f, ":update", c.explicit_update)?;
                opt(f, ":ttln:", c.ttln)?;
                opt(f, ":eAtn:", c.e_atn)?;
                flag(f, ":eph", c.eph)?;
                write!(f, "{}:{}:{}@{}", c.meta, c.recipients, c.key, c.owner)?;
                opt(f, ":", c.value)
            }
            Command::To(c) => write!(f, "to:{}", c.atsign),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{identify, normalize, parse};

    /// Real commands from the digest: parse, encode, and compare the text.
    #[test]
    fn canonical_commands_encode_to_themselves() {
        for line in [
            "from:@alice",
            "from:alice:clientConfig:{\"version\":\"3.2.1\"}",
            "cram:0a1b",
            "pkam:signingAlgo:rsa2048:hashingAlgo:sha256:enrollmentId:1234-abcd:c2ln+/=",
            "update:ttl:60000:isEncrypted:true:@bob:phone.wavi@alice XYZ",
            "update:privatekey:at_pkam_publickey MIIB",
            "update:nc:json:{\"atKey\":\"x\"}",
            "update:meta:@bob:phone.wavi@alice:ttl:0:ttb:0:ttr:-1",
            "llookup:all:cached:public:publickey@bob",
            "lookup:bypassCache:true:all:phone.wavi@bob",
            "plookup:meta:publickey@bob",
            "delete:dAt:2026-05-05T11:59:44.123456Z:nc:force:priority:high:cached:@bob:x@alice",
            "delete:privatekey:at_secret",
            "scan:cl:showhidden:true:@bob:page:2 .*wavi",
            "stats:3:.*\\.wavi",
            "stats:1,2,15",
            "config:block:add:@bob @colin",
            "config:set:inboundMaxLimit=5",
            "monitor:strict:selfNotifications:multiplexed:1700000000000 .*wavi",
            "stream:init@bob namespace:wavi startByte:10 abc-1 ZmlsZQ== 1024",
            "notify:id:6d7c:update:messageType:key:priority:low:strategy:latest:latestN:2:notifier:SYSTEM:ttln:86400000:eAtn:2026-10-04T10:45:00.721000Z:eph:ttr:-1:ccd:false:isEncrypted:true:@bob:phone.wavi@alice:abc:d",
            "notify:list:2024-01-01:2024-12-31:.*wavi",
            "notify:status:6d7c",
            "notify:all:update:messageType:key:ttl:5:ttb:6:ttr:-1:ccd:true:@bob,@colin:phone@alice:v",
            "sync:from:-1:limit:10:skipDeletesUntil:593700:.*\\.wavi",
            "info:brief",
            "noop:0",
            "notify:remove:6d7c-aa",
            "notify:fetch:6d7c",
            "enroll:approve:force:{\"enrollmentId\":\"x\"}",
            "enroll:list",
            "otp:put:ABCDEF:ttl:600",
            "keys:get:self:namespace:wavi:appName:a:deviceName:d:keyType:rsa:encryptionKeyName:e:keyName:k v",
            "notify:multi:update:ttln:5:eph:isEncrypted:true:appMetadata:e30=:@bob,@colin:msg.chat@alice:ct",
            "to:@alice",
            "pol",
            "scan",
        ] {
            let n = normalize(line);
            let verb = identify(&n).unwrap_or_else(|| panic!("no verb for {line}"));
            let cmd = parse(verb, &n).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(cmd.to_string(), line);
        }
    }
}
