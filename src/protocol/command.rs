//! The parsed form of every verb: one `Command` variant per verb, each
//! holding a struct of fields borrowed from the (normalised) request line.
//!
//! Fields keep the client's text and case; keys are canonicalised only when
//! assembled for the keystore ([`KeyRef::assemble`]).

use super::atkey::canonical_key;
use super::metadata::MetaFragment;

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
    /// Every verb, in dispatch order.
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
            VerbId::From => "syntax from:@<atSign>   e.g from:@alice",
            VerbId::Cram => "cram:<digest>",
            VerbId::Pkam => "pkam:<signature>",
            VerbId::Update => "e.g. update:@alice:location@bob San Francisco",
            VerbId::UpdateMeta => "update:meta:ttl:20000:ttb:20000:ttr:20000",
            VerbId::LLookup => "e.g llookup:location@bob",
            VerbId::PLookup => "e.g plookup:location@bob",
            VerbId::Lookup => "e.g lookup:location@bob",
            VerbId::Scan => "scan",
            VerbId::Pol => "syntax pol e.g pol",
            VerbId::Delete => "syntax delete:@<atkey>   e.g delete:phone@alice",
            VerbId::Stats => "stats:1,2,3",
            VerbId::Config => {
                "configure block syntax config:block:<action>:@<atSign>   e.g config:block:add:@alice   view syntax config:show:<type>   e.g config:shoe:allow   configure set syntax   e.g. config:set:<configName>=<configValue>   config:reset(or)print:<configName>"
            }
            VerbId::Monitor => "e.g. monitor or monitor .wavi",
            VerbId::Stream => "",
            VerbId::Notify => "e.g notify:@colin:key@kevin",
            VerbId::NotifyList => "e.g notify:list [regular expression]",
            VerbId::Batch => {
                r#"e.g batch:[{"id":1, "commmand":"update:location@alice newyork"},{"id":2, "commmand":"delete:location@alice"}]"#
            }
            VerbId::NotifyStatus => "e.g notify:status:<notification-id>",
            VerbId::NotifyAll => "e.g notify:all:@alice,@bob:key1@colin",
            VerbId::SyncFrom => "syntax sync:from:1:limit:10:.wavi",
            VerbId::Info => "info",
            VerbId::Noop => "noop:<durationInMillis>",
            VerbId::NotifyRemove => "e.g notify:remove:<notificationId>",
            VerbId::NotifyFetch => "e.g notify:fetch:<notification-id>",
            VerbId::Enroll => {
                r#"enroll:request:{"appName":"wavi","deviceName":"iPhone","namespaces":{"wavi":"rw"},"otp":"<otp>":"apkamPublicKey":"<public_key>"}"#
            }
            VerbId::Otp => "otp:get or otp:validate:<otp>",
            VerbId::Keys => {
                "e.g. keys:put:public:keyName:encryptionPublicKey:namespace:__global:keyType:rsa2048:<public_key>"
            }
            VerbId::NotifyMulti => "e.g notify:multi:@bob,@colin:key@alice:value",
            VerbId::To => "e.g to:@alice",
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgo {
    Rsa2048,
    EccSecp256r1,
    MlDsa65,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingAlgo {
    Sha256,
    Sha512,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyStrategy {
    All,
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoForm {
    Plain,
    Brief,
    Mtls,
    MtlsBrief,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOp {
    Request,
    Approve,
    Deny,
    Revoke,
    ListNs,
    InfoNs,
    List,
    Fetch,
    Unrevoke,
    Delete,
    Update,
}

impl EnrollOp {
    /// Wire spellings, longest-first where one is a prefix of another
    /// (`listns` before `list`), which is the order the grammar tries them.
    pub const ALL: [(&'static str, EnrollOp); 11] = [
        ("request", EnrollOp::Request),
        ("approve", EnrollOp::Approve),
        ("deny", EnrollOp::Deny),
        ("revoke", EnrollOp::Revoke),
        ("listns", EnrollOp::ListNs),
        ("infons", EnrollOp::InfoNs),
        ("list", EnrollOp::List),
        ("fetch", EnrollOp::Fetch),
        ("unrevoke", EnrollOp::Unrevoke),
        ("delete", EnrollOp::Delete),
        ("update", EnrollOp::Update),
    ];

    pub fn name(self) -> &'static str {
        EnrollOp::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("request", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpOp {
    Get,
    Put,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOp {
    Put,
    Get,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVisibility {
    Public,
    Private,
    SelfKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOp {
    Init,
    Send,
    Receive,
    Done,
    Resume,
}

/// `notify`'s recipient part: `:public` or `:@bob` (captured without `@`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyTarget<'a> {
    Public,
    AtSign(&'a str),
}

/// `from:[@]<atsign>[:clientConfig:{json}]`. `atsign` is as sent (with its
/// `@` if given); normalise with [`super::atsign::normalize_atsign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct From<'a> {
    pub atsign: &'a str,
    pub client_config: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cram<'a> {
    pub digest: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkam<'a> {
    pub signing_algo: Option<SigningAlgo>,
    pub hashing_algo: Option<HashingAlgo>,
    pub enrollment_id: Option<&'a str>,
    pub signature: &'a str,
}

/// `update[:nc]<meta>[:public|:@for]:<key>[@owner] <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    pub no_commit: bool,
    pub meta: MetaFragment<'a>,
    pub key: KeyRef<'a>,
    pub value: &'a str,
}

/// `update[:nc]:json:<json>`; the JSON is parsed by the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateJson<'a> {
    pub no_commit: bool,
    pub json: &'a str,
}

/// `update:meta[:nc][:public|:@for]:<key>@<owner><meta>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateMeta<'a> {
    pub no_commit: bool,
    pub key: KeyRef<'a>,
    pub meta: MetaFragment<'a>,
}

/// `llookup[:meta|:all][:cached][:public|:@for]:<key>@<owner>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LLookup<'a> {
    pub op: LookupOp,
    pub key: KeyRef<'a>,
}

/// `lookup:`/`plookup:[bypassCache:<bool>:][meta:|all:]<name>@<owner>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub bypass_cache: Option<bool>,
    pub op: LookupOp,
    pub name: &'a str,
    /// Captured without the `@`.
    pub owner: &'a str,
}

/// `plookup` has the same fields as `lookup` (its key may not contain spaces).
pub type PLookup<'a> = Lookup<'a>;

/// `delete[:dAt:<ts>][:nc][:force][:priority:<p>][:cached][:public|:@for]:<key>[@owner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delete<'a> {
    pub d_at: Option<&'a str>,
    pub no_commit: bool,
    pub force: bool,
    pub priority: Option<Priority>,
    pub key: KeyRef<'a>,
}

/// `scan[:cl][:showhidden:<bool>][:@atsign][:page:<n>][ <regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scan<'a> {
    pub commit_log: bool,
    pub show_hidden: Option<bool>,
    /// With its leading `@`, as the grammar captures it.
    pub for_atsign: Option<&'a str>,
    pub page: Option<u64>,
    pub regex: Option<&'a str>,
}

/// `stats[:<id>[,<id>…]][:<regex>]` (regex only after `:3` or `:15`).
/// No ids means every metric.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats<'a> {
    pub ids: Vec<u32>,
    pub regex: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub form: InfoForm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noop {
    pub delay_ms: u64,
}

/// `monitor[:strict][:selfNotifications][:multiplexed][:<epochMillis>][ <regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Monitor<'a> {
    pub strict: bool,
    pub self_notifications: bool,
    pub multiplexed: bool,
    pub epoch_ms: Option<u64>,
    pub regex: Option<&'a str>,
}

/// `sync:from:<id|-1>[:limit:<n>][:skipDeletesUntil:<k>][:<regex>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFrom<'a> {
    pub from: i64,
    pub limit: Option<u32>,
    pub skip_deletes_until: Option<i64>,
    pub regex: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct To<'a> {
    /// As sent, with its `@` if given.
    pub atsign: &'a str,
}

