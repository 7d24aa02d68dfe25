//! The monitors of one hosted atSign: every connection that ran `monitor`
//! holds a [`Subscription`] here, and every notification stored for the
//! atSign is published to them (notifications.md §6).
//!
//! A notification may be stored by a connection on any shard (the owner's
//! self-notify, a peer's delivery, another atSign of this process), and its
//! monitors may sit on any other shard. So the hub is shared by all of them:
//! the publisher renders the line once, appends an `Arc` of it to each
//! matching subscription's bounded queue and wakes that connection's task
//! (a cross-thread wake, as a completed write wakes its connection). The
//! registry lock is taken once per published notification and once per
//! `monitor` / disconnect; each queue has its own lock, held for a push or a
//! drain, so a slow monitor never holds up another.
//!
//! Slow consumers: a queue that reaches [`MONITOR_QUEUE_LINES_MAX`] lines or
//! [`MONITOR_QUEUE_BYTES_MAX`] bytes is marked overflowed and gets nothing
//! more; its connection is then closed. Nothing is lost by that: every
//! notification is stored before it is published, and the client's
//! reconnect replays from the `epochMillis` of the last line it read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::limits::{
    MONITOR_QUEUE_BYTES_MAX, MONITOR_QUEUE_LINES_MAX, MONITOR_REGEXES_MAX, MONITORS_PER_ATSIGN_MAX,
};

/// What kind of line a notification is, for the subscriptions' filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A notification the atSign received (from a peer, another atSign of
    /// this process, or itself).
    Received,
    /// A notification the server made for the atSign (enrollment requests):
    /// only for monitors that asked with `:selfNotifications`.
    SelfNotification,
    /// The commit-id stats line, written to every monitor whatever its
    /// regex (unless `:strict` and it does not match).
    Stats,
}

/// One line to publish.
#[derive(Debug, Clone)]
pub struct Published<'a> {
    pub id: &'a str,
    pub kind: Kind,
    /// The notification's key, which the regex is looked for in.
    pub key: &'a str,
    /// The sender, with its `@`; the regex is also looked for in it without
    /// the `@`.
    pub from: &'a str,
    /// The whole line, `notification: {json}\n`.
    pub line: Arc<[u8]>,
}

/// What a monitor asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Which keys the connection may see (an APKAM enrollment's
    /// namespaces); `None`: every key.
    pub grant: Option<Arc<dyn KeyGrant>>,
    /// `None` matches everything.
    /// Shared by every monitor of the atSign that sent the same text (one
    /// compiled program and one pool of match caches, not one per monitor).
    pub regex: Option<Arc<regex::Regex>>,
    pub self_notifications: bool,
    /// Stats lines only when they match the regex.
    pub strict: bool,
}

/// Whether a connection may see notifications about a key (implemented
/// by the enrollment's namespaces, in `auth`, above this layer).
pub trait KeyGrant: Send + Sync + std::fmt::Debug {
    fn sees(&self, key: &str) -> bool;
}

impl Filter {
    /// Whether the connection may see a notification about `key`.
    pub fn sees(&self, key: &str) -> bool {
        self.grant.as_ref().is_none_or(|grant| grant.sees(key))
    }

    /// Whether a live line of `published` goes to this monitor.
    pub fn admits(&self, published: &Published<'_>) -> bool {
        match published.kind {
            Kind::Stats => self.takes_stats(published.key, published.from),
            Kind::SelfNotification if !self.self_notifications => false,
            Kind::Received | Kind::SelfNotification => {
                self.sees(published.key) && self.matches(published.key, published.from)
            }
        }
    }

    /// Whether the stats line (`key` `statsNotification.@me`, from `from`)
    /// goes to this monitor: always, unless it is strict and its regex does
    /// not match.
    pub fn takes_stats(&self, key: &str, from: &str) -> bool {
        !self.strict || self.matches(key, from)
    }

