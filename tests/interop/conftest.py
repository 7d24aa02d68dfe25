"""Fixtures for the atsdk (Python SDK) interop suite.

The suite starts one `atserver dev` process (atDirectory + atServer hosting @alice and
@bob on loopback, with a throw-away CA), points the SDK at it and drives it with the
SDK's own classes. The server-to-server tests (test_atsdk_s2s.py) start instead two
`atserver serve` processes (@alice, @bob) and an `atserver directory` with one dev CA
(`launch_network`; the notify tests also start one `serve` hosting both). Every byte the
SDK writes or reads is recorded (monitor lines included); when a test fails the
wire transcript of that test phase is attached to the pytest report, so a failure can be
handed to the server author as is.

Environment:
  ATSERVER_BIN   path of the server binary (default: target/debug/atserver, relative to
                 the repository root).
  INTEROP_TEST_TIMEOUT  seconds allowed per test (default 10).
  INTEROP_SUITE_BUDGET  seconds allowed for the whole session (default 120): once spent,
                 the remaining tests fail at once instead of each waiting on a hung server.
  INTEROP_SHOW_WIRE=1   attach the wire transcript to passing tests too (see it with -rP).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from at_client.common.atsign import AtSign
from at_client.connections.address import Address
from at_client.connections.atconnection import AtConnection
from at_client.connections.atrootconnection import AtRootConnection
from at_client.connections.atsecondaryconnection import AtSecondaryConnection
from at_client.util.authutil import AuthUtil
from at_client.util.keysutil import KeysUtil
from at_client.util.onboardingutil import OnboardingUtil

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
TEST_TIMEOUT = int(os.environ.get("INTEROP_TEST_TIMEOUT", "10"))
SUITE_BUDGET = int(os.environ.get("INTEROP_SUITE_BUDGET", "120"))
SESSION_START = time.monotonic()
SHOW_WIRE = os.environ.get("INTEROP_SHOW_WIRE") == "1"

# Fixed cram secrets (`--cram-secret`, paired in order with `--atsign`).
CRAM_SECRETS = {
    "@alice": "b26455a907582760ebf35bc4847de549bc41c24b25c8b1c58d5964f7b4f8a43bc55b0e9a601c9a9657d9a8b8bbc32f88b4e38ffaca03c8710ebae1b14ca9f364",
    "@bob": "0d58e1f6ac3b5bb1d8a49bc0f3b1f0a5c2a0d7c2d8f4c4f1f4f0ad4f3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8",
}

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --------------------------------------------------------------------------------------
# Wire recording: wrap the SDK's own AtConnection.write/read (every SDK connection class
# goes through these two methods), so the SDK code path is unchanged but every exchange
# is visible to the tests and to failure reports.
# --------------------------------------------------------------------------------------

@dataclass
class WireEvent:
    conn_id: int
    conn: str
    direction: str  # "C" client->server, "S" server->client
    text: str


TRANSCRIPT: list[WireEvent] = []      # since the last pytest report (for failure output)
_ALL_EVENTS: dict[int, list[WireEvent]] = {}  # per connection, whole session

_orig_write = AtConnection.write
_orig_read = AtConnection.read
_wire_serials = itertools.count(1)


def _wire_key(conn) -> int:
    """A key unique to one connection object for the whole session. `id()` is not: CPython
    reuses a collected object's address, which merged an earlier test's exchanges into a
    later test's connection."""
    key = getattr(conn, "_interop_wire_serial", None)
    if key is None:
        key = next(_wire_serials)
        conn._interop_wire_serial = key
    return key


def _recording_write(self, data: str):
    ev = WireEvent(_wire_key(self), f"{type(self).__name__}({self})", "C", data)
    TRANSCRIPT.append(ev)
    _ALL_EVENTS.setdefault(_wire_key(self), []).append(ev)
    return _orig_write(self, data)