/// `config:block:add|remove:@a[ @b…]`, `config:block:show`,
/// `config:set|reset|print:<arg>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config<'a> {
    /// The space-separated atSign list as sent; iterate with [`Config::atsigns`].
    BlockAdd(&'a str),
    BlockRemove(&'a str),
    BlockShow,
    /// `<name>=<value>`.
    Set(&'a str),
    Reset(&'a str),
    Print(&'a str),
}

impl<'a> Config<'a> {
    /// The atSigns of a block list, split on single spaces, as sent.
    pub fn atsigns(list: &'a str) -> impl Iterator<Item = &'a str> {
        list.split(' ').filter(|s| !s.is_empty())
    }
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

/// The full `notify` grammar (notifications.md §2, changes §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify<'a> {
    pub id: Option<&'a str>,
    pub operation: Option<NotifyOp>,
    pub message_type: Option<MessageType>,
    pub priority: Option<Priority>,
    pub strategy: Option<NotifyStrategy>,
    pub latest_n: Option<u64>,
    pub notifier: Option<&'a str>,
    pub ttln: Option<u64>,
    pub e_atn: Option<&'a str>,
    /// `:eph` (also accepted as `:eph:true|false` from older builders).
    pub eph: bool,
    pub meta: MetaFragment<'a>,
    pub target: NotifyTarget<'a>,
    /// The key (or, for text messages, the text); may contain single `:`s.
    pub key: &'a str,
    /// Captured without the `@`.
    pub owner: Option<&'a str>,
    pub value: Option<&'a str>,
}

/// `notify:list[:<from>[:<to>]][:<regex>]`; trailing text is ignored as the
/// reference regex is not end-anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyList<'a> {
    pub from_date: Option<&'a str>,
    pub to_date: Option<&'a str>,
    pub regex: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyId<'a> {
    pub id: &'a str,
}

/// `notify:all:[op:][messageType:<t>:][ttl:n:][ttb:n:][ttr:n:][ccd:b:]<recipients>:<key>[@owner][:<value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyAll<'a> {
    pub operation: Option<NotifyOp>,
    pub message_type: Option<MessageType>,
    pub ttl: Option<u64>,
    pub ttb: Option<u64>,
    pub ttr: Option<i64>,
    pub ccd: Option<bool>,
    /// The comma-separated recipient list as sent (may be empty).
    pub recipients: &'a str,
    pub key: &'a str,
    pub owner: Option<&'a str>,
    pub value: Option<&'a str>,
}

/// `notify:multi[:update][:ttln:n][:eAtn:<ts>][:eph]<meta>:@r1[,@r2…]:<key>@<sender>[:<value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyMulti<'a> {
    /// `:update` was written (it is the only operation anyway).
    pub explicit_update: bool,
    pub ttln: Option<u64>,
    pub e_atn: Option<&'a str>,
    pub eph: bool,
    pub meta: MetaFragment<'a>,
    /// `@a,@b` as sent; iterate with [`NotifyMulti::recipient_list`].
    pub recipients: &'a str,
    pub key: &'a str,
    /// Captured without the `@`.
    pub owner: &'a str,
    pub value: Option<&'a str>,
}

impl<'a> NotifyMulti<'a> {
    pub fn recipient_list(&self) -> impl Iterator<Item = &'a str> {
        self.recipients.split(',')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    pub json: &'a str,
}

/// `enroll:<op>[:force][:]<json>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enroll<'a> {
    pub op: EnrollOp,
    pub force: bool,
    pub params: Option<&'a str>,
}

/// `otp:get[:ttl:<ms>]` or `otp:put:<passcode>[:ttl:<ms>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Otp<'a> {
    pub op: OtpOp,
    pub passcode: Option<&'a str>,
    pub ttl: Option<u64>,
}

/// `keys:<op>[:<visibility>][:namespace:…][:appName:…][:deviceName:…][:keyType:…][:encryptionKeyName:…][:keyName:<k>][ <value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    pub op: KeysOp,
    pub visibility: Option<KeyVisibility>,
    pub namespace: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub device_name: Option<&'a str>,
    pub key_type: Option<&'a str>,
    pub encryption_key_name: Option<&'a str>,
    pub key_name: Option<&'a str>,
    pub value: Option<&'a str>,
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

    #[test]
    fn enroll_op_names_round_trip() {
        for (name, op) in EnrollOp::ALL {
            assert_eq!(op.name(), name);
        }
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
