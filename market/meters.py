"""Meters and their readings on the chain (DESIGN section 9; issue 5 item 3).

A meter is registered once (in genesis or by a governance RegisterMeter) with its owner, its
type from the source's table and the key of the bridge that reads it.  The bridge then sends
MeterReadings transactions; each reading is accepted only if it extends the meter's hash chain
exactly (next sequence, previous record's hash), is signed by the registered bridge key for this
chain, never lets a cumulative register go down, and has an interval that follows the previous
one and does not end in the future.  So what settlement reads between two readings is energy
the meter measured, counted once.

State layout (keys; values are canonical records, tags 0x63-0x64):

* ``mtr:`` + meter id -> :class:`MeterRecord`: registration and the head of the reading chain;
* ``mown:`` + owner + len(id) + id -> b"": an owner's meters, in id order (for settlement);
* ``mrd:`` + len(id) + id + (MAX - interval_end) + (MAX - sequence) -> :class:`StoredReading`:
  the history, newest first, so that "the last reading at or before t" is the first entry of a
  forward scan started at t (the state has forward scans only);
* ``mseq:`` + len(id) + id + sequence -> the ``mrd:`` key suffix: readings by sequence, for the
  API's ``from_seq``.

The meter id is length-prefixed in keys so that no id's keys are a prefix range of another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from gridchain.market.accounts import get_participant
from gridchain.market.errors import (
    BridgeKeyMismatchError,
    DecreasingRegisterError,
    InvalidMeterIdError,
    InvalidMeterTypeError,
    MeterExistsError,
    ReadingChainError,
    ReadingIntervalError,
    ReadingSequenceError,
    ReadingSignatureError,
    ReadingTimeError,
    UnknownMeterOwnerError,
    UnregisteredMeterError,
)
from gridchain.market.keys import require_registrable_key
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import sha256
from gridchain.protocol.encoding import U8, U64, Bytes20, Bytes32, Record, decode, register
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    MeterId,
    MeterType,
    ReadingRecord,
    SignedReading,
)
from gridchain.protocol.reading_signatures import ReadingSignatureCache
from gridchain.protocol.tx import MeterReadings, RegisterMeter

METER_PREFIX = b"mtr:"
METER_OWNER_PREFIX = b"mown:"
READING_PREFIX = b"mrd:"
READING_SEQ_PREFIX = b"mseq:"
_MAX_U64 = 2**64 - 1
#: The longest meter id in UTF-8 bytes (keys carry its length in one byte).
MAX_METER_ID_BYTES = 64

#: How far after the block time a reading's interval may end.  A bridge stamps the interval
#: with its own clock and a block's time is its proposer's; a minute absorbs clock skew and
#: block latency, while a reading for a slot that has not happened yet is refused.
MAX_READING_AHEAD_MS = 60_000

#: Labels of the source's meter table, as genesis and the API write them.
METER_TYPE_LABELS: dict[MeterType, str] = {
    MeterType.PV: "PV",
    MeterType.EXTERNAL_GENERATOR: "ExternalGenerator",
    MeterType.EV: "EV",
    MeterType.BATTERY: "Battery",
    MeterType.LOADMETER: "Loadmeter",
    MeterType.NETMETER: "Netmeter",
}
METER_TYPE_BY_LABEL: dict[str, MeterType] = {v: k for k, v in METER_TYPE_LABELS.items()}
_METER_TYPES = frozenset(int(t) for t in MeterType)


@register(0x63)
@dataclass(frozen=True, slots=True)
class MeterRecord(Record):
    """A registered meter and the head of its reading chain.

    ``next_sequence`` is the sequence the next reading must carry (0: none yet); the ``last_*``
    fields describe the last accepted record and are meaningless while it is 0.
    """

    meter_id: MeterId
    owner: Bytes20
    meter_type: U8
    bridge_key: Bytes32
    profile: MeterId
    registered_height: U64
    next_sequence: U64 = 0
    last_hash: Bytes32 = GENESIS_READING_HASH
    last_import_wh: U64 = 0
    last_export_wh: U64 = 0
    last_interval_end_ms: U64 = 0


@register(0x64)
@dataclass(frozen=True, slots=True)
class StoredReading(Record):
    """An accepted reading as settlement and the API need it (the signature was checked)."""

    record: ReadingRecord
    record_hash: Bytes32
    height: U64


# --- keys ------------------------------------------------------------------------------------


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _id(meter_id: str) -> bytes:
    raw = meter_id.encode("utf-8")
    return bytes([len(raw)]) + raw


def meter_key(meter_id: str) -> bytes:
    return METER_PREFIX + meter_id.encode("utf-8")


def owner_meter_key(owner: bytes, meter_id: str) -> bytes:
    return METER_OWNER_PREFIX + owner + _id(meter_id)


def _reading_suffix(interval_end_ms: int, sequence: int) -> bytes:
    return _u64(_MAX_U64 - interval_end_ms) + _u64(_MAX_U64 - sequence)


def reading_key(meter_id: str, interval_end_ms: int, sequence: int) -> bytes:
    return READING_PREFIX + _id(meter_id) + _reading_suffix(interval_end_ms, sequence)


def reading_seq_key(meter_id: str, sequence: int) -> bytes:
    return READING_SEQ_PREFIX + _id(meter_id) + _u64(sequence)


# --- reads -----------------------------------------------------------------------------------


def get_meter(state: StateReader, meter_id: str) -> MeterRecord | None:
    raw = state.get(meter_key(meter_id))
    return None if raw is None else decode(raw, MeterRecord)


def meters_of(state: StateReader, owner: bytes) -> list[MeterRecord]:
    """An owner's meters in id order (collected, so the caller may write afterwards)."""
    ids = [key[len(METER_OWNER_PREFIX) + 21 :] for key, _ in state.scan(METER_OWNER_PREFIX + owner)]
    out = []
    for raw_id in ids:
        meter = get_meter(state, raw_id.decode("utf-8"))
        if meter is not None:
            out.append(meter)
    return out


