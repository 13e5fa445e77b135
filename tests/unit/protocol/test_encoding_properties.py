"""Properties of the canonical encoding: every record round-trips, and nothing else decodes.

Why this matters: validators hash and sign encoded bytes, so two nodes must agree byte for byte
on what a record is.  A decoder that accepted a second spelling of the same record (a wider
integer format, a map, a trailing byte) would let a peer produce two different hashes for one
transaction or block; a decoder that raised something other than a typed
:class:`~protocol.errors.DecodeError` on hostile input would crash a node instead of refusing a
message.  Each rejection below therefore asserts the *specific* error class: the class is the
contract the HTTP layer and the peers rely on.

Strategies are written by hand from the field declarations in protocol/tx.py and
protocol/block.py (not derived from the codec), so they state the schema independently of the
code under test; :func:`test_every_record_type_has_a_strategy` fails when a record type is
added without one.
"""

from __future__ import annotations

import dataclasses
import inspect
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridchain.protocol.block
import gridchain.protocol.governance
import gridchain.protocol.meter
import gridchain.protocol.tx
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    ScheduleEntry,
    Vote,
    VoteSignature,
    decode_committed,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record, decode, decode_one_of, encode, record_type
from gridchain.protocol.errors import (
    DecodeError,
    FieldCountError,
    FieldTypeError,
    FieldValueError,
    MalformedError,
    NonCanonicalError,
    OversizeError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from gridchain.protocol.governance import (
    LinkDevice,
    RemoveParticipant,
    ReplaceBridgeKey,
    SetParameter,
    SetTariffs,
    TariffBand,
    UpdateCouncil,
    UpdateGateways,
)
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    ReadingRecord,
    SignedReading,
    sign_reading,
)
from gridchain.protocol.tx import (
    MAX_TX_BYTES,
    WRAPPED_KEY_BYTES,
    AmendOrder,
    Approve,
    Burn,
    CancelOrder,
    CDRequest,
    MeterReadings,
    Mint,
    PlaceOrder,
    Propose,
    RegisterMeter,
    RegisterParticipant,
    SealedTx,
    Transaction,
    Transfer,
    TxPayload,
    UpdateValidators,
    decode_tx,
    sign_tx,
)

# --- strategies ------------------------------------------------------------------------------

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

b20 = st.binary(min_size=20, max_size=20)
b32 = st.binary(min_size=32, max_size=32)
b64 = st.binary(min_size=64, max_size=64)
u64 = st.integers(0, U64_MAX)
i64 = st.integers(I64_MIN, I64_MAX)
u8 = st.integers(0, 255)


def text(lo: int, hi: int) -> st.SearchStrategy[str]:
    """Any Unicode text msgpack can carry (UTF-8 encodable, so no lone surrogates)."""
    return st.text(alphabet=st.characters(codec="utf-8"), min_size=lo, max_size=hi)


transfers = st.builds(Transfer, to=b20, amount_mc=u64, memo=text(0, 140))
registrations = st.builds(RegisterParticipant, public_key=b32, name=text(1, 64))
mints = st.builds(Mint, to=b20, amount_mc=u64)
burns = st.builds(Burn, account=b20, amount_mc=u64)
place_orders = st.builds(
    PlaceOrder,
    market=u8,
    slot=u64,
    side=u8,
    device=u8,
    price_mc_per_kwh=u64,
    quantity_wh=u64,
    peak_wh=u64,
    expiry_ms=u64,
)
cancel_orders = st.builds(CancelOrder, order_id=b32)
amend_orders = st.builds(AmendOrder, order_id=b32, price_mc_per_kwh=u64, quantity_wh=u64)
reading_records = st.builds(
    ReadingRecord,
    meter_id=text(1, 64),
    interval_start_ms=u64,
    interval_end_ms=u64,
    import_wh=u64,
    export_wh=u64,
    power_w=i64,
    voltage_dv=st.integers(0, 2**32 - 1),
    status=u8,
    sequence=u64,
    prev_hash=b32,
)
signed_readings = st.builds(SignedReading, record=reading_records, signature=b64)
register_meters = st.builds(
    RegisterMeter,
    meter_id=text(1, 64),
    owner=b20,
    meter_type=u8,
    bridge_key=b32,
    profile=text(1, 64),
)
meter_readings = st.builds(
    MeterReadings, readings=st.lists(signed_readings, min_size=1, max_size=3).map(tuple)
)
cd_requests = st.builds(
    CDRequest,
    kind=u8,
    device=u8,
    arrival_ms=u64,
    departure_ms=u64,
    energy_wh=u64,
    max_rate_w=u64,
    limit_price_mc_per_kwh=u64,
    meter_id=text(1, 64),
)
sealed_txs = st.builds(
    SealedTx,
    key_set=b32,
    wrapped_keys=st.lists(
        st.binary(min_size=WRAPPED_KEY_BYTES, max_size=WRAPPED_KEY_BYTES), min_size=1, max_size=4
    ).map(tuple),
    ciphertext=st.binary(min_size=16, max_size=200),
)
update_validators = st.builds(
    UpdateValidators,
    add=st.lists(b32, max_size=3).map(tuple),
    remove=st.lists(b32, max_size=3).map(tuple),
)
proposals = st.builds(Propose, record=st.binary(min_size=1, max_size=200), expires_at_height=u64)
approvals = st.builds(Approve, proposal_id=b32)
removals = st.builds(RemoveParticipant, address=b20)
rekeys = st.builds(ReplaceBridgeKey, meter_id=text(1, 64), bridge_key=b32)
set_parameters = st.builds(SetParameter, name=text(1, 64), value=u64, effective_height=u64)
tariff_bands = st.builds(
    TariffBand, start_hour=u8, end_hour=u8, retail_mc_per_kwh=u64, feed_in_mc_per_kwh=u64
)
update_council = st.builds(
    UpdateCouncil, members=st.lists(b32, max_size=5).map(tuple), threshold=u8
)
update_gateways = st.builds(
    UpdateGateways,
    add=st.lists(b32, max_size=3).map(tuple),
    remove=st.lists(b32, max_size=3).map(tuple),
)
link_devices = st.builds(LinkDevice, meter_id=text(1, 64), device_id=text(0, 48))
set_tariffs = st.builds(
    SetTariffs,
    tariffs=st.lists(tariff_bands, min_size=1, max_size=24).map(tuple),
    effective_height=u64,
)
bodies = st.one_of(
    transfers,
    registrations,
    mints,
    burns,
    place_orders,
    cancel_orders,
    amend_orders,
    register_meters,
    meter_readings,
    cd_requests,
    sealed_txs,
    update_validators,
    proposals,
    approvals,
)
payloads = st.builds(TxPayload, sender=b32, nonce=u64, body=bodies)
transactions = st.builds(Transaction, sender=b32, nonce=u64, body=bodies, signature=b64)
headers = st.builds(
    BlockHeader,
    chain_id=b32,
    height=u64,
    prev_hash=b32,
    timestamp_ms=u64,
    proposer=b32,
    round=u64,
    benefit=i64,
    tx_root=b32,
    schedule_root=b32,
    state_root=b32,
)
schedule_entries = st.builds(ScheduleEntry, request_id=b32, rate_w=i64)
blocks = st.builds(
    Block,
    header=headers,
    txs=st.lists(transactions, max_size=3).map(tuple),
    schedule=st.lists(schedule_entries, max_size=3).map(tuple),
)
votes = st.builds(Vote, height=u64, round=u64, block_hash=b32, step=u8)
vote_signatures = st.builds(VoteSignature, validator=b32, signature=b64)
certificates = st.builds(
    Certificate, vote=votes, signatures=st.lists(vote_signatures, min_size=1, max_size=4).map(tuple)
)
committed_blocks = st.builds(CommittedBlock, block=blocks, certificate=certificates)

