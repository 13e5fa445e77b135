"""Meters on the chain: genesis meters, RegisterMeter, and every refusal of a reading.

Why: settlement pays and fines participants from the energy between two readings, so a reading
that is forged, replayed, reordered, out of the hash chain, running backwards or from the future
must be refused with its own typed error, and a refused batch must leave nothing behind (a
half-stored batch would put a hole in the meter's chain that the bridge could never fill).
"""

from __future__ import annotations

from typing import Any

import pytest

from gridchain.genesis.schema import GenesisError, parse_genesis
from gridchain.market.accounts import get_account
from gridchain.market.errors import (
    ApplicationError,
    BridgeKeyMismatchError,
    DecreasingRegisterError,
    InvalidMeterIdError,
    InvalidMeterTypeError,
    MeterExistsError,
    NotGovernanceError,
    ReadingChainError,
    ReadingIntervalError,
    ReadingSequenceError,
    ReadingSignatureError,
    ReadingTimeError,
    UnknownMeterOwnerError,
    UnregisteredMeterError,
)
from gridchain.market.meters import (
    MAX_READING_AHEAD_MS,
    get_meter,
    meters_of,
    reading_at_or_before,
    readings_from,
)
from gridchain.protocol.address import address_of
from gridchain.protocol.errors import BadKeyError
from gridchain.protocol.meter import GENESIS_READING_HASH, MeterType, sign_reading
from gridchain.protocol.tx import RegisterMeter, sign_tx
from tests.helpers import addr, det_key, signed
from tests.unit.market.conftest import Exchange
from tests.unit.market.metering import (
    BRIDGE_1,
    BRIDGE_2,
    MeterChain,
    make_metered_exchange,
    meter_bundle,
    meter_entry,
    probe_readings_tx,
    readings_tx,
)

T0 = 1_704_067_200_000 + 3_600_000  # one hour after genesis
Q = 900_000


@pytest.fixture
def ex() -> Exchange:
    return make_metered_exchange()


def chain(ex: Exchange, meter_id: str = "pv-a", key: Any = BRIDGE_1) -> MeterChain:
    return MeterChain(meter_id, key, ex.bundle.genesis.chain_id)


# --- genesis ---------------------------------------------------------------------------------


def test_genesis_meters_are_registered(ex: Exchange) -> None:
    meter = get_meter(ex.state, "pv-a")
    assert meter is not None
    assert meter.owner == addr(ex.peers[0])
    assert meter.meter_type == MeterType.PV
    assert meter.bridge_key == BRIDGE_1.public_key
    assert meter.next_sequence == 0
    assert meter.last_hash == GENESIS_READING_HASH
    net = get_meter(ex.state, "net-c")
    assert net is not None
    assert net.meter_type == MeterType.NETMETER
    assert [m.meter_id for m in meters_of(ex.state, addr(ex.peers[1]))] == ["load-b"]


def test_genesis_meter_owner_must_be_a_participant() -> None:
    outsider = det_key("outsider")
    with pytest.raises(GenesisError, match=r"meters\[0\]\.owner"):
        meter_bundle([meter_entry("m", _address(outsider), "PV", BRIDGE_1)])


def test_genesis_meter_ids_are_unique() -> None:
    bundle = meter_bundle([])
    owner = bundle.participants[0].address
    with pytest.raises(GenesisError, match="appears twice"):
        meter_bundle(
            [meter_entry("m", owner, "PV", BRIDGE_1), meter_entry("m", owner, "EV", BRIDGE_1)]
        )


def test_genesis_meter_type_must_be_from_the_table() -> None:
    bundle = meter_bundle([])
    doc = bundle.genesis.model_dump(mode="json")
    doc["meters"] = [meter_entry("m", bundle.participants[0].address, "Windmill", BRIDGE_1)]
    with pytest.raises(GenesisError, match="meter_type"):
        parse_genesis(doc)


@pytest.mark.parametrize("bridge_hex", ["01" + "00" * 31, "ee" + "ff" * 30 + "7f"])
def test_genesis_meter_bridge_key_must_be_safe(bridge_hex: str) -> None:
    """A small-order or non-canonical bridge key is refused (ADR 0021): OpenSSL accepts
    forged readings signed "by" it."""
    bundle = meter_bundle([])
    doc = bundle.genesis.model_dump(mode="json")
    doc["meters"] = [meter_entry("m", bundle.participants[0].address, "PV", BRIDGE_1)]
    doc["meters"][0]["bridge_public_key"] = bridge_hex
    with pytest.raises(GenesisError, match=r"meters\.0\.bridge_public_key"):
        parse_genesis(doc)


