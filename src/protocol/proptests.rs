//! Property tests across the protocol modules:
//! - every command the parser can produce survives encode -> normalise ->
//!   identify -> parse unchanged (one generator per verb);
//! - normalise/identify/parse never panic, and whatever parses re-encodes to
//!   an equal command;
//! - framer invariants.
//!
//! The last two are the fuzz targets' properties ([`super::fuzzing`]), here
//! driven by generated input shaped like real requests.
//!
//! Generated strings are leaked so the borrowed `Command<'static>` can hold
//! them; this is test-only and bounded by the case count.

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

use super::command::*;
use super::frame::{Frame, next_line};
use super::fuzzing::{check_framing_in_pieces, check_next_line, check_round_trip};
use super::metadata::MetaFragment;
use super::parse::{identify, normalize, parse};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn re(pattern: &str) -> BoxedStrategy<&'static str> {
    proptest::string::string_regex(pattern)
        .expect("valid test regex")
        .prop_map(leak)
        .boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

const TS: &str =
    "20[0-9]{2}-[01][0-9]-[0-3][0-9][Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?Z";
const TOK: &str = "[A-Za-z0-9+/=_.-]{1,12}";
const ATSIGN: &str = "[a-z0-9_]{1,10}";
const VALUE: &str = "[!-~é😀]([ -~é😀]{0,18}[!-~])?";
const NAME1: &str = "k[a-z0-9_.]{0,10}";
const NAME2: &str = "k[a-z0-9_.]{1,10}";

fn arb_meta(multi: bool) -> BoxedStrategy<MetaFragment<'static>> {
    let ints = (
        opt(0..=1_000_000_000i64),
        opt(0..=1_000_000_000i64),
        opt(-1..=1_000_000i64),
        opt(any::<bool>()),
    );
    let bools = (opt(any::<bool>()), opt(any::<bool>()), opt(any::<bool>()));
    let times = proptest::collection::vec(opt(re(TS)), 4);
    let toks = proptest::collection::vec(opt(re(TOK)), 15);
    (ints, bools, times, toks)
        .prop_map(
            move |((ttl, ttb, ttr, ccd), (is_binary, is_encrypted, immutable), t, k)| {
                let mut m = MetaFragment {
                    ttl,
                    ttb,
                    ttr,
                    ccd,
                    c_at: t[0],
                    u_at: t[1],
                    e_at: t[2],
                    a_at: t[3],
                    data_signature: k[0],
                    shared_key_status: k[1],
                    is_binary,
                    is_encrypted,
                    shared_key_enc: k[2],
                    pub_key_cs: k[3],
                    pub_key_hash: k[4],
                    hashing_algo: k[5],
                    encoding: k[6],
                    enc_key_name: k[7],
                    enc_algo: k[8],
                    iv_nonce: k[9],
                    ske_enc_key_name: k[10],
                    ske_enc_algo: k[11],
                    immutable,
                    app_metadata: k[12],
                };
                if multi {
                    // The fields notify:multi refuses by name.
                    m.ttr = None;
                    m.ccd = None;
                    m.shared_key_enc = None;
                    m.pub_key_cs = None;
                    m.pub_key_hash = None;
                    m.hashing_algo = None;
                    m.ske_enc_key_name = None;
                    m.ske_enc_algo = None;
                    m.is_binary = None;
                    m.encoding = None;
                    m.shared_key_status = None;
                    m.data_signature = None;
                }
                m
            },
        )
        .boxed()
}

fn arb_scope() -> BoxedStrategy<Scope<'static>> {
    prop_oneof![
        Just(Scope::None),
        Just(Scope::Public),
        re(ATSIGN).prop_map(Scope::SharedWith)
    ]
    .boxed()
}

fn arb_lookup_op() -> BoxedStrategy<LookupOp> {
    prop_oneof![
        Just(LookupOp::Value),
        Just(LookupOp::Meta),
        Just(LookupOp::All)
    ]
    .boxed()
}

fn arb_priority() -> BoxedStrategy<Option<Priority>> {
    opt(prop_oneof![
        Just(Priority::Low),
        Just(Priority::Medium),
        Just(Priority::High)
    ])
}

fn arb_notify_op() -> BoxedStrategy<Option<NotifyOp>> {
    opt(prop_oneof![Just(NotifyOp::Update), Just(NotifyOp::Delete)])
}