STRATEGIES: dict[type[Record], st.SearchStrategy[Record]] = {
    Transfer: transfers,
    RegisterParticipant: registrations,
    Mint: mints,
    Burn: burns,
    PlaceOrder: place_orders,
    CancelOrder: cancel_orders,
    AmendOrder: amend_orders,
    RegisterMeter: register_meters,
    MeterReadings: meter_readings,
    CDRequest: cd_requests,
    SealedTx: sealed_txs,
    UpdateValidators: update_validators,
    Propose: proposals,
    Approve: approvals,
    RemoveParticipant: removals,
    ReplaceBridgeKey: rekeys,
    SetParameter: set_parameters,
    TariffBand: tariff_bands,
    SetTariffs: set_tariffs,
    UpdateCouncil: update_council,
    UpdateGateways: update_gateways,
    LinkDevice: link_devices,
    ReadingRecord: reading_records,
    SignedReading: signed_readings,
    TxPayload: payloads,
    Transaction: transactions,
    BlockHeader: headers,
    ScheduleEntry: schedule_entries,
    Block: blocks,
    Vote: votes,
    VoteSignature: vote_signatures,
    Certificate: certificates,
    CommittedBlock: committed_blocks,
}
ALL_TYPES = tuple(STRATEGIES)
any_record = st.one_of(*STRATEGIES.values())

# --- fixed samples (one valid instance per type) ---------------------------------------------