def _recording_read(self):
    try:
        data = _orig_read(self)
    except BaseException as e:  # noqa: BLE001 - record and re-raise (timeouts, resets)
        ev = WireEvent(_wire_key(self), f"{type(self).__name__}({self})", "S", f"<read failed: {e!r}>")
        TRANSCRIPT.append(ev)
        _ALL_EVENTS.setdefault(_wire_key(self), []).append(ev)
        raise
    ev = WireEvent(_wire_key(self), f"{type(self).__name__}({self})", "S", data)
    TRANSCRIPT.append(ev)
    _ALL_EVENTS.setdefault(_wire_key(self), []).append(ev)
    return data


class _RecordingLineReader:
    """Stands in for the SDK's SocketUtil (`conn._stream_reader`): AtMonitorConnection reads
    its notification lines with `_stream_reader.readline()`, not through AtConnection.read,
    so without this a monitor's lines would be missing from the transcript."""

    def __init__(self, conn, inner):
        self._conn = conn
        self._inner = inner

    def _record(self, text: str):
        ev = WireEvent(_wire_key(self._conn), f"{type(self._conn).__name__}({self._conn})", "S", text)
        TRANSCRIPT.append(ev)
        _ALL_EVENTS.setdefault(_wire_key(self._conn), []).append(ev)

    def readline(self) -> bytes:
        try:
            data = self._inner.readline()
        except BaseException as e:  # noqa: BLE001 - record and re-raise
            self._record(f"<read failed: {e!r}>")
            raise
        self._record(data.decode(errors="replace") if data else "<eof>")
        return data

    def __getattr__(self, name):
        return getattr(self._inner, name)


_orig_connect = AtConnection.connect


def _recording_connect(self):
    _orig_connect(self)
    reader = getattr(self, "_stream_reader", None)
    if reader is not None and not isinstance(reader, _RecordingLineReader):
        self._stream_reader = _RecordingLineReader(self, reader)


AtConnection.write = _recording_write
AtConnection.read = _recording_read
AtConnection.connect = _recording_connect


def exchanges(conn) -> list[tuple[str | None, str]]:
    """(sent, received) pairs of one SDK connection, oldest first.

    The greeting read by connect() has sent=None. Texts are exact bytes (decoded)."""
    out: list[tuple[str | None, str]] = []
    pending: str | None = None
    for ev in _ALL_EVENTS.get(_wire_key(conn), []):
        if ev.direction == "C":
            if pending is not None:
                out.append((pending, "<no reply read>"))
            pending = ev.text
        else:
            out.append((pending, ev.text))
            pending = None
    if pending is not None:
        out.append((pending, "<no reply read>"))
    return out


def last_reply(conn) -> str:
    """The exact text the SDK read for the last command on `conn` (prompt included)."""
    return exchanges(conn)[-1][1]


def _format_transcript(events: list[WireEvent]) -> str:
    lines = []
    for ev in events:
        arrow = "C->S" if ev.direction == "C" else "S->C"
        lines.append(f"{arrow} {ev.conn}: {ev.text!r}")
    return "\n".join(lines) if lines else "(no SDK traffic)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    events = list(TRANSCRIPT)
    TRANSCRIPT.clear()
    if rep.failed or (SHOW_WIRE and rep.when == "call"):
        rep.sections.append((f"atsdk wire transcript ({rep.when})", _format_transcript(events)))


# --------------------------------------------------------------------------------------
# Time guards
# --------------------------------------------------------------------------------------

class DeadlineExceeded(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int, what: str):
    """Bound a block with SIGALRM: the SDK sets no socket timeouts, so a server that does
    not answer would otherwise block forever. The handler's exception interrupts the
    blocking SSL read (PEP 475 re-raises exceptions from signal handlers)."""

    def _on_alarm(signum, frame):
        raise DeadlineExceeded(f"{what} did not finish within {seconds}s "
                               "(server did not answer? see the wire transcript)")

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    outer_left = signal.alarm(seconds)  # an enclosing deadline, if any
    started = time.monotonic()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.alarm(max(1, outer_left - int(time.monotonic() - started)))


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): per-test time limit other than "
                                       "INTEROP_TEST_TIMEOUT")


