"""sync, stats:3, batch and APKAM enrollment, spoken through the official Python SDK's own
connection code (atsdk 0.2.81).

The SDK itself sends none of these verbs (it has no sync, no batch, no enroll), so the
tests write them with the SDK's `AtSecondaryConnection.execute_command` on connections the
SDK opened, TLS-wrapped and authenticated itself, and do every piece of cryptography with
the SDK's own helpers (EncryptionUtil: RSA-2048 key pairs, PKCS#1 v1.5 SHA-256 signatures,
RSA encryption, AES-CTR). Keys are written and read back with AtClient.put/get/delete where
the SDK can do it. What this proves is that the SDK's framing (it reads until a chunk holds
'\\n'), its reply parser (`data:` / `error:ATxxxx`) and its key formats interoperate with:

* `sync:from:<id>[:limit:<n>][:<regex>]` and `stats:3` (sync.md §3, changes §3): every key
  the SDK wrote appears once, with its latest value and commit id; a delete replaces it by
  an operation `-` entry with null value and metadata; paging with `limit:2` reaches the
  `stats:3` id; the metadata (all strings) carries what the SDK needs to decrypt a self key.
* `batch:[…]`: per-command answers, and keys a batch wrote are read by the SDK's own get
  (decrypting an encrypted self key) and by an anonymous lookup.
* APKAM (auth.md §4): `otp:get`, `enroll:request` on an unauthenticated SDK connection,
  `enroll:list` / `enroll:approve` by the owner, pkam with the enrollment's key
  (`pkam:signingAlgo:rsa2048:hashingAlgo:sha256:enrollmentId:<id>:<sig>`), `keys:get` of the
  keys the approver encrypted for it, namespace-limited access and sync, `enroll:revoke`
  closing the enrolled connection.

All keys live in the `isync` namespace (and `iother` for the namespace-limit checks), so
the tests hold whatever other test files of the session wrote before them.

SDK quirks worked around (atsdk 0.2.81):
* Its reply parser keeps everything after `data:`, so `stats:3`'s `data: [...]` (a space
  after the colon, as the reference sends it) comes back with a leading space; json.loads
  does not mind, and the exact bytes are checked on the recorded wire.
* PKAMVerbBuilder only builds `pkam:<signature>` (no enrollmentId), so the APKAM pkam line
  is written by hand around the SDK's own signature (EncryptionUtil.sign_sha256_rsa).
* AtConnection.read loops forever on a closed socket (an empty chunk holds no '\\n'), so
  the "connection closed" check reads the SDK's TLS socket directly, with a timeout.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding

from at_client.atclient import AtClient
from at_client.common.atsign import AtSign
from at_client.common.keys import PublicKey, SelfKey
from at_client.connections.address import Address
from at_client.exception.atexception import AtUnauthorizedException
from at_client.util.encryptionutil import EncryptionUtil

from conftest import (
    UUID,
    exchanges,
    last_reply,
    new_connection,
    parse_json_data,
    transcript_of,
)

ALICE = AtSign("@alice")
NS = "isync"
PROMPT = "@alice@"
ENTRY_FIELDS = ["atKey", "value", "metadata", "commitId", "operation"]


def client_for(server, who) -> AtClient:
    """A new AtClient: directory lookup, new TLS connection, from + pkam (the SDK's own)."""
    return AtClient(AtSign(who.atsign), root_address=Address(server.directory.host,
                                                             server.directory.port))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def last_commit_id(conn, regex: str | None = None) -> int:
    """`stats:3[:<regex>]` -> lastCommitID, with the reply's exact shape checked."""
    cmd = "stats:3" if regex is None else f"stats:3:{regex}"
    raw = conn.execute_command(cmd).get_raw_data_response()
    reply = last_reply(conn)
    m = re.fullmatch(r'data: \[\{"id":"3","name":"lastCommitID","value":"(-?\d+)"\}\]\n'
                     + re.escape(PROMPT), reply)
    assert m, f"{cmd}: {reply!r}"
    assert json.loads(raw) == [{"id": "3", "name": "lastCommitID", "value": m.group(1)}]
    return int(m.group(1))


def sync_page(conn, from_id: int, limit: int, regex: str | None = None) -> list[dict]:
    cmd = f"sync:from:{from_id}:limit:{limit}" + (f":{regex}" if regex else "")
    conn.execute_command(cmd)
    page = parse_json_data(last_reply(conn), PROMPT)
    assert isinstance(page, list), page
    for entry in page:
        assert list(entry) == ENTRY_FIELDS, entry
        assert type(entry["commitId"]) is int, entry
        assert entry["operation"] in ("+", "*", "-"), entry
        if entry["operation"] == "-":
            assert entry["value"] is None and entry["metadata"] is None, entry
        else:
            assert isinstance(entry["metadata"], dict), entry
            assert all(type(v) is str for v in entry["metadata"].values()), \
                f"sync metadata values must all be strings: {entry}"
    ids = [e["commitId"] for e in page]
    assert ids == sorted(set(ids)) and all(i > from_id for i in ids), f"{cmd}: {ids}"
    return page


def sync_all(conn, limit: int, until: int) -> list[dict]:
    """Page from -1 with `limit` until the page holding `until` (or an empty page)."""
    entries: list[dict] = []
    from_id = -1
    for _ in range(10_000 // limit):
        page = sync_page(conn, from_id, limit)
        assert len(page) <= limit, page
        if not page:
            break
        entries += page
        from_id = page[-1]["commitId"]
        if from_id >= until:
            break
    return entries


def mine(entries: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in entries:
        if f".{NS}@" in e["atKey"]:
            out.setdefault(e["atKey"], []).append(e)
    return out


def verify_signature(value: str, signature_b64: str, public_key_b64: str) -> None:
    EncryptionUtil.public_key_from_base64(public_key_b64).verify(
        base64.b64decode(signature_b64), value.encode(), rsa_padding.PKCS1v15(), hashes.SHA256())


def assert_closed_by_server(conn, seconds: float = 3.0) -> None:
    """The server closed `conn`: its TLS socket reads EOF (or a reset) within `seconds`."""
    sock = conn._secure_root_socket
    sock.settimeout(seconds)
    try:
        data = sock.recv(1024)
    except socket.timeout:
        pytest.fail(f"the server did not close the connection within {seconds}s\n"
                    + transcript_of(conn))
    except (ConnectionError, ssl.SSLError, OSError):
        return
    assert data == b"", f"bytes after the last reply instead of a close: {data!r}"


# ------------------------------------------------------------------ sync and stats:3

def test_sync_carries_each_key_the_sdk_wrote_once_with_its_latest_state(server, alice):
    client = client_for(server, alice)
    conn = client.secondary_connection
    before = last_commit_id(conn)

    s1 = SelfKey("s1", ALICE).set_namespace(NS)
    c1 = int(client.put(s1, "first value"))
    p1 = PublicKey("p1", ALICE).set_namespace(NS)
    c2 = int(client.put(p1, "public value"))
    c3 = int(client.put(SelfKey("gone", ALICE).set_namespace(NS), "short-lived"))
    s1 = SelfKey("s1", ALICE).set_namespace(NS)     # a fresh key object: a fresh ivNonce
    c4 = int(client.put(s1, "second value"))
    c5 = int(client.delete(SelfKey("gone", ALICE).set_namespace(NS)))
    assert before < c1 < c2 < c3 < c4 < c5, (before, c1, c2, c3, c4, c5)
    assert last_commit_id(conn) == c5

    # Everything since `before`: one entry per key, latest first-to-last by commit id.
    page = sync_page(conn, before, 100)
    assert [(e["atKey"], e["commitId"], e["operation"]) for e in page] == [
        (f"public:p1.{NS}@alice", c2, "*"),
        (f"s1.{NS}@alice", c4, "*"),
        (f"gone.{NS}@alice", c5, "-"),
    ], page
    pub, self_entry, deleted = page
    assert pub["value"] == "public value"
    assert pub["metadata"]["dataSignature"] == p1.metadata.data_signature
    assert pub["metadata"]["createdBy"] == "@alice"
    verify_signature("public value", pub["metadata"]["dataSignature"],
                     alice.keys["aesEncryptPublicKey"])
    # The self key arrives encrypted, with the string metadata the SDK needs to decrypt it.
    md = self_entry["metadata"]
    assert md["isEncrypted"] == "true" and md["ivNonce"] == b64(s1.metadata.iv_nonce), md
    assert md["dataSignature"] == s1.metadata.data_signature
    assert EncryptionUtil.aes_decrypt_from_base64(
        self_entry["value"], alice.keys["selfEncryptionKey"],
        base64.b64decode(md["ivNonce"])) == "second value"
    assert deleted == {"atKey": f"gone.{NS}@alice", "value": None, "metadata": None,
                       "commitId": c5, "operation": "-"}
    # The exact bytes of the delete entry, as the SDK read them.
    assert (f'{{"atKey":"gone.{NS}@alice","value":null,"metadata":null,"commitId":{c5},'
            f'"operation":"-"}}]\n{PROMPT}') in last_reply(conn)

    # Nothing after the newest id.
    assert sync_page(conn, c5, 10) == []
    assert last_reply(conn) == f"data:[]\n{PROMPT}"

    # A regex narrows the page (and stats:3 with the same regex names its newest entry).
    narrowed = sync_page(conn, before, 100, rf"s1\.{NS}")
    assert [e["atKey"] for e in narrowed] == [f"s1.{NS}@alice"], narrowed
    assert last_commit_id(conn, rf"s1\.{NS}") == c4

    # From -1 in pages of two, up to the stats:3 id: every key once, ids ascending.
    last = last_commit_id(conn)
    entries = sync_all(conn, 2, last)
    ids = [e["commitId"] for e in entries]
    assert ids == sorted(set(ids)), ids
    assert ids[-1] == last == c5
    keys = [e["atKey"] for e in entries]
    assert len(keys) == len(set(keys)), f"a key synced twice: {keys}"
    assert {k: [e["commitId"] for e in v] for k, v in mine(entries).items()} == {
        f"public:p1.{NS}@alice": [c2], f"s1.{NS}@alice": [c4], f"gone.{NS}@alice": [c5]}
    # The onboarding's public encryption key is there with the value the SDK stored.
    published = [e for e in entries if e["atKey"] == "public:publickey@alice"]
    assert len(published) == 1 and published[0]["value"] == alice.keys["aesEncryptPublicKey"]

    client.delete(SelfKey("s1", ALICE).set_namespace(NS))
    client.delete(PublicKey("p1", ALICE).set_namespace(NS))


# ------------------------------------------------------------------ batch

def test_batch_writes_that_the_sdks_own_get_and_lookup_read_back(server, alice):
    client = client_for(server, alice)
    conn = client.secondary_connection
    before = last_commit_id(conn)

    iv = EncryptionUtil.generate_iv_nonce()
    secret = "batched secret: a:b @c"
    cipher = EncryptionUtil.aes_encrypt_from_base64(secret, alice.keys["selfEncryptionKey"], iv)
    commands = [
        {"id": 1, "command": f"update:public:b1.{NS}@alice hello from a batch"},
        {"id": 2, "command": f"update:isEncrypted:true:ivNonce:{b64(iv)}:b2.{NS}@alice {cipher}"},
        {"id": 3, "command": f"llookup:public:b1.{NS}@alice"},
        {"id": 4, "command": f"llookup:nokey.{NS}@alice"},
    ]
    raw = conn.execute_command("batch:" + json.dumps(commands, separators=(",", ":")))
    answers = parse_json_data(last_reply(conn), PROMPT)
    assert json.loads(raw.get_raw_data_response()) == answers
    assert [a["id"] for a in answers] == [1, 2, 3, 4], answers
    n1, n2 = int(answers[0]["response"]["data"]), int(answers[1]["response"]["data"])
    assert before < n1 < n2, answers
    assert answers == [
        {"id": 1, "response": {"data": str(n1)}},
        {"id": 2, "response": {"data": str(n2)}},
        {"id": 3, "response": {"data": "hello from a batch"}},
        {"id": 4, "response": {"error_code": "AT0015", "error_message": "key not found"}},
    ], last_reply(conn)
    assert last_commit_id(conn) == n2

    # The SDK's own get: llookup:all, then AES-CTR with the ivNonce the batch stored.
    got = SelfKey("b2", ALICE).set_namespace(NS)
    assert client.get(got) == secret
    assert exchanges(conn)[-1][0] == f"llookup:all:b2.{NS}@alice\n"
    assert got.metadata.iv_nonce == iv
    assert client.get(PublicKey("b1", ALICE).set_namespace(NS)) == "hello from a batch"
    anon = new_connection(server, "@alice")
    assert anon.execute_command(f"lookup:b1.{NS}@alice").get_raw_data_response() \
        == "hello from a batch"
    assert last_reply(anon) == "data:hello from a batch\n@"

    # Both batched writes are in the log like any other.
    page = sync_page(conn, before, 100)
    assert [(e["atKey"], e["commitId"], e["operation"]) for e in page] == [
        (f"public:b1.{NS}@alice", n1, "*"), (f"b2.{NS}@alice", n2, "*")], page

    client.delete(PublicKey("b1", ALICE).set_namespace(NS))
    client.delete(SelfKey("b2", ALICE).set_namespace(NS))


# ------------------------------------------------------------------ APKAM

def test_apkam_enrollment_from_otp_to_revoke_with_the_sdks_keys(server, alice):
    owner = client_for(server, alice)
    manager = owner.secondary_connection

    # The owner hands out a one-time passcode.
    otp = manager.execute_command("otp:get").get_raw_data_response()
    assert re.fullmatch(r"[0-9A-Za-z]{6}", otp), last_reply(manager)
    assert last_reply(manager) == f"data:{otp}\n{PROMPT}"

    # The new device: its own RSA-2048 pkam pair and an AES APKAM key, encrypted for the
    # owner with the public encryption key it looks up (all with the SDK's helpers).
    priv_der, pub_der = EncryptionUtil.generate_rsa_key_pair()
    apkam_private, apkam_public = b64(priv_der), b64(pub_der)
    apkam_symmetric = EncryptionUtil.generate_aes_key_base64()
    device = new_connection(server, "@alice")
    owner_public = device.execute_command("lookup:publickey@alice").get_raw_data_response()
    assert owner_public == alice.keys["aesEncryptPublicKey"]
    encrypted_symmetric = EncryptionUtil.rsa_encrypt_to_base64(apkam_symmetric, owner_public)
    challenge = device.execute_command("from:@alice").get_raw_data_response()
    assert re.fullmatch(rf"_{UUID}@alice:{UUID}", challenge), last_reply(device)
    request = {"appName": "interop", "deviceName": "pytest", "namespaces": {NS: "rw"},
               "otp": otp, "apkamPublicKey": apkam_public,
               "encryptedAPKAMSymmetricKey": encrypted_symmetric}
    device.execute_command("enroll:request:" + json.dumps(request, separators=(",", ":")))
    pending = parse_json_data(last_reply(device), "@")
    enrollment_id = pending.get("enrollmentId", "")
    assert re.fullmatch(UUID, enrollment_id) and pending == {
        "enrollmentId": enrollment_id, "status": "pending"}, last_reply(device)
    record_key = f"{enrollment_id}.new.enrollments.__manage@alice"

    # The owner sees the request and recovers the APKAM key with its private key.
    manager.execute_command("enroll:list")
    listed = parse_json_data(last_reply(manager), PROMPT)
    assert record_key in listed, listed
    entry = listed[record_key]
    assert entry["status"] == "pending" and entry["appName"] == "interop"
    assert entry["deviceName"] == "pytest" and entry["namespace"] == {NS: "rw"}, entry
    assert entry["apkamPublicKey"] == apkam_public
    recovered = EncryptionUtil.rsa_decrypt_from_base64(entry["encryptedAPKAMSymmetricKey"],
                                                       alice.keys["aesEncryptPrivateKey"])
    assert recovered == apkam_symmetric

    # ... and approves, sending its keys encrypted with it (AES-CTR, random IVs).
    enc_iv, self_iv = EncryptionUtil.generate_iv_nonce(), EncryptionUtil.generate_iv_nonce()
    enc_private = EncryptionUtil.aes_encrypt_from_base64(alice.keys["aesEncryptPrivateKey"],
                                                         recovered, enc_iv)
    enc_self = EncryptionUtil.aes_encrypt_from_base64(alice.keys["selfEncryptionKey"],
                                                      recovered, self_iv)
    approve = {"enrollmentId": enrollment_id,
               "encryptedDefaultEncryptionPrivateKey": enc_private,
               "encryptedDefaultSelfEncryptionKey": enc_self,
               "encPrivateKeyIV": b64(enc_iv), "selfEncKeyIV": b64(self_iv)}
    manager.execute_command("enroll:approve:" + json.dumps(approve, separators=(",", ":")))
    assert last_reply(manager) == (f'data:{{"status":"approved","enrollmentId":'
                                   f'"{enrollment_id}"}}\n{PROMPT}')

    # The device logs in with its enrollment: from, then pkam signed by the SDK's helper.
    challenge = device.execute_command("from:@alice").get_raw_data_response()
    assert re.fullmatch(rf"_{UUID}@alice:{UUID}", challenge), last_reply(device)
    signature = EncryptionUtil.sign_sha256_rsa(challenge, apkam_private)
    device.execute_command(f"pkam:signingAlgo:rsa2048:hashingAlgo:sha256:"
                           f"enrollmentId:{enrollment_id}:{signature}")
    assert last_reply(device) == f"data:success\n{PROMPT}"

    # Its keys, decrypted with the APKAM key: the owner's very keys.
    device.execute_command(
        f"keys:get:keyName:{enrollment_id}.default_enc_private_key.__manage@alice")
    got = parse_json_data(last_reply(device), PROMPT)
    assert got == {"value": enc_private, "iv": b64(enc_iv)}, got
    assert EncryptionUtil.aes_decrypt_from_base64(got["value"], apkam_symmetric,
                                                  base64.b64decode(got["iv"])) \
        == alice.keys["aesEncryptPrivateKey"]
    device.execute_command(f"keys:get:keyName:{enrollment_id}.default_self_enc_key.__manage@alice")
    got = parse_json_data(last_reply(device), PROMPT)
    assert got == {"value": enc_self, "iv": b64(self_iv)}, got
    device_self_key = EncryptionUtil.aes_decrypt_from_base64(got["value"], apkam_symmetric,
                                                             base64.b64decode(got["iv"]))
    assert device_self_key == alice.keys["selfEncryptionKey"]

    # With them it reads what the owner's SDK wrote in its namespace, and only there.
    before = last_commit_id(manager)
    inside = SelfKey("apkam", ALICE).set_namespace(NS)
    c_inside = int(owner.put(inside, "for the new device"))
    c_outside = int(owner.put(SelfKey("outside", ALICE).set_namespace("iother"), "not yours"))
    assert before < c_inside < c_outside
    device.execute_command(f"llookup:all:apkam.{NS}@alice")
    fetched = parse_json_data(last_reply(device), PROMPT)
    assert EncryptionUtil.aes_decrypt_from_base64(
        fetched["data"], device_self_key,
        base64.b64decode(fetched["metaData"]["ivNonce"])) == "for the new device"
    with pytest.raises(AtUnauthorizedException):
        device.execute_command("llookup:outside.iother@alice")
    assert last_reply(device).startswith("error:AT0009-"), last_reply(device)
    assert last_reply(device).endswith(f"\n{PROMPT}"), last_reply(device)
    # Its sync carries its namespace only; nobody's sync carries the __manage records.
    device_keys = [e["atKey"] for e in sync_page(device, before, 100)]
    assert device_keys == [f"apkam.{NS}@alice"], device_keys
    owner_keys = [e["atKey"] for e in sync_page(manager, before, 100)]
    assert owner_keys == [f"apkam.{NS}@alice", "outside.iother@alice"], owner_keys
    assert not any("__manage" in k for k in owner_keys + device_keys)

    # Revoked: the device's next command gets AT0027 and its connection is closed.
    manager.execute_command(f'enroll:revoke:{{"enrollmentId":"{enrollment_id}"}}')
    revoked = parse_json_data(last_reply(manager), PROMPT)
    assert revoked["status"] == "revoked" and revoked["enrollmentId"] == enrollment_id, revoked
    device.execute_command(f"llookup:all:apkam.{NS}@alice", raise_exception=False)
    assert last_reply(device) == \
        f"error:AT0027:enrollment_id: {enrollment_id} is revoked\n{PROMPT}"
    assert_closed_by_server(device)
    # ... and pkam with the revoked enrollment is refused on a new connection.
    again = new_connection(server, "@alice")
    challenge = again.execute_command("from:@alice").get_raw_data_response()
    signature = EncryptionUtil.sign_sha256_rsa(challenge, apkam_private)
    again.execute_command(f"pkam:signingAlgo:rsa2048:hashingAlgo:sha256:"
                          f"enrollmentId:{enrollment_id}:{signature}", raise_exception=False)
    assert last_reply(again) == f"error:AT0027:enrollment_id: {enrollment_id} is revoked\n@"

    owner.delete(SelfKey("apkam", ALICE).set_namespace(NS))
    owner.delete(SelfKey("outside", ALICE).set_namespace("iother"))