KEY = SigningKey(bytes(range(32)))
CHAIN_ID = sha256(b"gridchain test chain")
SAMPLE_TX = sign_tx(KEY, CHAIN_ID, 1, Transfer(b"\x11" * 20, 5, "hi"))
SAMPLE_HEADER = BlockHeader(
    CHAIN_ID, 3, b"\x01" * 32, 1_700_000_000_000, KEY.public_key, 0, -7, *[b"\x02" * 32] * 3
)
SAMPLE_ENTRY = ScheduleEntry(b"\x55" * 32, -3)
SAMPLE_VOTE = Vote(3, 0, SAMPLE_HEADER.hash(), 2)
SAMPLE_CERT = Certificate(SAMPLE_VOTE, (SAMPLE_VOTE.sign(KEY, CHAIN_ID),))
SAMPLE_BLOCK = Block(SAMPLE_HEADER, (SAMPLE_TX,), (SAMPLE_ENTRY,))
SAMPLE_READING = sign_reading(
    KEY,
    CHAIN_ID,
    ReadingRecord(
        "pv-a",
        1_700_000_000_000,
        1_700_000_900_000,
        12,
        3400,
        -250,
        2301,
        0,
        0,
        GENESIS_READING_HASH,
    ),
)
SAMPLES: dict[type[Record], Record] = {
    Transfer: SAMPLE_TX.body,
    RegisterParticipant: RegisterParticipant(b"\x22" * 32, "alice"),
    Mint: Mint(b"\x33" * 20, 1000),
    Burn: Burn(b"\x44" * 20, 7),
    PlaceOrder: PlaceOrder(1, 1_893_456, 0, 3, 250_000, 1500, 500, 0),
    CancelOrder: CancelOrder(b"\x66" * 32),
    AmendOrder: AmendOrder(b"\x66" * 32, 240_000, 1000),
    RegisterMeter: RegisterMeter("pv-a", b"\x33" * 20, 1, KEY.public_key, "eastron-sdm120"),
    MeterReadings: MeterReadings((SAMPLE_READING,)),
    CDRequest: CDRequest(1, 0, 1_700_000_000_000, 1_700_003_600_000, 7_000, 7_000, 250_000, "ev-a"),
    SealedTx: SealedTx(b"\x77" * 32, (b"\x78" * WRAPPED_KEY_BYTES,), b"\x79" * 40),
    UpdateValidators: UpdateValidators((KEY.public_key,), (b"\x7a" * 32,)),
    Propose: Propose(Mint(b"\x33" * 20, 1000).encode(), 120),
    Approve: Approve(b"\x7a" * 32),
    RemoveParticipant: RemoveParticipant(b"\x33" * 20),
    ReplaceBridgeKey: ReplaceBridgeKey("pv-a", KEY.public_key),
    SetParameter: SetParameter("penalty_mc_per_kwh", 150_000, 1000),
    TariffBand: TariffBand(0, 24, 200_000, 50_000),
    SetTariffs: SetTariffs((TariffBand(0, 24, 200_000, 50_000),), 1000),
    UpdateCouncil: UpdateCouncil((KEY.public_key,), 1),
    UpdateGateways: UpdateGateways((KEY.public_key,), ()),
    LinkDevice: LinkDevice("ev-a", "CP-7"),
    ReadingRecord: SAMPLE_READING.record,
    SignedReading: SAMPLE_READING,
    TxPayload: SAMPLE_TX.payload,
    Transaction: SAMPLE_TX,
    BlockHeader: SAMPLE_HEADER,
    ScheduleEntry: SAMPLE_ENTRY,
    Block: SAMPLE_BLOCK,
    Vote: SAMPLE_VOTE,
    VoteSignature: SAMPLE_CERT.signatures[0],
    Certificate: SAMPLE_CERT,
    CommittedBlock: CommittedBlock(SAMPLE_BLOCK, SAMPLE_CERT),
}

# --- msgpack helpers: build bytes by hand, including the non-canonical spellings -------------


def pack(value: Any) -> bytes:
    """msgpack's own (canonical) encoding of a plain value."""
    return bytes(msgpack.packb(value, use_bin_type=True))


def wire(record: Record) -> list[Any]:
    """The record as msgpack-native lists, to edit and re-pack."""
    out = msgpack.unpackb(encode(record), raw=False)
    assert isinstance(out, list)
    return out


