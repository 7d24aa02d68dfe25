//! Every bound the server (and its client) enforces, in one place, grouped,
//! units last.
//!
//! Each constant says why it has its value; relations between limits are
//! asserted at compile time at the end of each group. `docs/OPERATIONS.md`
//! lists every one (a test checks that the table stays complete).

// ---------------------------------------------------------------------------
// Lines, keys and values: what one request may hold.

/// Longest request line, newline excluded. The reference buffers at most
/// 10,240,000 bytes per command and answers AT0005 beyond, then closes.
pub const LINE_BYTES_MAX: usize = 10_240_000;

/// Longest line an unauthenticated connection may send (AT0005 and close
/// beyond). The largest legitimate pre-authentication lines are a `pkam`
/// with an ML-DSA-65 signature (3,309 bytes, 4,412 in base64, plus its
/// prefix and enrollment id) and an OTP `enroll:request` whose JSON carries
/// an ML-DSA-65 public key (1,952 bytes, 2,604 in base64), an encrypted
/// symmetric key and names: both under 6 KiB. 16 KiB leaves room for
/// `clientConfig` and future fields without letting ten thousand waiting
/// connections hold 10 MB each.
pub const UNAUTH_LINE_BYTES_MAX: usize = 16 * 1024;

/// Longest stored key name (the reference's keystore limit, checked on the
/// assembled key by every verb that names a key; AT0016 beyond).
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

/// Entries of one `sync:from` page: the reference's default
/// `sync.pageLimit`; a client's larger `limit:` is cut to it (clients loop
/// until a page comes back empty, so any page size works for them).
pub const SYNC_PAGE_ENTRIES_MAX: usize = 100;

/// Bytes of the JSON entries of one `sync:from` page before it ends early
/// (the reference's `sync.bufferSize`); the first entry is always served.
pub const SYNC_PAGE_BYTES_MAX: usize = 5_242_880;

/// Commands in one `batch` request. The Dart client sends its uncommitted
/// entries in batches of a few; bounding them bounds the work of one line.
pub const BATCH_COMMANDS_MAX: usize = 1_000;

/// How long a pending enrollment request waits for approval before it
/// expires (the reference's `enrollment.expiryInHours`, 48 h).
pub const ENROLLMENT_PENDING_TTL_MS: i64 = 48 * 3_600_000;

/// Bytes of one `enroll:` command's JSON parameters (the reference caps a
/// whole enrollment record at 500 KB since 3.16.1: key packages in
/// `metadata` and `apsk` are the large parts).
pub const ENROLLMENT_RECORD_BYTES_MAX: usize = 500 * 1024;

/// Enrollment requests of one atSign that may be pending at once: a
/// device asks once and waits; more than this is a flood of requests (each
/// needing a passcode, or the owner's own connection), which must not fill
/// the store or the approver's list.
pub const ENROLLMENTS_PENDING_MAX: usize = 32;

/// `enroll:request`s one connection may send per hour (the reference's
/// `enrollment.maxRequestsPerTimeFrame` of 5 in `timeFrameInHours` 1).
pub const ENROLL_REQUESTS_PER_HOUR_MAX: u32 = 5;

/// Distinct ids one `stats` request may ask for: more than the reference
/// defines (16), so every real request fits; repeated ids are answered once.
pub const STATS_IDS_MAX: usize = 32;

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

/// Keys one `scan` may list (AT0022 beyond: narrow it with a regex). Real
/// atSigns hold hundreds to thousands of keys; a hundred thousand keeps the
/// reply a few MB.
pub const SCAN_KEYS_MAX: usize = 100_000;

/// Bytes one `scan` reply may hold (AT0022 beyond).
pub const SCAN_REPLY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Keys a scan reads between two turns it gives to the other connections
/// of its shard: a page costs well under a millisecond.
pub const SCAN_PAGE_KEYS: usize = 1_024;

const _: () = assert!(KEY_CHARS_MAX < CACHED_KEY_CHARS_MAX);
const _: () = assert!(ATSIGN_CHARS_MAX < KEY_CHARS_MAX);
const _: () = assert!(UNAUTH_LINE_BYTES_MAX < LINE_BYTES_MAX);
const _: () = assert!(PATTERN_CHARS_MAX < UNAUTH_LINE_BYTES_MAX);
const _: () = assert!(SCAN_PAGE_KEYS <= SCAN_KEYS_MAX);
// A maximal scan reply is answered whole by the library client.
const _: () = assert!(SCAN_REPLY_BYTES_MAX < CLIENT_REPLY_BYTES_MAX);

// ---------------------------------------------------------------------------
// One connection: reads, replies and pipelining.

/// Bytes asked of the socket per read (one full TLS record).
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// First read size of a connection; doubled while reads fill the buffer, up
/// to [`READ_CHUNK_BYTES`], and halved back when they do not: idle
/// connections hold small buffers.
pub const READ_SIZE_MIN_BYTES: usize = 512;

/// Buffers above this capacity are freed once empty, so 10,000 idle
/// connections do not each keep the memory of their largest request.
pub const IDLE_BUFFER_BYTES_MAX: usize = 4 * 1024;

/// Reply bytes a connection may buffer before it must write them out: one
/// pipelined read of `llookup`s of large values cannot pin unbounded memory.
pub const REPLY_BUFFER_BYTES_MAX: usize = 1024 * 1024;

/// Replies a connection may have pending before it stops reading more
/// requests: bounds the memory one pipelining client can pin.
pub const INFLIGHT_REPLIES_MAX: usize = 1_024;

