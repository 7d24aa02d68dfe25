//! The request scenarios' driver: one thread multiplexes many non-blocking
//! TLS connections with `epoll(7)`, the way redis-benchmark runs its clients
//! on one event loop. A thread per connection spent most of the client's CPU
//! on context switches between 50 threads on 2 cores, which the server then
//! lacked; one loop keeps the client cheap and the comparison fair.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use atserver::client::blocking::{Client, Parts};
use atserver::client::{ClientError, Frame, Operation, ReplyFramer};
use hdrhistogram::Histogram;

use crate::client::IO_TIMEOUT;
use crate::report::{Shared, new_histogram, record_op};
use crate::scenario::{Ctx, Gate, Mix, Rng, build_request, open_owner, open_owner_as};

/// Longest wait in `epoll_wait`, so a stop is noticed promptly when nothing moves.
const POLL_TICK_MS: i32 = 10;

/// Plaintext read from a TLS connection per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How often connections are checked for replies overdue by [`IO_TIMEOUT`].
const TIMEOUT_SWEEP_MS: u64 = 100;

/// A slot that failed to reconnect this many times in a row stays closed.
const RECONNECT_ATTEMPTS_MAX: u32 = 3;

/// One connection of the loop.
struct LoopConn {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    /// Plaintext received and not yet consumed as replies.
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already matched with requests.
    consumed: usize,
    /// Where replies end; knows the prompt the connection prints.
    framer: ReplyFramer,
    /// The server's `@` greeting has not been seen yet.
    awaiting_greeting: bool,
    /// Send times of the requests waiting for their replies, oldest first.
    inflight: VecDeque<Instant>,
    /// Requests sent on this connection (lookup reconnects at a cap).
    sent: u64,
    /// When a reply last arrived (or the last request left an idle connection).
    last_progress: Instant,
    /// Whether the socket is in the loop's epoll set yet.
    registered: bool,
    /// Whether the epoll registration asks for writability too.
    wants_out: bool,
    /// The atSign whose keys this connection's requests name (its owner's).
    atsign: String,
}

impl LoopConn {
    fn new(parts: Parts, awaiting_greeting: bool, atsign: &str) -> Result<LoopConn, ClientError> {
        let Parts {
            tcp,
            tls,
            framer,
            pending,
        } = parts;
        tcp.set_nonblocking(true)
            .map_err(|source| ClientError::Io {
                during: Operation::ConfigureSocket,
                source,
            })?;
        Ok(LoopConn {
            tcp,
            tls,
            buf: pending,
            consumed: 0,
            framer,
            awaiting_greeting,
            inflight: VecDeque::new(),
            sent: 0,
            last_progress: Instant::now(),
            registered: false,
            wants_out: false,
            atsign: atsign.to_string(),
        })
    }