def index_of(cls: type[Record], field: str) -> int:
    """Position of a field in the wire array (after tag and version)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return 2 + names.index(field)


def fixarray(items: list[bytes]) -> bytes:
    assert len(items) < 16
    return bytes([0x90 | len(items)]) + b"".join(items)


# Every integer format msgpack has beyond the fix formats: (first byte, struct format).
INT_FORMATS: dict[str, tuple[int, str]] = {
    "uint8": (0xCC, ">B"),
    "uint16": (0xCD, ">H"),
    "uint32": (0xCE, ">I"),
    "uint64": (0xCF, ">Q"),
    "int8": (0xD0, ">b"),
    "int16": (0xD1, ">h"),
    "int32": (0xD2, ">i"),
    "int64": (0xD3, ">q"),
}


def int_as(value: int, fmt: str) -> bytes:
    head, spec = INT_FORMATS[fmt]
    return bytes([head]) + struct.pack(spec, value)


def vote_items(vote: Vote) -> list[bytes]:
    """The six wire items of a Vote, each canonically packed: the base for re-spelling one."""
    return [
        pack(Vote.TYPE_TAG),
        pack(Vote.VERSION),
        pack(vote.height),
        pack(vote.round),
        pack(vote.block_hash),
        pack(vote.step),
    ]


# --- coverage of the schema ------------------------------------------------------------------


def _records_defined_in(module: Any) -> set[type[Record]]:
    return {
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Record) and obj is not Record and obj.__module__ == module.__name__
    }


def test_every_record_type_has_a_strategy() -> None:
    """A new record type in tx.py, block.py or meter.py must join these properties."""
    defined = (
        _records_defined_in(gridchain.protocol.tx)
        | _records_defined_in(gridchain.protocol.block)
        | _records_defined_in(gridchain.protocol.meter)
        | _records_defined_in(gridchain.protocol.governance)
    )
    assert defined == set(STRATEGIES)
    assert set(SAMPLES) == set(STRATEGIES)


def test_type_tags_and_versions_are_pinned() -> None:
    """Tags are wire format: renumbering one silently changes every hash (see the spec table)."""
    assert {cls.__name__: (cls.TYPE_TAG, cls.VERSION) for cls in ALL_TYPES} == {
        "TxPayload": (0x01, 1),
        "Transaction": (0x02, 1),
        "Transfer": (0x10, 1),
        "RegisterParticipant": (0x11, 1),
        "Mint": (0x12, 1),
        "Burn": (0x13, 1),
        "PlaceOrder": (0x15, 1),
        "CancelOrder": (0x16, 1),
        "AmendOrder": (0x17, 1),
        "RegisterMeter": (0x14, 1),
        "MeterReadings": (0x18, 1),
        "CDRequest": (0x19, 1),
        "SealedTx": (0x1A, 1),
        "UpdateValidators": (0x1F, 1),
        "Propose": (0x1B, 1),
        "Approve": (0x1C, 1),
        "RemoveParticipant": (0x80, 1),
        "ReplaceBridgeKey": (0x81, 1),
        "SetParameter": (0x82, 1),
        "TariffBand": (0x83, 1),
        "SetTariffs": (0x84, 1),
        "UpdateCouncil": (0x85, 1),
        "UpdateGateways": (0x86, 1),
        "LinkDevice": (0x87, 1),
        "ReadingRecord": (0x68, 1),
        "SignedReading": (0x69, 1),
        "BlockHeader": (0x20, 1),
        "ScheduleEntry": (0x21, 1),
        "Block": (0x22, 1),
        "Vote": (0x23, 1),
        "VoteSignature": (0x24, 1),
        "Certificate": (0x25, 1),
        "CommittedBlock": (0x26, 1),
    }
    for cls in ALL_TYPES:
        assert record_type(cls.TYPE_TAG) is cls


def test_field_layouts_are_pinned() -> None:
    """Field order is wire order: swapping two fields of one type would change no round trip
    but would fork every hash.  This is the table in docs/spec/encoding.md section 4."""
    assert {
        cls.__name__: [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for cls in ALL_TYPES
    } == {
        "Transfer": ["to", "amount_mc", "memo"],
        "RegisterParticipant": ["public_key", "name"],
        "Mint": ["to", "amount_mc"],
        "Burn": ["account", "amount_mc"],
        "PlaceOrder": [
            "market",
            "slot",
            "side",
            "device",
            "price_mc_per_kwh",
            "quantity_wh",
            "peak_wh",
            "expiry_ms",
        ],
        "CancelOrder": ["order_id"],
        "AmendOrder": ["order_id", "price_mc_per_kwh", "quantity_wh"],
        "RegisterMeter": ["meter_id", "owner", "meter_type", "bridge_key", "profile"],
        "MeterReadings": ["readings"],
        "CDRequest": [
            "kind",
            "device",
            "arrival_ms",
            "departure_ms",
            "energy_wh",
            "max_rate_w",
            "limit_price_mc_per_kwh",
            "meter_id",
        ],
        "SealedTx": ["key_set", "wrapped_keys", "ciphertext"],
        "UpdateValidators": ["add", "remove"],
        "Propose": ["record", "expires_at_height"],
        "Approve": ["proposal_id"],
        "RemoveParticipant": ["address"],
        "ReplaceBridgeKey": ["meter_id", "bridge_key"],
        "SetParameter": ["name", "value", "effective_height"],
        "TariffBand": ["start_hour", "end_hour", "retail_mc_per_kwh", "feed_in_mc_per_kwh"],
        "SetTariffs": ["tariffs", "effective_height"],
        "UpdateCouncil": ["members", "threshold"],
        "UpdateGateways": ["add", "remove"],
        "LinkDevice": ["meter_id", "device_id"],
        "ReadingRecord": [
            "meter_id",
            "interval_start_ms",
            "interval_end_ms",
            "import_wh",
            "export_wh",
            "power_w",
            "voltage_dv",
            "status",
            "sequence",
            "prev_hash",
        ],
        "SignedReading": ["record", "signature"],
        "TxPayload": ["sender", "nonce", "body"],
        "Transaction": ["sender", "nonce", "body", "signature"],
        "BlockHeader": [
            "chain_id",
            "height",
            "prev_hash",
            "timestamp_ms",
            "proposer",
            "round",
            "benefit",
            "tx_root",
            "schedule_root",
            "state_root",
        ],
        "ScheduleEntry": ["request_id", "rate_w"],
        "Block": ["header", "txs", "schedule"],
        "Vote": ["height", "round", "block_hash", "step"],
        "VoteSignature": ["validator", "signature"],
        "Certificate": ["vote", "signatures"],
        "CommittedBlock": ["block", "certificate"],
    }


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls: type[Record], data: st.DataObject) -> None:
    """decode(encode(x)) == x, and the bytes are [tag, version, *fields] in declared order."""
    value = data.draw(STRATEGIES[cls])
    raw = encode(value)
    assert decode(raw, cls) == value
    assert decode_one_of(raw, ALL_TYPES) == value
    assert encode(decode(raw, cls)) == raw
    top = msgpack.unpackb(raw, raw=False)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert top[:2] == [cls.TYPE_TAG, cls.VERSION]
    assert len(top) == 2 + len(fields)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_samples_round_trip_from_any_buffer_type(cls: type[Record]) -> None:
    """bytearray and memoryview (what sockets hand over) decode like bytes."""
    raw = encode(SAMPLES[cls])
    # decode() is annotated with bytes but accepts any buffer at run time; hence the ignores.
    assert decode(bytearray(raw), cls) == SAMPLES[cls]  # type: ignore[arg-type]
    assert decode(memoryview(raw), cls) == SAMPLES[cls]  # type: ignore[arg-type]


def test_integer_bounds_round_trip() -> None:
    """The extreme values of each integer kind are legal and survive the trip."""
    for header in (
        dataclasses.replace(SAMPLE_HEADER, height=U64_MAX, benefit=I64_MIN),
        dataclasses.replace(SAMPLE_HEADER, height=0, benefit=I64_MAX),
    ):
        assert decode(header.encode(), BlockHeader) == header
    for step in (0, 255):
        vote = dataclasses.replace(SAMPLE_VOTE, step=step)
        assert decode(vote.encode(), Vote) == vote


def test_str_bounds_count_code_points_not_bytes() -> None:
    """A memo is at most 140 *characters*; another implementation must not count UTF-8 bytes."""
    memo = "☀" * 140  # 420 bytes of UTF-8
    ok = Transfer(b"\x11" * 20, 1, memo)
    assert decode(ok.encode(), Transfer) == ok
    with pytest.raises(FieldValueError):
        Transfer(b"\x11" * 20, 1, memo + "☀").encode()


# --- non-canonical spellings -----------------------------------------------------------------


def test_hand_built_vote_matches_encode() -> None:
    """Precondition for the tests below: the hand-built canonical bytes equal encode()."""
    assert fixarray(vote_items(SAMPLE_VOTE)) == SAMPLE_VOTE.encode()


@pytest.mark.parametrize("fmt", sorted(INT_FORMATS))
@pytest.mark.parametrize(
    ("position", "name"), [(0, "tag"), (1, "version"), (2, "height"), (3, "round"), (5, "step")]
)
def test_wider_integer_format_is_non_canonical(fmt: str, position: int, name: str) -> None:
    """The same small integer spelled in any wider msgpack format is refused."""
    items = vote_items(SAMPLE_VOTE)
    value = msgpack.unpackb(items[position])
    items[position] = int_as(value, fmt)
    with pytest.raises(NonCanonicalError):
        decode(fixarray(items), Vote)


@pytest.mark.parametrize("fmt", ["uint32", "uint64", "int32", "int64"])
def test_wider_format_of_a_multibyte_integer_is_non_canonical(fmt: str) -> None:
    """300 needs uint16; uint32/uint64/int32/int64 spellings of it are refused."""
    vote = dataclasses.replace(SAMPLE_VOTE, height=300)
    items = vote_items(vote)
    assert items[2] == int_as(300, "uint16")
    items[2] = int_as(300, fmt)
    with pytest.raises(NonCanonicalError):
        decode(fixarray(items), Vote)


@pytest.mark.parametrize("fmt", ["int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("value", [-3, 100])
def test_wider_format_of_a_signed_integer_is_non_canonical(fmt: str, value: int) -> None:
    """I64 fields: -3 and 100 are fixints; their int8..int64 spellings are refused."""
    entry = ScheduleEntry(b"\x55" * 32, value)
    canonical = [pack(ScheduleEntry.TYPE_TAG), pack(1), pack(entry.request_id), pack(value)]
    assert fixarray(canonical) == entry.encode()
    with pytest.raises(NonCanonicalError):
        decode(fixarray([*canonical[:3], int_as(value, fmt)]), ScheduleEntry)


@pytest.mark.parametrize(
    "spelling",
    [
        bytes([0xC5]) + struct.pack(">H", 32),  # bin16
        bytes([0xC6]) + struct.pack(">I", 32),  # bin32
    ],
    ids=["bin16", "bin32"],
)
def test_wider_bin_header_is_non_canonical(spelling: bytes) -> None:
    items = vote_items(SAMPLE_VOTE)
    items[4] = spelling + SAMPLE_VOTE.block_hash
    with pytest.raises(NonCanonicalError):
        decode(fixarray(items), Vote)


@pytest.mark.parametrize(
    "spelling",
    [
        bytes([0xD9, 2]),  # str8
        bytes([0xDA]) + struct.pack(">H", 2),  # str16
        bytes([0xDB]) + struct.pack(">I", 2),  # str32
    ],
    ids=["str8", "str16", "str32"],
)
def test_wider_str_header_is_non_canonical(spelling: bytes) -> None:
    """ "hi" is a fixstr; the str8/16/32 spellings carry the same text and are refused."""
    items = [pack(Transfer.TYPE_TAG), pack(1), pack(b"\x11" * 20), pack(5)]
    assert fixarray([*items, pack("hi")]) == Transfer(b"\x11" * 20, 5, "hi").encode()
    with pytest.raises(NonCanonicalError):
        decode(fixarray([*items, spelling + b"hi"]), Transfer)


@pytest.mark.parametrize(
    "header",
    [bytes([0xDC]) + struct.pack(">H", 6), bytes([0xDD]) + struct.pack(">I", 6)],
    ids=["array16", "array32"],
)
def test_wider_array_header_is_non_canonical(header: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        decode(header + b"".join(vote_items(SAMPLE_VOTE)), Vote)


def test_wider_array_header_of_a_nested_tuple_is_non_canonical() -> None:
    """Canonicality is checked over the whole input, not only the outer array."""
    raw = SAMPLE_CERT.encode()
    inner = fixarray([encode(s) for s in SAMPLE_CERT.signatures])
    assert raw.endswith(inner)
    wide = raw[: -len(inner)] + bytes([0xDC]) + struct.pack(">H", 1) + inner[1:]
    with pytest.raises(NonCanonicalError):
        decode(wide, Certificate)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=any_record, extra=st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(value: Record, extra: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        decode(encode(value) + extra, type(value))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=any_record, data=st.data())
def test_truncated_input_is_malformed(value: Record, data: st.DataObject) -> None:
    """A msgpack value is self-delimiting, so every strict prefix is incomplete."""
    raw = encode(value)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(MalformedError):
        decode(raw[:cut], type(value))


# --- str versus bin, maps, floats, extension types -------------------------------------------


def _transfer_with(**items: bytes) -> bytes:
    """A Transfer's wire bytes with some items replaced by hand-packed ones."""
    base = {
        "to": pack(b"\x11" * 20),
        "amount_mc": pack(5),
        "memo": pack("hi"),
    }
    base.update(items)
    return fixarray([pack(Transfer.TYPE_TAG), pack(1), base["to"], base["amount_mc"], base["memo"]])