fn arb_message_type() -> BoxedStrategy<Option<MessageType>> {
    opt(prop_oneof![Just(MessageType::Key), Just(MessageType::Text)])
}

fn arb_command() -> impl Strategy<Value = Command<'static>> {
    let from = (
        re("@?[a-z0-9_]{1,12}"),
        opt(re("\\{\"version\":\"[0-9.]{1,6}\"\\}")),
    )
        .prop_map(|(atsign, client_config)| {
            Command::From(From {
                atsign,
                client_config,
            })
        })
        .boxed();
    let cram = re("[0-9a-f]{1,40}")
        .prop_map(|digest| Command::Cram(Cram { digest }))
        .boxed();
    let signing = opt(prop_oneof![
        Just(SigningAlgo::Rsa2048),
        Just(SigningAlgo::EccSecp256r1),
        Just(SigningAlgo::MlDsa65)
    ]);
    let hashing = opt(prop_oneof![
        Just(HashingAlgo::Sha256),
        Just(HashingAlgo::Sha512)
    ]);
    let pkam = (
        signing,
        hashing,
        opt(re("[a-z0-9-]{1,12}")),
        re("[A-Za-z0-9+/=]{1,40}"),
    )
        .prop_map(|(signing_algo, hashing_algo, enrollment_id, signature)| {
            Command::Pkam(Pkam {
                signing_algo,
                hashing_algo,
                enrollment_id,
                signature,
            })
        })
        .boxed();
    let update = (
        any::<bool>(),
        arb_meta(false),
        arb_scope(),
        re(NAME1),
        opt(re(ATSIGN)),
        re(VALUE),
    )
        .prop_map(|(no_commit, meta, scope, name, owner, value)| {
            Command::Update(Update {
                no_commit,
                meta,
                key: KeyRef {
                    cached: false,
                    scope,
                    name,
                    owner,
                },
                value,
            })
        })
        .boxed();
    let update_json = (any::<bool>(), re("\\{[ -~]{0,20}\\}"))
        .prop_map(|(no_commit, json)| Command::UpdateJson(UpdateJson { no_commit, json }))
        .boxed();
    let update_meta = (
        any::<bool>(),
        arb_scope(),
        re(NAME2),
        re(ATSIGN),
        arb_meta(false),
    )
        .prop_map(|(no_commit, scope, name, owner, meta)| {
            Command::UpdateMeta(UpdateMeta {
                no_commit,
                key: KeyRef {
                    cached: false,
                    scope,
                    name,
                    owner: Some(owner),
                },
                meta,
            })
        })
        .boxed();
    let llookup = (
        arb_lookup_op(),
        any::<bool>(),
        arb_scope(),
        re("k[a-z0-9_.]{1,10}(:[a-z0-9]{1,4})?"),
        re(ATSIGN),
    )
        .prop_map(|(op, cached, scope, name, owner)| {
            Command::LLookup(LLookup {
                op,
                key: KeyRef {
                    cached,
                    scope,
                    name,
                    owner: Some(owner),
                },
            })
        })
        .boxed();
    let lookup = (
        opt(any::<bool>()),
        arb_lookup_op(),
        re("k[a-z0-9_.@ ]{0,8}[a-z]"),
        re(ATSIGN),
    )
        .prop_map(|(bypass_cache, op, name, owner)| {
            Command::Lookup(Lookup {
                bypass_cache,
                op,
                name,
                owner,
            })
        })
        .boxed();
    let plookup = (
        opt(any::<bool>()),
        arb_lookup_op(),
        re("k[a-z0-9_.:]{0,10}"),
        re(ATSIGN),
    )
        .prop_map(|(bypass_cache, op, name, owner)| {
            Command::PLookup(Lookup {
                bypass_cache,
                op,
                name,
                owner,
            })
        })
        .boxed();
    let scan = (
        any::<bool>(),
        opt(any::<bool>()),
        opt(re("@[a-z0-9_]{1,8}")),
        opt(any::<u64>()),
        opt(re("[a-z.*\\\\]{1,8}")),
    )
        .prop_map(|(commit_log, show_hidden, for_atsign, page, regex)| {
            Command::Scan(Scan {
                commit_log,
                show_hidden,
                for_atsign,
                page,
                regex,
            })
        })
        .boxed();
    let delete = (
        opt(re(TS)),
        any::<bool>(),
        any::<bool>(),
        arb_priority(),
        any::<bool>(),
        arb_scope(),
        re(NAME1),
        opt(re(ATSIGN)),
    )
        .prop_map(
            |(d_at, no_commit, force, priority, cached, scope, name, owner)| {
                Command::Delete(Delete {
                    d_at,
                    no_commit,
                    force,
                    priority,
                    key: KeyRef {
                        cached,
                        scope,
                        name,
                        owner,
                    },
                })
            },
        )
        .boxed();
    let stats = prop_oneof![
        proptest::collection::vec(0..40u32, 0..4)
            .prop_map(|ids| Command::Stats(Stats { ids, regex: None })),
        (prop_oneof![Just(3u32), Just(15u32)], re("[ -~]{1,10}")).prop_map(|(id, regex)| {
            Command::Stats(Stats {
                ids: vec![id],
                regex: Some(regex),
            })
        }),
    ]
    .boxed();
    let list = "@[a-z]{1,6}( @[a-z:]{1,6}){0,3}";
    let config = prop_oneof![
        re(list).prop_map(|l| Command::Config(Config::BlockAdd(l))),
        re(list).prop_map(|l| Command::Config(Config::BlockRemove(l))),
        Just(Command::Config(Config::BlockShow)),
        re("[a-zA-Z]{1,10}=[0-9]{1,3}").prop_map(|a| Command::Config(Config::Set(a))),
        re("[a-zA-Z]{1,10}").prop_map(|a| Command::Config(Config::Reset(a))),
        re("[a-zA-Z]{1,10}").prop_map(|a| Command::Config(Config::Print(a))),
    ]
    .boxed();
    let monitor = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        opt(any::<u64>()),
        opt(re("[ -~]{0,8}[!-~]")),
        re("[a-z .*]{0,8}[a-z]"),
    )
        .prop_map(
            |(strict, self_notifications, multiplexed, epoch_ms, regex, plain)| {
                let flags = strict || self_notifications || multiplexed || epoch_ms.is_some();
                // Without any `:` the whole line is lower-cased, so a bare
                // monitor's regex is lower-case and colon-free.
                let regex = if flags { regex } else { regex.map(|_| plain) };
                Command::Monitor(Monitor {
                    strict,
                    self_notifications,
                    multiplexed,
                    epoch_ms,
                    regex,
                })
            },
        )
        .boxed();
    let stream_op = opt(prop_oneof![
        Just(StreamOp::Init),
        Just(StreamOp::Send),
        Just(StreamOp::Receive),
        Just(StreamOp::Done),
        Just(StreamOp::Resume)
    ]);
    let stream = (
        stream_op,
        opt(re("[a-z]{1,6}")),
        opt(re("[a-z_-]{1,6}")),
        opt(any::<u64>()),
        opt(re("[a-z0-9_-]{0,6}")),
        opt((re("[A-Za-z0-9=. ]{0,8}"), opt(any::<u64>()))),
    )
        .prop_map(|(op, receiver, namespace, start_byte, stream_id, file)| {
            // A file name without a stream id reads back as the id (the
            // parser, like the regex, tries the id first), so pair them.
            let (file_name, length) = match file {
                Some((n, l)) if stream_id.is_some() => (Some(n), l),
                _ => (None, None),
            };
            Command::Stream(Stream {
                op,
                receiver,
                namespace,
                start_byte,
                stream_id,
                file_name,
                length,
            })
        })
        .boxed();
    let strategy = opt(prop_oneof![
        Just(NotifyStrategy::All),
        Just(NotifyStrategy::Latest)
    ]);
    let notify_head = (
        opt(re("[a-zA-Z0-9_-]{1,10}")),
        arb_notify_op(),
        arb_message_type(),
        arb_priority(),
        strategy,
        opt(any::<u64>()),
        opt(re("[A-Za-z0-9@._]{1,8}")),
        opt(any::<u64>()),
        opt(re(TS)),
        any::<bool>(),
    );
    let target = prop_oneof![
        Just(NotifyTarget::Public),
        re(ATSIGN).prop_map(NotifyTarget::AtSign)
    ];
    let notify = (
        notify_head,
        arb_meta(false),
        target,
        re(NAME2),
        opt((re(ATSIGN), opt(re(VALUE)))),
    )
        .prop_map(|(h, meta, target, key, ov)| {
            let (
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
            ) = h;
            // Without an owner, a value would be read back as part of the key.
            let (owner, value) = match ov {
                Some((o, v)) => (Some(o), v),
                None => (None, None),
            };
            Command::Notify(Notify {
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
            })
        })
        .boxed();
    let date = "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])";
    let notify_list = (opt((re(date), opt(re(date)))), opt(re("[a-z.*]{1,8}")))
        .prop_map(|(dates, regex)| {
            let (from_date, to_date) = dates.map_or((None, None), |(f, t)| (Some(f), t));
            Command::NotifyList(NotifyList {
                from_date,
                to_date,
                regex,
            })
        })
        .boxed();
    let batch = re("\\[[ -~]{0,20}\\]")
        .prop_map(|json| Command::Batch(Batch { json }))
        .boxed();
    let status = re("[A-Za-z0-9:_-]{1,12}")
        .prop_map(|id| Command::NotifyStatus(NotifyId { id }))
        .boxed();
    let fetch = re("[A-Za-z0-9:_-]{1,12}")
        .prop_map(|id| Command::NotifyFetch(NotifyId { id }))
        .boxed();
    let remove = re("[A-Za-z0-9_-]{1,12}")
        .prop_map(|id| Command::NotifyRemove(NotifyId { id }))
        .boxed();
    let notify_all = (
        (
            arb_notify_op(),
            arb_message_type(),
            opt(any::<u64>()),
            opt(any::<u64>()),
            opt(-5..1_000_000i64),
            opt(any::<bool>()),
        ),
        re("(@[a-z]{1,5}(,@[a-z]{1,5}){0,2})?"),
        re("[a-z0-9_.]{1,8}"),
        opt(re(ATSIGN)),
        opt(re(VALUE)),
    )
        .prop_map(
            |((operation, message_type, ttl, ttb, ttr, ccd), recipients, key, owner, value)| {
                Command::NotifyAll(NotifyAll {
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
                })
            },
        )
        .boxed();
    let sync_from = (
        prop_oneof![Just(-1i64), 0..i64::MAX],
        opt(any::<u32>()),
        opt(0..i64::MAX),
        opt(re("[a-z.*\\\\]{1,8}")),
    )
        .prop_map(|(from, limit, skip_deletes_until, regex)| {
            Command::SyncFrom(SyncFrom {
                from,
                limit,
                skip_deletes_until,
                regex,
            })
        })
        .boxed();
    let info = prop_oneof![
        Just(InfoForm::Plain),
        Just(InfoForm::Brief),
        Just(InfoForm::Mtls),
        Just(InfoForm::MtlsBrief)
    ]
    .prop_map(|form| Command::Info(Info { form }))
    .boxed();
    let noop = any::<u64>()
        .prop_map(|delay_ms| Command::Noop(Noop { delay_ms }))
        .boxed();
    let enroll = (
        proptest::sample::select(EnrollOp::ALL.to_vec()),
        any::<bool>(),
        opt(re("(force)?[a-z:{}\"]{1,10}")),
    )
        .prop_map(|((_, op), force, params)| Command::Enroll(Enroll { op, force, params }))
        .boxed();
    let otp = prop_oneof![
        opt(any::<u64>()).prop_map(|ttl| Command::Otp(Otp {
            op: OtpOp::Get,
            passcode: None,
            ttl
        })),
        (opt(re("[A-Za-z0-9_]{6,10}")), opt(any::<u64>())).prop_map(
            |(passcode, ttl)| Command::Otp(Otp {
                op: OtpOp::Put,
                passcode,
                ttl
            })
        ),
    ]
    .boxed();
    let keys_op = prop_oneof![Just(KeysOp::Put), Just(KeysOp::Get), Just(KeysOp::Delete)];
    let vis = opt(prop_oneof![
        Just(KeyVisibility::Public),
        Just(KeyVisibility::Private),
        Just(KeyVisibility::SelfKey)
    ]);
    let w = "[a-zA-Z0-9_]{1,6}";
    let wd = "[a-z0-9_-]{1,6}";
    let keys = (
        keys_op,
        vis,
        opt(re(w)),
        opt(re(w)),
        opt(re(w)),
        opt(re(wd)),
        opt(re(wd)),
        opt(re("[!-~]{1,10}")),
        opt(re("[0-9{][ -~]{0,9}[!-~]")),
    )
        .prop_map(
            |(
                op,
                visibility,
                namespace,
                app_name,
                device_name,
                key_type,
                encryption_key_name,
                key_name,
                value,
            )| {
                Command::Keys(Keys {
                    op,
                    visibility,
                    namespace,
                    app_name,
                    device_name,
                    key_type,
                    encryption_key_name,
                    key_name,
                    value,
                })
            },
        )
        .boxed();
    let multi = (
        any::<bool>(),
        opt(any::<u64>()),
        opt(re(TS)),
        any::<bool>(),
        arb_meta(true),
        re("@[a-z]{1,5}(,@[a-z]{1,5}){0,2}"),
        re(NAME2),
        re(ATSIGN),
        opt(re(VALUE)),
    )
        .prop_map(
            |(explicit_update, ttln, e_atn, eph, meta, recipients, key, owner, value)| {
                Command::NotifyMulti(NotifyMulti {
                    explicit_update,
                    ttln,
                    e_atn,
                    eph,
                    meta,
                    recipients,
                    key,
                    owner,
                    value,
                })
            },
        )
        .boxed();
    let to = re("@?[a-z0-9_@]{1,8}")
        .prop_map(|atsign| Command::To(To { atsign }))
        .boxed();
    Union::new(vec![
        from,
        cram,
        pkam,
        update,
        update_json,
        update_meta,
        llookup,
        lookup,
        plookup,
        scan,
        Just(Command::Pol).boxed(),
        delete,
        stats,
        config,
        monitor,
        stream,
        notify,
        notify_list,
        batch,
        status,
        notify_all,
        sync_from,
        info,
        noop,
        remove,
        fetch,
        enroll,
        otp,
        keys,
        multi,
        to,
    ])
}