/// Request bytes of writes a connection may have in flight before it stops
/// reading more: 1,024 pipelined 10 MB updates must not pin 10 GB.
pub const INFLIGHT_WRITE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// How long one connection may keep its shard busy reading input that is
/// always there (a client streaming megabytes) before it yields a turn to
/// the shard's other connections: a couple of milliseconds keeps their
/// latency low and costs the stream nothing measurable.
pub const STREAMING_TURN_MS: u64 = 2;

/// How long a connection that used up its streaming turn waits for the
/// shard's reactor to poll its rings (a timer not yet due when first polled,
/// so the task is parked until the reactor runs). 10 µs per 2 ms turn costs
/// a stream 0.5 % at most.
pub const IO_YIELD_US: u64 = 10;

/// Deadline for one write of replies to reach the socket; a client that does
/// not read for this long is disconnected instead of pinning memory.
pub const WRITE_MS: u64 = 30_000;

/// How long a connection waits for the store to answer one of its writes
/// before it gives up with AT0002 and closes: a batch with its fsync takes
/// milliseconds, so 30 s means a hung disk, which must show as errors, not
/// as connections pinned forever.
pub const STORE_WAIT_MS: u64 = 30_000;

const _: () = assert!(READ_SIZE_MIN_BYTES <= READ_CHUNK_BYTES);
const _: () = assert!(READ_CHUNK_BYTES < LINE_BYTES_MAX);
const _: () = assert!(IDLE_BUFFER_BYTES_MAX >= READ_SIZE_MIN_BYTES);
// A write's request line always fits the in-flight budget.
const _: () = assert!(LINE_BYTES_MAX <= INFLIGHT_WRITE_BYTES_MAX);

// ---------------------------------------------------------------------------
// Connections of a process: admission, deadlines, input memory.

/// Inbound connections one process accepts at once, counted at accept
/// (AT0012 beyond). The reference defaults to 200 per atSign; this server is
/// built for 10,000 idle monitors and more, so the default is generous and
/// configurable (`--inbound-max`).
pub const INBOUND_CONNECTIONS_MAX: usize = 50_000;

/// Connections that have not authenticated yet (in their TLS handshake or
/// after it). Beyond it the one unauthenticated the longest is evicted, so
/// silent sockets cannot keep an owner out. An owner authenticates within
/// milliseconds of connecting; ten thousand is far more than real clients
/// ever have in that state at once.
pub const UNAUTH_CONNECTIONS_MAX: usize = 10_000;

/// Extra registry places for newcomers while the connections evicted for
/// them are still closing.
pub const ADMISSION_EVICTION_SLACK: usize = 1_024;

/// Unauthenticated connections one source address (IPv4 address, IPv6
/// /64) may hold. Devices behind one NAT each authenticate within
/// milliseconds, so 64 at once is plenty; one host cannot fill the quota.
pub const CONNECTIONS_PER_SOURCE_MAX: u32 = 64;

/// Buckets the per-source counts are hashed into: a fixed table, so no
/// number of source addresses can grow the server's memory.
pub const SOURCE_BUCKETS: usize = 4_096;

/// TLS handshakes in progress at once. A full handshake costs 0.15–0.8 ms
/// of CPU and some tens of KiB; beyond it the oldest handshake is evicted.
pub const TLS_HANDSHAKES_MAX: usize = 1_024;

/// Deadline for a TLS handshake to complete after accept, while at most
/// half of [`TLS_HANDSHAKES_MAX`] are in progress.
pub const TLS_HANDSHAKE_MS: u64 = 10_000;

/// What the handshake deadline shrinks to as handshakes pile up: a real
/// client on a slow link still completes within a second.
pub const TLS_HANDSHAKE_MIN_MS: u64 = 1_000;

/// Handshakes done only to tell a refused client why (AT0012): beyond
/// this many at once, refused connections are closed without a word, so
/// refusing costs bounded CPU.
pub const REFUSAL_HANDSHAKES_MAX: usize = 64;

/// Deadline of a refusal handshake and its error line.
pub const REFUSAL_HANDSHAKE_MS: u64 = 2_000;

/// An unauthenticated connection that sends no complete line for this long
/// is closed (the reference's `inbound_idle_time_millis`), while the
/// unauthenticated pool is at most half full.
pub const IDLE_UNAUTH_MS: u64 = 600_000;

/// What the unauthenticated idle deadline shrinks to as the pool fills
/// (the reference's minimum).
pub const IDLE_UNAUTH_MIN_MS: u64 = 5_000;

/// An authenticated connection that stays silent this long is closed. The
/// reference allows 30 days; a day bounds abandoned sockets while monitors
/// stay alive through their 30 s `noop:0` heartbeats.
pub const IDLE_AUTH_MS: u64 = 86_400_000;

/// What the authenticated idle deadline shrinks to as the pool fills (the
/// reference's minimum; monitors send a `noop:0` every 30 s).
pub const IDLE_AUTH_MIN_MS: u64 = 60_000;

/// Input bytes all connections of a process together may hold buffered
/// (partial lines and unanswered pipelined requests). A connection whose
/// read would exceed it is closed with AT0005.
pub const INPUT_BUDGET_BYTES_MAX: usize = 512 * 1024 * 1024;

