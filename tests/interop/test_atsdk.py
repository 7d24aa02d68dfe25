"""atserver driven by the official Python SDK (`atsdk` on PyPI, module `at_client`).

Every exchange goes through the SDK's own classes (AtClient, AtSecondaryConnection,
AtRootConnection, AuthUtil, OnboardingUtil, KeysUtil, verb builders). Exact replies are
asserted where the protocol notes fix them (/work/shared/protocol/*.md); the section is
cited next to each assertion. Wire transcripts of failing tests appear in the report.

SDK quirks worked around or avoided (atsdk 0.2.81):
* Metadata.from_json (used by get_at_keys(fetch_metadata=True)) overwrites ttl with ttln,
  so ttl is checked on the raw llookup:meta JSON and through get() (from_dict), never
  through get_at_keys.
* Its metadata fragment puts sharedKeyEnc/pubKeyCS before isBinary and can emit ttln,
  which the server grammar rejects (changes-since-2024-10.md §14); the keys used here
  set only ttl/dataSignature/isEncrypted/ivNonce, which come out in grammar order.
* AtRootConnection is a process-wide singleton, so the restart test talks to its second
  server instance directly (AtClient(secondary_address=...)) instead of via a directory.

Not covered here: anything between two atSigns. Shared keys and plookup of another
atSign across two atServers are in test_atsdk_s2s.py; notify and monitor in
test_atsdk_notify.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import signal
import time
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding

from at_client.atclient import AtClient
from at_client.common.atsign import AtSign
from at_client.common.keys import Keys, PublicKey, SelfKey
from at_client.connections.address import Address
from at_client.exception.atexception import (
    AtInvalidSyntaxException,
    AtKeyNotFoundException,
    AtSecondaryNotFoundException,
    AtUnauthenticatedException,
)
from at_client.util.authutil import AuthUtil
from at_client.util.encryptionutil import EncryptionUtil
from at_client.util.keysutil import KeysUtil
from at_client.util.onboardingutil import OnboardingUtil

from conftest import (
    UUID,
    CRAM_SECRETS,
    ServerStartError,
    exchanges,
    last_reply,
    launch_dev_server,
    new_connection,
    onboard,
    parse_json_data,
    root_connection,
    stop_dev_server,
    trusting,
)

ALICE = AtSign("@alice")
BOB = AtSign("@bob")

# keys-and-metadata.md §7.1: fixed key order of the metadata JSON.
METADATA_ORDER = ["createdBy", "updatedBy", "createdAt", "updatedAt", "availableAt",
                  "expiresAt", "refreshAt", "status", "version", "ttl", "ttb", "ttr", "ccd",
                  "isBinary", "isEncrypted", "dataSignature", "sharedKeyEnc", "pubKeyCS",
                  "encoding", "encKeyName", "encAlgo", "ivNonce", "skeEncKeyName",
                  "skeEncAlgo"]
DART_DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z"


def client_for(server, who) -> AtClient:
    """A new AtClient: directory lookup, new TLS connection, from + pkam with the keys
    read back from the .atKeys file. `who` is the onboarding fixture value."""
    return AtClient(AtSign(who.atsign), root_address=Address(server.directory.host,
                                                             server.directory.port))


def b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw).decode()[:-1]


def verify_signature(value: str, signature_b64: str, public_key_b64: str) -> None:
    EncryptionUtil.public_key_from_base64(public_key_b64).verify(
        base64.b64decode(signature_b64), value.encode(), rsa_padding.PKCS1v15(), hashes.SHA256())


# ------------------------------------------------------------------ the atDirectory

def test_directory_resolves_hosted_atsigns_to_the_atserver(server):
    """root.md §2: `alice\\n` -> `<host>:<port>\\r\\n@`; the SDK turns it into an Address."""
    root = root_connection(server)
    srv = server.server_address("@alice")
    for atsign in (ALICE, BOB):
        addr = root.find_secondary(atsign)
        assert (addr.host, addr.port) == (srv.host, srv.port)
        sent, reply = exchanges(root)[-1]
        assert sent == f"{atsign.without_prefix}\n"
        assert reply == f"{srv.host}:{srv.port}\r\n@"
    assert exchanges(root)[0] == (None, "@"), "directory must greet with '@'"


def test_directory_unknown_atsign_is_not_found_and_connection_stays_usable(server):
    """root.md §2: unknown atSign -> `null\\r\\n@`; the SDK raises AtSecondaryNotFoundException."""
    root = root_connection(server)
    with pytest.raises(AtSecondaryNotFoundException):
        root.find_secondary(AtSign("@nosuchatsign"))
    assert exchanges(root)[-1] == ("nosuchatsign\n", "null\r\n@")
    # several lookups may be made on one connection
    addr = root.find_secondary(ALICE)
    assert addr.port == server.server_address("@alice").port


# ------------------------------------------------------------------ onboarding / auth

def test_cram_onboarding_writes_an_atkeys_file_the_sdk_can_load(server, alice):
    """The whole cram onboarding sequence (each reply checked inside `onboard`), then the
    .atKeys file as the SDK writes it (clients.md §Authentication)."""
    commands = [s.split(" ")[0].split(":")[0] + ":" if s else None for s, _ in alice.steps]
    assert commands == [None, "from:", "cram:", "update:", "from:", "pkam:", "update:", "delete:"]
    on_disk = json.loads(alice.keys_file.read_text())
    assert set(on_disk) == {"selfEncryptionKey", "aesPkamPublicKey", "aesPkamPrivateKey",
                            "aesEncryptPublicKey", "aesEncryptPrivateKey"}
    assert len(base64.b64decode(on_disk["selfEncryptionKey"])) == 32
    assert KeysUtil.load_keys(ALICE) == alice.keys
    # RSA-2048 as the SDK generates them
    assert EncryptionUtil.public_key_from_base64(alice.keys["aesPkamPublicKey"]).key_size == 2048


def test_cram_fails_once_the_secret_is_deleted(server, alice):
    """auth.md §2 / verbs.md §2: after `delete:privatekey:at_secret`, cram gets AT0015."""
    conn = new_connection(server, "@alice")
    with pytest.raises(AtKeyNotFoundException):
        AuthUtil.authenticate_with_cram(conn, ALICE, CRAM_SECRETS["@alice"])
    (_, from_reply), (_, cram_reply) = exchanges(conn)[-2:]
    assert re.fullmatch(rf"data:_{UUID}@alice:{UUID}\n@", from_reply), from_reply
    assert cram_reply.startswith("error:AT0015-") and cram_reply.endswith("\n@"), cram_reply
    # the connection stays usable and unauthenticated
    assert conn.execute_command("lookup:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(conn) == "data:" + alice.keys["aesEncryptPublicKey"] + "\n@"


def test_pkam_login_with_onboarded_keys_on_a_new_connection(server, alice):
    """verbs.md §1/§3: from -> data:_<uuid>@alice:<uuid>; pkam -> data:success, prompt @alice@."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    ex = exchanges(conn)
    assert ex[0] == (None, "@")
    (from_cmd, from_reply), (pkam_cmd, pkam_reply) = ex[1:3]
    assert from_cmd == "from:@alice\n"
    m = re.fullmatch(rf"data:(_{UUID}@alice:{UUID})\n@", from_reply)
    assert m, from_reply
    sig = EncryptionUtil.sign_sha256_rsa(m.group(1), alice.keys["aesPkamPrivateKey"])
    assert pkam_cmd == f"pkam:{sig}\n"
    assert pkam_reply == "data:success\n@alice@"
    assert client.is_authenticated()
    # authenticated now: llookup is allowed and answers with the @alice@ prompt
    assert conn.execute_command("llookup:public:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(conn) == "data:" + alice.keys["aesEncryptPublicKey"] + "\n@alice@"


def test_pkam_with_a_foreign_key_is_refused(server, alice):
    """verbs.md §3 / conformance B10: bad signature -> error:AT0401-Exception: pkam
    authentication failed, prompt stays '@'."""
    conn = new_connection(server, "@alice")
    wrong = {}
    OnboardingUtil.generate_pkam_keypair(wrong)
    with pytest.raises(AtUnauthenticatedException):
        AuthUtil.authenticate_with_pkam(conn, ALICE, wrong)
    assert last_reply(conn) == "error:AT0401-Exception: pkam authentication failed\n@"
    # still usable, still unauthenticated
    with pytest.raises(AtUnauthenticatedException):
        conn.execute_command("llookup:public:publickey@alice")
    # and a correct pkam (fresh from:) now works on the same connection
    AuthUtil.authenticate_with_pkam(conn, ALICE, alice.keys)
    assert last_reply(conn) == "data:success\n@alice@"


# ------------------------------------------------------------------ keys

def test_self_key_put_get_delete_through_atclient(server, alice):
    """Self key: SDK encrypts (AES-CTR, random ivNonce) and signs; get decrypts with the
    ivNonce the server hands back in llookup:all (clients.md §Values and metadata)."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    value = "+44 20 7946 0958 ext: 12 @home"   # spaces, ':' and '@' inside the value
    key = SelfKey("phone", ALICE).set_namespace("interop")

    commit = client.put(key, value)
    sent, reply = exchanges(conn)[-1]
    iv = b64(key.metadata.iv_nonce)
    cipher = EncryptionUtil.aes_encrypt_from_base64(value, alice.keys["selfEncryptionKey"],
                                                    key.metadata.iv_nonce)
    assert sent == (f"update:dataSignature:{key.metadata.data_signature}:isEncrypted:true:"
                    f"ivNonce:{iv}:phone.interop@alice {cipher}\n")
    assert re.fullmatch(r"\d+", commit), reply          # verbs.md §5: data:<commitId>
    assert reply == f"data:{commit}\n@alice@"

    # stored encrypted, verbatim
    assert conn.execute_command("llookup:phone.interop@alice").get_raw_data_response() == cipher

    got_key = SelfKey("phone", ALICE).set_namespace("interop")
    assert client.get(got_key) == value
    assert exchanges(conn)[-1][0] == "llookup:all:phone.interop@alice\n"
    assert got_key.metadata.iv_nonce == key.metadata.iv_nonce
    assert got_key.metadata.data_signature == key.metadata.data_signature
    verify_signature(value, got_key.metadata.data_signature, alice.keys["aesEncryptPublicKey"])

    deleted = client.delete(SelfKey("phone", ALICE).set_namespace("interop"))
    assert exchanges(conn)[-1][0] == "delete:phone.interop@alice\n"
    assert re.fullmatch(r"\d+", deleted) and int(deleted) > int(commit), last_reply(conn)

    with pytest.raises(AtKeyNotFoundException):
        client.get(SelfKey("phone", ALICE).set_namespace("interop"))
    # verbs.md §7: owner-authenticated missing key
    assert last_reply(conn) == ("error:AT0015-key not found : phone.interop@alice does not "
                                "exist in keystore\n@alice@")


def test_public_key_put_get_delete_through_atclient(server, alice):
    """Public key with dataSignature: owner reads via llookup:all:public:, anyone via lookup."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    value = "London, UK"
    key = PublicKey("location", ALICE).set_namespace("interop")

    commit = client.put(key, value)
    sent, reply = exchanges(conn)[-1]
    sig = key.metadata.data_signature
    assert sent == f"update:dataSignature:{sig}:public:location.interop@alice {value}\n"
    assert re.fullmatch(r"\d+", commit) and reply == f"data:{commit}\n@alice@", reply

    got_key = PublicKey("location", ALICE).set_namespace("interop")
    assert client.get(got_key) == value
    assert exchanges(conn)[-1][0] == "llookup:all:public:location.interop@alice\n"
    assert got_key.metadata.data_signature == sig
    verify_signature(value, sig, alice.keys["aesEncryptPublicKey"])
    fetched = parse_json_data(last_reply(conn), "@alice@")
    assert fetched["key"] == "public:location.interop@alice"   # keys-and-metadata.md §7.2
    assert fetched["data"] == value

    # anyone (unauthenticated) can look it up; lookup reads public:<key>@alice (verbs.md §8)
    anon = new_connection(server, "@alice")
    assert anon.execute_command("lookup:location.interop@alice").get_raw_data_response() == value
    assert last_reply(anon) == f"data:{value}\n@"

    deleted = client.delete(PublicKey("location", ALICE).set_namespace("interop"))
    assert exchanges(conn)[-1][0] == "delete:public:location.interop@alice\n"
    assert re.fullmatch(r"\d+", deleted), last_reply(conn)

    with pytest.raises(AtKeyNotFoundException):
        client.get(PublicKey("location", ALICE).set_namespace("interop"))
    assert last_reply(conn) == ("error:AT0015-key not found : public:location.interop@alice "
                                "does not exist in keystore\n@alice@")
    with pytest.raises(AtKeyNotFoundException):
        anon.execute_command("lookup:location.interop@alice")
    assert last_reply(anon) == ("error:AT0015-Exception: public:location.interop@alice does "
                                "not exist in keystore\n@")


def test_metadata_round_trip_ttl_ivnonce_datasignature(server, alice):
    """keys-and-metadata.md §7: llookup:all / llookup:meta give back what update stored."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    value = "metadata round trip"
    key = SelfKey("meta", ALICE).set_namespace("interop").set_time_to_live(600000)
    commit = client.put(key, value)
    assert re.fullmatch(r"\d+", commit), last_reply(conn)
    sent = exchanges(conn)[-1][0]
    iv = b64(key.metadata.iv_nonce)
    sig = key.metadata.data_signature
    cipher = EncryptionUtil.aes_encrypt_from_base64(value, alice.keys["selfEncryptionKey"],
                                                    key.metadata.iv_nonce)
    # the SDK's fragment for this key is in the server grammar's order (verbs.md §0.1)
    assert sent == (f"update:ttl:600000:dataSignature:{sig}:isEncrypted:true:ivNonce:{iv}:"
                    f"meta.interop@alice {cipher}\n")

    conn.execute_command("llookup:all:meta.interop@alice")
    fetched = parse_json_data(last_reply(conn), "@alice@")
    assert list(fetched) == ["key", "data", "metaData"]
    assert fetched["key"] == "meta.interop@alice"
    assert fetched["data"] == cipher
    md = fetched["metaData"]
    assert md["ttl"] == 600000 and type(md["ttl"]) is int
    assert md["ivNonce"] == iv
    assert md["dataSignature"] == sig
    assert md["isEncrypted"] is True

    conn.execute_command("llookup:meta:meta.interop@alice")
    assert parse_json_data(last_reply(conn), "@alice@") == md

    # the SDK's own get() needs the ivNonce back to decrypt, and reads ttl from metaData
    got_key = SelfKey("meta", ALICE).set_namespace("interop")
    assert client.get(got_key) == value
    assert got_key.metadata.ttl == 600000
    assert got_key.metadata.iv_nonce == key.metadata.iv_nonce


def test_metadata_json_has_the_reference_shape(server, alice):
    """keys-and-metadata.md §7.1: createdBy, Dart-format UTC dates, expiresAt = createdAt
    + ttl, null fields omitted, fixed key order. (The SDK ignores most of this; other
    clients and tools compare it textually.)"""
    client = client_for(server, alice)
    conn = client.secondary_connection
    key = SelfKey("shape", ALICE).set_namespace("interop").set_time_to_live(600000)
    client.put(key, "shape")
    conn.execute_command("llookup:meta:shape.interop@alice")
    md = parse_json_data(last_reply(conn), "@alice@")
    assert md.get("createdBy") == "@alice"
    for field in ("createdAt", "updatedAt", "expiresAt"):
        assert re.fullmatch(DART_DATE, md.get(field) or ""), (field, md)
    lifetime = (datetime.strptime(md["expiresAt"], "%Y-%m-%d %H:%M:%S.%fZ")
                - datetime.strptime(md["createdAt"], "%Y-%m-%d %H:%M:%S.%fZ")).total_seconds()
    assert 598 <= lifetime <= 602, md
    assert all(v is not None for v in md.values()), "null fields are omitted (§7.1)"
    unknown = [k for k in md if k not in METADATA_ORDER]
    assert not unknown, f"unexpected metadata fields {unknown}"
    assert list(md) == sorted(md, key=METADATA_ORDER.index), "metadata key order (§7.1)"
    client.delete(key)


def test_scan_lists_our_keys_and_never_private_keys(server, alice):
    """verbs.md §11 and clients.md §Verbs: scan:showHidden:true <regex>, then llookup:meta
    per key; privatekey:/private: keys and keys without @owner must never be listed (the
    SDK's key parser crashes on them)."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    self_key = SelfKey("scan1", ALICE).set_namespace("interop")
    pub_key = PublicKey("scan2", ALICE).set_namespace("interop")
    client.put(self_key, "one")
    client.put(pub_key, "two")

    found = client.get_at_keys(r"scan\d\.interop@alice", fetch_metadata=True)
    scan_cmd = [s for s, _ in exchanges(conn) if s and s.startswith("scan")][-1]
    assert scan_cmd == "scan:showHidden:true scan\\d\\.interop@alice\n"
    by_name = {str(k): k for k in found}
    assert set(by_name) == {"scan1.interop@alice", "public:scan2.interop@alice"}
    assert isinstance(by_name["scan1.interop@alice"], SelfKey)
    assert isinstance(by_name["public:scan2.interop@alice"], PublicKey)
    # metadata came from llookup:meta:<key> for each listed key
    meta_cmds = sorted(s for s, _ in exchanges(conn) if s and s.startswith("llookup:meta:"))
    assert meta_cmds == ["llookup:meta:public:scan2.interop@alice\n",
                         "llookup:meta:scan1.interop@alice\n"]
    assert by_name["public:scan2.interop@alice"].metadata.data_signature \
        == pub_key.metadata.data_signature
    assert by_name["scan1.interop@alice"].metadata.iv_nonce == self_key.metadata.iv_nonce

    # everything: the SDK must be able to parse every listed key
    everything = client.get_at_keys(".*", fetch_metadata=False)
    names = [str(k) for k in everything]
    raw = json.loads(conn.execute_command("scan:showHidden:true .*").get_raw_data_response())
    assert "scan1.interop@alice" in raw and "public:scan2.interop@alice" in raw
    assert "public:publickey@alice" in raw
    # auth.md §0, verbs.md §11: the server's signing key pair is listed to the owner
    assert "public:signing_publickey@alice" in raw and "@alice:signing_privatekey@alice" in raw
    for name in raw:
        assert not name.startswith(("privatekey:", "private:")), raw
        assert "@" in name, raw
        assert name.endswith("@alice"), f"@bob's keys leaked into @alice's scan: {raw}"
        Keys.from_string(name)
    assert len(names) == len(raw)

    # (An unauthenticated `scan` is not tested: with several atSigns behind one port the
    # protocol does not say whose public keys it should list.)

    client.delete(self_key)
    client.delete(pub_key)


# ------------------------------------------------------------------ errors

def test_unknown_verb_is_at0003_and_connection_stays_usable(server, alice):
    """verbs.md §25, errors.md §6: error:AT0003-Invalid syntax : invalid command."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    with pytest.raises(AtInvalidSyntaxException):
        conn.execute_command("foo:bar")
    assert last_reply(conn) == "error:AT0003-Invalid syntax : invalid command\n@alice@"
    assert conn.execute_command("llookup:public:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(conn).endswith("\n@alice@")


def test_update_without_value_is_at0003_and_connection_stays_usable(server, alice):
    """verbs.md §5 (regex mismatch => AT0003), conformance D14."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    with pytest.raises(AtInvalidSyntaxException):
        conn.execute_command("update:phone@alice")
    reply = last_reply(conn)
    assert reply.startswith("error:AT0003-") and reply.endswith("\n@alice@"), reply
    # errors.md §5: the SDK splits at the first ':' after the code; it must be there
    assert ":" in reply[len("error:AT0003-"):], reply
    assert conn.execute_command("llookup:public:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]


def test_unauthenticated_llookup_is_at0401_and_connection_stays_usable(server, alice):
    """errors.md §3/§6, conformance C1: llookup needs auth; the connection stays open."""
    conn = new_connection(server, "@alice")
    with pytest.raises(AtUnauthenticatedException):
        conn.execute_command("llookup:phone.interop@alice")
    assert last_reply(conn) == "error:AT0401-Exception: Command cannot be executed without auth\n@"
    assert conn.execute_command("lookup:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(conn) == "data:" + alice.keys["aesEncryptPublicKey"] + "\n@"


def test_unauthenticated_lookup_of_missing_public_key_is_at0015(server, alice):
    """errors.md §6: error:AT0015-Exception: public:<key>@alice does not exist in keystore."""
    conn = new_connection(server, "@alice")
    with pytest.raises(AtKeyNotFoundException):
        conn.execute_command("lookup:nosuchkey.interop@alice")
    assert last_reply(conn) == ("error:AT0015-Exception: public:nosuchkey.interop@alice does "
                                "not exist in keystore\n@")
    assert conn.execute_command("lookup:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(conn) == "data:" + alice.keys["aesEncryptPublicKey"] + "\n@"


# ------------------------------------------------------------------ two atSigns

def test_second_atsign_onboards_and_logs_in_on_the_same_server(server, alice, bob):
    """@bob on the same atServer: own cram onboarding, own pkam, own keystore."""
    assert server.server_address("@bob").port == server.server_address("@alice").port
    client = client_for(server, bob)
    conn = client.secondary_connection
    assert exchanges(conn)[2][1] == "data:success\n@bob@"
    assert conn.execute_command("llookup:public:publickey@bob").get_raw_data_response() \
        == bob.keys["aesEncryptPublicKey"]
    assert last_reply(conn).endswith("\n@bob@")

    key = SelfKey("phone", BOB).set_namespace("interop")
    client.put(key, "bob's phone")
    assert client.get(SelfKey("phone", BOB).set_namespace("interop")) == "bob's phone"

    raw = json.loads(conn.execute_command("scan:showHidden:true .*").get_raw_data_response())
    assert "phone.interop@bob" in raw and "public:publickey@bob" in raw
    assert all(n.endswith("@bob") for n in raw), f"@alice's keys leaked into @bob's scan: {raw}"

    # alice's keys cannot be used to log in as bob
    other = new_connection(server, "@bob")
    with pytest.raises(AtUnauthenticatedException):
        AuthUtil.authenticate_with_pkam(other, BOB, alice.keys)
    assert last_reply(other) == "error:AT0401-Exception: pkam authentication failed\n@"

    # each atSign's public key is served separately (unauthenticated lookup)
    assert other.execute_command("lookup:publickey@bob").get_raw_data_response() \
        == bob.keys["aesEncryptPublicKey"]
    assert other.execute_command("lookup:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    client.delete(key)


# ------------------------------------------------------------------ values, expiry, framing

def test_utf8_public_value_round_trips_unescaped(server, alice):
    """wire.md §3 (value = rest of line, UTF-8), keys-and-metadata.md §7.2 (non-ASCII is
    emitted raw in the JSON)."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    value = "Zürich — 東京 🙂 a:b @c  two spaces"
    key = PublicKey("utf8", ALICE).set_namespace("interop")
    client.put(key, value)
    got = PublicKey("utf8", ALICE).set_namespace("interop")
    assert client.get(got) == value
    assert '"data":"' + value + '"' in last_reply(conn), last_reply(conn)
    anon = new_connection(server, "@alice")
    assert anon.execute_command("lookup:utf8.interop@alice").get_raw_data_response() == value
    assert last_reply(anon) == f"data:{value}\n@"
    client.delete(key)


def test_large_value_round_trips_and_the_reply_framing_holds(server, alice):
    """A 150 kB value: the SDK reads 1024-byte chunks until one holds '\n', so the reply
    and its prompt must arrive as one unit (clients.md §Framing). The next command on the
    same connection proves nothing was left behind."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    value = base64.b64encode(os.urandom(112 * 1024)).decode()   # ~150 kB, no newline
    key = PublicKey("large", ALICE).set_namespace("interop")
    commit = client.put(key, value)
    assert re.fullmatch(r"\d+", commit), last_reply(conn)[:200]
    assert client.get(PublicKey("large", ALICE).set_namespace("interop")) == value
    assert last_reply(conn).endswith("}\n@alice@")
    anon = new_connection(server, "@alice")
    assert anon.execute_command("lookup:large.interop@alice").get_raw_data_response() == value
    assert last_reply(anon) == f"data:{value}\n@"
    assert anon.execute_command("lookup:publickey@alice").get_raw_data_response() \
        == alice.keys["aesEncryptPublicKey"]
    assert last_reply(anon) == "data:" + alice.keys["aesEncryptPublicKey"] + "\n@"
    client.delete(key)


def test_expired_key_is_neither_listed_nor_returned(server, alice):
    """verbs.md §7/§11: after its ttl a key is not listed by scan; llookup answers
    data:null (reference, not yet purged) or AT0015 (purged; clients.md calls it the kinder
    answer for the SDK) -- both accepted."""
    client = client_for(server, alice)
    conn = client.secondary_connection
    key = SelfKey("ephemeral", ALICE).set_namespace("interop").set_time_to_live(1000)
    client.put(key, "short-lived")
    assert client.get(SelfKey("ephemeral", ALICE).set_namespace("interop")) == "short-lived"
    time.sleep(1.6)
    listed = json.loads(conn.execute_command("scan:showHidden:true .*").get_raw_data_response())
    assert "ephemeral.interop@alice" not in listed, listed
    conn.execute_command("llookup:ephemeral.interop@alice", raise_exception=False)
    reply = last_reply(conn)
    assert reply == "data:null\n@alice@" or (
        reply.startswith("error:AT0015-") and reply.endswith("\n@alice@")), reply


def test_every_connection_sees_the_same_keystore(server, alice):
    """Several concurrent AtClients for @alice (the server may place them on different
    shards): a write on one is visible on all, and so is a delete."""
    clients = [client_for(server, alice) for _ in range(4)]
    keys = [SelfKey(f"conn{i}", ALICE).set_namespace("interop") for i in range(len(clients))]
    for c, k in zip(clients, keys):
        c.put(k, f"written by {k.name}")
    for c in clients:
        for k in keys:
            assert c.get(SelfKey(k.name, ALICE).set_namespace("interop")) == f"written by {k.name}"
    for k in keys:
        clients[0].delete(SelfKey(k.name, ALICE).set_namespace("interop"))
    for c in clients:
        for k in keys:
            with pytest.raises(AtKeyNotFoundException):
                c.get(SelfKey(k.name, ALICE).set_namespace("interop"))


# ------------------------------------------------------------------ restart

@pytest.mark.deadline(40)
def test_onboarding_and_data_survive_a_restart(tmp_path):
    """A separate server instance: onboard, write, SIGTERM, start again on the same data
    folder (same --cram-secret): the secret stays deleted (conformance D28), pkam and the
    data are still there."""
    first = None
    try:
        first = launch_dev_server(tmp_path / "restart")
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    second = None
    try:
        with trusting(first):
            me = onboard(first, "@alice", via_directory=False)
            client = AtClient(ALICE, secondary_address=first.server_address("@alice"))
            client.put(SelfKey("durable", ALICE).set_namespace("interop"), "still here")
            client.put(PublicKey("durable", ALICE).set_namespace("interop"), "public and here")
            client.secondary_connection.disconnect()
        crashed, code = stop_dev_server(first)
        assert crashed is None, f"server died before SIGTERM (code {crashed}):\n{first.stderr()}"
        assert code in (0, -signal.SIGTERM), f"exit code {code} after SIGTERM:\n{first.stderr()}"

        try:
            second = launch_dev_server(tmp_path / "restart")
        except ServerStartError as e:
            pytest.fail(f"restart on the same data folder failed: {e}", pytrace=False)
        with trusting(second):
            assert KeysUtil.load_keys(ALICE) == me.keys
            conn = new_connection(second, "@alice", via_directory=False)
            with pytest.raises(AtKeyNotFoundException):
                AuthUtil.authenticate_with_cram(conn, ALICE, CRAM_SECRETS["@alice"])
            assert last_reply(conn).startswith("error:AT0015-"), last_reply(conn)
            assert conn.execute_command("lookup:durable.interop@alice").get_raw_data_response() \
                == "public and here"
            assert conn.execute_command("lookup:publickey@alice").get_raw_data_response() \
                == me.keys["aesEncryptPublicKey"]

            client = AtClient(ALICE, secondary_address=second.server_address("@alice"))
            assert last_reply(client.secondary_connection) == "data:success\n@alice@"
            assert client.get(SelfKey("durable", ALICE).set_namespace("interop")) == "still here"
    finally:
        for env in (first, second):
            if env is not None and env.proc.poll() is None:
                stop_dev_server(env)