def test_str_field_sent_as_bin_is_refused() -> None:
    """bin and str are different msgpack types here, not two spellings of one value."""
    with pytest.raises(FieldTypeError):
        decode(_transfer_with(memo=pack(b"hi")), Transfer)


def test_bytes_field_sent_as_str_is_refused() -> None:
    with pytest.raises(FieldTypeError):
        decode(_transfer_with(to=pack("x" * 20)), Transfer)


def test_bytes_field_sent_as_str_with_invalid_utf8_is_malformed() -> None:
    """The old msgpack "raw" type holding non-UTF-8 bytes cannot even be parsed as str."""
    with pytest.raises(MalformedError):
        decode(_transfer_with(to=bytes([0xA0 | 20]) + b"\xff" * 20), Transfer)


@pytest.mark.parametrize(
    "raw_text",
    [b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xe2\x98"],
    ids=["overlong", "surrogate", "invalid-byte", "truncated"],
)
def test_invalid_utf8_in_str_field_is_malformed(raw_text: bytes) -> None:
    memo = bytes([0xA0 | len(raw_text)]) + raw_text
    with pytest.raises(MalformedError):
        decode(_transfer_with(memo=memo), Transfer)


def test_unencodable_str_is_refused_on_encode() -> None:
    """A lone surrogate (json.loads accepts "\\ud800") gets a typed refusal, not a crash."""
    with pytest.raises(FieldValueError):
        Transfer(b"\x11" * 20, 1, "a\ud800").encode()


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_map_instead_of_array_at_top_level_is_malformed(cls: type[Record]) -> None:
    value = SAMPLES[cls]
    as_map = {f.name: i for i, f in enumerate(dataclasses.fields(value))}  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        decode(pack({"tag": cls.TYPE_TAG, "version": 1, **as_map}), cls)


def test_map_instead_of_nested_record_is_refused() -> None:
    w = wire(SAMPLE_TX)
    w[index_of(Transaction, "body")] = {"to": b"\x11" * 20, "amount_mc": 5, "memo": "hi"}
    with pytest.raises(FieldTypeError):
        decode(pack(w), Transaction)


def test_map_instead_of_tuple_is_refused() -> None:
    w = wire(SAMPLE_CERT)
    w[index_of(Certificate, "signatures")] = {"0": wire(SAMPLE_CERT.signatures[0])}
    with pytest.raises(FieldTypeError):
        decode(pack(w), Certificate)


@pytest.mark.parametrize(
    "item",
    [
        bytes([0xCA]) + struct.pack(">f", 1.0),
        bytes([0xCB]) + struct.pack(">d", 1.0),
        pack(msgpack.ExtType(5, b"\x01")),
        bytes([0xD6, 0xFF]) + struct.pack(">I", 1),  # the timestamp extension
    ],
    ids=["float32", "float64", "ext", "timestamp"],
)
def test_float_and_extension_types_in_an_int_field_are_refused(item: bytes) -> None:
    with pytest.raises(FieldTypeError):
        decode(_transfer_with(amount_mc=item), Transfer)


@pytest.mark.parametrize(
    "top",
    [pack(1.0), pack(None), pack("Vote"), pack(b"\x23"), pack(7), pack(msgpack.ExtType(1, b""))],
    ids=["float", "nil", "str", "bin", "int", "ext"],
)
def test_non_array_top_level_is_malformed(top: bytes) -> None:
    with pytest.raises(MalformedError):
        decode(top, Vote)


# --- tags and versions -----------------------------------------------------------------------


@pytest.mark.parametrize("tag", [0xFFFF, 2**32, -1, U64_MAX])
def test_unknown_tag_is_refused(tag: int) -> None:
    w = wire(SAMPLE_VOTE)
    w[0] = tag
    with pytest.raises(UnknownTypeError):
        decode(pack(w), Vote)


def test_known_tag_of_the_wrong_type_is_refused() -> None:
    """A Vote is not a Transaction even though both tags are registered."""
    with pytest.raises(UnknownTypeError):
        decode(SAMPLE_VOTE.encode(), Transaction)
    with pytest.raises(UnknownTypeError):
        decode_tx(SAMPLE_TX.payload.encode())


def test_wrong_record_inside_a_union_is_refused() -> None:
    """A transaction body is one of the TxBody kinds (TX_BODY_TYPES) and nothing else."""
    w = wire(SAMPLE_TX)
    w[index_of(Transaction, "body")] = wire(SAMPLE_VOTE)
    with pytest.raises(UnknownTypeError):
        decode(pack(w), Transaction)


def test_wrong_record_in_a_single_type_field_is_refused() -> None:
    w = wire(SAMPLE_BLOCK)
    w[index_of(Block, "header")] = wire(SAMPLE_VOTE)
    with pytest.raises(UnknownTypeError):
        decode(pack(w), Block)


@pytest.mark.parametrize("version", [0, 2, 255, 2**32])
@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_wrong_version_is_refused(cls: type[Record], version: int) -> None:
    w = wire(SAMPLES[cls])
    w[1] = version
    with pytest.raises(UnsupportedVersionError):
        decode(pack(w), cls)


def test_wrong_version_of_a_nested_record_is_refused() -> None:
    w = wire(SAMPLE_TX)
    w[index_of(Transaction, "body")][1] = 2
    with pytest.raises(UnsupportedVersionError):
        decode(pack(w), Transaction)


@pytest.mark.parametrize(
    "head",
    [[], [Vote.TYPE_TAG], ["Vote", 1], [Vote.TYPE_TAG, "1"], [True, 1], [Vote.TYPE_TAG, 1.0]],
    ids=["empty", "tag-only", "str-tag", "str-version", "bool-tag", "float-version"],
)
def test_record_without_an_integer_tag_and_version_is_malformed(head: list[Any]) -> None:
    """A two-item head is followed by the Vote's real fields; a shorter one stands alone."""
    w = wire(SAMPLE_VOTE)
    with pytest.raises(MalformedError):
        decode(pack([*head, *w[2:]] if len(head) == 2 else head), Vote)


# --- field counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_missing_and_extra_fields_are_refused(cls: type[Record]) -> None:
    w = wire(SAMPLES[cls])
    for broken in (w[:-1], [*w, 0], [*w, w[-1]], w[:2]):
        with pytest.raises(FieldCountError):
            decode(pack(broken), cls)


def test_defaulted_fields_are_still_required_on_the_wire() -> None:
    """Python defaults (Transfer.memo, Block.schedule) do not make wire fields optional."""
    with pytest.raises(FieldCountError):
        decode(pack(wire(SAMPLE_TX.body)[:-1]), Transfer)
    with pytest.raises(FieldCountError):
        decode(pack(wire(SAMPLE_BLOCK)[:-1]), Block)


def test_missing_field_in_a_nested_record_is_refused() -> None:
    w = wire(SAMPLE_TX)
    w[index_of(Transaction, "body")].pop()
    with pytest.raises(FieldCountError):
        decode(pack(w), Transaction)


# --- field types -----------------------------------------------------------------------------

# Values of the wrong msgpack type for each kind of field.  None is here on purpose: no field
# in these records is optional, so nil must be refused everywhere.
WRONG_FOR: dict[str, list[Any]] = {
    "int": [True, False, 1.0, 0.5, "1", b"\x01", None, [1], {"a": 1}],
    "bytes": ["x", 0, True, None, 1.0, [], {}],
    "str": [b"memo", 0, True, None, 1.0, [], {}],
    "tuple": [b"", "x", 0, True, None, 1.0, {}],
    "record": [b"", "x", 0, True, None, 1.0, {}],
}


def _kind(value: Any) -> str:
    for kind, types in (
        ("int", int),
        ("bytes", bytes),
        ("str", str),
        ("tuple", tuple),
        ("record", Record),
    ):
        if isinstance(value, types):
            return kind
    raise AssertionError(f"no kind for {value!r}")


FIELD_CASES = [
    (cls, f.name)
    for cls, sample in SAMPLES.items()
    for f in dataclasses.fields(sample)  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("cls", "field"), FIELD_CASES, ids=[f"{c.__name__}.{n}" for c, n in FIELD_CASES]
)
def test_wrong_field_type_is_refused(cls: type[Record], field: str) -> None:
    """bool for int, float, str for bytes, bytes for str, nil, arrays and maps: all refused."""
    sample = SAMPLES[cls]
    kind = _kind(getattr(sample, field))
    for bad in WRONG_FOR[kind]:
        w = wire(sample)
        w[index_of(cls, field)] = bad
        with pytest.raises(FieldTypeError):
            decode(pack(w), cls)


def test_wrong_field_type_deep_inside_a_block_is_refused() -> None:
    """Field checks apply at every depth: a bool amount inside a block's transaction."""
    w = wire(SAMPLE_BLOCK)
    tx = w[index_of(Block, "txs")][0]
    tx[index_of(Transaction, "body")][index_of(Transfer, "amount_mc")] = True
    with pytest.raises(FieldTypeError):
        decode(pack(w), Block)


def test_list_item_of_the_wrong_type_is_refused() -> None:
    w = wire(SAMPLE_BLOCK)
    w[index_of(Block, "schedule")] = [wire(SAMPLE_ENTRY), 5]
    with pytest.raises(FieldTypeError):
        decode(pack(w), Block)


# --- ranges and lengths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field", "bad"),
    [
        (Vote, "height", -1),  # U64
        (Vote, "step", 256),  # U8
        (Vote, "step", -1),
        (ScheduleEntry, "rate_w", 2**63),  # I64
        (BlockHeader, "benefit", 2**63),
        (BlockHeader, "benefit", U64_MAX),
        (Transfer, "amount_mc", -1),
        (Transaction, "nonce", I64_MIN),
    ],
)
def test_out_of_range_integer_is_refused(cls: type[Record], field: str, bad: int) -> None:
    w = wire(SAMPLES[cls])
    w[index_of(cls, field)] = bad
    with pytest.raises(FieldValueError):
        decode(pack(w), cls)


