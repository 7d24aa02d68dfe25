//! The parsed form of every verb: one `Command` variant per verb, each
//! holding a struct of fields borrowed from the (normalised) request line.
//!
//! Each verb's struct is defined beside its grammar in `verbs/<verb>.rs` and
//! re-exported here, which is where the rest of the crate names it. What
//! lives here is what no single verb owns: [`VerbId`], [`Command`], and the
//! types several verbs share ([`KeyRef`], [`Scope`], [`LookupOp`],
//! [`Priority`], [`NotifyOp`], [`MessageType`]).
//!
//! Fields keep the client's text and case; keys are canonicalised only when
//! assembled for the keystore ([`KeyRef::assemble`]).

use super::atkey::canonical_key;
use super::verbs;

pub use super::verbs::batch::Batch;
pub use super::verbs::config::Config;
pub use super::verbs::cram::Cram;
pub use super::verbs::delete::Delete;
pub use super::verbs::enroll::{Enroll, EnrollOp};
pub use super::verbs::from::From;
pub use super::verbs::info::{Info, InfoForm};
pub use super::verbs::keys::{KeyVisibility, Keys, KeysOp};
pub use super::verbs::llookup::LLookup;
pub use super::verbs::lookup::Lookup;
pub use super::verbs::monitor::Monitor;
pub use super::verbs::noop::Noop;
pub use super::verbs::notify::{Notify, NotifyStrategy, NotifyTarget};
pub use super::verbs::notify_all::NotifyAll;
pub use super::verbs::notify_id::NotifyId;
pub use super::verbs::notify_list::NotifyList;
pub use super::verbs::notify_multi::NotifyMulti;
pub use super::verbs::otp::{Otp, OtpOp};
pub use super::verbs::pkam::{HashingAlgo, Pkam, SigningAlgo};
pub use super::verbs::plookup::PLookup;
pub use super::verbs::scan::Scan;
pub use super::verbs::stats::Stats;
pub use super::verbs::stream::{Stream, StreamOp};
pub use super::verbs::sync_from::SyncFrom;
pub use super::verbs::to::To;
pub use super::verbs::update::{Update, UpdateJson};
pub use super::verbs::update_meta::UpdateMeta;

/// Every verb the server dispatches, in the reference's dispatch order
/// (wire.md §6), plus the post-2024 `notify:multi` and `to:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerbId {
    From,
    Cram,
    Pkam,
    Update,
    UpdateMeta,
    LLookup,
    PLookup,
    Lookup,
    Scan,
    Pol,
    Delete,
    Stats,
    Config,
    Monitor,
    Stream,
    Notify,
    NotifyList,
    Batch,
    NotifyStatus,
    NotifyAll,
    SyncFrom,
    Info,
    Noop,
    NotifyRemove,
    NotifyFetch,
    Enroll,
    Otp,
    Keys,
    NotifyMulti,
    To,
}

impl VerbId {
    /// Every verb, in declaration order: the reference's dispatch order,
    /// then `notify:multi` and `to`. `identify` tries them in the order of
    /// its own table (`parse.rs`), where `notify:multi` precedes `notify`.
    pub const ALL: [VerbId; 30] = [
        VerbId::From,
        VerbId::Cram,
        VerbId::Pkam,
        VerbId::Update,
        VerbId::UpdateMeta,
        VerbId::LLookup,
        VerbId::PLookup,
        VerbId::Lookup,
        VerbId::Scan,
        VerbId::Pol,
        VerbId::Delete,
        VerbId::Stats,
        VerbId::Config,
        VerbId::Monitor,
        VerbId::Stream,
        VerbId::Notify,
        VerbId::NotifyList,
        VerbId::Batch,
        VerbId::NotifyStatus,
        VerbId::NotifyAll,
        VerbId::SyncFrom,
        VerbId::Info,
        VerbId::Noop,
        VerbId::NotifyRemove,
        VerbId::NotifyFetch,
        VerbId::Enroll,
        VerbId::Otp,
        VerbId::Keys,
        VerbId::NotifyMulti,
        VerbId::To,
    ];

