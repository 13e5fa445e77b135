"""The fuzz targets: every decoder that reads bytes a peer, a client or a file can choose.

Each target takes arbitrary bytes and runs them through the decoder exactly as the node (or the
wallet) does.  The contract the fuzzer checks: the decoder returns a value, or raises one of the
target's ``allowed`` typed errors (the DecodeError family of protocol/errors.py; for the
keystore, the wallet's and keystore's GridchainError refusals).  Any other exception, or a
crash of the interpreter, is a bug.

This module imports gridchain; tests/fuzz/__main__.py imports it under atheris's
instrumentation, so import nothing from here before the fuzzer starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.consensus.epob import messages as epob
from gridchain.consensus.kernel import messages as kernel_messages
from gridchain.consensus.pbft import messages as pbft
from gridchain.consensus.pob import messages as pob
from gridchain.market import (
    accounts,
    cd_requests,
    cd_schedule,
    meters,
    orders,
    sealed_outcomes,
    settlement,
)
from gridchain.node.p2p import frames
from gridchain.node.p2p.errors import LinkClosedError
from gridchain.protocol import keystore, sealed_read
from gridchain.protocol.block import MAX_BLOCK_BYTES, Block, CommittedBlock, decode_committed
from gridchain.protocol.encoding import _REGISTRY, decode_one_of
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.meter import ReadingRecord, SignedReading
from gridchain.protocol.sealed import SealContext, SealedRefusedError, ValidatorOpener, open_tx
from gridchain.protocol.tx import SealedTx, decode_tx
from gridchain.wallet.keystore_file import parse_keystore

#: The largest frame body the frame target accepts (a node's default is larger; a fuzzer
#: gains nothing from inputs beyond what it can produce).
FRAME_LIMIT = 1 << 20
#: The password the keystore target opens keystores with (the seed corpus is sealed with it).
KEYSTORE_PASSWORD = "fuzz"
#: Modules imported only so that every record type they register is in the encoding target.
RECORD_MODULES = (
    kernel_messages,
    accounts,
    cd_requests,
    cd_schedule,
    meters,
    orders,
    sealed_outcomes,
    settlement,
    sealed_read,
)
#: The chain the sealed targets open for: four validators' encryption keys, fixed.
FUZZ_CHAIN_ID = hashlib.sha256(b"fuzz-corpus-chain").digest()
FUZZ_ENCRYPTION_KEYS = tuple(
    X25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz-encryption-%d" % i).digest())
    for i in range(4)
)
FUZZ_SEAL = SealContext(FUZZ_CHAIN_ID, tuple(public_bytes(k) for k in FUZZ_ENCRYPTION_KEYS))
#: The time the sealed-read target checks requests at (the seeds are valid then).
FUZZ_NOW_MS = 1_800_000_000_000


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]


def _encoding(data: bytes) -> object:
    """The generic decoder, asked for any registered record type (tags pick the class)."""
    return decode_one_of(data, list(_REGISTRY.values()))


def _block(data: bytes) -> object:
    """A committed block as peers send and the store keeps it, or a bare block."""
    decoded = decode_one_of(data, (CommittedBlock, Block), max_bytes=MAX_BLOCK_BYTES)
    if isinstance(decoded, CommittedBlock):
        decode_committed(data)  # the entry point of the store and of block sync
    return decoded


def _meter(data: bytes) -> object:
    return decode_one_of(data, (SignedReading, ReadingRecord))


async def _read_frames(data: bytes) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    while True:
        try:
            frame, _ = await frames.read_frame(reader, FRAME_LIMIT)
        except LinkClosedError:
            return
        # what the node does with a frame's content: transactions and blocks are decoded,
        # consensus payloads go to the engine's decoder
        if isinstance(frame, frames.TxGossip):
            for tx in frame.txs:
                decode_tx(tx)
        elif isinstance(frame, frames.Blocks):
            for raw in frame.blocks:
                decode_committed(raw)
        elif isinstance(frame, frames.ConsensusFrame):
            pbft.decode_message(frame.payload)


_LOOP: asyncio.AbstractEventLoop | None = None


def _frames(data: bytes) -> object:
    global _LOOP  # noqa: PLW0603 - one event loop for the whole fuzzing run
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    _LOOP.run_until_complete(_read_frames(data))
    return None


def _cheap_derive(password: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """Stands in for scrypt in the keystore target (the AES key and the password check): the
    parser, not the KDF's cost, is what is fuzzed (a real scrypt per input would run a few
    inputs a second)."""
    out = hashlib.sha512(f"{password}|{n}|{r}|{p}".encode() + salt).digest()
    return out[:32], hashlib.sha256(out[32:]).digest()


def _sealed(data: bytes) -> object:
    """A transaction as a validator executes it: decoded, then, if sealed, opened by
    validator 0 (the envelope checks of the application are not needed to reach open_tx)."""
    tx = decode_tx(data)
    if isinstance(tx.body, SealedTx):
        return open_tx(tx, FUZZ_SEAL, ValidatorOpener(FUZZ_ENCRYPTION_KEYS[0], 0))
    return tx


def _sealed_read(data: bytes) -> object:
    """A sealed-read request as the node checks it before answering."""
    request = sealed_read.decode_read(data)
    sealed_read.check_read(request, FUZZ_CHAIN_ID, FUZZ_NOW_MS)
    return request


def _keystore(data: bytes) -> object:
    doc = parse_keystore(data, Path("fuzz.json"))
    return keystore.open_keystore(doc, KEYSTORE_PASSWORD)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "encoding",
            "protocol/encoding.py for every registered record",
            _encoding,
            (DecodeError,),
        ),
        Target("tx", "decode_tx: a transaction of any body", decode_tx, (DecodeError,)),
        Target("block", "Block and CommittedBlock", _block, (DecodeError,)),
        Target("pbft", "PBFT consensus messages", pbft.decode_message, (DecodeError,)),
        Target("pob", "PoB consensus messages", pob.decode_message, (DecodeError,)),
        Target("epob", "ePoB consensus messages", epob.decode_message, (DecodeError,)),
        Target("meter", "meter reading records, signed and not", _meter, (DecodeError,)),
        Target(
            "frames",
            "a peer's byte stream through node/p2p/frames.py read_frame and what frames carry",
            _frames,
            (DecodeError,),
        ),
        Target(
            "keystore",
            "keystore JSON (wallet/keystore_file.py) opened by protocol/keystore.py",
            _keystore,
            (GridchainError,),
        ),
        Target(
            "sealed",
            "a sealed transaction decoded and opened by a validator (protocol/sealed.py)",
            _sealed,
            (DecodeError, SealedRefusedError),
        ),
        Target(
            "sealed_read",
            "a sealed-read request decoded and checked (protocol/sealed_read.py)",
            _sealed_read,
            (GridchainError,),
        ),
    )
}


def check(target: Target, data: bytes) -> None:
    """Run one input; an exception outside ``target.allowed`` propagates (the fuzzer's crash)."""
    with contextlib.suppress(*target.allowed):
        target.run(data)


def install_cheap_kdf() -> None:
    """Swap scrypt for :func:`_cheap_derive` in this process (fuzzing only, never in a node)."""
    keystore._derive = _cheap_derive