@pytest.mark.parametrize(
    ("cls", "field", "lengths"),
    [
        (Transfer, "to", [0, 19, 21, 32]),  # Bytes20
        (Vote, "block_hash", [0, 31, 33, 64]),  # Bytes32
        (VoteSignature, "signature", [0, 63, 65]),  # Bytes64
        (Transaction, "sender", [20, 31, 33]),
    ],
)
def test_wrong_fixed_byte_length_is_refused(
    cls: type[Record], field: str, lengths: list[int]
) -> None:
    for n in lengths:
        w = wire(SAMPLES[cls])
        w[index_of(cls, field)] = b"\x07" * n
        with pytest.raises(FieldValueError):
            decode(pack(w), cls)


@pytest.mark.parametrize(
    ("cls", "field", "bad"),
    [
        (Transfer, "memo", "m" * 141),
        (RegisterParticipant, "name", ""),
        (RegisterParticipant, "name", "n" * 65),
    ],
)
def test_str_out_of_length_bounds_is_refused(cls: type[Record], field: str, bad: str) -> None:
    w = wire(SAMPLES[cls])
    w[index_of(cls, field)] = bad
    with pytest.raises(FieldValueError):
        decode(pack(w), cls)


@pytest.mark.parametrize("count", [0, 1025])
def test_certificate_signature_count_bounds(count: int) -> None:
    """A certificate holds 1..1024 signatures."""
    w = wire(SAMPLE_CERT)
    w[index_of(Certificate, "signatures")] = [wire(SAMPLE_CERT.signatures[0])] * count
    with pytest.raises(FieldValueError):
        decode(pack(w), Certificate)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Transfer(b"\x11" * 19, 1),
        lambda: Transfer(b"\x11" * 20, -1),
        lambda: Transfer(b"\x11" * 20, 2**64),
        lambda: Transfer(b"\x11" * 20, True),
        lambda: Transfer(b"\x11" * 20, 1, "m" * 141),
        lambda: Vote(1, 0, b"\x00" * 32, 256),
        lambda: ScheduleEntry(b"\x00" * 32, 2**63),
        lambda: Certificate(SAMPLE_VOTE, ()),
        lambda: Transaction(SAMPLE_TX.sender, 1, SAMPLE_VOTE, SAMPLE_TX.signature),  # type: ignore[arg-type]
    ],
    ids=[
        "short-address",
        "negative",
        "u64-overflow",
        "bool",
        "long-memo",
        "u8-overflow",
        "i64-overflow",
        "no-signatures",
        "vote-as-body",
    ],
)
def test_encode_refuses_values_decode_would_refuse(build: Callable[[], Record]) -> None:
    """Encoding checks the same bounds, so no node can sign bytes every node then rejects."""
    with pytest.raises(FieldValueError):
        encode(build())


