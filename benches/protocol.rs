//! Hot-path costs of the wire protocol: framing pipelined input, parsing
//! each common verb, key canonicalisation and reply encoding.
//!
//! `cargo bench --no-default-features --bench protocol`

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use atserver::error::AtError;
use atserver::limits::LINE_BYTES_MAX;
use atserver::protocol::atkey::canonical_key;
use atserver::protocol::frame::{Frame, next_line, trim_line};
use atserver::protocol::parse::{identify, normalize, parse};
use atserver::protocol::reply::{self, ErrorStyle, Prompt};
use criterion::{Criterion, criterion_group, criterion_main};

/// Representative commands as current clients send them.
const COMMANDS: [(&str, &str); 11] = [
    (
        "update",
        "update:ttr:-1:ccd:false:isEncrypted:true:sharedKeyEnc:c2hhcmVka2V5:pubKeyCS:0a1b2c:pubKeyHash:ab12cd34:hashingAlgo:sha512:encKeyName:shared_key:encAlgo:AES/SIC/PKCS7Padding:ivNonce:aXZub25jZQ==:@bob:phone.wavi@alice U2FsdGVkX1+vupppZksvRf5pq5g5XjFRlipRkwB0K1Y=",
    ),
    ("llookup", "llookup:all:@bob:phone.wavi@alice"),
    ("lookup", "lookup:all:phone.wavi@bob"),
    ("plookup", "plookup:bypassCache:true:publickey@bob"),
    ("delete", "delete:priority:high:@bob:phone.wavi@alice"),
    ("scan", "scan:showhidden:true .*\\.wavi"),
    (
        "from",
        "from:@alice:clientConfig:{\"version\":\"3.2.1\",\"clientId\":\"c1\",\"platform\":\"linux\"}",
    ),
    (
        "pkam",
        "pkam:signingAlgo:rsa2048:hashingAlgo:sha256:enrollmentId:1a2b3c4d-0000-4000-8000-1234567890ab:RlhXb3Jkc0xpa2VTaWduYXR1cmVCeXRlc0luQmFzZTY0SGVyZUFuZFRoZXJl",
    ),
    (
        "notify",
        "notify:id:6d7c4b2a-1f00-4e00-9000-abcdefabcdef:update:messageType:key:notifier:SYSTEM:ttln:86400000:ttr:-1:ccd:false:isEncrypted:true:sharedKeyEnc:c2hhcmVk:pubKeyCS:0a1b:@bob:phone.wavi@alice:Y2lwaGVydGV4dA==",
    ),
    (
        "sync:from",
        "sync:from:41:limit:10:skipDeletesUntil:575300:.*\\.wavi",
    ),
    ("stats", "stats:3:.*\\.wavi"),
];

fn framer(c: &mut Criterion) {
    let mut buf = Vec::new();
    for i in 0..16 {
        buf.extend_from_slice(COMMANDS[i % COMMANDS.len()].1.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    c.bench_function("frame/16_pipelined_lines", |b| {
        b.iter(|| {
            let mut rest = black_box(buf.as_slice());
            let mut n = 0usize;
            while let (Frame::Line(line), used) = next_line(rest, LINE_BYTES_MAX) {
                n += trim_line(line).len();
                rest = &rest[used..];
            }
            n
        })
    });
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, line) in COMMANDS {
        g.bench_function(name, |b| {
            b.iter(|| {
                let n = normalize(black_box(line));
                let verb = identify(&n);
                verb.map(|v| parse(v, &n).is_ok())
            })
        });
    }
    g.finish();
}

fn keys(c: &mut Criterion) {
    c.bench_function("canonical_key/lowercase", |b| {
        b.iter(|| canonical_key(black_box("@bob:phone.wavi@alice")))
    });
    c.bench_function("canonical_key/mixed_case", |b| {
        b.iter(|| canonical_key(black_box("@Bob:Phone.Wavi@Alice")))
    });
}

fn replies(c: &mut Criterion) {
    let mut out = Vec::with_capacity(256);
    c.bench_function("reply/data", |b| {
        b.iter(|| {
            out.clear();
            reply::data(
                &mut out,
                black_box("U2FsdGVkX1+vupppZksvRf5pq5g5XjFRlipRkwB0K1Y="),
                Prompt::Owner("@alice"),
            );
            out.len()
        })
    });
    let err = AtError::key_not_found("@bob:phone.wavi@alice");
    c.bench_function("reply/error_json", |b| {
        b.iter(|| {
            out.clear();
            reply::error(&mut out, black_box(&err), ErrorStyle::Json, true, "@alice");
            out.len()
        })
    });
}

criterion_group!(benches, framer, parsers, keys, replies);
criterion_main!(benches);