    /// A fresh unauthenticated connection whose handshake and greeting are
    /// completed by the loop itself, so a reconnect never blocks the others.
    fn open_anonymous(ctx: &Ctx) -> Result<LoopConn, ClientError> {
        let target = &ctx.target;
        let tcp = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT).map_err(|source| {
            ClientError::Io {
                during: Operation::Connect,
                source,
            }
        })?;
        tcp.set_nodelay(true).map_err(|source| ClientError::Io {
            during: Operation::ConfigureSocket,
            source,
        })?;
        let tls =
            rustls::ClientConnection::new(Arc::clone(&target.tls), target.server_name.clone())
                .map_err(|source| ClientError::Tls {
                    during: Operation::Handshake,
                    source,
                })?;
        let parts = Parts {
            tcp,
            tls,
            framer: ReplyFramer::new(),
            pending: Vec::new(),
        };
        LoopConn::new(parts, true, &target.atsign)
    }

    /// A connection of `atsign`'s owner, pkam-authenticated (opened
    /// blocking, then handed over).
    fn open_owner(ctx: &Ctx, atsign: &str) -> Result<LoopConn, ClientError> {
        LoopConn::new(open_owner_as(ctx, atsign)?.into_parts(), false, atsign)
    }

    fn open(ctx: &Ctx, mix: Mix, atsign: &str) -> Result<LoopConn, ClientError> {
        match mix {
            Mix::UpdateLlookup | Mix::RemoteLookup => LoopConn::open_owner(ctx, atsign),
            Mix::Lookup => LoopConn::open_anonymous(ctx),
        }
    }

    /// Queues up to the pipeline depth of new requests (rustls holds them
    /// until its handshake is done).
    fn fill(&mut self, ctx: &Ctx, mix: Mix, cap: u64, rng: &mut Rng, out: &mut Vec<u8>) {
        out.clear();
        let mut fresh = 0;
        while self.inflight.len() + fresh < ctx.pipeline && self.sent < cap && ctx.shared.claim() {
            build_request(ctx, mix, &self.atsign, rng, out);
            fresh += 1;
            self.sent += 1;
        }
        if fresh == 0 {
            return;
        }
        let now = Instant::now();
        if self.inflight.is_empty() {
            self.last_progress = now;
        }
        // Writing into rustls' plaintext buffer cannot fail short of a closed
        // session, which the next read reports.
        let _ = self.tls.writer().write_all(out);
        self.inflight.extend(std::iter::repeat_n(now, fresh));
    }

    /// Sends what rustls has encrypted until the socket would block.
    fn write_out(&mut self) -> Result<(), ClientError> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ClientError::Io {
                        during: Operation::Send,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads everything the socket holds and decrypts it into `buf`.
    fn read_in(&mut self, chunk: &mut [u8]) -> Result<(), ClientError> {
        loop {
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => return Err(self.closed()),
                Ok(_) => {
                    self.tls
                        .process_new_packets()
                        .map_err(|source| ClientError::Tls {
                            during: Operation::Receive,
                            source,
                        })?;
                    self.drain_plaintext(chunk)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ClientError::Io {
                        during: Operation::Receive,
                        source,
                    });
                }
            }
        }
    }

    /// The server closed the connection; what it sent last is kept.
    fn closed(&self) -> ClientError {
        ClientError::Closed {
            during: Operation::Receive,
            pending: self.buf.get(self.consumed..).unwrap_or_default().to_vec(),
        }
    }

    fn drain_plaintext(&mut self, chunk: &mut [u8]) -> Result<(), ClientError> {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed.min(self.buf.len()));
            self.consumed = 0;
        }
        loop {
            match self.tls.reader().read(chunk) {
                Ok(0) => return Err(self.closed()),
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(source) => {
                    return Err(ClientError::Io {
                        during: Operation::Receive,
                        source,
                    });
                }
            }
        }
    }

    /// Matches complete replies with the oldest requests in flight. Framing
    /// allocates nothing: this runs once per reply on the measured path.
    fn take_replies(
        &mut self,
        shared: &Shared,
        hist: &mut Histogram<u64>,
    ) -> Result<(), ClientError> {
        if self.awaiting_greeting {
            let pending = self.buf.get(self.consumed..).unwrap_or_default();
            match self.framer.next_frame(pending) {
                None => return Ok(()),
                Some((Frame::Prompt(b"@"), len)) => {
                    self.consumed += len;
                    self.awaiting_greeting = false;
                }
                Some((_, len)) => {
                    return Err(ClientError::UnexpectedReply {
                        during: Operation::Greeting,
                        reply: pending.get(..len).unwrap_or_default().to_vec(),
                    });
                }
            }
        }
        let now = Instant::now();
        while !self.inflight.is_empty() {
            let pending = self.buf.get(self.consumed..).unwrap_or_default();
            let Some((frame, len)) = self.framer.next_frame(pending) else {
                break;
            };
            let Frame::Reply { payload, .. } = frame else {
                return Err(ClientError::UnexpectedReply {
                    during: Operation::Receive,
                    reply: pending.get(..len).unwrap_or_default().to_vec(),
                });
            };
            let is_data = payload.starts_with(b"data:");
            if !is_data {
                shared.error(String::from_utf8_lossy(payload).into_owned());
            }
            self.consumed += len;
            if let Some(sent_at) = self.inflight.pop_front()
                && is_data
            {
                record_op(shared, hist, now.duration_since(sent_at));
            }
            self.last_progress = now;
        }
        Ok(())
    }

    /// Says `@exit` and closes the TLS session; errors are irrelevant here.
    fn close(mut self) {
        let _ = self.tls.writer().write_all(b"@exit\n");
        self.tls.send_close_notify();
        let _ = self.write_out();
    }
}

/// The loop's epoll set; a connection's slot index is its event data.
struct Epoll {
    fd: std::os::fd::OwnedFd,
}