# --- size limit ------------------------------------------------------------------------------


def test_max_bytes_is_inclusive_and_enforced() -> None:
    raw = SAMPLE_BLOCK.encode()
    assert decode(raw, Block, max_bytes=len(raw)) == SAMPLE_BLOCK
    with pytest.raises(OversizeError):
        decode(raw, Block, max_bytes=len(raw) - 1)


def test_oversize_is_refused_before_parsing() -> None:
    """The limit is checked first, so a peer cannot make a node parse megabytes of junk."""
    with pytest.raises(OversizeError):
        decode_tx(b"\xc1" * (MAX_TX_BYTES + 1))
    with pytest.raises(OversizeError):
        decode_committed(b"\xc1" * (gridchain.protocol.block.MAX_BLOCK_BYTES + 1))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(FieldTypeError):
        decode(SAMPLE_VOTE.encode().hex(), Vote)  # type: ignore[arg-type]


# --- hostile input ---------------------------------------------------------------------------

TAGS = [cls.TYPE_TAG for cls in ALL_TYPES]

msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(I64_MIN, U64_MAX)
    | st.floats()
    | text(0, 8)
    | st.binary(max_size=70),
    lambda children: (
        st.lists(children, max_size=12) | st.dictionaries(text(0, 4), children, max_size=3)
    ),
    max_leaves=24,
)
record_shaped = st.builds(
    lambda tag, version, rest: [tag, version, *rest],
    st.sampled_from(TAGS),
    st.sampled_from([0, 1, 2]),
    st.lists(msgpack_values, max_size=12),
)