    /// The verb as written on the wire (for logs, metrics and the verb table).
    pub const fn name(self) -> &'static str {
        match self {
            VerbId::From => "from",
            VerbId::Cram => "cram",
            VerbId::Pkam => "pkam",
            VerbId::Update => "update",
            VerbId::UpdateMeta => "update:meta",
            VerbId::LLookup => "llookup",
            VerbId::PLookup => "plookup",
            VerbId::Lookup => "lookup",
            VerbId::Scan => "scan",
            VerbId::Pol => "pol",
            VerbId::Delete => "delete",
            VerbId::Stats => "stats",
            VerbId::Config => "config",
            VerbId::Monitor => "monitor",
            VerbId::Stream => "stream",
            VerbId::Notify => "notify",
            VerbId::NotifyList => "notify:list",
            VerbId::Batch => "batch",
            VerbId::NotifyStatus => "notify:status",
            VerbId::NotifyAll => "notify:all",
            VerbId::SyncFrom => "sync:from",
            VerbId::Info => "info",
            VerbId::Noop => "noop",
            VerbId::NotifyRemove => "notify:remove",
            VerbId::NotifyFetch => "notify:fetch",
            VerbId::Enroll => "enroll",
            VerbId::Otp => "otp",
            VerbId::Keys => "keys",
            VerbId::NotifyMulti => "notify:multi",
            VerbId::To => "to",
        }
    }

    /// The reference usage text that follows `Invalid syntax. ` in AT0003
    /// (`SPEC/verb/*.dart`), with its embedded newlines replaced by spaces so
    /// no reply can contain `\n` before the prompt (errors.md §3.1).
    pub const fn usage(self) -> &'static str {
        match self {
            VerbId::From => verbs::from::USAGE,
            VerbId::Cram => verbs::cram::USAGE,
            VerbId::Pkam => verbs::pkam::USAGE,
            VerbId::Update => verbs::update::USAGE,
            VerbId::UpdateMeta => verbs::update_meta::USAGE,
            VerbId::LLookup => verbs::llookup::USAGE,
            VerbId::PLookup => verbs::plookup::USAGE,
            VerbId::Lookup => verbs::lookup::USAGE,
            VerbId::Scan => verbs::scan::USAGE,
            VerbId::Pol => verbs::pol::USAGE,
            VerbId::Delete => verbs::delete::USAGE,
            VerbId::Stats => verbs::stats::USAGE,
            VerbId::Config => verbs::config::USAGE,
            VerbId::Monitor => verbs::monitor::USAGE,
            VerbId::Stream => verbs::stream::USAGE,
            VerbId::Notify => verbs::notify::USAGE,
            VerbId::NotifyList => verbs::notify_list::USAGE,
            VerbId::Batch => verbs::batch::USAGE,
            VerbId::NotifyStatus => verbs::notify_id::status::USAGE,
            VerbId::NotifyAll => verbs::notify_all::USAGE,
            VerbId::SyncFrom => verbs::sync_from::USAGE,
            VerbId::Info => verbs::info::USAGE,
            VerbId::Noop => verbs::noop::USAGE,
            VerbId::NotifyRemove => verbs::notify_id::remove::USAGE,
            VerbId::NotifyFetch => verbs::notify_id::fetch::USAGE,
            VerbId::Enroll => verbs::enroll::USAGE,
            VerbId::Otp => verbs::otp::USAGE,
            VerbId::Keys => verbs::keys::USAGE,
            VerbId::NotifyMulti => verbs::notify_multi::USAGE,
            VerbId::To => verbs::to::USAGE,
        }
    }
}

/// Who a key is for, as written before the key name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    None,
    /// `:public:` — a public key.
    Public,
    /// `:@bob:` — shared with that atSign (captured without the `@`).
    SharedWith(&'a str),
}

/// A key as named in `update`, `update:meta`, `llookup` and `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef<'a> {
    /// `:cached` was given (llookup, delete).
    pub cached: bool,
    pub scope: Scope<'a>,
    /// The key name between the prefixes and `@owner`, e.g. `phone.wavi`.
    pub name: &'a str,
    /// The owner atSign after `@`, captured without the `@`.
    pub owner: Option<&'a str>,
}

fn push_atsign(out: &mut String, atsign: &str) {
    if !atsign.starts_with('@') {
        out.push('@');
    }
    out.push_str(atsign);
}

impl KeyRef<'_> {
    /// `<name>[@owner]`: what the protected-key check compares.
    pub fn name_with_owner(&self) -> String {
        let mut s = String::with_capacity(self.name.len() + 1 + self.owner.map_or(0, str::len));
        s.push_str(self.name);
        if let Some(o) = self.owner {
            push_atsign(&mut s, o);
        }
        s
    }

    /// The stored key: `[cached:][public:|@for:]<name>[@owner]`, canonicalised
    /// the way the keystore does (lower-case, no whitespace).
    pub fn assemble(&self) -> String {
        let mut s = String::with_capacity(self.name.len() + 64);
        self.assemble_into(&mut s);
        s
    }

    /// [`KeyRef::assemble`] into a reused buffer: no allocation once the
    /// buffer has grown, unless the key needs case folding.
    pub fn assemble_into(&self, s: &mut String) {
        s.clear();
        if self.cached {
            s.push_str("cached:");
        }
        match self.scope {
            Scope::None => {}
            Scope::Public => s.push_str("public:"),
            Scope::SharedWith(w) => {
                push_atsign(s, w);
                s.push(':');
            }
        }
        s.push_str(self.name);
        if let Some(o) = self.owner {
            push_atsign(s, o);
        }
        if s.chars().any(|c| c.is_uppercase() || c.is_whitespace()) {
            *s = canonical_key(s);
        }
    }
}