def reading_at_or_before(state: StateReader, meter_id: str, time_ms: int) -> StoredReading | None:
    """The last accepted reading whose interval ends at or before ``time_ms`` (None: none).

    Among readings ending at the same time the one with the highest sequence is the latest.
    """
    prefix = READING_PREFIX + _id(meter_id)
    start = prefix + _reading_suffix(time_ms, _MAX_U64)
    for _, raw in state.scan_from(prefix, start, inclusive=True):
        return decode(raw, StoredReading)
    return None


def readings_from(
    state: StateReader, meter_id: str, from_seq: int, limit: int
) -> list[StoredReading]:
    """Up to ``limit`` readings of a meter from sequence ``from_seq`` on, in sequence order."""
    meter = get_meter(state, meter_id)
    if meter is None:
        return []
    out = []
    for seq in range(from_seq, min(meter.next_sequence, from_seq + limit)):
        suffix = state.get(reading_seq_key(meter_id, seq))
        if suffix is None:  # pragma: no cover - written with every reading
            break
        raw = state.get(READING_PREFIX + _id(meter_id) + suffix)
        if raw is not None:
            out.append(decode(raw, StoredReading))
    return out


def iter_meters(state: StateReader) -> Iterator[MeterRecord]:
    for _, raw in state.scan(METER_PREFIX):
        yield decode(raw, MeterRecord)


# --- writes ----------------------------------------------------------------------------------


def register_meter(view: Overlay, body: RegisterMeter, height: int) -> MeterRecord:
    """Register a meter after checking it; raise a typed error and write nothing otherwise."""
    if len(body.meter_id.encode("utf-8")) > MAX_METER_ID_BYTES:
        raise InvalidMeterIdError(
            f"a meter id is at most {MAX_METER_ID_BYTES} bytes of UTF-8, got "
            f"{len(body.meter_id.encode('utf-8'))}"
        )
    if body.meter_type not in _METER_TYPES:
        raise InvalidMeterTypeError(
            f"meter_type must be 1 to {len(_METER_TYPES)} (PV, ExternalGenerator, EV, Battery, "
            f"Loadmeter, Netmeter), got {body.meter_type}"
        )
    require_registrable_key(body.bridge_key, what="RegisterMeter.bridge_key")
    if get_meter(view, body.meter_id) is not None:
        raise MeterExistsError(f"meter {body.meter_id!r} is already registered")
    if get_participant(view, body.owner) is None:
        raise UnknownMeterOwnerError(
            f"meter owner {format_address(body.owner)} is not a registered participant"
        )
    record = MeterRecord(
        meter_id=body.meter_id,
        owner=body.owner,
        meter_type=body.meter_type,
        bridge_key=body.bridge_key,
        profile=body.profile,
        registered_height=height,
    )
    view.put(meter_key(body.meter_id), record.encode())
    view.put(owner_meter_key(body.owner, body.meter_id), b"")
    return record