impl Epoll {
    fn new() -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a negative result is an error.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Registers a new connection, and asks for writability only while
    /// rustls has bytes the socket would not take. Closing a socket removes
    /// it from the set by itself.
    fn track(&self, slot: usize, conn: &mut LoopConn) -> std::io::Result<()> {
        let wants_out = conn.tls.wants_write();
        let op = if !conn.registered {
            libc::EPOLL_CTL_ADD
        } else if wants_out != conn.wants_out {
            libc::EPOLL_CTL_MOD
        } else {
            return Ok(());
        };
        let mut flags = libc::EPOLLIN as u32;
        if wants_out {
            flags |= libc::EPOLLOUT as u32;
        }
        let mut event = libc::epoll_event {
            events: flags,
            u64: slot as u64,
        };
        // SAFETY: both descriptors are open; `event` is a valid struct we own
        // for the duration of the call.
        let done =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, conn.tcp.as_raw_fd(), &mut event) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
        conn.registered = true;
        conn.wants_out = wants_out;
        Ok(())
    }

    /// Takes a connection that stays open out of the set (a parked one of
    /// a rotating slot), so its slot's events are its successor's.
    fn untrack(&self, conn: &mut LoopConn) -> std::io::Result<()> {
        if !conn.registered {
            return Ok(());
        }
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: both descriptors are open; `event` is ignored by
        // EPOLL_CTL_DEL but must be a valid pointer on old kernels.
        let done = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                conn.tcp.as_raw_fd(),
                &mut event,
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
        conn.registered = false;
        conn.wants_out = false;
        Ok(())
    }

    /// Waits up to [`POLL_TICK_MS`]; returns how many events were filled in.
    fn wait(&self, events: &mut [libc::epoll_event]) -> std::io::Result<usize> {
        let capacity = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: `events` is a valid, writable buffer of `capacity` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                capacity,
                POLL_TICK_MS,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// A connection slot: its connection (if open) and reconnect bookkeeping.
/// A rotating slot (`many-atsigns`) also holds parked connections, each
/// of another atSign's owner: the active one sends `turn` requests, then,
/// once their replies are in, goes to the back of the queue and the next
/// one takes over, so the slot keeps one connection's pipeline in flight
/// while its requests go to every atSign of its group in turn.
struct Slot {
    conn: Option<LoopConn>,
    failures: u32,
    /// The owner of the active connection: a reconnect logs in as it.
    atsign: String,
    /// The slot's other connections, open and authenticated, out of the
    /// epoll set, in the order they take over.
    parked: VecDeque<LoopConn>,
    /// Requests per turn (`u64::MAX`: the slot never rotates).
    turn: u64,
    /// The active connection's `sent` at which its turn ends.
    turn_end: u64,
}

impl Slot {
    /// A slot of one connection that never rotates.
    fn single(conn: Option<LoopConn>, atsign: &str) -> Slot {
        Slot {
            failures: u32::from(conn.is_none()),
            conn,
            atsign: atsign.to_string(),
            parked: VecDeque::new(),
            turn: u64::MAX,
            turn_end: u64::MAX,
        }
    }
}

/// Runs the connections `ids` of an `update-llookup`, `lookup` or
/// `remote-lookup` run on this thread until the run stops and their
/// replies are in (or lost).
pub fn request_loop(ctx: &Ctx, mix: Mix, ids: Range<usize>, ready: &Gate) {
    let shared = &ctx.shared;
    let mut rng = Rng::new(ids.start as u64 + 1);
    let atsign = ctx.target.atsign.as_str();
    let slots: Vec<Slot> = if mix == Mix::RemoteLookup {
        warmed_remote_slots(ctx, ids, &mut rng)
    } else {
        ids.map(|_| {
            let conn = match LoopConn::open(ctx, mix, atsign) {
                Ok(c) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    Some(c)
                }
                Err(e) => {
                    shared.error(format!("connect: {e}"));
                    None
                }
            };
            Slot::single(conn, atsign)
        })
        .collect()
    };
    drive(ctx, mix, slots, rng, ready);
}

/// `many-atsigns`: one rotating slot per group, its connections opened
/// (pkam, as each listed atSign's owner, in order) before the gate. Each
/// slot sends `turn` update/llookup requests on one connection, keeping
/// `--pipeline` in flight, waits for their replies and hands over to its
/// next connection. `first_id` seeds the key choice.
pub fn rotating_loop(ctx: &Ctx, groups: &[Vec<String>], turn: u64, first_id: usize, ready: &Gate) {
    let shared = &ctx.shared;
    let mix = Mix::UpdateLlookup;
    let rng = Rng::new(first_id as u64 + 1);
    let slots = groups
        .iter()
        .map(|group| {
            let mut open: VecDeque<LoopConn> = VecDeque::with_capacity(group.len());
            for atsign in group {
                if shared.stopped() {
                    break;
                }
                match LoopConn::open(ctx, mix, atsign) {
                    Ok(c) => {
                        shared.connections.fetch_add(1, Ordering::Relaxed);
                        open.push_back(c);
                    }
                    Err(e) => shared.error(format!("connect as {atsign}: {e}")),
                }
            }
            let conn = open.pop_front();
            let first = conn.as_ref().map_or_else(
                || group.first().map_or("", String::as_str),
                |c| c.atsign.as_str(),
            );
            let mut slot = Slot::single(None, first);
            slot.failures = u32::from(conn.is_none());
            slot.conn = conn;
            slot.parked = open;
            if !slot.parked.is_empty() {
                slot.turn = turn.max(1);
                slot.turn_end = slot.turn;
            }
            slot
        })
        .collect();
    drive(ctx, mix, slots, rng, ready);
}