/// Lines that reach the verb parsers: a verb prefix plus noise.
fn arb_line() -> impl Strategy<Value = String> {
    let prefixes = proptest::sample::select(vec![
        "from:",
        "cram:",
        "pkam:",
        "update:",
        "update:meta:",
        "update:nc:",
        "llookup:",
        "plookup:",
        "lookup:",
        "scan",
        "pol",
        "delete:",
        "stats",
        "config:",
        "monitor",
        "stream:",
        "notify:",
        "notify:list",
        "batch:",
        "notify:status:",
        "notify:all:",
        "sync:from:",
        "info",
        "noop:",
        "notify:remove:",
        "notify:fetch:",
        "enroll:",
        "otp:",
        "keys:",
        "notify:multi:",
        "to:",
    ]);
    let noise = "([:@ ,.a-zA-Z0-9_-]|ttl:|public:|cached:|@bob:|meta:|all:|privatekey:|\r|é|😀|2024-01-01T00:00:00Z){0,24}";
    (
        prefixes,
        proptest::string::string_regex(noise).expect("valid test regex"),
    )
        .prop_map(|(p, n)| format!("{p}{n}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_command_round_trips(cmd in arb_command()) {
        let text = cmd.to_string();
        let n = normalize(&text);
        let verb = identify(&n);
        prop_assert_eq!(verb, Some(cmd.verb()), "{}", text);
        let parsed = parse(cmd.verb(), &n);
        prop_assert_eq!(parsed, Ok(cmd.clone()), "{}", text);
    }

    #[test]
    fn verb_shaped_noise_never_panics_and_reparses(line in arb_line()) {
        check_round_trip(&line)?;
    }

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,64}") {
        check_round_trip(&line)?;
    }

    #[test]
    fn framer_invariants(buf in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..64), max in 0usize..24) {
        check_next_line(&buf, max)?;
    }

    #[test]
    fn framing_in_pieces_matches_framing_at_once(buf in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..64), max in 0usize..24, cuts in proptest::collection::vec(0usize..64, 0..6)) {
        // Feed growing prefixes as reads would, carrying what was scanned.
        check_framing_in_pieces(&buf, max, &cuts)?;
    }

    #[test]
    fn framer_splits_joined_lines_back(lines in proptest::collection::vec("[ -~]{0,12}", 0..8), crlf in any::<bool>()) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let joined: String = lines.iter().map(|l| format!("{l}{sep}")).collect();
        let mut rest = joined.as_bytes();
        for want in &lines {
            let (frame, used) = next_line(rest, 12);
            // A line ending in `\r` loses it only when it is the terminator's.
            let got = match frame { Frame::Line(l) => l, other => return Err(TestCaseError::fail(format!("{other:?}"))) };
            prop_assert_eq!(got, want.as_bytes());
            rest = &rest[used..];
        }
        prop_assert_eq!(next_line(rest, 12), (Frame::Incomplete, 0));
    }
}