def test_no_meters_keeps_the_chain_id_of_a_document_without_the_field() -> None:
    bundle = meter_bundle([])
    doc = bundle.genesis.model_dump(mode="json")
    del doc["meters"]
    assert parse_genesis(doc).chain_id == bundle.genesis.chain_id


def _address(key: Any) -> str:
    from gridchain.protocol.address import format_address

    return format_address(address_of(key.public_key))


# --- RegisterMeter ---------------------------------------------------------------------------


def _register(ex: Exchange, body: RegisterMeter, *, probe: bool = False) -> Any:
    return ex.sign(ex.bundle.governance, body, probe=probe)


def _body(ex: Exchange, **changes: Any) -> RegisterMeter:
    fields: dict[str, Any] = {
        "meter_id": "ev-c",
        "owner": addr(ex.peers[2]),
        "meter_type": int(MeterType.EV),
        "bridge_key": BRIDGE_2.public_key,
        "profile": "eastron-sdm630",
    }
    fields.update(changes)
    return RegisterMeter(**fields)


def test_register_meter_by_governance(ex: Exchange) -> None:
    ex.block([_register(ex, _body(ex))])
    meter = get_meter(ex.state, "ev-c")
    assert meter is not None
    assert meter.registered_height == 1
    assert meter.profile == "eastron-sdm630"
    assert [m.meter_id for m in meters_of(ex.state, addr(ex.peers[2]))] == ["ev-c", "net-c"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"meter_id": "pv-a"}, MeterExistsError),
        ({"owner": address_of(det_key("outsider").public_key)}, UnknownMeterOwnerError),
        ({"meter_type": 0}, InvalidMeterTypeError),
        ({"meter_type": 7}, InvalidMeterTypeError),
        # 64 code points pass the wire's bound, but 256 bytes of UTF-8 do not fit a key.
        ({"meter_id": "\U0001f50c" * 64}, InvalidMeterIdError),
    ],
)
def test_register_meter_refusals_change_nothing(
    ex: Exchange, changes: dict[str, Any], error: type[ApplicationError]
) -> None:
    before = dict(ex.state.items())
    with pytest.raises(error):
        ex.admit(_register(ex, _body(ex, **changes), probe=True))
    with pytest.raises(error):
        ex.app.execute_block(
            ex.state, [_register(ex, _body(ex, **changes), probe=True)], ex.ctx(T0)
        )
    assert dict(ex.state.items()) == before


@pytest.mark.parametrize(
    ("bridge_key", "code"),
    [
        (b"\x01" + bytes(31), "small_order_key"),  # the identity point
        (bytes(32), "small_order_key"),  # a point of order 4
        (bytes([0xEE]) + b"\xff" * 30 + b"\x7f", "non_canonical_key"),  # y = p + 1
        (bytes([2]) + bytes(31), "key_not_on_curve"),
    ],
)
def test_register_meter_refuses_an_unsafe_bridge_key(
    ex: Exchange, bridge_key: bytes, code: str
) -> None:
    """Failed before ADR 0021: such a key was registered, and OpenSSL accepts forged readings
    by a small-order key."""
    before = dict(ex.state.items())
    for attempt in (
        lambda: ex.admit(_register(ex, _body(ex, bridge_key=bridge_key), probe=True)),
        lambda: ex.app.execute_block(
            ex.state, [_register(ex, _body(ex, bridge_key=bridge_key), probe=True)], ex.ctx(T0)
        ),
    ):
        with pytest.raises(BadKeyError) as caught:
            attempt()
        assert isinstance(caught.value, ApplicationError)
        assert caught.value.code == code
        assert "RegisterMeter.bridge_key" in caught.value.message
    assert dict(ex.state.items()) == before


def test_register_meter_needs_governance(ex: Exchange) -> None:
    tx = signed(ex.peers[0], ex.bundle.genesis.chain_id, 0, _body(ex))
    with pytest.raises(NotGovernanceError):
        ex.admit(tx)
    assert get_meter(ex.state, "ev-c") is None


# --- readings --------------------------------------------------------------------------------


