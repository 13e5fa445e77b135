"""Meter readings as the meter bridge signs them and the chain checks them (DESIGN section 9).

A bridge keeps one hash chain of records per meter: each record carries a sequence number and
the hash of the previous record, and cumulative import/export registers in Wh.  The bridge
signs every record with its key (``Domain.METER_READING``); the chain accepts a record only
from the key registered for that meter, in sequence, on the chain of hashes, with registers that
never decrease.  So a reading can be neither forged, reordered, dropped in the middle nor
replayed, and settlement can trust the energy between two readings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from gridchain.protocol.crypto import Domain, SigningKey, sha256, verify
from gridchain.protocol.encoding import I64, U8, U32, U64, Bytes32, Bytes64, Record, Size, register
from gridchain.protocol.errors import SignatureError

MeterId = Annotated[str, Size(1, 64)]
#: Hash a meter's first record names as its predecessor.
GENESIS_READING_HASH = b"\x00" * 32


class MeterType(enum.IntEnum):
    """The source's meter types (seed 000, meter type table)."""

    PV = 1
    EXTERNAL_GENERATOR = 2
    EV = 3
    BATTERY = 4
    LOADMETER = 5
    NETMETER = 6


class ReadingStatus(enum.IntEnum):
    OK = 0
    #: The bridge could not read the meter in this interval (timeouts or CRC errors after
    #: retries); the registers repeat the last good values and settlement treats the interval
    #: as unmeasured.  A made-up value is never sent.
    UNAVAILABLE = 1


@register(0x68)
@dataclass(frozen=True, slots=True)
class ReadingRecord(Record):
    meter_id: MeterId
    interval_start_ms: U64
    interval_end_ms: U64
    import_wh: U64  # cumulative register
    export_wh: U64  # cumulative register
    power_w: I64
    voltage_dv: U32  # decivolts: 230.1 V = 2301
    status: U8
    sequence: U64  # 0 for a meter's first record
    prev_hash: Bytes32

    def hash(self) -> bytes:
        return sha256(self.encode())


@register(0x69)
@dataclass(frozen=True, slots=True)
class SignedReading(Record):
    record: ReadingRecord
    signature: Bytes64

    def verify(
        self,
        bridge_key: bytes,
        chain_id: bytes,
        verifier: Callable[[bytes, bytes, Domain, bytes, bytes], bool] = verify,
        payload: bytes | None = None,
    ) -> None:
        """Raise SignatureError unless ``bridge_key`` signed this record for this chain.

        ``verifier`` is protocol.crypto.verify; protocol/reading_signatures.py passes the one
        it was given, or a verdict it already has; ``payload`` is the record's encoding if the
        caller made it already.
        """
        signed = self.record.encode() if payload is None else payload
        if not verifier(bridge_key, self.signature, Domain.METER_READING, chain_id, signed):
            r = self.record
            raise SignatureError(f"reading {r.meter_id}#{r.sequence}: signature does not verify")


def sign_reading(key: SigningKey, chain_id: bytes, record: ReadingRecord) -> SignedReading:
    return SignedReading(record, key.sign(Domain.METER_READING, chain_id, record.encode()))


MAX_READINGS_PER_TX = 200
Readings = Annotated[tuple[SignedReading, ...], Size(1, MAX_READINGS_PER_TX)]