/// Hands a rotating slot over to its next connection once the active one
/// has sent its turn and has nothing in flight (nor unsent).
fn rotate(epoll: &Epoll, slot: &mut Slot) -> std::io::Result<()> {
    let done = slot
        .conn
        .as_ref()
        .is_some_and(|c| c.sent >= slot.turn_end && c.inflight.is_empty() && !c.tls.wants_write());
    if !done || slot.parked.is_empty() {
        return Ok(());
    }
    let (Some(mut conn), Some(next)) = (slot.conn.take(), slot.parked.pop_front()) else {
        return Ok(());
    };
    let parked = epoll.untrack(&mut conn);
    slot.parked.push_back(conn);
    slot.atsign.clone_from(&next.atsign);
    slot.turn_end = next.sent.saturating_add(slot.turn);
    slot.conn = Some(next);
    parked
}

/// The event loop proper: keeps every slot's pipeline full until the run
/// stops and the replies are in (or lost), then closes the connections.
fn drive(ctx: &Ctx, mix: Mix, mut slots: Vec<Slot>, mut rng: Rng, ready: &Gate) {
    let shared = &ctx.shared;
    let mut hist = new_histogram();
    ready.arrive_and_wait(shared);
    let cap = match mix {
        Mix::Lookup => ctx.lookups_per_connection,
        Mix::UpdateLlookup | Mix::RemoteLookup => u64::MAX,
    };
    let mut out = Vec::with_capacity(ctx.pipeline * (ctx.value.len() + 64));
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let epoll = match Epoll::new() {
        Ok(e) => e,
        Err(e) => {
            shared.error(format!("epoll: {e}"));
            shared.merge(&hist);
            return;
        }
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; slots.len().max(1)];
    let mut last_sweep = Instant::now();
    loop {
        let stopping = shared.stopped();
        for (i, slot) in slots.iter_mut().enumerate() {
            if !stopping && let Err(e) = rotate(&epoll, slot) {
                fail_slot(shared, slot, format_args!("epoll: {e}"));
            }
            service_slot(ctx, mix, cap, stopping, slot, &mut rng, &mut out);
            if let Some(conn) = slot.conn.as_mut()
                && let Err(e) = epoll.track(i, conn)
            {
                fail_slot(shared, slot, format_args!("epoll: {e}"));
            }
        }
        let busy = slots
            .iter()
            .any(|s| s.conn.as_ref().is_some_and(|c| !c.inflight.is_empty()));
        if stopping && !busy {
            break;
        }
        if slots.iter().all(|s| s.conn.is_none()) {
            if stopping || slots.iter().all(|s| s.failures >= RECONNECT_ATTEMPTS_MAX) {
                break;
            }
            std::thread::sleep(Duration::from_millis(POLL_TICK_MS as u64));
            continue;
        }
        let ready = match epoll.wait(&mut events) {
            Ok(n) => n,
            Err(e) => {
                shared.error(format!("epoll_wait: {e}"));
                break;
            }
        };
        for event in events.iter().take(ready) {
            let (flags, index) = (event.events, event.u64);
            let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) else {
                continue;
            };
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            let readable = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if flags & readable != 0
                && let Err(e) = conn
                    .read_in(&mut chunk)
                    .and_then(|()| conn.take_replies(shared, &mut hist))
            {
                fail_slot(shared, slot, e);
            }
        }
        if last_sweep.elapsed() >= Duration::from_millis(TIMEOUT_SWEEP_MS) {
            last_sweep = Instant::now();
            for slot in &mut slots {
                let stuck = slot.conn.as_ref().is_some_and(|c| {
                    !c.inflight.is_empty() && c.last_progress.elapsed() > IO_TIMEOUT
                });
                if stuck {
                    let pending = slot
                        .conn
                        .as_ref()
                        .map(|c| c.buf.get(c.consumed..).unwrap_or_default().to_vec());
                    let e = ClientError::Timeout {
                        during: Operation::Receive,
                        pending: pending.unwrap_or_default(),
                    };
                    fail_slot(shared, slot, e);
                }
            }
        }
    }
    for slot in slots {
        if let Some(c) = slot.conn {
            c.close();
        }
        for c in slot.parked {
            c.close();
        }
    }
    shared.merge(&hist);
}

