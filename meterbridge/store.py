"""The bridge's own LevelDB: signed readings, per-meter heads and the transaction in flight.

Every LevelDB key the bridge writes, in one place (the node's store_schema.py style)::

    M:chain_id                       the chain the readings are signed for (32 bytes)
    R:<meter id>\\x00<sequence u64>   SignedReading, canonical bytes
    A:<meter id>                     next sequence not yet known committed (u64)
    C:<meter id>                     head learnt from the chain when the store has no record:
                                     sequence (u64) + record hash (32) + interval end ms (u64)
    L:<meter id>                     the chain's last record of the meter (ReadingRecord), learnt
                                     with the C: head: its registers bound the next reading
    X:<meter id>\\x00<seq><hash>      SignedReading the node refused, kept for the operator
    F:inflight                       the MeterReadings transaction posted and not yet settled

Every write that matters is ``sync=True``: a reading is on disk before it can be sent, and the
transaction in flight is on disk before it is posted, so after a crash the bridge either finds
it and asks the node about that exact hash, or it was never posted.  Sequence numbers are 8-byte
big-endian so a range scan walks one meter's records in order; meter ids cannot contain NUL.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel

from gridchain.protocol.encoding import decode
from gridchain.protocol.meter import ReadingRecord, SignedReading
from gridchain.protocol.tx import Transaction, decode_tx

CHAIN_ID = b"M:chain_id"
READING = b"R:"
ACKED = b"A:"
CHAIN_HEAD = b"C:"
CHAIN_RECORD = b"L:"
REFUSED = b"X:"
INFLIGHT = b"F:inflight"


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def from_u64(raw: bytes) -> int:
    value: int = struct.unpack(">Q", raw)[0]
    return value


def _meter_prefix(meter_id: str) -> bytes:
    return READING + meter_id.encode() + b"\x00"


@dataclass(frozen=True, slots=True)
class Head:
    """Where a meter's hash chain stands: the next record continues from here."""

    sequence: int
    record_hash: bytes
    interval_end_ms: int
    #: The head's record, this store's or the chain's (None: a chain head learnt without it).
    record: ReadingRecord | None