def test_readings_extend_the_chain_and_are_found_by_time(ex: Exchange) -> None:
    pv = chain(ex)
    r0 = pv.reading(T0 - Q, T0, 0, 1000)
    r1 = pv.reading(T0, T0 + Q, 0, 1500)
    ex.block([readings_tx(ex, BRIDGE_1, r0, r1)], T0 + Q)
    meter = get_meter(ex.state, "pv-a")
    assert meter is not None
    assert meter.next_sequence == 2
    assert meter.last_hash == r1.record.hash()
    assert meter.last_export_wh == 1500
    assert meter.last_interval_end_ms == T0 + Q
    # The bridge is no participant, yet has an ordinary account with a nonce.
    assert get_account(ex.state, address_of(BRIDGE_1.public_key)).nonce == 1
    found = reading_at_or_before(ex.state, "pv-a", T0 + Q - 1)
    assert found is not None
    assert found.record == r0.record
    assert reading_at_or_before(ex.state, "pv-a", T0 - 1) is None
    latest = reading_at_or_before(ex.state, "pv-a", T0 + 10 * Q)
    assert latest is not None
    assert latest.record.sequence == 1
    assert [s.record.sequence for s in readings_from(ex.state, "pv-a", 1, 10)] == [1]
    assert [s.record.sequence for s in readings_from(ex.state, "pv-a", 0, 1)] == [0]


def test_zero_length_intervals_at_the_same_end_keep_sequence_order(ex: Exchange) -> None:
    pv = chain(ex)
    ex.block([readings_tx(ex, BRIDGE_1, pv.reading(T0, T0, 0, 1), pv.reading(T0, T0, 0, 2))], T0)
    found = reading_at_or_before(ex.state, "pv-a", T0)
    assert found is not None
    assert found.record.export_wh == 2


def _refused(ex: Exchange, tx: Any, error: type[ApplicationError], at: int) -> None:
    before = dict(ex.state.items())
    with pytest.raises(error):
        ex.admit(tx, at)
    with pytest.raises(error):
        ex.app.execute_block(ex.state, [tx], ex.ctx(at))
    assert dict(ex.state.items()) == before


def test_unregistered_meter(ex: Exchange) -> None:
    ghost = chain(ex, "ghost")
    _refused(
        ex,
        probe_readings_tx(ex, BRIDGE_1, ghost.reading(T0 - Q, T0, 0, 0)),
        UnregisteredMeterError,
        T0,
    )


def test_wrong_bridge_key(ex: Exchange) -> None:
    # Bridge 2 signs correctly, but pv-a belongs to bridge 1: a stranger cannot feed it.
    pv = chain(ex, key=BRIDGE_2)
    _refused(
        ex,
        probe_readings_tx(ex, BRIDGE_2, pv.reading(T0 - Q, T0, 0, 0)),
        BridgeKeyMismatchError,
        T0,
    )


def test_unregistered_key_outside_the_chain(ex: Exchange) -> None:
    stranger = det_key("stranger")
    pv = chain(ex, key=stranger)
    _refused(
        ex,
        probe_readings_tx(ex, stranger, pv.reading(T0 - Q, T0, 0, 0)),
        BridgeKeyMismatchError,
        T0,
    )


def test_forged_signature(ex: Exchange) -> None:
    # Sent by the right bridge, but the record was signed by another key.
    forged = chain(ex, key=det_key("forger")).reading(T0 - Q, T0, 0, 0)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, forged), ReadingSignatureError, T0)


def test_signature_for_another_chain(ex: Exchange) -> None:
    other = chain(ex)
    other.chain_id = b"\x01" * 32
    _refused(
        ex,
        probe_readings_tx(ex, BRIDGE_1, other.reading(T0 - Q, T0, 0, 0)),
        ReadingSignatureError,
        T0,
    )


def test_tampered_record(ex: Exchange) -> None:
    good = chain(ex).reading(T0 - Q, T0, 0, 100)
    tampered = type(good)(
        type(good.record)(**{**_fields(good.record), "export_wh": 999}), good.signature
    )
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, tampered), ReadingSignatureError, T0)


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_first_sequence_must_be_zero(ex: Exchange) -> None:
    pv = chain(ex)
    pv.sequence = 1
    _refused(
        ex, probe_readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 0, 0)), ReadingSequenceError, T0
    )


def test_replayed_reading(ex: Exchange) -> None:
    pv = chain(ex)
    r0 = pv.reading(T0 - Q, T0, 0, 10)
    ex.block([readings_tx(ex, BRIDGE_1, r0)], T0)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, r0), ReadingSequenceError, T0)


