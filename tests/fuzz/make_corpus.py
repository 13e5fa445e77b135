"""Regenerate the fuzzers' seed corpus: ``python -m tests.fuzz.make_corpus``.

The seeds are valid encodings of every type each target decodes: consensus messages, blocks
and certificates as the three engines' simulators (tests/sim) produce them for a few seeds,
and transactions of every body, meter readings, p2p frames and a keystore built here from
fixed keys.  Everything is deterministic, so regenerating gives the same files.  Files named
``regress-*`` are inputs a fuzzer once found; they are kept, never regenerated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from gridchain.consensus.epob import messages as epob
from gridchain.consensus.pbft import messages as pbft
from gridchain.consensus.pob import messages as pob
from gridchain.node.p2p import frames
from gridchain.protocol import encoding, keystore
from gridchain.protocol.address import address_of
from gridchain.protocol.block import Certificate, CommittedBlock
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.sealed import seal_tx
from gridchain.protocol.sealed_read import ReadKind, ReadQuery, sign_read
from gridchain.protocol.tx import (
    AmendOrder,
    Burn,
    CancelOrder,
    CDRequest,
    MeterReadings,
    Mint,
    PlaceOrder,
    RegisterMeter,
    RegisterParticipant,
    Transaction,
    Transfer,
    TxBody,
    sign_tx,
)
from tests.fuzz import CORPUS
from tests.fuzz.targets import (
    FUZZ_ENCRYPTION_KEYS,
    FUZZ_NOW_MS,
    FUZZ_SEAL,
    KEYSTORE_PASSWORD,
    install_cheap_kdf,
)
from tests.sim.cluster import run_seed
from tests.sim.epob_cluster import run_epob_seed
from tests.sim.pob_cluster import run_pob_seed

#: Distinct encodings kept per record type (the smallest ones seen: small seeds mutate fast).
KEEP = 3
#: Seeds of each simulator whose messages are recorded (they cover several scenarios).
SIM_SEEDS = range(8)
MAX_SEED_BYTES = 16 * 1024

Captured = dict[type[Record], set[bytes]]


@contextmanager
def recording() -> Iterator[Captured]:
    """Record every encoding made while the block runs, by record type."""
    seen: Captured = {}
    original = encoding.encode

    def record(value: Record) -> bytes:
        data = original(value)
        if len(data) <= MAX_SEED_BYTES:
            seen.setdefault(type(value), set()).add(data)
        return data

    encoding.encode = record
    try:
        yield seen
    finally:
        encoding.encode = original


def smallest(captured: Captured, cls: type[Record], keep: int = KEEP) -> list[bytes]:
    return sorted(captured.get(cls, ()), key=lambda b: (len(b), b))[:keep]


def _key(n: int) -> SigningKey:
    return SigningKey(sha256(f"fuzz-corpus-{n}".encode()))


def _transactions(chain_id: bytes) -> list[Transaction]:
    """One signed transaction of every body type."""
    key, other = _key(0), _key(1)
    to = address_of(other.public_key)
    record = ReadingRecord("meter-1", 0, 900_000, 1500, 20, -350, 2301, 0, 0, GENESIS_READING_HASH)
    bodies: list[TxBody] = [
        Transfer(to, 5, "fuzz"),
        RegisterParticipant(other.public_key, "alice"),
        Mint(to, 1000),
        Burn(to, 10),
        PlaceOrder(1, 100, 1, 0, 250_000, 1000, 100, 0),
        CancelOrder(b"\x01" * 32),
        AmendOrder(b"\x02" * 32, 240_000, 900),
        RegisterMeter("meter-1", to, 1, other.public_key, "generic-int16"),
        MeterReadings((sign_reading(other, chain_id, record),)),
        CDRequest(1, 3, 0, 3_600_000, 5000, 7000, 300_000, "meter-1"),
    ]
    return [sign_tx(key, chain_id, n, body) for n, body in enumerate(bodies)]


def _sealed_seeds(chain_id: bytes) -> list[bytes]:
    """Sealed transactions the fuzz target's validator 0 opens (an order, a transfer, a
    cancel), for its fixed chain and encryption keys."""
    keys = FUZZ_SEAL.encryption_keys
    key = _key(0)
    to = address_of(_key(1).public_key)
    bodies: list[TxBody] = [
        PlaceOrder(1, 100, 1, 0, 250_000, 1000, 100, 0),
        Transfer(to, 5, "fuzz"),
        CancelOrder(b"\x01" * 32),
    ]
    return [
        seal_tx(key, chain_id, n, body, keys, content_key=sha256(b"fuzz-content-%d" % n)).encode()
        for n, body in enumerate(bodies)
    ]


def _sealed_read_seeds(chain_id: bytes) -> list[bytes]:
    """Valid requests (at FUZZ_NOW_MS) of every kind, signed by their owner."""
    key = _key(0)
    reply = public_bytes(FUZZ_ENCRYPTION_KEYS[1])
    return [
        sign_read(
            key,
            chain_id,
            ReadQuery(
                account=address_of(key.public_key),
                kind=int(kind),
                meter_id="meter-1" if kind == ReadKind.READINGS else "",
                request_id=bytes([kind]) * 16,
                valid_until_ms=FUZZ_NOW_MS + 30_000,
                reply_key=reply,
            ),
        ).encode()
        for kind in ReadKind
    ]


def _keystore() -> bytes:
    """A keystore sealed with the fuzz target's stand-in KDF and fixed salt and nonce."""
    install_cheap_kdf()
    counter = iter(range(1000))

    def fixed_random(n: int) -> bytes:
        return hashlib.sha256(f"fuzz-keystore-{next(counter)}".encode()).digest()[:n]

    with mock.patch("os.urandom", fixed_random):  # a fixed salt and nonce: same file each time
        doc = keystore.seal(_key(2), KEYSTORE_PASSWORD, name="fuzz", n=4)
    return json.dumps(doc, indent=2).encode()