class BridgeStore:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._db: Any = plyvel.DB(str(path), create_if_missing=True)

    def close(self) -> None:
        self._db.close()

    # --- chain id ------------------------------------------------------------------------

    def chain_id(self) -> bytes | None:
        raw: bytes | None = self._db.get(CHAIN_ID)
        return raw

    def set_chain_id(self, chain_id: bytes) -> None:
        self._db.put(CHAIN_ID, chain_id, sync=True)

    # --- readings ------------------------------------------------------------------------

    def append(self, reading: SignedReading) -> None:
        """Write one signed reading durably (fsync) before anything may send it."""
        record = reading.record
        key = _meter_prefix(record.meter_id) + u64(record.sequence)
        self._db.put(key, reading.encode(), sync=True)

    def get(self, meter_id: str, sequence: int) -> SignedReading | None:
        raw = self._db.get(_meter_prefix(meter_id) + u64(sequence))
        return None if raw is None else decode(raw, SignedReading)

    def readings(
        self, meter_id: str, *, start: int = 0, limit: int | None = None, reverse: bool = False
    ) -> Iterator[SignedReading]:
        """A meter's readings from ``start`` in order (``reverse``: all, newest first)."""
        prefix = _meter_prefix(meter_id)
        if reverse:
            # plyvel's reverse iterator misses the first key when given start=; scan the prefix
            it = self._db.iterator(prefix=prefix, reverse=True)
        else:
            it = self._db.iterator(start=prefix + u64(start), stop=prefix + b"\xff" * 9)
        for n, (_, raw) in enumerate(it):
            if limit is not None and n >= limit:
                break
            yield decode(raw, SignedReading)

    def last_reading(self, meter_id: str) -> SignedReading | None:
        for reading in self.readings(meter_id, reverse=True, limit=1):
            return reading
        return None

    def head(self, meter_id: str) -> Head | None:
        """The meter's head: its last stored record, or what the chain said if newer."""
        last = self.last_reading(meter_id)
        raw = self._db.get(CHAIN_HEAD + meter_id.encode())
        chain_head = None
        if raw is not None:
            seq, record_hash = from_u64(raw[:8]), bytes(raw[8:40])
            record = self.chain_record(meter_id)
            if record is not None and record.hash() != record_hash:
                record = None
            chain_head = Head(seq, record_hash, from_u64(raw[40:48]), record)
        if last is None:
            return chain_head
        if chain_head is not None and chain_head.sequence > last.record.sequence:
            return chain_head
        rec = last.record
        return Head(rec.sequence, rec.hash(), rec.interval_end_ms, rec)

    def chain_head(self, meter_id: str) -> tuple[int, bytes] | None:
        """The (sequence, hash) this store adopted from the chain, if it started from one."""
        raw = self._db.get(CHAIN_HEAD + meter_id.encode())
        return None if raw is None else (from_u64(raw[:8]), bytes(raw[8:40]))

    def set_chain_head(self, meter_id: str, sequence: int, record_hash: bytes, end_ms: int) -> None:
        value = u64(sequence) + record_hash + u64(end_ms)
        self._db.put(CHAIN_HEAD + meter_id.encode(), value, sync=True)

    def chain_record(self, meter_id: str) -> ReadingRecord | None:
        """The chain's last record of the meter as learnt at reconciliation (None: not learnt)."""
        raw = self._db.get(CHAIN_RECORD + meter_id.encode())
        return None if raw is None else decode(raw, ReadingRecord)

    def set_chain_record(self, record: ReadingRecord) -> None:
        self._db.put(CHAIN_RECORD + record.meter_id.encode(), record.encode(), sync=True)

    # --- readings the node refused ------------------------------------------------------

    def set_aside(self, meter_id: str, from_sequence: int) -> list[SignedReading]:
        """Move the meter's records from ``from_sequence`` on out of its chain (atomically).

        They stay under ``X:`` for the operator (``refused``); the chain continues from the
        record before them.  Returns what was moved.
        """
        moved = list(self.readings(meter_id, start=from_sequence))
        with self._db.write_batch(sync=True) as batch:
            for reading in moved:
                rec = reading.record
                batch.put(
                    REFUSED + meter_id.encode() + b"\x00" + u64(rec.sequence) + rec.hash(),
                    reading.encode(),
                )
                batch.delete(_meter_prefix(meter_id) + u64(rec.sequence))
        return moved

    def refused(self, meter_id: str) -> list[SignedReading]:
        """The meter's records the node refused, by sequence."""
        prefix = REFUSED + meter_id.encode() + b"\x00"
        return [decode(raw, SignedReading) for _, raw in self._db.iterator(prefix=prefix)]

    # --- what the chain has --------------------------------------------------------------

    def acked(self, meter_id: str) -> int:
        """The first sequence not yet known to be committed."""
        raw = self._db.get(ACKED + meter_id.encode())
        return 0 if raw is None else from_u64(raw)

    def set_acked(self, meter_id: str, next_sequence: int) -> None:
        if next_sequence > self.acked(meter_id):
            self._db.put(ACKED + meter_id.encode(), u64(next_sequence), sync=True)

    def unsent(self, meter_id: str, limit: int) -> list[SignedReading]:
        return list(self.readings(meter_id, start=self.acked(meter_id), limit=limit))

    # --- the transaction in flight --------------------------------------------------------

    def inflight(self) -> Transaction | None:
        raw = self._db.get(INFLIGHT)
        return None if raw is None else decode_tx(raw)

    def set_inflight(self, tx: Transaction | None) -> None:
        if tx is None:
            self._db.delete(INFLIGHT, sync=True)
        else:
            self._db.put(INFLIGHT, tx.encode(), sync=True)