def test_sequence_gap(ex: Exchange) -> None:
    pv = chain(ex)
    ex.block([readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 0, 10))], T0)
    pv.reading(T0, T0 + Q, 0, 20)  # never sent
    late = pv.reading(T0 + Q, T0 + 2 * Q, 0, 30)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, late), ReadingSequenceError, T0 + 2 * Q)


def test_out_of_order_within_a_batch(ex: Exchange) -> None:
    pv = chain(ex)
    r0 = pv.reading(T0 - Q, T0, 0, 10)
    r1 = pv.reading(T0, T0 + Q, 0, 20)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, r1, r0), ReadingSequenceError, T0 + Q)


def test_first_prev_hash_must_be_the_genesis_hash(ex: Exchange) -> None:
    bad = chain(ex).reading(T0 - Q, T0, 0, 0, prev_hash=b"\x07" * 32)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, bad), ReadingChainError, T0)


def test_prev_hash_must_name_the_last_record(ex: Exchange) -> None:
    pv = chain(ex)
    ex.block([readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 0, 10))], T0)
    bad = pv.reading(T0, T0 + Q, 0, 20, prev_hash=b"\x07" * 32)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, bad), ReadingChainError, T0 + Q)


@pytest.mark.parametrize(("imp", "exp"), [(99, 10), (100, 9)])
def test_decreasing_registers(ex: Exchange, imp: int, exp: int) -> None:
    pv = chain(ex)
    ex.block([readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 100, 10))], T0)
    bad = pv.reading(T0, T0 + Q, imp, exp)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, bad), DecreasingRegisterError, T0 + Q)


def test_interval_ending_before_it_starts(ex: Exchange) -> None:
    bad = chain(ex).reading(T0, T0 - 1, 0, 0)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, bad), ReadingIntervalError, T0)


def test_interval_overlapping_the_previous_one(ex: Exchange) -> None:
    pv = chain(ex)
    ex.block([readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 0, 10))], T0)
    bad = pv.reading(T0 - 1, T0 + Q, 0, 20)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, bad), ReadingIntervalError, T0 + Q)


def test_reading_from_the_future(ex: Exchange) -> None:
    pv = chain(ex)
    at_bound = pv.reading(T0, T0 + MAX_READING_AHEAD_MS, 0, 0, advance=False)
    ex.admit(probe_readings_tx(ex, BRIDGE_1, at_bound), T0)  # exactly the bound: accepted
    beyond = pv.reading(T0, T0 + MAX_READING_AHEAD_MS + 1, 0, 0)
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, beyond), ReadingTimeError, T0)


def test_a_refused_reading_refuses_the_whole_batch(ex: Exchange) -> None:
    pv = chain(ex)
    good = pv.reading(T0 - Q, T0, 0, 10)
    bad = pv.reading(T0, T0 + Q, 0, 5)  # export went down
    _refused(ex, probe_readings_tx(ex, BRIDGE_1, good, bad), DecreasingRegisterError, T0 + Q)
    meter = get_meter(ex.state, "pv-a")
    assert meter is not None
    assert meter.next_sequence == 0


def test_one_bridge_feeds_several_meters_in_one_batch(ex: Exchange) -> None:
    pv, load = chain(ex, "pv-a"), chain(ex, "load-b")
    tx = readings_tx(
        ex,
        BRIDGE_1,
        pv.reading(T0 - Q, T0, 0, 10),
        load.reading(T0 - Q, T0, 40, 0),
        pv.reading(T0, T0 + Q, 0, 20),
    )
    ex.block([tx], T0 + Q)
    pv_meter, load_meter = get_meter(ex.state, "pv-a"), get_meter(ex.state, "load-b")
    assert pv_meter is not None
    assert load_meter is not None
    assert (pv_meter.next_sequence, load_meter.next_sequence) == (2, 1)


def test_bridge_nonce_replay_is_refused(ex: Exchange) -> None:
    pv = chain(ex)
    tx = readings_tx(ex, BRIDGE_1, pv.reading(T0 - Q, T0, 0, 10))
    ex.block([tx], T0)
    again = sign_tx(BRIDGE_1, ex.bundle.genesis.chain_id, 0, tx.body)
    with pytest.raises(ApplicationError):
        ex.admit(again, T0)


def test_sign_reading_is_bound_to_the_record(ex: Exchange) -> None:
    record = chain(ex).reading(T0 - Q, T0, 0, 10).record
    one = sign_reading(BRIDGE_1, ex.bundle.genesis.chain_id, record)
    assert one.signature == sign_reading(BRIDGE_1, ex.bundle.genesis.chain_id, record).signature