@pytest.fixture(autouse=True)
def _per_test_deadline(request):
    left = int(SUITE_BUDGET - (time.monotonic() - SESSION_START))
    if left < 1:
        pytest.fail(f"interop suite time budget ({SUITE_BUDGET}s) used up by earlier tests",
                    pytrace=False)
    marker = request.node.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else TEST_TIMEOUT
    with deadline(min(seconds, left), f"test {request.node.name}"):
        yield


# --------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------

@dataclass
class ServerEnv:
    proc: subprocess.Popen
    workdir: Path
    keys_dir: Path
    stdout_lines: list[str]
    stderr_path: Path
    directory: Address
    ca: Path
    atsigns: dict[str, tuple[Address, str]] = field(default_factory=dict)  # @x -> (addr, secret)

    @property
    def root_address(self) -> Address:
        return self.directory

    def server_address(self, atsign: str) -> Address:
        return self.atsigns[atsign][0]

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> Path:
    raw = os.environ.get("ATSERVER_BIN", "target/debug/atserver")
    p = Path(raw)
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO_ROOT / p)
    return p


def _parse_hostport(s: str) -> Address:
    host, port = s.rsplit(":", 1)
    return Address(host, int(port))


class ServerStartError(Exception):
    pass


def launch_dev_server(workdir: Path, dir_port: int | None = None,
                      srv_port: int | None = None) -> ServerEnv:
    """Start `atserver dev` with its data under `workdir` (reused if it exists) and wait
    for its `ready` line. Raises ServerStartError with stdout/stderr on failure."""
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ServerStartError(f"atserver binary not found or not executable: {binary} "
                               "(build it with `cargo build` or set ATSERVER_BIN)")
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    keys_dir = workdir / "keys"
    keys_dir.mkdir(exist_ok=True)
    stderr_path = workdir / f"server.{time.monotonic_ns()}.stderr"
    dir_port = dir_port or _free_port()
    srv_port = srv_port or _free_port()
    while srv_port == dir_port:
        srv_port = _free_port()

    cmd = [str(binary), "dev", "--data-dir", str(data_dir),
           "--directory-port", str(dir_port), "--port", str(srv_port)]
    for atsign, secret in CRAM_SECRETS.items():
        cmd += ["--atsign", atsign, "--cram-secret", secret]

    stderr_file = open(stderr_path, "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr_file, cwd=str(workdir))
    stderr_file.close()  # the child has its own descriptor
    lines: list[str] = []
    q: queue.Queue = queue.Queue()

    def _drain():  # keep draining stdout for the whole run so the server never blocks
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            q.put(line)
        q.put(None)

    threading.Thread(target=_drain, daemon=True, name="atserver-stdout").start()

    def _failure(reason: str):
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        return ServerStartError(
            f"atserver dev {reason}\ncommand: {' '.join(cmd)}\nexit code: {proc.returncode}\n"
            f"--- stdout ---\n" + "\n".join(lines) + "\n--- stderr ---\n"
            + stderr_path.read_text(errors="replace"))

    directory = ca = None
    atsigns: dict[str, tuple[Address, str]] = {}
    end = time.monotonic() + STARTUP_TIMEOUT
    ready = False
    while not ready:
        left = end - time.monotonic()
        if left <= 0:
            raise _failure(f"did not print 'ready' within {STARTUP_TIMEOUT:.0f}s")
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            raise _failure("exited before printing 'ready'")
        words = line.split()
        if line.strip() == "ready":
            ready = True
        elif len(words) == 2 and words[0] == "directory":
            directory = _parse_hostport(words[1])
        elif len(words) == 2 and words[0] == "ca":
            ca = Path(words[1])
            if not ca.is_absolute():
                ca = workdir / ca
        elif len(words) == 4 and words[0].startswith("@") and words[2] == "cram-secret":
            atsigns[words[0]] = (_parse_hostport(words[1]), words[3])
        # anything else (log lines) is ignored

    problems = []
    if directory is None:
        problems.append("no 'directory HOST:PORT' line")
    elif (directory.host, directory.port) != ("127.0.0.1", dir_port):
        problems.append(f"directory line says {directory}, expected 127.0.0.1:{dir_port}")
    if ca is None or not ca.is_file():
        problems.append(f"no usable 'ca PATH' line (got {ca})")
    for atsign, secret in CRAM_SECRETS.items():
        if atsign not in atsigns:
            problems.append(f"no '{atsign} HOST:PORT cram-secret S' line")
            continue
        addr, printed = atsigns[atsign]
        if (addr.host, addr.port) != ("127.0.0.1", srv_port):
            problems.append(f"{atsign} served at {addr}, expected 127.0.0.1:{srv_port}")
        if printed != secret:
            problems.append(f"{atsign} cram secret printed as {printed!r}, expected the "
                            "one given with --cram-secret")
    if problems:
        raise _failure("printed an unexpected start-up banner: " + "; ".join(problems))
    return ServerEnv(proc=proc, workdir=workdir, keys_dir=keys_dir, stdout_lines=lines,
                     stderr_path=stderr_path, directory=directory, ca=ca, atsigns=atsigns)


def stop_dev_server(env: ServerEnv) -> tuple[int | None, int]:
    """SIGTERM, then SIGKILL after 5 s. Returns (exit code if it had already exited
    before we asked, exit code after stopping)."""
    crashed = env.proc.poll()
    if crashed is None:
        env.proc.send_signal(signal.SIGTERM)
        try:
            env.proc.wait(5)
        except subprocess.TimeoutExpired:
            env.proc.kill()
            env.proc.wait(5)
    return crashed, env.proc.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerEnv:
    try:
        env = launch_dev_server(tmp_path_factory.mktemp("atserver"))
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)

    # The SDK builds every TLS context with ssl.create_default_context(), which reads
    # SSL_CERT_FILE each time: that is the only way to make it trust the dev CA.
    old_cert_env = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(env.ca)
    # KeysUtil reads/writes <dir>/<@sign>_key.atKeys, default ~/.atsign/keys/: redirect it
    # to the temp dir so the suite never touches the user's real keys.
    old_keys_location = KeysUtil.expected_keys_files_location
    KeysUtil.expected_keys_files_location = str(env.keys_dir) + os.sep
    # AtRootConnection is a process-wide singleton; start from a clean one.
    AtRootConnection._AtRootConnection__instance = None
    try:
        yield env
    finally:
        AtRootConnection._AtRootConnection__instance = None
        KeysUtil.expected_keys_files_location = old_keys_location
        if old_cert_env is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert_env
        crashed, code = stop_dev_server(env)
        if crashed is not None:
            pytest.fail(f"atserver exited during the run with code {crashed}\n--- stderr ---\n"
                        + env.stderr(), pytrace=False)