def build() -> dict[str, list[bytes]]:
    """The seed inputs of every target."""
    with recording() as captured:
        for seed in SIM_SEEDS:
            run_seed(seed)
            run_pob_seed(seed)
            run_epob_seed(seed)
    chain_id = sha256(b"fuzz-corpus-chain")
    txs = [tx.encode() for tx in _transactions(chain_id)]
    # the simulators hash blocks but never encode one alone: take them from the proposals
    pre_prepares = [pbft.decode_message(d) for d in smallest(captured, pbft.PrePrepare)]
    proposed = [p for p in pre_prepares if isinstance(p, pbft.PrePrepare)]
    with_txs = dataclasses.replace(proposed[0].block, txs=tuple(_transactions(chain_id)))
    certified = [
        CommittedBlock(p.block, Certificate(p.vote(), (p.signature,))) for p in proposed[:2]
    ]
    blocks = [p.block.encode() for p in proposed[:2]] + [with_txs.encode()]
    committed = [c.encode() for c in certified]
    readings = [tx for tx in _transactions(chain_id) if isinstance(tx.body, MeterReadings)]
    signed = readings[0].body.readings[0]  # type: ignore[union-attr]

    def messages(types: tuple[type[Record], ...]) -> list[bytes]:
        return [data for cls in types for data in smallest(captured, cls)]

    pbft_messages = messages(pbft.MESSAGE_TYPES)
    key = _key(3)
    frame_list: list[frames.Frame] = [
        frames.Hello(
            2, chain_id, key.public_key, b"\x07" * 32, frames.MIN_FRAME_BYTES, b"\x05" * 32
        ),
        frames.PlaintextHello(1, chain_id, key.public_key, b"\x07" * 32, frames.MIN_FRAME_BYTES),
        frames.SubmitTx(2, txs[0]),
        frames.TxVerdict(2, "nonce_gap", "nonce 3 skips ahead"),
        frames.NewBlock(committed[0]),
        frames.HelloAuth(b"\x09" * 64),
        frames.Refuse("chain_mismatch", "another genesis"),
        frames.Ping(12),
        frames.TxGossip(tuple(txs[:3]), relay=False),
        frames.GetBlocks(1, 1, 4),
        frames.Blocks(1, tuple(committed[:1])),
        *(frames.ConsensusFrame(m) for m in pbft_messages[:4]),
    ]
    encoded_frames = [frames.encode_frame(f) for f in frame_list]
    every_type = [
        data
        for cls in sorted(captured, key=lambda c: c.TYPE_TAG)
        for data in smallest(captured, cls, 1)
    ]
    return {
        "encoding": every_type + txs + blocks + committed,
        "tx": txs + smallest(captured, Transaction),
        "block": blocks + committed,
        "pbft": pbft_messages,
        "pob": messages(pob.MESSAGE_TYPES),
        "epob": messages(epob.MESSAGE_TYPES),
        "meter": [signed.record.encode(), signed.encode()],
        "frames": [*encoded_frames, b"".join(encoded_frames[:5])],
        "keystore": [_keystore()],
        "sealed": _sealed_seeds(chain_id),
        "sealed_read": _sealed_read_seeds(chain_id),
    }


def write(seeds: dict[str, list[bytes]], root: Path = CORPUS) -> None:
    """Replace every ``seed-*`` file of each target; keep ``regress-*`` files."""
    for name, inputs in seeds.items():
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for data in dict.fromkeys(inputs):
            (directory / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)


def main(out: Callable[[str], Any] = print) -> None:
    seeds = build()
    write(seeds)
    for name, inputs in seeds.items():
        out(f"{name:<10}{len(set(inputs)):>4} seeds, {sum(map(len, set(inputs))):>7} bytes")


if __name__ == "__main__":
    main()
