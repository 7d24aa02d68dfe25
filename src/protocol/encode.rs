//! Canonical wire text for every [`Command`]: lower-case literals, fields in
//! grammar order, captured text verbatim. For every command the parser can
//! produce, `parse(identify(normalize(cmd.to_string())))` gives it back; the
//! round-trip proptests and the `parse` fuzz target hold us to that.
//!
//! Each verb's encoder lives beside its grammar in `verbs/<verb>.rs`; this
//! file holds the `Display` impl that picks it and the small writers the
//! encoders share.
//!
//! Outbound connections (remote lookup, notify delivery, `to:`) build their
//! requests through this too, so what we send is what we accept.

use std::fmt::{self, Display, Formatter};

use super::command::{Command, KeyRef, MessageType, NotifyOp, Priority, Scope};
use super::verbs;

pub(crate) fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `<prefix><v>` when present.
pub(crate) fn write_opt<T: Display>(
    f: &mut Formatter<'_>,
    prefix: &str,
    v: Option<T>,
) -> fmt::Result {
    match v {
        Some(v) => write!(f, "{prefix}{v}"),
        None => Ok(()),
    }
}

/// `<prefix><v><suffix>` when present.
pub(crate) fn write_opt_then<T: Display>(
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

/// The literal of a flag that is set.
pub(crate) fn write_flag(f: &mut Formatter<'_>, lit: &str, on: bool) -> fmt::Result {
    if on { f.write_str(lit) } else { Ok(()) }
}

/// `[:public|:@for]` before a key name.
pub(crate) fn write_scope(f: &mut Formatter<'_>, s: Scope<'_>) -> fmt::Result {
    match s {
        Scope::None => Ok(()),
        Scope::Public => f.write_str(":public"),
        Scope::SharedWith(w) => write!(f, ":@{w}"),
    }
}

/// A [`KeyRef`] as the verbs that name a key write it: `[:cached]`, the
/// scope, `:<name>`, `[@owner]` (the `:cached` flag only where the verb
/// has one).
pub(crate) fn write_key_ref(f: &mut Formatter<'_>, key: &KeyRef<'_>) -> fmt::Result {
    write_flag(f, ":cached", key.cached)?;
    write_scope(f, key.scope)?;
    write!(f, ":{}", key.name)?;
    write_opt(f, "@", key.owner)
}

pub(crate) fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
    }
}

pub(crate) fn notify_op_str(o: NotifyOp) -> &'static str {
    match o {
        NotifyOp::Update => "update",
        NotifyOp::Delete => "delete",
    }
}

pub(crate) fn message_type_str(m: MessageType) -> &'static str {
    match m {
        MessageType::Key => "key",
        MessageType::Text => "text",
    }
}

impl Display for Command<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Command::From(c) => verbs::from::encode(c, f),
            Command::Cram(c) => verbs::cram::encode(c, f),
            Command::Pkam(c) => verbs::pkam::encode(c, f),
            Command::Update(c) => verbs::update::encode(c, f),
            Command::UpdateJson(c) => verbs::update::encode_json(c, f),
            Command::UpdateMeta(c) => verbs::update_meta::encode(c, f),
            Command::LLookup(c) => verbs::llookup::encode(c, f),
            Command::PLookup(c) => verbs::plookup::encode(c, f),
            Command::Lookup(c) => verbs::lookup::encode(c, f),
            Command::Scan(c) => verbs::scan::encode(c, f),
            Command::Pol => verbs::pol::encode(f),
            Command::Delete(c) => verbs::delete::encode(c, f),
            Command::Stats(c) => verbs::stats::encode(c, f),
            Command::Config(c) => verbs::config::encode(c, f),
            Command::Monitor(c) => verbs::monitor::encode(c, f),
            Command::Stream(c) => verbs::stream::encode(c, f),
            Command::Notify(c) => verbs::notify::encode(c, f),
            Command::NotifyList(c) => verbs::notify_list::encode(c, f),
            Command::Batch(c) => verbs::batch::encode(c, f),
            Command::NotifyStatus(c) => verbs::notify_id::status::encode(c, f),
            Command::NotifyAll(c) => verbs::notify_all::encode(c, f),
            Command::SyncFrom(c) => verbs::sync_from::encode(c, f),
            Command::Info(c) => verbs::info::encode(c, f),
            Command::Noop(c) => verbs::noop::encode(c, f),
            Command::NotifyRemove(c) => verbs::notify_id::remove::encode(c, f),
            Command::NotifyFetch(c) => verbs::notify_id::fetch::encode(c, f),
            Command::Enroll(c) => verbs::enroll::encode(c, f),
            Command::Otp(c) => verbs::otp::encode(c, f),
            Command::Keys(c) => verbs::keys::encode(c, f),
            Command::NotifyMulti(c) => verbs::notify_multi::encode(c, f),
            Command::To(c) => verbs::to::encode(c, f),
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