def root_connection(env: ServerEnv) -> AtRootConnection:
    """The SDK's root (atDirectory) connection singleton, pointed at our directory."""
    return AtRootConnection.get_instance(host=env.directory.host, port=env.directory.port)


def new_connection(env: ServerEnv, atsign: str, via_directory: bool = True) -> AtSecondaryConnection:
    """A fresh, unauthenticated SDK connection to the atServer hosting `atsign`, found
    through the directory exactly as AtClient does it (or, with via_directory=False, at
    the address the server printed: the SDK's root connection is a process-wide
    singleton, so a second server instance cannot use it)."""
    if via_directory:
        address = root_connection(env).find_secondary(AtSign(atsign))
    else:
        address = env.server_address(atsign)
    conn = AtSecondaryConnection(address)
    conn.connect()
    return conn


# --------------------------------------------------------------------------------------
# Onboarding (cram) -- the SDK's example onboarding flow, one step at a time, with the
# exact reply of each step checked against the protocol.
# --------------------------------------------------------------------------------------

@dataclass
class Onboarded:
    atsign: str
    keys: dict
    keys_file: Path
    steps: list[tuple[str | None, str]]  # wire exchanges of the onboarding connection


def onboard(env: ServerEnv, atsign: str, via_directory: bool = True) -> Onboarded:
    """from + cram -> update:privatekey:at_pkam_publickey -> from + pkam (same connection)
    -> update:public:publickey@x -> delete:privatekey:at_secret, then save the .atKeys."""
    name = atsign.lstrip("@")
    secret = CRAM_SECRETS[atsign]
    with deadline(TEST_TIMEOUT, f"onboarding {atsign}"):
        keys: dict = {}
        OnboardingUtil.generate_pkam_keypair(keys)          # RSA-2048, PKCS#8 / SPKI DER
        OnboardingUtil.generate_encryption_keypair(keys)
        OnboardingUtil.generate_self_encryption_key(keys)   # AES-256

        conn = new_connection(env, atsign, via_directory)
        assert exchanges(conn)[0] == (None, "@"), "the server must greet with a bare '@'"

        # cram (protocol: verbs.md §1 from, §2 cram; auth.md §2)
        AuthUtil.authenticate_with_cram(conn, AtSign(atsign), secret)
        (from_cmd, from_reply), (cram_cmd, cram_reply) = exchanges(conn)[-2:]
        assert from_cmd == f"from:{atsign}\n"
        m = re.fullmatch(rf"data:(_{UUID}@{name}:{UUID})\n@", from_reply)
        assert m, f"from: reply must be data:_<uuid>@{name}:<uuid> then prompt '@': {from_reply!r}"
        challenge = m.group(1)
        assert cram_cmd == "cram:" + AuthUtil._get_cram_digest(secret, challenge) + "\n"
        assert cram_reply == f"data:success\n@{name}@"

        # pkam public key (verbs.md §5: privatekey: keys are not committed => data:-1)
        OnboardingUtil.store_pkam_public_key(conn, keys)
        sent, reply = exchanges(conn)[-1]
        assert sent == "update:privatekey:at_pkam_publickey " + keys[KeysUtil.pkam_public_key_name] + "\n"
        assert reply == f"data:-1\n@{name}@"

        # from again on the same, already authenticated connection, then pkam
        AuthUtil.authenticate_with_pkam(conn, AtSign(atsign), keys)
        (from_cmd, from_reply), (pkam_cmd, pkam_reply) = exchanges(conn)[-2:]
        assert from_cmd == f"from:{atsign}\n"
        m = re.fullmatch(rf"data:(_{UUID}@{name}:{UUID})\n@{name}@", from_reply)
        assert m, f"second from: on an authenticated connection: {from_reply!r}"
        assert m.group(1) != challenge, "each from: must issue a fresh challenge"
        assert pkam_cmd.startswith("pkam:") and ":" not in pkam_cmd[5:]
        assert pkam_reply == f"data:success\n@{name}@"

        # public encryption key (committed => data:<commitId>)
        OnboardingUtil.store_public_encryption_key(conn, name, keys)
        sent, reply = exchanges(conn)[-1]
        assert sent == f"update:public:publickey@{name} " + keys[KeysUtil.encryption_public_key_name] + "\n"
        assert re.fullmatch(rf"data:\d+\n@{name}@", reply), reply

        # delete the cram secret (verbs.md §10: not committed => data:-1)
        OnboardingUtil.delete_cram_key(conn)
        sent, reply = exchanges(conn)[-1]
        assert sent == "delete:privatekey:at_secret\n"
        assert reply == f"data:-1\n@{name}@"
        steps = exchanges(conn)
        conn.disconnect()

        KeysUtil.save_keys(atsign, keys)  # into KeysUtil.expected_keys_files_location
        keys_file = Path(KeysUtil.get_keys_file(atsign, KeysUtil.expected_keys_files_location))
        return Onboarded(atsign=atsign, keys=keys, keys_file=keys_file, steps=steps)


