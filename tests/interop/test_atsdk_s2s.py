"""Two atServers driven by the official Python SDK: @alice and @bob each on their own
`atserver serve`, found through our `atserver directory`, one dev CA trusted by all
(server-to-server.md).

The issue's scenario: the SDK reads @alice's public key from @bob's side, creates a
shared key, and @bob reads and decrypts it. Every SDK command goes to the SDK user's own
server; whatever concerns the other atSign travels server to server (from/pol over mutual
TLS, then lookup:all on the other server). Wire exchanges of the SDK are asserted exactly
where the protocol notes fix them (clients.md §Verbs it sends, verbs.md), and the wire
transcript of a failing test is attached to the report.
"""

from __future__ import annotations

import re

import pytest

from at_client.atclient import AtClient
from at_client.common.atsign import AtSign
from at_client.common.keys import SharedKey
from at_client.connections.address import Address
from at_client.util.encryptionutil import EncryptionUtil

from conftest import (
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


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    try:
        net = launch_network(tmp_path_factory.mktemp("s2s"), ["@alice", "@bob"])
    except ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        with using_network(net):
            yield net
    finally:
        died = stop_network(net)
        if died:
            pytest.fail("; ".join(died) + "\n" + net.logs(), pytrace=False)


@pytest.fixture(scope="module")
def onboarded(network):
    """Both atSigns onboarded on their own servers (cram -> pkam key -> pkam -> public
    encryption key -> delete cram secret, every reply checked inside `onboard`), each
    found through the directory."""
    return {a: onboard(network.servers[a], a) for a in ("@alice", "@bob")}


def client(network, atsign: AtSign) -> AtClient:
    return AtClient(atsign, root_address=Address(network.directory.host, network.directory.port))


def sent_since(conn, start: int) -> list[str]:
    return [s for s, _ in exchanges(conn)[start:] if s is not None]


def test_the_atsigns_live_on_two_servers_found_through_one_directory(network, onboarded):
    alice_at = network.servers["@alice"].server_address("@alice")
    bob_at = network.servers["@bob"].server_address("@bob")
    assert alice_at.port != bob_at.port
    a, b = client(network, ALICE), client(network, BOB)
    assert (a.secondary_address.host, a.secondary_address.port) == (alice_at.host, alice_at.port)
    assert (b.secondary_address.host, b.secondary_address.port) == (bob_at.host, bob_at.port)
    # each server hosts only its own atSign: the other's keys are not local there
    b.secondary_connection.execute_command("llookup:public:publickey@alice", raise_exception=False)
    reply = exchanges(b.secondary_connection)[-1][1]
    assert reply.startswith("error:AT0015-") and reply.endswith("\n@bob@"), reply


@pytest.mark.deadline(60)
def test_sdk_shares_a_key_from_alice_and_bob_reads_it_through_his_own_server(network, onboarded):
    alice_keys, bob_keys = onboarded["@alice"].keys, onboarded["@bob"].keys

    # 1. @bob's SDK asks @bob's server for @alice's public key: plookup -> @alice's server.
    bob = client(network, BOB)
    bconn = bob.secondary_connection
    their_key = bob.get_public_encryption_key(ALICE)
    assert exchanges(bconn)[-1] == ("plookup:publickey@alice\n",
                                    "data:" + alice_keys["aesEncryptPublicKey"] + "\n@bob@"), \
        transcript_of(bconn)
    assert their_key == alice_keys["aesEncryptPublicKey"]

    # 2. @alice's SDK puts a key shared with @bob: no shared AES key yet, so it fetches
    #    @bob's public key through @alice's server, makes one, stores it twice (for itself
    #    and for @bob, each RSA-encrypted), then the AES-CTR-encrypted value.
    alice = client(network, ALICE)
    aconn = alice.secondary_connection
    start = len(exchanges(aconn))
    value = "Shared across servers: +44 20 7946 0958 @home"
    put_key = SharedKey("phone", ALICE, BOB).set_namespace("interop")
    commit = alice.put(put_key, value)
    sent = sent_since(aconn, start)
    replies = [r for _, r in exchanges(aconn)[start:]]
    assert len(sent) == 5 and [s.split(" ")[0] for s in sent[:4]] == [
        "llookup:shared_key.bob@alice\n",            # the SDK's own copy: none yet
        "plookup:publickey@bob\n",                   # via @alice's server -> @bob's
        "update:shared_key.bob@alice",               # AES key under @alice's RSA key
        "update:ttr:86400000:@bob:shared_key@alice",  # AES key under @bob's RSA key
    ], transcript_of(aconn)
    assert replies[0].startswith("error:AT0015-key not found") and replies[0].endswith("\n@alice@"), \
        replies[0]
    assert replies[1] == "data:" + bob_keys["aesEncryptPublicKey"] + "\n@alice@", replies[1]
    for r in replies[2:]:
        assert re.fullmatch(r"data:\d+\n@alice@", r), transcript_of(aconn)
    assert re.fullmatch(rf"update:isEncrypted:true:ivNonce:{B64}:@bob:phone\.interop@alice "
                        rf"{B64}\n", sent[4]), sent[4]
    assert re.fullmatch(r"\d+", commit), commit
    # what @alice stored for @bob is the shared AES key under @bob's RSA key
    for_bob = sent[3].split(" ", 1)[1].rstrip("\n")
    aes_key = EncryptionUtil.rsa_decrypt_from_base64(for_bob, bob_keys["aesEncryptPrivateKey"])
    for_alice = sent[2].split(" ", 1)[1].rstrip("\n")
    assert EncryptionUtil.rsa_decrypt_from_base64(for_alice, alice_keys["aesEncryptPrivateKey"]) \
        == aes_key
    # and @alice's SDK reads its own share back (llookup on @alice's server)
    assert alice.get(SharedKey("phone", ALICE, BOB).set_namespace("interop")) == value

    # 3. @bob's SDK reads it: lookup:shared_key@alice and lookup:all:phone.interop@alice,
    #    both answered by @bob's server from @alice's (pol as @bob), then decrypts.
    start = len(exchanges(bconn))
    got = bob.get(SharedKey("phone", ALICE, BOB).set_namespace("interop"))
    ex = exchanges(bconn)[start:]
    assert [s for s, _ in ex] == ["lookup:shared_key@alice\n",
                                  "lookup:all:phone.interop@alice\n"], transcript_of(bconn)
    assert ex[0][1] == f"data:{for_bob}\n@bob@", ex[0][1]
    fetched = parse_json_data(ex[1][1], "@bob@")
    assert fetched["data"] == sent[4].split(" ", 1)[1].rstrip("\n")
    assert fetched["metaData"]["ivNonce"] == sent[4].split(":")[4]
    assert fetched["metaData"]["isEncrypted"] is True
    assert got == value
    assert bob.keys["@bob:shared_key@alice"] == aes_key

    # A second read on the same connection (the pooled s2s connection, warm) still works.
    assert bob.get(SharedKey("phone", ALICE, BOB).set_namespace("interop")) == value
    # and @bob cannot read what was not shared with him
    bconn.execute_command("lookup:nosuchkey.interop@alice", raise_exception=False)
    reply = exchanges(bconn)[-1][1]
    assert reply.startswith("error:AT0015-") and reply.endswith("\n@bob@"), reply