/// `llookup`/`lookup`/`plookup` output: the value, `:meta` or `:all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupOp {
    #[default]
    Value,
    Meta,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOp {
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Key,
    Text,
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    From(From<'a>),
    Cram(Cram<'a>),
    Pkam(Pkam<'a>),
    Update(Update<'a>),
    UpdateJson(UpdateJson<'a>),
    UpdateMeta(UpdateMeta<'a>),
    LLookup(LLookup<'a>),
    PLookup(PLookup<'a>),
    Lookup(Lookup<'a>),
    Scan(Scan<'a>),
    Pol,
    Delete(Delete<'a>),
    Stats(Stats<'a>),
    Config(Config<'a>),
    Monitor(Monitor<'a>),
    Stream(Stream<'a>),
    Notify(Notify<'a>),
    NotifyList(NotifyList<'a>),
    Batch(Batch<'a>),
    NotifyStatus(NotifyId<'a>),
    NotifyAll(NotifyAll<'a>),
    SyncFrom(SyncFrom<'a>),
    Info(Info),
    Noop(Noop),
    NotifyRemove(NotifyId<'a>),
    NotifyFetch(NotifyId<'a>),
    Enroll(Enroll<'a>),
    Otp(Otp<'a>),
    Keys(Keys<'a>),
    NotifyMulti(NotifyMulti<'a>),
    To(To<'a>),
}

impl Command<'_> {
    /// The verb this command belongs to (`update:json` is an `update`).
    pub fn verb(&self) -> VerbId {
        match self {
            Command::From(_) => VerbId::From,
            Command::Cram(_) => VerbId::Cram,
            Command::Pkam(_) => VerbId::Pkam,
            Command::Update(_) | Command::UpdateJson(_) => VerbId::Update,
            Command::UpdateMeta(_) => VerbId::UpdateMeta,
            Command::LLookup(_) => VerbId::LLookup,
            Command::PLookup(_) => VerbId::PLookup,
            Command::Lookup(_) => VerbId::Lookup,
            Command::Scan(_) => VerbId::Scan,
            Command::Pol => VerbId::Pol,
            Command::Delete(_) => VerbId::Delete,
            Command::Stats(_) => VerbId::Stats,
            Command::Config(_) => VerbId::Config,
            Command::Monitor(_) => VerbId::Monitor,
            Command::Stream(_) => VerbId::Stream,
            Command::Notify(_) => VerbId::Notify,
            Command::NotifyList(_) => VerbId::NotifyList,
            Command::Batch(_) => VerbId::Batch,
            Command::NotifyStatus(_) => VerbId::NotifyStatus,
            Command::NotifyAll(_) => VerbId::NotifyAll,
            Command::SyncFrom(_) => VerbId::SyncFrom,
            Command::Info(_) => VerbId::Info,
            Command::Noop(_) => VerbId::Noop,
            Command::NotifyRemove(_) => VerbId::NotifyRemove,
            Command::NotifyFetch(_) => VerbId::NotifyFetch,
            Command::Enroll(_) => VerbId::Enroll,
            Command::Otp(_) => VerbId::Otp,
            Command::Keys(_) => VerbId::Keys,
            Command::NotifyMulti(_) => VerbId::NotifyMulti,
            Command::To(_) => VerbId::To,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_keys_like_the_reference() {
        let k = KeyRef {
            cached: false,
            scope: Scope::SharedWith("Bob"),
            name: "Phone.Wavi",
            owner: Some("Alice"),
        };
        assert_eq!(k.assemble(), "@bob:phone.wavi@alice");
        assert_eq!(k.name_with_owner(), "Phone.Wavi@Alice");
        let k = KeyRef {
            cached: true,
            scope: Scope::Public,
            name: "publickey",
            owner: Some("@bob"),
        };
        assert_eq!(k.assemble(), "cached:public:publickey@bob");
        let k = KeyRef {
            cached: false,
            scope: Scope::None,
            name: "privatekey:at_pkam_publickey",
            owner: None,
        };
        assert_eq!(k.assemble(), "privatekey:at_pkam_publickey");
    }

    #[test]
    fn usage_texts_have_no_newlines() {
        for v in VerbId::ALL {
            assert!(!v.usage().contains('\n'), "{v:?}");
        }
        assert_eq!(VerbId::Lookup.usage(), "e.g lookup:location@bob");
    }
}

#[cfg(test)]
mod assemble_tests {
    use super::*;

    #[test]
    fn assembling_into_a_reused_buffer_matches_assemble() {
        let keys = [
            KeyRef {
                cached: false,
                scope: Scope::None,
                name: "phone.wavi",
                owner: Some("alice"),
            },
            KeyRef {
                cached: true,
                scope: Scope::Public,
                name: "PublicKey",
                owner: Some("@Bob"),
            },
            KeyRef {
                cached: false,
                scope: Scope::SharedWith("bob"),
                name: "x",
                owner: Some("alice"),
            },
            KeyRef {
                cached: false,
                scope: Scope::None,
                name: "privatekey:at_pkam_publickey",
                owner: None,
            },
        ];
        let mut buffer = String::from("left over");
        for key in keys {
            key.assemble_into(&mut buffer);
            assert_eq!(buffer, key.assemble());
        }
        assert_eq!(buffer, "privatekey:at_pkam_publickey");
        keys[1].assemble_into(&mut buffer);
        assert_eq!(buffer, "cached:public:publickey@bob");
    }
}