@pytest.fixture(scope="session")
def alice(server) -> Onboarded:
    return onboard(server, "@alice")


@pytest.fixture(scope="session")
def bob(server) -> Onboarded:
    return onboard(server, "@bob")


@contextlib.contextmanager
def trusting(env: ServerEnv):
    """Point the SDK's TLS trust (SSL_CERT_FILE) and its .atKeys folder at a second server
    instance for the duration of the block."""
    old_cert, old_keys = os.environ.get("SSL_CERT_FILE"), KeysUtil.expected_keys_files_location
    os.environ["SSL_CERT_FILE"] = str(env.ca)
    KeysUtil.expected_keys_files_location = str(env.keys_dir) + os.sep
    try:
        yield
    finally:
        KeysUtil.expected_keys_files_location = old_keys
        if old_cert is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert


def transcript_of(conn) -> str:
    """Human-readable wire exchange of one connection (for assertion messages)."""
    return "\n".join(f"  C: {s!r}\n  S: {r!r}" for s, r in exchanges(conn))


def parse_json_data(reply: str, prompt: str):
    """`data:<json>\\n<prompt>` -> parsed JSON (asserting the framing)."""
    assert reply.startswith("data:") and reply.endswith("\n" + prompt), reply
    return json.loads(reply[len("data:"):-(len(prompt) + 1)])