/// The share of [`INPUT_BUDGET_BYTES_MAX`] unauthenticated connections may
/// hold: thousands of clients trickling partial lines stop here.
pub const UNAUTH_INPUT_BUDGET_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(UNAUTH_CONNECTIONS_MAX <= INBOUND_CONNECTIONS_MAX);
const _: () = assert!(REFUSAL_HANDSHAKES_MAX <= TLS_HANDSHAKES_MAX);
const _: () = assert!(TLS_HANDSHAKE_MIN_MS <= TLS_HANDSHAKE_MS);
const _: () = assert!(REFUSAL_HANDSHAKE_MS <= TLS_HANDSHAKE_MS);
const _: () = assert!(IDLE_UNAUTH_MS <= IDLE_AUTH_MS);
const _: () = assert!(IDLE_UNAUTH_MIN_MS <= IDLE_UNAUTH_MS && IDLE_AUTH_MIN_MS <= IDLE_AUTH_MS);
const _: () = assert!(UNAUTH_INPUT_BUDGET_BYTES_MAX <= INPUT_BUDGET_BYTES_MAX);
// One maximal line always fits the budget, and one pre-auth line its share.
const _: () = assert!(LINE_BYTES_MAX + READ_CHUNK_BYTES <= INPUT_BUDGET_BYTES_MAX);
const _: () = assert!(UNAUTH_LINE_BYTES_MAX + READ_CHUNK_BYTES <= UNAUTH_INPUT_BUDGET_BYTES_MAX);

// ---------------------------------------------------------------------------
// Authentication.

/// A `from:` challenge is valid this long and for one attempt only
/// (reference 3.16.4 behaviour).
pub const CHALLENGE_TTL_MS: u64 = 60_000;

/// Unauthenticated commands one connection may send per second; beyond it
/// they are refused (AT0011, the reference's throttle code) until the
/// window passes.
pub const UNAUTH_COMMANDS_PER_SEC_MAX: u32 = 200;

/// Failed `cram`/`pkam` attempts on one connection before it is closed.
pub const AUTH_FAILURES_MAX: u32 = 10;

/// Failed logins of one atSign answered without a delay (a typo, a stale
/// key); later ones wait [`LOGIN_DELAY_BASE_MS`], doubling.
pub const LOGIN_FREE_FAILURES: u32 = 3;

/// Failed logins from one source address answered without a delay: more
/// than for one atSign, as many users' devices may share an address.
pub const LOGIN_FREE_FAILURES_PER_SOURCE: u32 = 10;

/// The first delay before answering a failed login past the free ones.
pub const LOGIN_DELAY_BASE_MS: u64 = 500;

/// The longest delay before answering a failed login: a brute force then
/// costs its connection 30 s per guess, and the per-source cap bounds how
/// many connections it has.
pub const LOGIN_DELAY_MAX_MS: u64 = 30_000;

/// Failures older than this are forgotten.
pub const LOGIN_FAILURE_WINDOW_MS: u64 = 15 * 60 * 1_000;

const _: () = assert!(LOGIN_DELAY_BASE_MS <= LOGIN_DELAY_MAX_MS);
const _: () = assert!(LOGIN_FREE_FAILURES <= LOGIN_FREE_FAILURES_PER_SOURCE);
const _: () = assert!(LOGIN_FREE_FAILURES < AUTH_FAILURES_MAX);
// A delayed failure must still be answered before the client's challenge
// runs out, or its next attempt could never succeed.
const _: () = assert!(LOGIN_DELAY_MAX_MS < CHALLENGE_TTL_MS);

// ---------------------------------------------------------------------------
// The directory (the reference root server's rules).

/// The atDirectory's per-connection input buffer (the reference destroys the
/// socket beyond 255 characters).
pub const DIRECTORY_LINE_BYTES_MAX: usize = 255;

/// The atDirectory closes a connection on this many lookups that miss.
pub const DIRECTORY_MISSES_MAX: u32 = 3;

/// Delay before answering the second and later missed lookups on one
/// directory connection (reference abuse throttling).
pub const DIRECTORY_MISS_DELAY_MS: u64 = 3_000;

/// A directory connection that completes no lookup for this long is closed.
pub const DIRECTORY_IDLE_MS: u64 = 60_000;

/// Longest `host:port` accepted in a record: a DNS name (253), `:`, a port.
pub const RECORD_ADDRESS_CHARS_MAX: usize = 253 + 1 + 5;

// Every atSign name fits one directory query.
const _: () = assert!(ATSIGN_CHARS_MAX + 1 < DIRECTORY_LINE_BYTES_MAX);
const _: () = assert!(DIRECTORY_MISS_DELAY_MS < DIRECTORY_IDLE_MS);

// ---------------------------------------------------------------------------
// The outbound side: dialing other hosts, and the atDirectory client.

/// Addresses of one resolved host name a dial tries in turn: a name with
/// dozens of A/AAAA records must not turn one dial into dozens of connects
/// under one deadline.
pub const DIAL_ADDRESSES_MAX: usize = 8;

/// How long an atDirectory answer is used without asking again (the
/// reference caches an hour): an atServer that moves is found again within
/// it, and a busy server asks the directory once an hour per peer.
pub const DIRECTORY_CACHE_TTL_MS: u64 = 3_600_000;

/// How long a `null` answer (no such atSign) is remembered: long enough that
/// a burst of lookups for a missing atSign costs one directory request,
/// short enough that a newly registered atSign is reachable within seconds.
pub const DIRECTORY_NEGATIVE_TTL_MS: u64 = 30_000;

/// How long past its TTL an answer may still be used while the directory
/// cannot be reached (the refresh failed): a day of directory outage does
/// not cut peers off from each other; an older answer is dropped.
pub const DIRECTORY_STALE_MS: u64 = 86_400_000;

/// One deadline on a whole resolution: both attempts, the pause between
/// them, and waiting for another task's lookup of the same atSign. The
/// reference allows 30 s; a client waiting on a `lookup` that needs a
/// resolution should hear within 10 s that the directory is not answering.
pub const DIRECTORY_RESOLVE_MS: u64 = 10_000;