/// Rounds of remote lookups made on all of a thread's connections at once
/// before the measured window.
const WARM_UP_ROUNDS: usize = 3;

/// `remote-lookup`'s owner connections, warmed up: each round sends one
/// lookup on every connection before reading any reply, so @bob's server
/// has as many lookups in flight as in the run and ends up with that many
/// pooled, pol-authenticated connections to @alice's server. Without it
/// the first lookups of the window would pay directory + TLS + pol, and
/// connections opened for concurrent lookups later still (the pool has one
/// idle connection per lookup that ran at the same time).
fn warmed_remote_slots(ctx: &Ctx, ids: Range<usize>, rng: &mut Rng) -> Vec<Slot> {
    let shared = &ctx.shared;
    let mut clients: Vec<Option<Client>> = ids
        .map(|_| match open_owner(ctx) {
            Ok(c) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                Some(c)
            }
            Err(e) => {
                shared.error(format!("connect: {e}"));
                None
            }
        })
        .collect();
    let mut line = Vec::new();
    for _ in 0..WARM_UP_ROUNDS {
        for slot in clients.iter_mut() {
            let Some(client) = slot.as_mut() else {
                continue;
            };
            line.clear();
            build_request(ctx, Mix::RemoteLookup, "", rng, &mut line);
            if let Err(e) = client.write_raw(&line) {
                shared.error(format!("warm-up: {e}"));
                *slot = None;
            }
        }
        for slot in clients.iter_mut() {
            let Some(client) = slot.as_mut() else {
                continue;
            };
            match client.read_reply() {
                Ok(reply) if reply.data().is_some() => {}
                Ok(reply) => shared.error(format!(
                    "warm-up lookup: {}",
                    String::from_utf8_lossy(reply.payload())
                )),
                Err(e) => {
                    shared.error(format!("warm-up: {e}"));
                    *slot = None;
                }
            }
        }
    }
    let atsign = ctx.target.atsign.as_str();
    clients
        .into_iter()
        .map(|client| {
            let conn = client.and_then(|c| match LoopConn::new(c.into_parts(), false, atsign) {
                Ok(conn) => Some(conn),
                Err(e) => {
                    shared.error(format!("connect: {e}"));
                    None
                }
            });
            Slot::single(conn, atsign)
        })
        .collect()
}

/// Reopens, refills and flushes one slot; lookup connections past their
/// request cap are closed and replaced once their replies are in.
fn service_slot(
    ctx: &Ctx,
    mix: Mix,
    cap: u64,
    stopping: bool,
    slot: &mut Slot,
    rng: &mut Rng,
    out: &mut Vec<u8>,
) {
    let shared = &ctx.shared;
    let recycle = !stopping
        && slot
            .conn
            .as_ref()
            .is_some_and(|c| c.sent >= cap && c.inflight.is_empty());
    if recycle && let Some(c) = slot.conn.take() {
        c.close();
    }
    let retry = slot.failures > 0 && slot.failures < RECONNECT_ATTEMPTS_MAX;
    if !stopping && slot.conn.is_none() && (recycle || retry) {
        match LoopConn::open(ctx, mix, &slot.atsign) {
            Ok(c) => {
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                if recycle {
                    slot.failures = 0;
                }
                slot.turn_end = c.sent.saturating_add(slot.turn);
                slot.conn = Some(c);
            }
            Err(e) => {
                slot.failures += 1;
                shared.error(format!("reconnect: {e}"));
            }
        }
    }
    let Some(conn) = slot.conn.as_mut() else {
        return;
    };
    if !stopping {
        // A rotating slot's connection sends no more than its turn.
        conn.fill(ctx, mix, cap.min(slot.turn_end), rng, out);
    }
    if let Err(e) = conn.write_out() {
        fail_slot(shared, slot, e);
    }
}

fn fail_slot(shared: &Shared, slot: &mut Slot, e: impl std::fmt::Display) {
    let lost = slot.conn.as_ref().map_or(0, |c| c.inflight.len() as u64);
    shared
        .errors
        .fetch_add(lost.saturating_sub(1), Ordering::Relaxed);
    shared.error(format!("{e} ({lost} requests in flight lost)"));
    slot.conn = None;
    slot.failures += 1;
}