# --------------------------------------------------------------------------------------
# Two atServers and a directory (server-to-server): `atserver serve` per atSign, one
# `atserver directory` knowing both, one dev CA (`atserver certs`) trusted everywhere.
# --------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the pytest process dies first (Linux), so an
    interrupted run leaves no server behind. Best effort elsewhere."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


@dataclass
class LoggedProcess:
    """A child whose stderr (the tracing log) is drained into a file for its whole run."""
    name: str
    cmd: list[str]
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _spawn_until(name: str, cmd: list[str], workdir: Path, ready: re.Pattern) -> tuple[LoggedProcess, str]:
    """Start `cmd`, copy its stderr to <workdir>/<name>.log and wait (STARTUP_TIMEOUT) for a
    log line matching `ready`; returns the process and the line's first group."""
    log_path = workdir / f"{name}.log"
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=str(workdir), env=env,
                            preexec_fn=_die_with_parent)
    child = LoggedProcess(name, cmd, proc, log_path)
    q: queue.Queue = queue.Queue()

    def _drain():
        with open(log_path, "w", encoding="utf-8", errors="replace") as out:
            for raw in proc.stderr:
                line = _ANSI.sub("", raw.decode(errors="replace")).rstrip("\r\n")
                out.write(line + "\n")
                out.flush()
                q.put(line)
        q.put(None)

    threading.Thread(target=_drain, daemon=True, name=f"{name}-stderr").start()
    end = time.monotonic() + STARTUP_TIMEOUT
    while True:
        left = end - time.monotonic()
        line = None
        if left > 0:
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                line = None
        if left <= 0 or line is None:
            stop_process(child)
            why = "exited" if left > 0 else f"was not ready within {STARTUP_TIMEOUT:.0f}s"
            raise ServerStartError(f"{name} {why}\ncommand: {' '.join(cmd)}\nexit code: "
                                   f"{proc.returncode}\n--- log ---\n{child.log()}")
        m = ready.search(line)
        if m:
            return child, m.group(1)


def stop_process(child: LoggedProcess) -> int | None:
    """SIGTERM, SIGKILL after 5 s. Returns the exit code if it had exited on its own."""
    crashed = child.proc.poll()
    if crashed is None:
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(5)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(5)
    return crashed


@dataclass
class Network:
    directory: Address
    ca: Path
    keys_dir: Path
    servers: dict[str, ServerEnv]           # one atServer per atSign
    processes: list[LoggedProcess]          # the servers, then the directory

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log ---\n{p.log()}" for p in self.processes)