def _decode_or_decode_error(data: bytes) -> None:
    """Decoding hostile bytes either succeeds canonically or raises a DecodeError."""
    for expected in ((Transaction,), (CommittedBlock,), ALL_TYPES):
        try:
            value = decode_one_of(data, expected)
        except DecodeError:
            continue
        assert encode(value) == data


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    _decode_or_decode_error(data)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(msgpack_values, record_shaped))
def test_random_msgpack_values_raise_only_decode_errors(value: Any) -> None:
    _decode_or_decode_error(pack(value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=any_record, data=st.data())
def test_mutated_encodings_are_refused_or_canonical(value: Record, data: st.DataObject) -> None:
    """Flip, drop or insert a few bytes: whatever still decodes must re-encode to the input."""
    raw = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["set", "delete", "insert"]))
        if op == "set":
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "delete" and len(raw) > 1:
            del raw[pos]
        else:
            raw.insert(pos, data.draw(st.integers(0, 255)))
    _decode_or_decode_error(bytes(raw))


def test_the_decode_memories_keep_at_most_their_byte_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 0046: bounded by the bytes they keep as well as by count, and the kept size is
    what they hold."""
    from gridchain.protocol import encoding
    from gridchain.protocol.block import Vote

    encoding.forget_decoded()
    monkeypatch.setattr(encoding, "_DECODE_CACHE_BUDGET_BYTES", 200)
    raws = [Vote(height, 0, bytes(32), 2).encode() for height in range(1000, 1100)]
    for raw in raws:
        encoding.decode(raw, Vote)
    kept = sum(len(data) for _, data in encoding._DECODE_CACHE)
    assert 0 < kept <= 200
    assert kept == encoding._decode_cache_bytes
    assert list(encoding._DECODE_CACHE)[-1][1] == raws[-1]  # the newest stays
    encoding.forget_decoded()


def test_the_small_record_memory_keeps_at_most_its_shipped_count() -> None:
    """ADR 0054: the small-record memory fills with the chain's age up to its bound; with the
    shipped constants it evicts the oldest once 4,096 records are kept."""
    from gridchain.protocol import encoding
    from gridchain.protocol.block import Vote

    encoding.forget_decoded()
    raws = [Vote(height, 0, bytes(32), 2).encode() for height in range(5000)]
    for raw in raws:
        encoding.decode(raw, Vote)
    assert len(encoding._DECODE_CACHE) == encoding._DECODE_CACHE_ENTRIES == 4096
    assert encoding._decode_cache_bytes <= encoding._DECODE_CACHE_BUDGET_BYTES
    assert next(iter(encoding._DECODE_CACHE))[1] == raws[5000 - 4096]  # the oldest went first
    encoding.forget_decoded()
