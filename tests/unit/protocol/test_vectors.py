"""Pinned test vectors: fixed inputs in, exact bytes, hashes and signatures out.

Why pin literals instead of comparing the code with itself: a change to the encoding, the
signing layout or the hashing would otherwise pass every round-trip test and silently fork the
chain from every node (and every other implementation) built before it.  Here such a change
fails until someone edits these literals on purpose.

The same values live in ``docs/spec/vectors.json`` for other implementations; a test asserts the
file equals :data:`EXPECTED` so the documentation and the tests cannot drift apart.  Ed25519
signatures are deterministic (RFC 8032), so the signatures are stable too.

To see what the current code produces (after a deliberate format change), run
``python -m tests.unit.protocol.test_vectors``; it prints the JSON and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gridchain.consensus.kernel.messages import Decision
from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.block import (
    BlockHeader,
    Certificate,
    Vote,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import Domain, SigningKey, sha256, sign_bytes, verify
from gridchain.protocol.encoding import decode
from gridchain.protocol.merkle import merkle_root
from gridchain.protocol.tx import Transaction, Transfer, decode_tx, sign_tx

VECTORS_JSON = Path(__file__).resolve().parents[3] / "docs" / "spec" / "vectors.json"

# --- inputs (the only free choices; everything else is derived) -----------------------------

SEED_A = bytes(range(32))
SEED_B_PREIMAGE = "gridchain test key 1"
CHAIN_ID_PREIMAGE = "gridchain test chain"
TRANSFER_NONCE = 7
TRANSFER_AMOUNT_MC = 12_345
TRANSFER_MEMO = "solar surplus 3 kWh ☀"  # one non-ASCII code point: str is UTF-8 on the wire
MERKLE_LEAVES = [f"gridchain leaf {i}".encode() for i in range(5)]
HEADER_HEIGHT = 1
HEADER_TIMESTAMP_MS = 1_700_000_000_000
HEADER_ROUND = 0
HEADER_BENEFIT = -42  # negative on purpose: exercises msgpack's signed integer formats
STATE_ROOT_PREIMAGE = "gridchain test state"
VOTE_ROUND = 0


def _key_entry(seed: bytes) -> dict[str, str]:
    key = SigningKey(seed)
    address = address_of(key.public_key)
    return {
        "seed": seed.hex(),
        "public_key": key.public_key.hex(),
        "address": address.hex(),
        "address_text": format_address(address),
    }


def build_vectors() -> dict[str, Any]:
    """Compute every vector from the inputs above with the code under test."""
    key_a = SigningKey(SEED_A)
    key_b = SigningKey(sha256(SEED_B_PREIMAGE.encode()))
    chain_id = sha256(CHAIN_ID_PREIMAGE.encode())

    body = Transfer(address_of(key_b.public_key), TRANSFER_AMOUNT_MC, TRANSFER_MEMO)
    tx = sign_tx(key_a, chain_id, TRANSFER_NONCE, body)
    payload = tx.payload.encode()

    header = BlockHeader(
        chain_id=chain_id,
        height=HEADER_HEIGHT,
        prev_hash=bytes(32),
        timestamp_ms=HEADER_TIMESTAMP_MS,
        proposer=key_a.public_key,
        round=HEADER_ROUND,
        benefit=HEADER_BENEFIT,
        tx_root=tx_root((tx,)),
        schedule_root=schedule_root(()),
        state_root=sha256(STATE_ROOT_PREIMAGE.encode()),
    )
    vote = Vote(HEADER_HEIGHT, VOTE_ROUND, header.hash(), int(VoteStep.COMMIT))
    vote_sig = vote.sign(key_a, chain_id)
    decision = Decision(Certificate(vote, (vote_sig,)))

    return {
        "keys": {
            "a": {"seed_source": "bytes 0x00..0x1f", **_key_entry(SEED_A)},
            "b": {
                "seed_source": f"sha256(utf8({SEED_B_PREIMAGE!r}))",
                **_key_entry(sha256(SEED_B_PREIMAGE.encode())),
            },
        },
        "chain_id": {
            "source": f"sha256(utf8({CHAIN_ID_PREIMAGE!r}))",
            "value": chain_id.hex(),
        },
        "transfer_tx": {
            "signer": "a",
            "nonce": TRANSFER_NONCE,
            "body": {
                "type": "Transfer",
                "to": body.to.hex(),
                "amount_mc": TRANSFER_AMOUNT_MC,
                "memo": TRANSFER_MEMO,
            },
            "payload_encoding": payload.hex(),
            "sign_bytes": sign_bytes(Domain.TX, chain_id, payload).hex(),
            "signature": tx.signature.hex(),
            "tx_encoding": tx.encode().hex(),
            "tx_hash": tx.hash().hex(),
        },
        "merkle": {
            "leaves": [leaf.hex() for leaf in MERKLE_LEAVES],
            "root_of_first_3": merkle_root(MERKLE_LEAVES[:3]).hex(),
            "root_of_5": merkle_root(MERKLE_LEAVES).hex(),
        },
        "block_header": {
            "fields": {
                "chain_id": header.chain_id.hex(),
                "height": header.height,
                "prev_hash": header.prev_hash.hex(),
                "timestamp_ms": header.timestamp_ms,
                "proposer": header.proposer.hex(),
                "round": header.round,
                "benefit": header.benefit,
                "tx_root": header.tx_root.hex(),
                "schedule_root": header.schedule_root.hex(),
                "state_root": header.state_root.hex(),
            },
            "notes": "tx_root is over [transfer_tx]; schedule_root is the empty-tree root; "
            f"state_root = sha256(utf8({STATE_ROOT_PREIMAGE!r}))",
            "encoding": header.encode().hex(),
            "hash": header.hash().hex(),
        },
        "vote": {
            "signer": "a",
            "fields": {
                "height": vote.height,
                "round": vote.round,
                "block_hash": vote.block_hash.hex(),
                "step": vote.step,
            },
            "encoding": vote.encode().hex(),
            "sign_bytes": sign_bytes(Domain.VOTE, chain_id, vote.encode()).hex(),
            "signature": vote_sig.signature.hex(),
        },
        "decision": {
            "notes": "the consensus Decision message (every engine's): a certificate of the vote "
            "above with key a's signature",
            "type_tag": Decision.TYPE_TAG,
            "encoding": decision.encode().hex(),
        },
    }


#: Pinned by hand from one run of build_vectors(); edit only for a deliberate format change.
EXPECTED: dict[str, Any] = {
    "keys": {
        "a": {
            "seed_source": "bytes 0x00..0x1f",
            "seed": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "public_key": "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
            "address": "56475aa75463474c0285df5dbf2bcab73da65135",
            "address_text": "gc156475aa75463474c0285df5dbf2bcab73da6513574b71442",
        },
        "b": {
            "seed_source": "sha256(utf8('gridchain test key 1'))",
            "seed": "0d1b5a77ee43730b88395cfd5ba55f82015c304c3ee2c9a014a7592d118b08f9",
            "public_key": "22dcf4b9475006fed19ba91ced2ae98fd67366860a8be7208b4472571b5e34d9",
            "address": "bb490950d70739843a2069cd553d11cbc30209bd",
            "address_text": "gc1bb490950d70739843a2069cd553d11cbc30209bd15231402",
        },
    },
    "chain_id": {
        "source": "sha256(utf8('gridchain test chain'))",
        "value": "92fb88abfe1aa1d8f27f7a9c70700a5913b7dd3891ae9e74d0f802bd55b6c62d",
    },
    "transfer_tx": {
        "signer": "a",
        "nonce": 7,
        "body": {
            "type": "Transfer",
            "to": "bb490950d70739843a2069cd553d11cbc30209bd",
            "amount_mc": 12345,
            "memo": "solar surplus 3 kWh ☀",
        },
        "payload_encoding": (
            "950101c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc86"
            "64125531b807951001c414bb490950d70739843a2069cd553d11cbc30209bdcd"
            "3039b7736f6c617220737572706c75732033206b576820e29880"
        ),
        "sign_bytes": (
            "67726964636861696e2f76312f74780092fb88abfe1aa1d8f27f7a9c70700a59"
            "13b7dd3891ae9e74d0f802bd55b6c62d950101c42003a107bff3ce10be1d70dd"
            "18e74bc09967e4d6309ba50d5f1ddc8664125531b807951001c414bb490950d7"
            "0739843a2069cd553d11cbc30209bdcd3039b7736f6c617220737572706c7573"
            "2033206b576820e29880"
        ),
        "signature": (
            "e39c28a6febd3cb2bcc9d5a7f12278b15683ca2a45aef40fc687ecdd09f113b4"
            "c767e1ad7b144e584c8bf765570ad9eb8c09d188930678418a96588bd1609b0e"
        ),
        "tx_encoding": (
            "960201c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc86"
            "64125531b807951001c414bb490950d70739843a2069cd553d11cbc30209bdcd"
            "3039b7736f6c617220737572706c75732033206b576820e29880c440e39c28a6"
            "febd3cb2bcc9d5a7f12278b15683ca2a45aef40fc687ecdd09f113b4c767e1ad"
            "7b144e584c8bf765570ad9eb8c09d188930678418a96588bd1609b0e"
        ),
        "tx_hash": "b71c58a15487ff97ca14fd58b34d08f7a014ce948f2050702975e6901f303f93",
    },
    "merkle": {
        "leaves": [
            "67726964636861696e206c6561662030",
            "67726964636861696e206c6561662031",
            "67726964636861696e206c6561662032",
            "67726964636861696e206c6561662033",
            "67726964636861696e206c6561662034",
        ],
        "root_of_first_3": "967f45aa61d9e2a4d39e78260c3923b8bdc9f530350b68d86faf469d790381e1",
        "root_of_5": "0fec406fd792d5c82905ef110c0577f66a8e239a3643694db14232a61264942b",
    },
    "block_header": {
        "fields": {
            "chain_id": "92fb88abfe1aa1d8f27f7a9c70700a5913b7dd3891ae9e74d0f802bd55b6c62d",
            "height": 1,
            "prev_hash": "0000000000000000000000000000000000000000000000000000000000000000",
            "timestamp_ms": 1700000000000,
            "proposer": "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
            "round": 0,
            "benefit": -42,
            "tx_root": "e5303b0011f72db133e532af740f76abe6c714be05c0d605da5a46e6ef39abdf",
            "schedule_root": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "state_root": "083b4205e512af1c8e70ba41cea6107b557739c00564498fea1aa5fc048fde1a",
        },
        "notes": (
            "tx_root is over [transfer_tx]; schedule_root is the empty-tree root; "
            "state_root = sha256(utf8('gridchain test state'))"
        ),
        "encoding": (
            "9c2001c42092fb88abfe1aa1d8f27f7a9c70700a5913b7dd3891ae9e74d0f802"
            "bd55b6c62d01c420000000000000000000000000000000000000000000000000"
            "0000000000000000cf0000018bcfe56800c42003a107bff3ce10be1d70dd18e7"
            "4bc09967e4d6309ba50d5f1ddc8664125531b800d0d6c420e5303b0011f72db1"
            "33e532af740f76abe6c714be05c0d605da5a46e6ef39abdfc420e3b0c44298fc"
            "1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855c420083b4205"
            "e512af1c8e70ba41cea6107b557739c00564498fea1aa5fc048fde1a"
        ),
        "hash": "bbd4903426385a23b9f7e2c97c33450ae3afea7b757003d5bff96dd711453181",
    },
    "vote": {
        "signer": "a",
        "fields": {
            "height": 1,
            "round": 0,
            "block_hash": "bbd4903426385a23b9f7e2c97c33450ae3afea7b757003d5bff96dd711453181",
            "step": 2,
        },
        "encoding": (
            "9623010100c420bbd4903426385a23b9f7e2c97c33450ae3afea7b757003d5bff96dd71145318102"
        ),
        "sign_bytes": (
            "67726964636861696e2f76312f766f74650092fb88abfe1aa1d8f27f7a9c7070"
            "0a5913b7dd3891ae9e74d0f802bd55b6c62d9623010100c420bbd4903426385a"
            "23b9f7e2c97c33450ae3afea7b757003d5bff96dd71145318102"
        ),
        "signature": (
            "67e951b336941c5012befb9dea9016e9c86df5e3be01b2c2280925fe61ee0d9a"
            "e91680934808bc936f5d139640fc40ae417fc2b9400587d267eb578b05fc7f01"
        ),
    },
    "decision": {
        "notes": (
            "the consensus Decision message (every engine's): a certificate of the vote "
            "above with key a's signature"
        ),
        "type_tag": 0x38,
        "encoding": (
            "9338019425019623010100c420bbd4903426385a23b9f7e2c97c33450ae3afea"
            "7b757003d5bff96dd7114531810291942401c42003a107bff3ce10be1d70dd18"
            "e74bc09967e4d6309ba50d5f1ddc8664125531b8c44067e951b336941c5012be"
            "fb9dea9016e9c86df5e3be01b2c2280925fe61ee0d9ae91680934808bc936f5d"
            "139640fc40ae417fc2b9400587d267eb578b05fc7f01"
        ),
    },
}


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return build_vectors()


@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_vector_section_matches_pinned_literals(built: dict[str, Any], section: str) -> None:
    """Each section separately, so a failure names what changed (keys, tx, Merkle, ...)."""
    assert built[section] == EXPECTED[section]


def test_no_section_unpinned(built: dict[str, Any]) -> None:
    """A vector added to build_vectors() but not pinned would otherwise go unchecked."""
    assert set(built) == set(EXPECTED)


def test_docs_vectors_json_equals_pinned_literals() -> None:
    """docs/spec/vectors.json is what other implementations check against: it must not drift."""
    on_disk = json.loads(VECTORS_JSON.read_text(encoding="utf-8"))
    assert on_disk["vectors"] == EXPECTED


def test_pinned_vectors_are_self_consistent() -> None:
    """The pinned values also satisfy the protocol's own checks (not just equal old output).

    If someone regenerates the literals from a broken build, a signature that no longer
    verifies or an encoding that no longer decodes is still caught here.
    """
    v = EXPECTED
    chain_id = bytes.fromhex(v["chain_id"]["value"])
    pk_a = bytes.fromhex(v["keys"]["a"]["public_key"])
    for entry in v["keys"].values():
        assert parse_address(entry["address_text"]).hex() == entry["address"]
        assert sha256(bytes.fromhex(entry["public_key"]))[:20].hex() == entry["address"]

    t = v["transfer_tx"]
    tx = decode_tx(bytes.fromhex(t["tx_encoding"]))
    assert isinstance(tx.body, Transfer)
    assert tx.sender == pk_a
    assert tx.body.memo == t["body"]["memo"]
    assert tx.signature.hex() == t["signature"]
    assert sha256(bytes.fromhex(t["tx_encoding"])).hex() == t["tx_hash"]
    tx.verify_signature(chain_id)
    assert t["sign_bytes"] == (
        b"gridchain/v1/tx\x00".hex() + chain_id.hex() + t["payload_encoding"]
    )

    h = v["block_header"]
    header = decode(bytes.fromhex(h["encoding"]), BlockHeader)
    assert header.benefit == h["fields"]["benefit"]
    assert header.tx_root == merkle_root([bytes.fromhex(t["tx_hash"])])
    assert sha256(bytes.fromhex(h["encoding"])).hex() == h["hash"]

    vote = v["vote"]
    assert vote["fields"]["block_hash"] == h["hash"]
    assert verify(
        pk_a,
        bytes.fromhex(vote["signature"]),
        Domain.VOTE,
        chain_id,
        bytes.fromhex(vote["encoding"]),
    )
    assert decode(bytes.fromhex(vote["encoding"]), Vote).step == vote["fields"]["step"]

    d = v["decision"]
    decision = decode(bytes.fromhex(d["encoding"]), Decision)
    assert d["type_tag"] == decision.TYPE_TAG
    assert decision.certificate.vote.encode().hex() == vote["encoding"]
    assert [s.signature.hex() for s in decision.certificate.signatures] == [vote["signature"]]
    assert [s.validator for s in decision.certificate.signatures] == [pk_a]


def test_transaction_encoding_starts_with_tag_and_version() -> None:
    """The first bytes of the pinned tx spell out the layout the spec documents."""
    raw = bytes.fromhex(EXPECTED["transfer_tx"]["tx_encoding"])
    # fixarray of 6 = [tag 0x02, version 1, sender, nonce, body, signature]
    assert raw[:3] == bytes([0x96, Transaction.TYPE_TAG, Transaction.VERSION])


if __name__ == "__main__":
    print(json.dumps(build_vectors(), indent=2, ensure_ascii=False))