    /// The regex is found in the key, or in the sender without its `@`.
    fn matches(&self, key: &str, from: &str) -> bool {
        self.regex
            .as_ref()
            .is_none_or(|r| r.is_match(key) || r.is_match(from.strip_prefix('@').unwrap_or(from)))
    }
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Arc<[u8]>>,
    bytes: usize,
    waker: Option<Waker>,
    overflowed: bool,
    /// While the connection replays stored notifications: the ids that
    /// arrived live meanwhile, so the replay skips them (they are written
    /// from this queue instead, once).
    live_during_replay: Option<HashSet<String>>,
}

/// One monitor's side of the hub.
pub struct Subscription {
    filter: Filter,
    queue: Mutex<Queue>,
}

impl Subscription {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves plain data behind.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `published` and returns the waker to call, or nothing when
    /// the filter does not take it or the queue has overflowed.
    fn offer(&self, published: &Published<'_>) -> Option<Waker> {
        if !self.filter.admits(published) {
            return None;
        }
        let mut queue = self.lock();
        if queue.overflowed {
            return None;
        }
        if queue.lines.len() >= MONITOR_QUEUE_LINES_MAX
            || queue.bytes.saturating_add(published.line.len()) > MONITOR_QUEUE_BYTES_MAX
        {
            queue.overflowed = true;
            queue.lines.clear();
            queue.bytes = 0;
            return queue.waker.take();
        }
        if published.kind != Kind::Stats
            && let Some(ids) = queue.live_during_replay.as_mut()
        {
            ids.insert(published.id.to_string());
        }
        queue.bytes += published.line.len();
        queue.lines.push_back(published.line.clone());
        queue.waker.take()
    }
}

/// The registry of one atSign's monitors.
#[derive(Default)]
pub struct MonitorHub {
    /// By registration number, so a disconnect removes its own entry at once.
    subscriptions: Mutex<Registry>,
    /// How many are registered: read without the lock, so publishing to an
    /// atSign nobody monitors costs one atomic load.
    count: AtomicUsize,
    /// Compiled monitor regexes by their text: the clients of one atSign
    /// send the same few, and a compiled regex costs tens of KiB, so ten
    /// thousand monitors share one instead of holding ten thousand.
    regexes: Mutex<HashMap<String, Arc<regex::Regex>>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    by_number: HashMap<u64, Arc<Subscription>>,
}

/// Why a monitor could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyMonitors;

impl std::fmt::Display for TooManyMonitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this atSign already has {MONITORS_PER_ATSIGN_MAX} monitor connections"
        )
    }
}

impl MonitorHub {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a monitor; it stays registered until the handle is
    /// dropped. With `replaying`, ids published meanwhile are remembered
    /// for [`MonitorHandle::arrived_live`] until [`MonitorHandle::replay_done`].
    pub fn subscribe(
        self: &Arc<Self>,
        filter: Filter,
        replaying: bool,
    ) -> Result<MonitorHandle, TooManyMonitors> {
        let subscription = Arc::new(Subscription {
            filter,
            queue: Mutex::new(Queue {
                live_during_replay: replaying.then(HashSet::new),
                ..Queue::default()
            }),
        });
        let mut registry = self.lock();
        if registry.by_number.len() >= MONITORS_PER_ATSIGN_MAX {
            return Err(TooManyMonitors);
        }
        let number = registry.next;
        registry.next += 1;
        registry.by_number.insert(number, subscription.clone());
        self.count
            .store(registry.by_number.len(), Ordering::Release);
        Ok(MonitorHandle {
            hub: self.clone(),
            number,
            subscription,
        })
    }

    /// The compiled regex of `text`, shared with the monitors that asked
    /// for the same text; `compile` runs only for a text not seen yet. At
    /// most [`MONITOR_REGEXES_MAX`] texts are kept (the rest compile anew).
    pub fn regex<E>(
        &self,
        text: &str,
        compile: impl FnOnce(&str) -> Result<regex::Regex, E>,
    ) -> Result<Arc<regex::Regex>, E> {
        let mut regexes = self.regexes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = regexes.get(text) {
            return Ok(found.clone());
        }
        let compiled = Arc::new(compile(text)?);
        if regexes.len() < MONITOR_REGEXES_MAX {
            regexes.insert(text.to_string(), compiled.clone());
        }
        Ok(compiled)
    }

    /// Whether any monitor is registered.
    pub fn has_monitors(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Hands `published` to every monitor whose filter takes it, then wakes
    /// them (after the registry lock is released).
    pub fn publish(&self, published: &Published<'_>) {
        if !self.has_monitors() {
            return;
        }
        // Each offer holds its queue's lock for a push; the wakes, which may
        // cost a system call each, wait until the registry is released.
        let wakers: Vec<Waker> = self
            .lock()
            .by_number
            .values()
            .filter_map(|s| s.offer(published))
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    fn unsubscribe(&self, number: u64) {
        let mut registry = self.lock();
        registry.by_number.remove(&number);
        self.count
            .store(registry.by_number.len(), Ordering::Release);
    }

    /// Registered monitors (for `stats` and tests).
    pub fn monitors(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// What a drain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// This many lines were appended.
    Lines(usize),
    /// The queue overflowed: the connection must close (the client
    /// reconnects and replays).
    Overflowed,
}

/// A connection's registration; dropping it unregisters.
pub struct MonitorHandle {
    hub: Arc<MonitorHub>,
    number: u64,
    subscription: Arc<Subscription>,
}

/// Wakes the connection task of one monitor when a line is queued, apart
/// from the handle so the task can wait on it beside its other work.
#[derive(Clone)]
pub struct MonitorSignal {
    subscription: Arc<Subscription>,
}

impl MonitorSignal {
    /// Ready once a line is queued (or the queue overflowed).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.subscription.lock();
        if queue.overflowed || !queue.lines.is_empty() {
            return Poll::Ready(());
        }
        match &queue.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => queue.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Resolves once a line is queued.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

impl MonitorHandle {
    /// The signal the connection task waits on.
    pub fn signal(&self) -> MonitorSignal {
        MonitorSignal {
            subscription: self.subscription.clone(),
        }
    }

    /// Whether lines are waiting.
    pub fn has_lines(&self) -> bool {
        let queue = self.subscription.lock();
        queue.overflowed || !queue.lines.is_empty()
    }

    /// Appends every queued line to `out`.
    pub fn drain(&self, out: &mut Vec<u8>) -> Drained {
        let lines = {
            let mut queue = self.subscription.lock();
            if queue.overflowed {
                return Drained::Overflowed;
            }
            queue.bytes = 0;
            std::mem::take(&mut queue.lines)
        };
        for line in &lines {
            out.extend_from_slice(line);
        }
        Drained::Lines(lines.len())
    }

    /// Whether notification `id` was published live while the replay ran
    /// (so the replay must skip it).
    pub fn arrived_live(&self, id: &str) -> bool {
        self.subscription
            .lock()
            .live_during_replay
            .as_ref()
            .is_some_and(|ids| ids.contains(id))
    }

    /// The replay is over: stop remembering live ids.
    pub fn replay_done(&self) {
        self.subscription.lock().live_during_replay = None;
    }

    /// What the monitor asked for.
    pub fn filter(&self) -> &Filter {
        &self.subscription.filter
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(regex: Option<&str>) -> Filter {
        Filter {
            grant: None,
            regex: regex.map(|r| Arc::new(regex::Regex::new(r).unwrap())),
            self_notifications: false,
            strict: false,
        }
    }

    fn line(id: &str, kind: Kind, key: &str) -> (String, Kind, String) {
        (id.to_string(), kind, key.to_string())
    }

    fn publish(hub: &MonitorHub, (id, kind, key): &(String, Kind, String)) {
        hub.publish(&Published {
            id,
            kind: *kind,
            key,
            from: "@bob",
            line: Arc::from(format!("notification: {id}\n").into_bytes()),
        });
    }

    fn drained(handle: &MonitorHandle) -> String {
        let mut out = Vec::new();
        assert!(matches!(handle.drain(&mut out), Drained::Lines(_)));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_reach_the_monitors_whose_filter_takes_them() {
        let hub = Arc::new(MonitorHub::default());
        let all = hub.subscribe(filter(None), false).unwrap();
        let wavi = hub.subscribe(filter(Some("wavi")), false).unwrap();
        let by_sender = hub.subscribe(filter(Some("^bob$")), false).unwrap();
        publish(&hub, &line("1", Kind::Received, "@alice:phone.wavi@bob"));
        publish(&hub, &line("2", Kind::Received, "@alice:mail@bob"));
        publish(&hub, &line("3", Kind::SelfNotification, "enroll"));
        publish(&hub, &line("-1", Kind::Stats, "statsNotification.@alice"));
        assert_eq!(
            drained(&all),
            "notification: 1\nnotification: 2\nnotification: -1\n"
        );
        assert_eq!(drained(&wavi), "notification: 1\nnotification: -1\n");
        // The regex is also looked for in the sender without its `@`.
        assert_eq!(
            drained(&by_sender),
            "notification: 1\nnotification: 2\nnotification: -1\n"
        );
    }

    #[test]
    fn strict_monitors_get_only_matching_stats_and_self_needs_asking() {
        let hub = Arc::new(MonitorHub::default());
        let strict = hub
            .subscribe(
                Filter {
                    strict: true,
                    self_notifications: true,
                    ..filter(Some("wavi"))
                },
                false,
            )
            .unwrap();
        publish(&hub, &line("-1", Kind::Stats, "statsNotification.@alice"));
        publish(&hub, &line("3", Kind::SelfNotification, "x.wavi"));
        assert_eq!(drained(&strict), "notification: 3\n");
    }

    #[test]
    fn dropping_a_handle_unregisters_it() {
        let hub = Arc::new(MonitorHub::default());
        let a = hub.subscribe(filter(None), false).unwrap();
        assert!(hub.has_monitors());
        drop(a);
        assert!(!hub.has_monitors());
        assert_eq!(hub.monitors(), 0);
    }

    #[test]
    fn a_full_queue_overflows_and_takes_nothing_more() {
        let hub = Arc::new(MonitorHub::default());
        let slow = hub.subscribe(filter(None), false).unwrap();
        let fast = hub.subscribe(filter(None), false).unwrap();
        for i in 0..MONITOR_QUEUE_LINES_MAX {
            publish(&hub, &line(&i.to_string(), Kind::Received, "k"));
            if i % 100 == 0 {
                drained(&fast);
            }
        }
        publish(&hub, &line("last", Kind::Received, "k"));
        assert_eq!(slow.drain(&mut Vec::new()), Drained::Overflowed);
        // The other monitor is not affected.
        assert!(drained(&fast).ends_with("notification: last\n"));
    }

    #[test]
    fn ids_published_during_a_replay_are_remembered_until_it_ends() {
        let hub = Arc::new(MonitorHub::default());
        let handle = hub.subscribe(filter(None), true).unwrap();
        publish(&hub, &line("7", Kind::Received, "k"));
        assert!(handle.arrived_live("7"));
        assert!(!handle.arrived_live("8"));
        handle.replay_done();
        assert!(!handle.arrived_live("7"));
    }

    #[test]
    fn one_regex_text_compiles_once_per_atsign() {
        let hub = MonitorHub::default();
        let mut compiled = 0;
        for _ in 0..3 {
            let regex = hub
                .regex("wavi$", |text| {
                    compiled += 1;
                    regex::Regex::new(text)
                })
                .unwrap();
            assert!(regex.is_match("phone.wavi"));
        }
        assert_eq!(compiled, 1);
        assert!(hub.regex("(", regex::Regex::new).is_err());
    }

    #[test]
    fn the_registry_is_bounded() {
        let hub = Arc::new(MonitorHub::default());
        let handles: Vec<_> = (0..MONITORS_PER_ATSIGN_MAX)
            .map(|_| hub.subscribe(filter(None), false).unwrap())
            .collect();
        assert_eq!(
            hub.subscribe(filter(None), false).err(),
            Some(TooManyMonitors)
        );
        drop(handles);
        assert!(hub.subscribe(filter(None), false).is_ok());
    }

    #[test]
    fn a_queued_line_wakes_the_waiting_task() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let hub = Arc::new(MonitorHub::default());
        let handle = hub.subscribe(filter(None), false).unwrap();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let signal = handle.signal();
        assert!(signal.poll_ready(&mut cx).is_pending());
        publish(&hub, &line("1", Kind::Received, "k"));
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(signal.poll_ready(&mut cx).is_ready());
    }
}