/// Deadline of one attempt, as a whole: connect, TLS handshake, greeting,
/// query and answer. A directory on the same continent answers in well
/// under a second.
pub const DIRECTORY_ATTEMPT_MS: u64 = 4_000;

/// Pause before the one retry of a failed attempt (the reference retries
/// after 50 to 200 ms).
pub const DIRECTORY_RETRY_DELAY_MS: u64 = 100;

/// Longest host name a directory answer may name: a DNS name's 253.
pub const DIRECTORY_HOST_CHARS_MAX: usize = 253;

/// Bytes read from one directory connection at most (after TLS): the `@`
/// greeting and one answer (host, `:`, port, `\r\n@`) fit with room; a
/// directory that sends more is not answering the protocol.
pub const DIRECTORY_REPLY_BYTES_MAX: usize = 512;

/// Answers the process-wide cache holds. Beyond it, answers past their TTL
/// are dropped first, then the oldest: lookups of random atSigns cannot grow
/// the server's memory (64 Ki entries of about 100 bytes).
pub const DIRECTORY_CACHE_ENTRIES_MAX: usize = 65_536;

// Both attempts and the pause fit the one deadline.
const _: () = assert!(2 * DIRECTORY_ATTEMPT_MS + DIRECTORY_RETRY_DELAY_MS <= DIRECTORY_RESOLVE_MS);
const _: () = assert!(DIRECTORY_NEGATIVE_TTL_MS < DIRECTORY_CACHE_TTL_MS);
// The greeting and the longest valid answer fit what is read.
const _: () = assert!(1 + DIRECTORY_HOST_CHARS_MAX + 1 + 5 + 3 <= DIRECTORY_REPLY_BYTES_MAX);
// Every record the directory serves is an answer this client accepts.
const _: () = assert!(RECORD_ADDRESS_CHARS_MAX <= DIRECTORY_HOST_CHARS_MAX + 1 + 5);

// ---------------------------------------------------------------------------
// The process: shards, start and stop.

/// Below this locked-memory limit glommio refuses to start (measured: it
/// needs 512 KiB even as root).
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// io_uring registered-buffer memory per shard. Sockets do not use it; small
/// keeps the 8 MiB default memlock limit enough for several shards.
pub const IO_MEMORY_BYTES: usize = 512 * 1024;

/// Period of the per-shard tick, the counted safety net that bounds a
/// stranded task to this long (decisions 0002 and 0010): 100 wake-ups a
/// second cost nothing measurable, a stranded task cost a client its timeout.
pub const REACTOR_TICK_MS: u64 = 10;

/// glommio's preempt timer on every shard: far longer than any time a busy
/// box keeps a shard thread off its core. glommio 0.9 parks with a task
/// queued when this timeout expires while the thread is descheduled
/// (decision 0010); nothing in the server calls `yield_if_needed`, so a
/// long timer costs nothing.
pub const PREEMPT_TIMER_MS: u64 = 10_000;

/// How long a shard waits before accepting again after `accept` failed
/// (EMFILE and friends), instead of spinning.
pub const ACCEPT_RETRY_MS: u64 = 50;

/// How long a stop may take to flush each store.
pub const STOP_FLUSH_MS: u64 = 30_000;

/// A store whose writer has been in one step (a batch, a sync) this long
/// is reported as stalled, which stops the process: its writers have
/// already been timing out for [`STORE_WAIT_MS`], and a disk that hangs
/// for a minute needs an operator, not a half-alive server.
pub const STORE_STALL_MS: u64 = 60_000;

/// How often the supervisor looks for a stalled store.
pub const STALL_CHECK_MS: u64 = 1_000;

/// After a fatal failure, how long connections get to write the replies
/// already computed (the AT0002 of the writes that failed) before the
/// process exits: long enough for loopback and LAN clients, short enough
/// that a supervisor restarts the server at once.
pub const FATAL_GRACE_MS: u64 = 250;

/// How long `atserver dev` waits for its atServer to listen.
pub const DEV_START_MS: u64 = 30_000;

const _: () = assert!(FATAL_GRACE_MS < STOP_FLUSH_MS);
const _: () = assert!(STORE_WAIT_MS < STORE_STALL_MS);
const _: () = assert!(STALL_CHECK_MS < STORE_STALL_MS);

// ---------------------------------------------------------------------------
// The library client (tests, tools, outbound connections).

/// Default deadline of every client socket operation.
pub const CLIENT_TIMEOUT_MS: u64 = 10_000;

/// Most bytes a client buffers while waiting for one reply. The largest
/// reply the server writes is a 10,240,000-byte value with its metadata
/// (`llookup:all`) or a long `scan` list; 64 MiB is several times that, and
/// stops a peer that never ends a reply from exhausting memory.
pub const CLIENT_REPLY_BYTES_MAX: usize = 64 << 20;

/// Bytes a client asks of its stream per read: one full TLS record.
pub const CLIENT_READ_CHUNK_BYTES: usize = 16 * 1024;

/// Buffer a client keeps between replies; a larger one (after a large
/// reply) is released once it is empty again.
pub const CLIENT_KEPT_BYTES_MAX: usize = 1 << 20;

const _: () = assert!(CLIENT_REPLY_BYTES_MAX > LINE_BYTES_MAX * 2);
const _: () = assert!(CLIENT_KEPT_BYTES_MAX < CLIENT_REPLY_BYTES_MAX);

// ---------------------------------------------------------------------------
// Storage: what the write actor of one storage shard takes, and how often
// it makes fast-mode writes durable.

