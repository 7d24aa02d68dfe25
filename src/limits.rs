//! Every bound the server enforces, in one place, units last.
//!
//! Each constant says why it has its value. Relations between limits are
//! asserted at compile time at the bottom of the file.

/// Longest request line, newline excluded. The reference buffers at most
/// 10,240,000 bytes per command and answers AT0005 beyond, then closes.
pub const LINE_BYTES_MAX: usize = 10_240_000;

/// Longest stored key name (the reference's keystore limit, checked on the
/// assembled key by `update`).
pub const KEY_CHARS_MAX: usize = 248;

/// Longest `cached:` key name: the reference allows 255 for cached copies.
pub const CACHED_KEY_CHARS_MAX: usize = 255;

/// Longest atSign name after the `@` (the key grammar's `{1,55}`).
pub const ATSIGN_CHARS_MAX: usize = 55;

/// Longest `ttl` or `ttb` accepted, in ms: a century. Deadlines are
/// `now + ttb + ttl`, which must stay a date every client can represent
/// (ISO dates with four-digit years end in 9999); AT0003 beyond.
pub const TIME_TO_LIVE_MS_MAX: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// Longest `ttr` accepted, in seconds (the reference counts ttr in
/// seconds): the same century.
pub const TIME_TO_REFRESH_SECS_MAX: i64 = TIME_TO_LIVE_MS_MAX / 1_000;

/// `noop:<ms>` refuses longer delays (AT0022), as the reference does.
pub const NOOP_DELAY_MS_MAX: u64 = 5_000;

/// A `from:` challenge is valid this long and for one attempt only
/// (reference 3.16.4 behaviour).
pub const CHALLENGE_TTL_MS: u64 = 60_000;

/// The atDirectory's per-connection input buffer (the reference destroys the
/// socket beyond 255 characters).
pub const DIRECTORY_LINE_BYTES_MAX: usize = 255;

/// The atDirectory closes a connection on this many lookups that miss.
pub const DIRECTORY_MISSES_MAX: u32 = 3;

/// Delay before answering the second and later missed lookups on one
/// directory connection (reference abuse throttling).
pub const DIRECTORY_MISS_DELAY_MS: u64 = 3_000;

/// Longest client-supplied regex (`scan`, `stats`, `monitor`,
/// `notify:list`): real clients send namespace filters of a few dozen
/// characters.
pub const PATTERN_CHARS_MAX: usize = 1_024;

/// What compiling one client regex may build, for its program and for its
/// lazy DFA each: a MiB keeps a hostile counted repetition from costing
/// more than a moment of one core.
pub const PATTERN_COMPILED_BYTES_MAX: usize = 1 << 20;

/// Deepest nesting of groups and repetitions in a client regex.
pub const PATTERN_NESTING_MAX: u32 = 64;

const _: () = assert!(KEY_CHARS_MAX < CACHED_KEY_CHARS_MAX);
const _: () = assert!(ATSIGN_CHARS_MAX < KEY_CHARS_MAX);

/// Inbound connections one process accepts at once (AT0012 beyond). The
/// reference defaults to 200 per atSign; this server is built for 10,000
/// idle monitors and more, so the default is generous and configurable.
pub const INBOUND_CONNECTIONS_MAX: usize = 50_000;

/// An unauthenticated connection that stays silent this long is closed
/// (the reference's `inbound_idle_time_millis`).
pub const IDLE_UNAUTH_MS: u64 = 600_000;

/// An authenticated connection that stays silent this long is closed. The
/// reference allows 30 days; a day bounds abandoned sockets while monitors
/// stay alive through their 30 s `noop:0` heartbeats.
pub const IDLE_AUTH_MS: u64 = 86_400_000;

/// Deadline for a TLS handshake to complete after accept.
pub const TLS_HANDSHAKE_MS: u64 = 10_000;

/// Deadline for one write of replies to reach the socket; a client that does
/// not read for this long is disconnected instead of pinning memory.
pub const WRITE_MS: u64 = 30_000;

/// Bytes asked of the socket per read.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Unauthenticated commands one connection may send per second; beyond it
/// they are refused (AT0011, the reference's throttle code) until the
/// window passes.
pub const UNAUTH_COMMANDS_PER_SEC_MAX: u32 = 200;

/// Failed `cram`/`pkam` attempts on one connection before it is closed.
pub const AUTH_FAILURES_MAX: u32 = 10;

const _: () = assert!(READ_CHUNK_BYTES < LINE_BYTES_MAX);
const _: () = assert!(IDLE_UNAUTH_MS <= IDLE_AUTH_MS);

/// A directory connection that sends nothing for this long is closed.
pub const DIRECTORY_IDLE_MS: u64 = 60_000;
