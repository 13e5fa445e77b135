"""The ``solo`` engine: one validator that finalises its own blocks, for development.

It keeps the same contract as the real engines (proposal on request, a signed certificate with
each block, persisted signing state) so that the node, the store and the API are exercised
exactly as they will be under PBFT.  The signing guard (consensus/kernel/guard.py) persists
the last height it signed before the signature leaves the engine, so a restart can never sign
a second, different block at a height it already signed, nor one below it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridchain.consensus.certificates import CommitRule
from gridchain.consensus.engine import (
    Action,
    ChainHead,
    CommitBlock,
    Persist,
    RequestProposal,
    SetTimer,
)
from gridchain.consensus.kernel.guard import DoubleSignError, SigningGuard, read_record
from gridchain.protocol.block import Block, Certificate, Vote, VoteStep
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError

LAST_SIGNED_KEY = b"solo/last-signed"

__all__ = ["LAST_SIGNED_KEY", "DoubleSignError", "SoloEngine"]


def _last_signed(raw: bytes) -> tuple[int, bytes]:
    """The record's format: the height (8 bytes, big-endian) and the block hash."""
    return int.from_bytes(raw[:8], "big"), raw[8:]


class SoloEngine:
    name = "solo"

    def __init__(self, key: SigningKey, chain_id: bytes, block_interval_ms: int) -> None:
        self._key = key
        self._chain_id = chain_id
        self._interval = block_interval_ms
        self._head = ChainHead(0, b"\x00" * 32, 0)
        self._next_at = 0
        self._proposing = False
        self._guard = SigningGuard[VoteStep]()

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        self._head = head
        signed = read_record(persisted, LAST_SIGNED_KEY, _last_signed)
        if signed is not None:
            self._guard.record(VoteStep.COMMIT, signed[0], 0, signed[1])
        self._next_at = now_ms + self._interval
        return [SetTimer(self._next_at)]

    def on_tick(self, now_ms: int) -> list[Action]:
        if self._proposing:
            return []
        if now_ms < self._next_at:
            return [SetTimer(self._next_at)]
        self._proposing = True
        return [
            RequestProposal(
                height=self._head.height + 1,
                round=0,
                prev_hash=self._head.block_hash,
                min_timestamp_ms=self._head.timestamp_ms + 1,
            )
        ]

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        return []  # a solo validator has no peers

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        self._proposing = False
        # Sign only a block that extends the committed head: signing one on another parent would
        # record its height as signed and make the guard refuse the right block after a restart.
        if (
            block is None
            or block.height != self._head.height + 1
            or block.header.prev_hash != self._head.block_hash
        ):
            self._next_at = now_ms + self._interval
            return [SetTimer(self._next_at)]
        block_hash = block.hash()
        # Solo signs one kind (its block's commit vote), always in round 0.
        self._guard.record(VoteStep.COMMIT, block.height, 0, block_hash)  # or DoubleSignError
        vote = Vote(block.height, 0, block_hash, int(VoteStep.COMMIT))
        signature = vote.sign(self._key, self._chain_id)
        self._proposing = True  # until the commit comes back
        return [
            Persist(LAST_SIGNED_KEY, block.height.to_bytes(8, "big") + block_hash),
            CommitBlock(block, Certificate(vote, (signature,))),
        ]

    def decode_message(self, data: bytes) -> Record:
        raise DecodeError("a solo validator takes no consensus messages")

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        return []  # solo validates through the runtime's commit path

    def commit_rule(self, block: Block) -> CommitRule:
        return CommitRule(frozenset((self._key.public_key,)), 1, VoteStep.COMMIT)

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        return []  # the block timer already polls the mempool

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        self._head = head
        self._proposing = False
        self._next_at = now_ms + self._interval
        return [SetTimer(self._next_at)]

    def status(self) -> Mapping[str, int | str]:
        return {"engine": self.name, "height": self._head.height, "round": 0}