def launch_network(workdir: Path, atsigns: list[str], one_process: bool = False) -> Network:
    """One `atserver serve` per atSign (with CRAM_SECRETS), each trusting the shared dev CA
    (--tls-ca) and pointed at the directory (--root), then `atserver directory` with a
    record for each server. With one_process, a single `atserver serve` hosts all the
    atSigns (repeated --atsign/--cram-secret) and every directory record points at it.
    Everything on 127.0.0.1; cleaned up on failure."""
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ServerStartError(f"atserver binary not found or not executable: {binary} "
                               "(build it with `cargo build` or set ATSERVER_BIN)")
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    made = subprocess.run([str(binary), "certs", "--out", str(certs)], capture_output=True,
                          timeout=STARTUP_TIMEOUT)
    if made.returncode != 0:
        raise ServerStartError(f"atserver certs failed: {made.stderr.decode(errors='replace')}")
    ca, cert, key = certs / "ca.pem", certs / "server.pem", certs / "server.key"
    keys_dir = workdir / "keys"
    keys_dir.mkdir(exist_ok=True)
    # The servers need the directory's address before it can know theirs (-p 0): reserve
    # a free port for it (released again, so a clash is possible but rare).
    root = Address("127.0.0.1", _free_port())
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]

    processes: list[LoggedProcess] = []
    servers: dict[str, ServerEnv] = {}
    try:
        for group in ([atsigns] if one_process else [[a] for a in atsigns]):
            name = "+".join(a.lstrip("@") for a in group)
            cmd = [str(binary), "serve"]
            for atsign in group:
                cmd += ["--atsign", atsign, "--cram-secret", CRAM_SECRETS[atsign]]
            cmd += ["--port", "0", "--host", "127.0.0.1", "--shards", "1",
                    "--data-dir", str(workdir / f"data-{name}"), *tls, "--tls-ca", str(ca),
                    "--root", f"{root.host}:{root.port}"]
            child, addr = _spawn_until(f"atserver-{name}", cmd, workdir,
                                       re.compile(r"atServer ready addr=(\S+)"))
            processes.append(child)
            env = ServerEnv(
                proc=child.proc, workdir=workdir, keys_dir=keys_dir, stdout_lines=[],
                stderr_path=child.log_path, directory=root, ca=ca,
                atsigns={a: (_parse_hostport(addr), CRAM_SECRETS[a]) for a in group})
            for atsign in group:
                servers[atsign] = env
        cmd = [str(binary), "directory", "--listen", f"{root.host}:{root.port}", *tls]
        for atsign, env in servers.items():
            addr = env.server_address(atsign)
            cmd += ["--record", f"{atsign.lstrip('@')}={addr.host}:{addr.port}"]
        child, addr = _spawn_until("atdirectory", cmd, workdir,
                                   re.compile(r"atDirectory ready addr=(\S+)"))
        processes.append(child)
    except BaseException:
        for p in processes:
            stop_process(p)
        raise
    return Network(directory=root, ca=ca, keys_dir=keys_dir, servers=servers,
                   processes=processes)


def stop_network(net: Network) -> list[str]:
    """Stop every process; describe any that had died before it was asked to."""
    died = []
    for p in net.processes:
        crashed = stop_process(p)
        if crashed is not None:
            died.append(f"{p.name} exited with code {crashed} during the run")
    return died


@contextlib.contextmanager
def using_network(net: Network):
    """Point the SDK's process-wide state at `net` for the block: TLS trust (SSL_CERT_FILE),
    the .atKeys folder and the AtRootConnection singleton (so AtClient and the onboarding
    find both servers through net's directory). Restores whatever was there before (the
    session's single-server fixture, if it ran)."""
    old_cert, old_keys = os.environ.get("SSL_CERT_FILE"), KeysUtil.expected_keys_files_location
    old_root = AtRootConnection._AtRootConnection__instance
    os.environ["SSL_CERT_FILE"] = str(net.ca)
    KeysUtil.expected_keys_files_location = str(net.keys_dir) + os.sep
    AtRootConnection._AtRootConnection__instance = None
    try:
        yield net
    finally:
        mine = AtRootConnection._AtRootConnection__instance
        if mine is not None and mine.is_connected():
            mine.disconnect()
        AtRootConnection._AtRootConnection__instance = old_root
        KeysUtil.expected_keys_files_location = old_keys
        if old_cert is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert
