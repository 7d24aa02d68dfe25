"""notify and monitor driven by the official Python SDK (atsdk 0.2.81).

@alice's SDK sends `notify:id:<uuid>:update:isEncrypted:true:ivNonce:…:@bob:k@alice:<b64>`
to her own server; @bob's SDK monitor (its own connection, pkam, `monitor:<epochMillis>
.*`) receives `notification: {json}` lines, and `AtClient.handle_event` turns the
UPDATE_NOTIFICATION into a DECRYPTED_UPDATE_NOTIFICATION with the shared key it fetches
through @bob's server (notifications.md §2, §3, §6; clients.md, Python SDK).

Two layouts: @alice and @bob on two `atserver serve` processes (delivery server to
server), and both hosted by one process. Every line a monitor reads is recorded by the
conftest wire recorder, so the tests also check the monitor's framing: nothing but
`notification: {…}` lines and a bare `data:ok` for its `noop:0` heartbeat, no prompts.

SDK quirks worked around (atsdk 0.2.81):
* AtMonitorConnection.start_monitor runs the read loop in the calling thread, so each
  monitor runs in a daemon thread here.
* AtClient.stop_monitor only acts when the monitor is *not* running (inverted test), and
  AtConnection.disconnect() closes the socket without a shutdown, which does not wake the
  monitor thread blocked in recv: the TCP connection stays open and the server keeps
  pushing to it. Monitor.stop() below clears the SDK's run flag, shuts the socket down
  (which wakes the read with EOF; the SDK then queues one MONITOR_EXCEPTION for the empty
  line, on a queue nobody reads any more) and stops the heartbeat thread.
* Re-running start_monitor on a stopped AtClient reconnects without pkam (the SDK's
  restart path), so a restarted monitor uses a new AtClient, as an application would.
* The SDK's own heartbeat sends `noop:0` only every 30 s; the tests send it with the very
  call the heartbeat thread makes (execute_command("noop:0", read_the_response=False)).
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
import time

import pytest

from at_client.atclient import AtClient
from at_client.common.atsign import AtSign
from at_client.common.keys import SharedKey
from at_client.connections.address import Address
from at_client.connections.notification.atevents import AtEvent, AtEventType

from conftest import (
    UUID,
    ServerStartError,
    exchanges,
    launch_network,
    onboard,
    parse_json_data,
    stop_network,
    transcript_of,
    using_network,
)

ALICE = AtSign("@alice")
BOB = AtSign("@bob")
B64 = r"[A-Za-z0-9+/]+={0,2}"
EVENT_TIMEOUT = 8.0      # seconds to wait for one monitor event
QUIET_PERIOD = 1.0       # seconds of silence that prove "no (more) such event"


# ------------------------------------------------------------------ networks

def _start(tmp_path_factory, name: str, one_process: bool):
    try:
        net = launch_network(tmp_path_factory.mktemp(name), ["@alice", "@bob"],
                             one_process=one_process)
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    return net


def _stop(net):
    died = stop_network(net)
    if died:
        pytest.fail("; ".join(died) + "\n" + net.logs(), pytrace=False)


@contextlib.contextmanager
def _onboarded(tmp_path_factory, name: str, one_process: bool):
    """A network for @alice and @bob, both onboarded, used as the current one."""
    net = _start(tmp_path_factory, name, one_process=one_process)
    try:
        with using_network(net):
            for a in ("@alice", "@bob"):
                onboard(net.servers[a], a)
            yield net
    finally:
        _stop(net)


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """@alice and @bob each on their own `atserver serve`, one directory, both onboarded."""
    with _onboarded(tmp_path_factory, "notify-s2s", one_process=False) as net:
        yield net


@pytest.fixture
def one_server(tmp_path_factory):
    """One `atserver serve` hosting both @alice and @bob (function scope, so that its
    using_network nests inside the module's and restores it afterwards)."""
    with _onboarded(tmp_path_factory, "notify-one", one_process=True) as net:
        yield net


def client(net, atsign: AtSign, q: queue.Queue | None = None) -> AtClient:
    return AtClient(atsign, root_address=Address(net.directory.host, net.directory.port), queue=q)


# ------------------------------------------------------------------ the SDK monitor

def describe(ev: AtEvent) -> str:
    data = ev.event_data
    if isinstance(data, dict):
        data = {k: data.get(k) for k in ("id", "key", "from", "to", "value", "epochMillis",
                                         "exception", "decryptedValue") if k in data}
    return f"{ev.event_type}: {data}"


class Monitor:
    """An AtClient with a Queue whose SDK monitor runs in a daemon thread."""

    def __init__(self, net, atsign: AtSign, last_received_time: int = 0, regex: str = ".*"):
        self.net = net
        self.queue: queue.Queue = queue.Queue()
        self.client = client(net, atsign, self.queue)
        self.seen: list[AtEvent] = []
        self.thread = threading.Thread(
            target=self.client.start_monitor,
            kwargs=dict(regex=regex, last_received_time=last_received_time),
            daemon=True, name=f"monitor-{atsign}")
        self.thread.start()
        self.command = self._wait_for_monitor_command(regex, last_received_time)

    @property
    def conn(self):
        return self.client.monitor_connection

    def _wait_for_monitor_command(self, regex, last_received_time) -> str:
        end = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < end:
            conn = self.conn
            if conn is not None:
                for sent, _ in exchanges(conn):
                    if sent is not None and sent.startswith("monitor"):
                        assert sent == f"monitor:{last_received_time} {regex}\n", sent
                        return sent
            if not self.thread.is_alive():
                break
            time.sleep(0.02)
        pytest.fail("the SDK monitor did not send its monitor command (connect or pkam "
                    "failed? see captured stdout)\n"
                    + (transcript_of(self.conn) if self.conn is not None else "(no monitor connection)"))

    def next_event(self, want, what: str, timeout: float = EVENT_TIMEOUT) -> AtEvent:
        """The first queued event satisfying `want`; the others are kept in self.seen."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try:
                if left <= 0:
                    raise queue.Empty
                ev = self.queue.get(timeout=left)
            except queue.Empty:
                pytest.fail(f"no {what} within {timeout:.0f}s on {self.client.atsign}'s monitor\n"
                            f"events seen: {[describe(e) for e in self.seen]}\n"
                            f"monitor connection:\n{transcript_of(self.conn)}\n{self.net.logs()}",
                            pytrace=False)
            self.seen.append(ev)
            if want(ev):
                return ev

    def notification(self, notification_id: str, event_type=AtEventType.UPDATE_NOTIFICATION):
        return self.next_event(
            lambda e: e.event_type == event_type and e.event_data.get("id") == notification_id,
            f"{event_type} for notification {notification_id}")

    def drain(self, quiet: float = QUIET_PERIOD) -> None:
        """Take every event queued until nothing arrives for `quiet` seconds."""
        while True:
            try:
                self.seen.append(self.queue.get(timeout=quiet))
            except queue.Empty:
                return

    def heartbeat(self) -> AtEvent:
        """`noop:0` on the monitor connection, sent as the SDK's heartbeat thread sends it."""
        self.conn.execute_command(command="noop:0", retry_on_exception=False,
                                  read_the_response=False)
        return self.next_event(lambda e: e.event_type == AtEventType.MONITOR_HEARTBEAT_ACK,
                               "MONITOR_HEARTBEAT_ACK for noop:0")

    def exceptions(self) -> list[str]:
        return [describe(e) for e in self.seen if e.event_type == AtEventType.MONITOR_EXCEPTION]

    def received_lines(self) -> list[str]:
        """Every line the monitor read after sending its monitor command."""
        ex = exchanges(self.conn)
        start = next(i for i, (s, _) in enumerate(ex) if s is not None and s.startswith("monitor"))
        return [r for _, r in ex[start:] if r != "<no reply read>"]

    def stop(self, check: bool = True) -> None:
        """Stop the SDK monitor for real (see the module docstring)."""
        conn = self.conn
        conn.stop_heart_beat()
        with conn.should_be_running_lock:
            conn.should_be_running = False
        try:
            # the plain socket shutdown, not SSLSocket.shutdown (which drops the SSL object
            # under the reading thread's feet)
            socket.socket.shutdown(conn._secure_root_socket, socket.SHUT_RDWR)
        except OSError:
            pass
        conn.stop_monitor()
        self.thread.join(5)
        assert not check or not self.thread.is_alive(), "the SDK monitor thread did not stop"


@contextlib.contextmanager
def monitoring(net, atsign: AtSign, **kwargs):
    """A running Monitor for the block, stopped afterwards (without hiding a failure of
    the block behind a failure to stop)."""
    mon = Monitor(net, atsign, **kwargs)
    try:
        yield mon
    except BaseException:
        mon.stop(check=False)
        raise
    mon.stop()


def assert_monitor_framing(mon: Monitor) -> None:
    """notifications.md §6: no reply to monitor, then only `notification: {json}\\n` lines;
    `noop:0` on a monitor connection answers `data:ok\\n` with no prompt."""
    lines = mon.received_lines()
    assert lines, "the monitor read nothing"
    for line in lines:
        if line == "<eof>":
            continue
        assert line == "data:ok\n" or (line.startswith("notification: {") and line.endswith("}\n")), \
            f"unexpected line on the monitor connection: {line!r}\n{transcript_of(mon.conn)}"
        if line.startswith("notification: "):
            json.loads(line[len("notification: "):])


def notify_and_check_wire(alice: AtClient, key: SharedKey, value: str) -> tuple[str, str, str]:
    """@alice's SDK notifies; returns (id, ivNonce, ciphertext) as sent on the wire."""
    aconn = alice.secondary_connection
    start = len(exchanges(aconn))
    notification_id = alice.notify(key, value)
    ex = exchanges(aconn)[start:]
    sent, reply = ex[-1]
    m = re.fullmatch(rf"notify:id:({UUID}):update:isEncrypted:true:ivNonce:({B64}):"
                     rf"{re.escape(str(key))}:({B64})\n", sent or "")
    assert m, f"the SDK's notify command: {sent!r}\n{transcript_of(aconn)}"
    # notifications.md §2.3: the reply is data:<id>, the id the client chose
    assert reply == f"data:{m.group(1)}\n@alice@", reply
    assert notification_id == m.group(1)
    return notification_id, m.group(2), m.group(3)


def wait_for_status(conn, notification_id: str, want: str, timeout: float = EVENT_TIMEOUT) -> str:
    """Poll notify:status:<id> (notifications.md §7) until it says `want`."""
    end = time.monotonic() + timeout
    while True:
        conn.execute_command(f"notify:status:{notification_id}", raise_exception=False)
        reply = exchanges(conn)[-1][1]
        if reply.startswith(f"data:{want}\n") or time.monotonic() > end:
            assert reply.startswith(f"data:{want}\n"), \
                f"notify:status:{notification_id} -> {reply!r}, expected data:{want}"
            return reply
        time.sleep(0.05)


def check_event(ev: AtEvent, notification_id: str, key: SharedKey, iv: str, cipher: str) -> None:
    d = ev.event_data
    assert d["id"] == notification_id
    assert d["from"] == "@alice"
    assert d["to"] == "@bob"
    assert d["key"] == str(key)
    assert d["operation"] == "update"
    assert d["messageType"] == "MessageType.key"
    assert d["isEncrypted"] is True
    assert d["value"] == cipher, "the notification must carry the ciphertext as sent"
    assert d["metadata"]["ivNonce"] == iv, "ivNonce must travel with the notification"
    assert isinstance(d["epochMillis"], int) and abs(d["epochMillis"] - time.time() * 1000) < 60_000


def decrypt(mon: Monitor, ev: AtEvent) -> AtEvent:
    """AtClient.handle_event: lookup:shared_key@alice through @bob's server, AES-CTR decrypt,
    then a DECRYPTED_UPDATE_NOTIFICATION on the queue (it prints and queues nothing if
    anything fails)."""
    mon.client.handle_event(mon.queue, ev)
    return mon.next_event(
        lambda e: e.event_type == AtEventType.DECRYPTED_UPDATE_NOTIFICATION
        and e.event_data.get("id") == ev.event_data["id"],
        "DECRYPTED_UPDATE_NOTIFICATION (handle_event failed? see captured stdout)", timeout=2)


def notify_round_trip(net, value: str, keyname: str) -> None:
    alice = client(net, ALICE)
    with monitoring(net, BOB) as mon:
        key = SharedKey(keyname, ALICE, BOB).set_namespace("interop")
        # notify creates the shared key on first use: llookup, plookup:publickey@bob, two updates
        notification_id, iv, cipher = notify_and_check_wire(alice, key, value)
        ev = mon.notification(notification_id)
        check_event(ev, notification_id, key, iv, cipher)
        got = decrypt(mon, ev)
        assert got.event_data["decryptedValue"] == value
        wait_for_status(alice.secondary_connection, notification_id, "delivered")
        # notifications.md §7: @bob's notify:list has it, as received from @alice
        bconn = mon.client.secondary_connection
        bconn.execute_command("notify:list", raise_exception=False)
        listed = parse_json_data(exchanges(bconn)[-1][1], "@bob@")
        mine = [n for n in listed if n.get("id") == notification_id]
        assert len(mine) == 1, listed
        assert (mine[0]["from"], mine[0]["to"], mine[0]["key"]) == ("@alice", "@bob", str(key)), mine
        mon.drain(0.3)
        assert not mon.exceptions(), mon.exceptions()
        assert_monitor_framing(mon)
        line = next(l for l in mon.received_lines() if f'"id":"{notification_id}"' in l)
        assert line.startswith("notification: {"), line


# ------------------------------------------------------------------ tests

@pytest.mark.deadline(30)
def test_notify_across_two_servers_reaches_bobs_sdk_monitor_and_decrypts(two_servers):
    notify_round_trip(two_servers, "hello", "hello")


@pytest.mark.deadline(30)
def test_monitor_heartbeat_gets_a_bare_data_ok_and_notifications_keep_flowing(two_servers):
    net = two_servers
    alice = client(net, ALICE)
    with monitoring(net, BOB, last_received_time=int(time.time() * 1000)) as mon:
        key = SharedKey("beat", ALICE, BOB).set_namespace("interop")
        ack = mon.heartbeat()
        assert ack.event_data["value"] == "ok\n", ack.event_data
        first_id, iv, cipher = notify_and_check_wire(alice, key, "before the second heartbeat")
        ev = mon.notification(first_id)
        check_event(ev, first_id, key, iv, cipher)
        assert decrypt(mon, ev).event_data["decryptedValue"] == "before the second heartbeat"

        mon.heartbeat()
        second_id, iv, cipher = notify_and_check_wire(alice, key, "after it")
        ev = mon.notification(second_id)
        check_event(ev, second_id, key, iv, cipher)
        assert decrypt(mon, ev).event_data["decryptedValue"] == "after it"

        mon.drain(0.3)
        assert not mon.exceptions(), f"MONITOR_EXCEPTION events: {mon.exceptions()}\n" \
                                     + transcript_of(mon.conn)
        sent = [s for s, _ in exchanges(mon.conn) if s is not None]
        assert sent[-3:] == [mon.command, "noop:0\n", "noop:0\n"], sent
        lines = mon.received_lines()
        assert lines.count("data:ok\n") == 2, lines
        assert_monitor_framing(mon)


@pytest.mark.deadline(30)
def test_notify_between_two_atsigns_of_one_process(one_server):
    net = one_server
    assert net.servers["@alice"] is net.servers["@bob"]
    a, b = net.servers["@alice"].server_address("@alice"), net.servers["@bob"].server_address("@bob")
    assert (a.host, a.port) == (b.host, b.port)
    notify_round_trip(net, "hello from next door", "hello")


@pytest.mark.deadline(30)
def test_a_new_monitor_replays_only_what_came_after_last_received_time(two_servers):
    net = two_servers
    alice = client(net, ALICE)
    key = SharedKey("replay", ALICE, BOB).set_namespace("interop")

    with monitoring(net, BOB) as first:
        old_id, iv, cipher = notify_and_check_wire(alice, key, "seen live")
        old = first.notification(old_id)
        assert not first.exceptions(), first.exceptions()
        assert_monitor_framing(first)
    last_received_time = old.event_data["epochMillis"]

    # while nobody monitors: stored as received on @bob's server once delivered
    new_id, iv, cipher = notify_and_check_wire(alice, key, "replayed")
    wait_for_status(alice.secondary_connection, new_id, "delivered")

    with monitoring(net, BOB, last_received_time=last_received_time) as second:
        ev = second.notification(new_id)
        check_event(ev, new_id, key, iv, cipher)
        assert ev.event_data["epochMillis"] > last_received_time
        assert decrypt(second, ev).event_data["decryptedValue"] == "replayed"
        second.drain()
        ids = [e.event_data.get("id") for e in second.seen
               if e.event_type in (AtEventType.UPDATE_NOTIFICATION, AtEventType.SHARED_KEY_NOTIFICATION,
                                   AtEventType.DELETE_NOTIFICATION)]
        # notifications.md §6: replay strictly after the given epochMillis, each once
        assert ids == [new_id], \
            f"expected only {new_id} (not {old_id}), once: {[describe(e) for e in second.seen]}"
        assert not second.exceptions(), second.exceptions()
        assert_monitor_framing(second)