/// Capacity of the queue in front of one storage shard's write actor, in
/// requests, shared by every atSign homed on that shard. A full queue parks
/// the submitters until the actor drains a batch, which pushes back on the
/// connections producing the load. 16,384 is 32 full batches
/// (`BATCH_OPS_MAX` = 512): deep enough that a burst from many connections
/// never parks, short enough that a request waits at most a few hundred
/// milliseconds of batches in front of it.
pub const WRITE_QUEUE_LEN_MAX: usize = 16_384;

/// Write requests one atSign may have queued in front of its storage
/// shard's actor (handed over, not yet taken into a batch). Beyond it that
/// atSign's submitters park until the actor drains some of them, so one
/// atSign cannot fill the shared queue and stall the others on its shard.
/// One connection never has more than 1,024 replies pending
/// ([`INFLIGHT_REPLIES_MAX`]), so 2,048 lets two fast
/// pipelining clients of one atSign run unlimited, while eight saturating
/// atSigns together still leave room in [`WRITE_QUEUE_LEN_MAX`].
pub const TENANT_QUEUED_WRITES_MAX: usize = 2_048;

/// Request bytes (key, value and metadata as the request line carried
/// them) one atSign may have queued in front of its storage shard's actor.
/// One connection stops reading at 16 MiB of in-flight write requests
/// ([`INFLIGHT_WRITE_BYTES_MAX`]) and may exceed that by
/// one line, so 64 MiB lets two such clients run unlimited; it bounds the
/// memory a hostile atSign can park in the queue to a share of
/// [`INPUT_BUDGET_BYTES_MAX`]. A single request larger than this is still
/// taken when its atSign has nothing queued, so no write can wait forever.
pub const TENANT_QUEUED_WRITE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Requests applied in one batch at most: bounds the latency a batch adds.
pub const BATCH_OPS_MAX: usize = 512;

/// How often expired records are looked for when the actor is otherwise idle.
pub const EXPIRY_SWEEP_INTERVAL_MS: u64 = 1_000;

/// Expired records purged per sweep, so a mass expiry cannot stall writes.
pub const EXPIRY_SWEEP_KEYS_MAX: usize = 1_024;

/// Longest key fjall accepts (it asserts `u16::try_from(len)`, so a longer
/// one panics the actor). Every key the layout builds must fit: the store
/// refuses a request whose keys would not (`StoreError::KeyTooLong`)
/// before fjall sees it.
pub const FJALL_KEY_BYTES_MAX: usize = u16::MAX as usize;

/// Longest key the layout can build from names the verbs accept: an expiry
/// index key (8-byte time, atSign with its `@`, separator, key name), with
/// every character counted at UTF-8's 4 bytes. Asserted below to fit fjall,
/// so only a bug, never a client, can reach the store's own refusal.
pub const LAYOUT_KEY_BYTES_MAX: usize =
    8 + (1 + ATSIGN_CHARS_MAX) * 4 + 1 + CACHED_KEY_CHARS_MAX * 4;