def check_reading(
    meter: MeterRecord | None,
    signed: SignedReading,
    sender_key: bytes,
    chain_id: bytes,
    block_ms: int,
    *,
    signatures: ReadingSignatureCache | None = None,
) -> MeterRecord:
    """Check one reading against its meter's head; return the new head (nothing written).

    The checks run from the cheapest to the signature, so garbage is refused early; every
    refusal is a typed error naming the meter and sequence.  ``signatures`` is the validator's
    memory of verified reading signatures (protocol/reading_signatures.py, ADR 0056): with it a
    reading's signature is checked once per validator, not each time its transaction applies.
    """
    r = signed.record
    what = f"reading {r.meter_id}#{r.sequence}"
    if meter is None:
        raise UnregisteredMeterError(f"{what}: meter {r.meter_id!r} is not registered")
    if meter.bridge_key != sender_key:
        raise BridgeKeyMismatchError(
            f"{what}: sent by {sender_key.hex()[:16]}, but the meter's bridge key is "
            f"{meter.bridge_key.hex()[:16]}"
        )
    if r.sequence != meter.next_sequence:
        raise ReadingSequenceError(
            f"{what}: the next sequence of meter {r.meter_id!r} is {meter.next_sequence}"
        )
    if r.prev_hash != meter.last_hash:
        raise ReadingChainError(
            f"{what}: prev_hash {r.prev_hash.hex()[:16]} is not the hash of the last accepted "
            f"record ({meter.last_hash.hex()[:16]})"
        )
    if r.interval_end_ms < r.interval_start_ms:
        raise ReadingIntervalError(
            f"{what}: interval ends at {r.interval_end_ms} before it starts at "
            f"{r.interval_start_ms}"
        )
    if meter.next_sequence and r.interval_start_ms < meter.last_interval_end_ms:
        raise ReadingIntervalError(
            f"{what}: interval starts at {r.interval_start_ms}, before the previous reading's "
            f"end {meter.last_interval_end_ms}"
        )
    if r.interval_end_ms > block_ms + MAX_READING_AHEAD_MS:
        raise ReadingTimeError(
            f"{what}: interval ends at {r.interval_end_ms}, more than {MAX_READING_AHEAD_MS} ms "
            f"after the block time {block_ms}"
        )
    if r.import_wh < meter.last_import_wh or r.export_wh < meter.last_export_wh:
        raise DecreasingRegisterError(
            f"{what}: registers import {r.import_wh} / export {r.export_wh} Wh are below the "
            f"last accepted {meter.last_import_wh} / {meter.last_export_wh} Wh"
        )
    try:
        if signatures is not None and signatures.chain_id == chain_id:
            encoded = signatures.require(signed, sender_key)
        else:
            encoded = r.encode()
            signed.verify(sender_key, chain_id, payload=encoded)
    except SignatureError as exc:
        raise ReadingSignatureError(f"{what}: {exc.message}") from None
    return replace(
        meter,
        next_sequence=meter.next_sequence + 1,
        last_hash=sha256(encoded),  # the record's hash
        last_import_wh=r.import_wh,
        last_export_wh=r.export_wh,
        last_interval_end_ms=r.interval_end_ms,
    )


def apply_readings(
    view: Overlay,
    body: MeterReadings,
    *,
    sender_key: bytes,
    chain_id: bytes,
    height: int,
    block_ms: int,
    signatures: ReadingSignatureCache | None = None,
) -> int:
    """Check every reading of a batch in order, then store them all; return how many.

    A batch is all or nothing: the first refused reading refuses the transaction and nothing
    of it is written (the heads are kept in a local dict until every reading passed), so a
    bridge can resend the same batch after fixing it without a sequence gap.
    """
    heads: dict[str, MeterRecord | None] = {}
    accepted: list[tuple[SignedReading, bytes]] = []
    for signed in body.readings:
        meter_id = signed.record.meter_id
        if meter_id not in heads:
            heads[meter_id] = get_meter(view, meter_id)
        head = check_reading(
            heads[meter_id], signed, sender_key, chain_id, block_ms, signatures=signatures
        )
        heads[meter_id] = head
        accepted.append((signed, head.last_hash))
    for signed, record_hash in accepted:
        r = signed.record
        suffix = _reading_suffix(r.interval_end_ms, r.sequence)
        stored = StoredReading(r, record_hash, height)
        view.put(READING_PREFIX + _id(r.meter_id) + suffix, stored.encode())
        view.put(reading_seq_key(r.meter_id, r.sequence), suffix)
    for meter_id in sorted(heads):
        final = heads[meter_id]
        assert final is not None  # every checked meter exists
        view.put(meter_key(meter_id), final.encode())
    return len(accepted)