/// Journals kept before memtables are forced to disk. Start-up replays the
/// journals, so this bounds start-up time however large the store grows
/// (64 MiB is fjall's minimum; its default of 512 MiB took seconds to replay).
pub const JOURNAL_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Memtable size of each keyspace of small entries (commit log, commit
/// index, expiry and notification indexes, meta) before it is sealed and
/// flushed. Small memtables flush fast and keep every keyspace's memtable
/// far inside the journal cap, so fjall neither stalls the write actor for
/// 100 ms nor rotates all keyspaces at once in a write burst: 2 MiB halved
/// the write tail against 16 MiB at equal throughput (decision 0011).
pub const MEMTABLE_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// Memtable size of the keyspaces that hold values (records and stored
/// notifications). Values up to 10 MB would seal a 2 MiB memtable every
/// write or two and pile tables up in level 0; 16 MiB keeps a flood of
/// large values flushing at the rate it did (decision 0011). fjall's 64 MiB
/// default grew the server by ~170 MiB.
pub const VALUE_MEMTABLE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Approximate bytes of records the write actor remembers (it is their
/// only writer, so the last one it wrote is current); the memory is dropped
/// between batches beyond this. Bounds the actor's footprint; a hot working
/// set smaller than this stays remembered.
pub const RECENT_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(LAYOUT_KEY_BYTES_MAX <= FJALL_KEY_BYTES_MAX);
const _: () = assert!(BATCH_OPS_MAX <= WRITE_QUEUE_LEN_MAX);
// A memtable is sealed by its own size before the journal cap forces it.
// Every keyspace's memtable together (two of values, six of small entries)
// stays inside the journal cap, so only their own size seals them.
const _: () = assert!(2 * VALUE_MEMTABLE_BYTES_MAX + 6 * MEMTABLE_BYTES_MAX <= JOURNAL_BYTES_MAX);

/// In `--durability fast`, the write actor makes the journal durable
/// (fsync) at least this often while anything was written since the last
/// time: a power loss loses at most about this much of acknowledged
/// writes. One second, as Redis's `appendfsync everysec`: one extra fsync
/// per second costs nothing noticeable, and a second of loss is the
/// window operators of fast mode already accept from Redis.
pub const FAST_SYNC_INTERVAL_MS: u64 = 1_000;

// One atSign's share leaves most of the shared queue to the others.
const _: () = assert!(TENANT_QUEUED_WRITES_MAX * 8 <= WRITE_QUEUE_LEN_MAX);
// Two maximal updates fit one atSign's queued bytes.
const _: () = assert!(2 * LINE_BYTES_MAX <= TENANT_QUEUED_WRITE_BYTES_MAX);
// One atSign cannot park more than a small share of the input budget.
const _: () = assert!(TENANT_QUEUED_WRITE_BYTES_MAX * 8 <= INPUT_BUDGET_BYTES_MAX);

// ---------------------------------------------------------------------------
// Notifications: what the notification store holds, and for how long.

/// Longest notification id, in characters (ids are `[A-Za-z0-9_-]+`, so
/// characters are bytes). The reference keys its notification store by id
/// and that store takes keys of at most 255 characters: a longer id fails
/// there with AT0002, which this server keeps. Client ids are UUIDs (36).
pub const NOTIFICATION_ID_CHARS_MAX: usize = 255;

/// Bytes of text one notification record may hold: its key (for a text
/// message, the message itself), value, notifier and metadata strings
/// together. All of it arrives on one request line, so a request line is
/// the bound; the verbs check key names against [`KEY_CHARS_MAX`] first.
pub const NOTIFICATION_TEXT_BYTES_MAX: usize = LINE_BYTES_MAX;

/// Lifetime of a notification that names none (`ttln` absent or 0): the
/// reference's `notification.expiryInMins`, whose code default now matches
/// the shipped configuration, 15 minutes.
pub const NOTIFICATION_LIFETIME_MS_DEFAULT: i64 = 15 * 60 * 1_000;

/// Longest lifetime of a notification, in ms: the reference caps `ttln`,
/// `eAtn` and its own default at 8 days, and treats a notification created
/// longer ago as expired whatever it says. The store never holds one
/// beyond it, so its expiry index alone decides what to purge.
pub const NOTIFICATION_LIFETIME_MS_MAX: i64 = 8 * 24 * 3_600 * 1_000;

/// Notifications one `notifications_after` read returns at most, whatever
/// its caller asks: a monitor replay or a listing pages through a large
/// backlog instead of holding it all at once. 1,024 keeps a page of
/// typical notifications (a few KiB each) to a few MiB.
pub const NOTIFICATION_PAGE_LEN_MAX: usize = 1_024;

/// Expired notifications purged per expiry sweep, on top of the records
/// [`EXPIRY_SWEEP_KEYS_MAX`] bounds: a mass expiry of notifications cannot
/// stall writes either.
pub const NOTIFICATION_SWEEP_LEN_MAX: usize = 1_024;

/// Notifications one `notify:list` may list (AT0022 beyond: narrow it with
/// dates or a regex). Notifications live 15 minutes by default and 8 days
/// at most, so even a busy atSign holds a few thousand; ten thousand
/// typical ones (a few KiB each) are a reply of tens of MiB at most, which
/// the byte bound below cuts shorter.
pub const NOTIFY_LIST_ENTRIES_MAX: usize = 10_000;

/// Bytes one `notify:list` reply may hold (AT0022 beyond). Above one
/// notification of maximal text, so every notification can be listed
/// (narrowed down), and below what the library client reads as one reply.
pub const NOTIFY_LIST_REPLY_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Stored notifications one `notify:list` reads, listed or not (AT0022
/// beyond: narrow it with dates). Bounds the work of a listing that keeps
/// few of what it reads: another atServer's, which sees only what was sent
/// to it, or the owner's with a regex that matches little.
pub const NOTIFY_LIST_READ_MAX: usize = 100_000;

/// Notifications a listing reads between two turns it gives to the other
/// connections of its shard. Small, because one notification may hold a
/// request line of text: 32 typical ones are a few hundred KiB, read in
/// well under a millisecond.
pub const NOTIFY_LIST_PAGE_LEN: usize = 32;

const _: () = assert!(NOTIFICATION_LIFETIME_MS_DEFAULT <= NOTIFICATION_LIFETIME_MS_MAX);
// A listing's page is one read of the creation-time index.
const _: () = assert!(NOTIFY_LIST_PAGE_LEN <= NOTIFICATION_PAGE_LEN_MAX);
const _: () = assert!(NOTIFY_LIST_ENTRIES_MAX <= NOTIFY_LIST_READ_MAX);
// One notification of maximal (unescaped) text fits a listing, and a
// maximal listing is read whole by the library client.
const _: () = assert!(NOTIFICATION_TEXT_BYTES_MAX < NOTIFY_LIST_REPLY_BYTES_MAX);
const _: () = assert!(NOTIFY_LIST_REPLY_BYTES_MAX < CLIENT_REPLY_BYTES_MAX);
// A notification's layout keys (8-byte time, atSign, separator, id) fit
// fjall for every atSign the verbs accept.
const _: () =
    assert!(8 + (1 + ATSIGN_CHARS_MAX) * 4 + 1 + NOTIFICATION_ID_CHARS_MAX <= FJALL_KEY_BYTES_MAX);
// Two connections of one atSign, each at its in-flight caps, run unlimited.
const _: () = assert!(2 * INFLIGHT_REPLIES_MAX <= TENANT_QUEUED_WRITES_MAX);
const _: () = assert!(2 * INFLIGHT_WRITE_BYTES_MAX <= TENANT_QUEUED_WRITE_BYTES_MAX);

// ---------------------------------------------------------------------------
// Server-to-server: `pol` and the outbound connections to other atServers.

/// Longest challenge token a prover signs (the part after the last `:` of
/// `data:proof:<session>@me:<token>`). A bare UUID is 36 characters; a
/// Dart verifier's `pol1.` token is URL-safe base64 of a small JSON object
/// (about 100 characters, more with an `alg`). 1,024 leaves room for what
/// later verifiers add and stops a peer from making us sign megabytes.
pub const POL_TOKEN_CHARS_MAX: usize = 1_024;

/// How long a prover's signed cookie (`public:<session>@me`) stays
/// readable, and how long a verifier's challenge may wait for its `pol`:
/// the reference's 60 s.
pub const POL_COOKIE_TTL_MS: u64 = 60_000;

/// Longest signature or public key a verifier accepts from a prover's
/// server (base64 of an RSA-8192 signature is 1,368 characters, of its
/// SPKI about 1,400). Anything longer is not a key we could verify.
pub const POL_FIELD_CHARS_MAX: usize = 4_096;

/// Default deadline of each step of a server-to-server exchange (connect,
/// TLS, greeting, one request and its reply; `--outbound-step-ms`). The
/// Dart server waits 3 s for `from` and `pol`; a verifier's `pol` itself
/// resolves, connects and makes two lookups, so the prover allows it more.
pub const OUTBOUND_STEP_MS: u64 = 10_000;

/// Deadline of a whole `pol` as the prover waits for it, in steps (the
/// verifier's directory lookup, TLS connect and lookups all happen inside
/// it): 20 s with the default step.
pub const OUTBOUND_POL_STEPS: u32 = 2;

/// Idle authenticated outbound connections kept per shard across all
/// remote atSigns (the reference's `outbound_max_limit` is 200 per
/// process). Beyond it the least recently used idle one is closed.
pub const OUTBOUND_IDLE_CONNECTIONS_MAX: usize = 200;

/// Connections one shard may have open to other atServers at once, idle
/// or busy. A request that finds it reached, with no idle connection to
/// close, gets AT0006.
pub const OUTBOUND_CONNECTIONS_MAX: usize = 400;

/// Connections one shard keeps (idle) to one remote atSign for one local
/// atSign: concurrent requests beyond it open more, which are closed when
/// done.
pub const OUTBOUND_IDLE_PER_PEER_MAX: usize = 4;

/// How long an idle outbound connection is kept (the reference's
/// `outbound_idle_time_millis` is 600,000).
pub const OUTBOUND_IDLE_MS: u64 = 600_000;

/// How long a copy of another atSign's public data is kept when its owner
/// set no `ttr` (the reference's 24 hours).
pub const CACHED_PUBLIC_DATA_TTL_MS: i64 = 24 * 60 * 60 * 1_000;

/// How often each atSign's cached copies are looked at for a due refresh
/// (`--cache-refresh-ms`). The reference refreshes once a day; an hour
/// keeps copies nearer their `ttr` and costs only the copies that are due.
pub const CACHE_REFRESH_INTERVAL_MS: u64 = 60 * 60 * 1_000;

/// Cached copies looked at per atSign and round, so one round is bounded
/// however many copies an atSign holds (the rest wait for the next round).
pub const CACHE_REFRESH_KEYS_MAX: usize = 1_024;

const _: () = assert!(OUTBOUND_STEP_MS * (OUTBOUND_POL_STEPS as u64) < POL_COOKIE_TTL_MS);
const _: () = assert!(OUTBOUND_IDLE_CONNECTIONS_MAX <= OUTBOUND_CONNECTIONS_MAX);
const _: () = assert!(OUTBOUND_IDLE_PER_PEER_MAX <= OUTBOUND_IDLE_CONNECTIONS_MAX);

// ---------------------------------------------------------------------------
// Monitors and delivery: who receives notifications, how fast, how many.

/// Monitor connections one atSign may hold at once. The goal is 10,000
/// quiet monitors on one atSign within a small process; twice that leaves
/// room, and the bound keeps a leaked-connection loop in a client from
/// making every publication walk an unbounded list.
pub const MONITORS_PER_ATSIGN_MAX: usize = 20_000;

/// Distinct monitor regexes one atSign keeps compiled, shared by every
/// monitor that sends the same text (a compiled regex costs tens of KiB;
/// 10,000 monitors with one regex cost 287 MiB before they shared it).
/// Texts beyond it are compiled per monitor, as before.
pub const MONITOR_REGEXES_MAX: usize = 64;

/// Lines one monitor may have queued and not yet written. A monitor that
/// falls this far behind (a client that stopped reading) is closed; it
/// loses nothing, as it replays from its last `epochMillis` on reconnect.
pub const MONITOR_QUEUE_LINES_MAX: usize = 4_096;

/// Bytes of lines one monitor may have queued. Lines are shared between
/// monitors (one rendering per notification), so this bounds the memory a
/// stuck monitor pins, not a copy per monitor. It takes a few of the
/// largest notifications a request line can carry, rendered as JSON.
pub const MONITOR_QUEUE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Stored notifications a replaying monitor reads and writes per turn: the
/// replay goes at the pace the client reads, a page at a time.
pub const MONITOR_REPLAY_PAGE_LEN: usize = 256;

/// How often a monitor gets the stats notification (the latest commit id):
/// the reference's `statsNotificationJobTimeInterval`, 15 s. It is also what
/// keeps a quiet monitor alive in clients that drop a connection after 60 s
/// of silence.
pub const STATS_NOTIFICATION_INTERVAL_MS: u64 = 15_000;

/// First pause before a failed delivery is tried again; each further
/// failure doubles it (with jitter), up to [`DELIVERY_RETRY_MAX_MS`].
pub const DELIVERY_RETRY_BASE_MS: u64 = 500;

/// Longest pause between two delivery attempts to a peer that keeps
/// failing: a peer back from an outage gets its backlog within a minute,
/// and a dead one costs one attempt a minute. Retries go on until the
/// notification expires.
pub const DELIVERY_RETRY_MAX_MS: u64 = 60_000;

/// Recipients one `notify:multi` or `notify:all` may name, repeats
/// included (AT0022 beyond, before any is notified). Each distinct one is
/// a stored notification and a delivery: without a bound one request line
/// of `@a,@b,…` could ask for millions. A thousand is far beyond any group
/// a client sends to at once.
pub const NOTIFY_RECIPIENTS_MAX: usize = 1_000;

/// Longest lifetime of an ephemeral (`eph`) notification: two minutes, as
/// the reference clamps it (changes §6.1).
pub const NOTIFICATION_EPHEMERAL_LIFETIME_MS: i64 = 120_000;

/// Notifications one lane (sender, recipient) sends in one write on one
/// connection, their replies read in order. A lane that sent one at a time
/// delivered 2–3 k/s whatever the CPU (one round trip each); a window lets
/// a backlog go out at the rate the peer ingests it, and caps what one
/// failed exchange has to send again (the receiver ingests by id, so
/// resending is safe). 64 lines of typical notifications are a few tens of
/// KiB, well within one read on either side.
pub const DELIVERY_WINDOW_MAX: usize = 64;

/// Notifications one atSign may have waiting for delivery (queued and not
/// expired) at once. Every one of them is a record on disk and an id in a
/// delivery queue: beyond it `notify` is refused (AT0011, the reference's
/// code for its throttles) until the backlog
/// drains, so one atSign cannot fill the disk with undeliverable mail.
pub const NOTIFICATIONS_QUEUED_PER_ATSIGN_MAX: usize = 100_000;

const _: () = assert!(MONITOR_QUEUE_BYTES_MAX >= 3 * LINE_BYTES_MAX);
const _: () = assert!(MONITOR_REPLAY_PAGE_LEN <= NOTIFICATION_PAGE_LEN_MAX);
const _: () = assert!(MONITOR_REPLAY_PAGE_LEN < MONITOR_QUEUE_LINES_MAX);
const _: () = assert!(DELIVERY_RETRY_BASE_MS < DELIVERY_RETRY_MAX_MS);
const _: () = assert!(DELIVERY_WINDOW_MAX <= INFLIGHT_REPLIES_MAX);

// ---------------------------------------------------------------------------
// Passcodes: `otp:get`, `otp:put` and the passcode an unauthenticated
// `enroll:request` presents (auth.md §4.2, §5).

/// How long an OTP from `otp:get` lives when the client names no ttl: the
/// reference's 5 minutes, time to read it off one device and type it on
/// another.
pub const OTP_TTL_MS_DEFAULT: u64 = 5 * 60 * 1_000;

/// Longest ttl `otp:get:ttl:<ms>` may ask for (AT0022 beyond; also for 0,
/// which the reference reads as "never expires"). Every live OTP is one more
/// code a guesser can hit: at most [`PASSCODE_CHECKS_PER_ATSIGN_MAX`] checks
/// per [`PASSCODE_DELAY_MAX_MS`] give about 524 guesses in an hour at one of
/// 1.3 billion codes (odds below 1 in 2 million). A passcode meant to last
/// longer is what the SPP (`otp:put`) is for.
pub const OTP_TTL_MS_MAX: u64 = 60 * 60 * 1_000;

/// Longest passcode (OTP or SPP), in characters. The reference only asks
/// for `\w{6,}`; 64 word characters is more than anyone types, and keeps
/// `private:<passcode>.__otp@<atSign>` within [`KEY_CHARS_MAX`] for the
/// longest atSign. `otp:put` refuses a longer SPP (AT0022); an
/// `enroll:request` with a longer one is an invalid passcode, never looked
/// up.
pub const PASSCODE_CHARS_MAX: usize = 64;

/// The delay before the first invalid passcode of an atSign's series is
/// answered; the next ones wait the Fibonacci series from it (1 s, 2 s,
/// 3 s, 5 s, …), as the reference does.
pub const PASSCODE_DELAY_BASE_MS: u64 = 1_000;

/// The longest delay before an invalid passcode is answered: the
/// reference's cap, the ninth term of the series (55 s).
pub const PASSCODE_DELAY_MAX_MS: u64 = 55_000;

/// A valid passcode arriving this long or more after the last invalid one
/// of its atSign starts the delay series afresh; sooner, the series goes
/// on (the reference's `enrollment.delayIntervalThreshold`). A guesser who
/// also holds a valid passcode cannot reset the series between guesses.
pub const PASSCODE_SERIES_RESET_MS: u64 = 55_000;

/// Passcode checks of one atSign that may be under way or waiting out their
/// delay at once; beyond it `enroll:request` gets the invalid-otp error at
/// once, its passcode not checked. The delay alone only slows each
/// connection: an attacker holding the 10,000 unauthenticated connections a
/// process admits would test 180 guesses a second against one atSign. A
/// slot stays taken until its delay has passed, even if its connection
/// closes, so this caps the guesses at 8 per 55 s (about 12,600 a day)
/// however many connections send them, and bounds the tasks asleep per
/// atSign. While an attack fills the slots, that atSign's own passcode
/// enrollments are refused too (the client retries later); other atSigns
/// and everything else are unaffected. 8 leaves room for a few devices
/// enrolling at once and a typo.
pub const PASSCODE_CHECKS_PER_ATSIGN_MAX: usize = 8;

const _: () = assert!(OTP_TTL_MS_DEFAULT <= OTP_TTL_MS_MAX);
const _: () = assert!(OTP_TTL_MS_MAX as i64 <= TIME_TO_LIVE_MS_MAX);
const _: () = assert!(PASSCODE_DELAY_BASE_MS <= PASSCODE_DELAY_MAX_MS);
const _: () = assert!(PASSCODE_CHECKS_PER_ATSIGN_MAX >= 1);
// The longest passcode's key, `private:<passcode>.__otp@<atSign>`, is a key
// the store takes.
const _: () = assert!(
    "private:".len() + PASSCODE_CHARS_MAX + ".__otp@".len() + ATSIGN_CHARS_MAX <= KEY_CHARS_MAX
);
