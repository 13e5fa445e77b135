"""C&D requests on the chain: admission, the open set and the scheduling head (DESIGN 6).

An EV or battery owner sends a :class:`protocol.tx.CDRequest` with a connection window in block
time.  The chain maps the window to whole scheduling intervals: interval ``j`` covers
[G + j*I, G + (j+1)*I) of block time (G = genesis time, I = ``schedule_interval_ms``) and
stands for ``schedule_interval_minutes`` of energy.  A request may first be scheduled in the
first interval that starts at or after its arrival and that no block has decided yet, and
must be done by the last interval that ends at or before its departure.  Energy is counted in
W-intervals, as in :mod:`market.scheduling.verify`: a charge request needs
ceil(60 * Wh / minutes) of them, a discharge request offers floor(60 * Wh / minutes).

State layout (values are canonical records, tags 0x6a-0x6c):

* ``cdr:`` + request id -> :class:`CDRecord` (kept after it closes until its receipts are
  settled and an hour old, then archived with them: market/pruning.py);
* ``cdo:`` + request id -> b"": the open requests, which every decision scans;
* ``cdx:`` + interval + request id -> b"": the closed requests by the interval whose decision
  closed them, which pruning scans (market/pruning.py);
* ``cd:head`` -> :class:`ScheduleHead`: the next interval to decide, the load the last
  decision planned and the number of open requests (bounded by genesis).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, replace

from gridchain.genesis.schema import ChainParams, Genesis
from gridchain.market.cd_pricing import CDPrices
from gridchain.market.errors import (
    CDCapacityError,
    CDInfeasibleError,
    CDLimitPriceError,
    CDMeterError,
    CDWindowError,
    InvalidCDRequestError,
    NotAParticipantError,
    UnregisteredMeterError,
)
from gridchain.market.meters import get_meter
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import I64, U8, U64, Bytes20, Record, decode, register
from gridchain.protocol.meter import MeterId, MeterType
from gridchain.protocol.tx import CDKind, CDRequest, Device

CD_RECORD_PREFIX = b"cdr:"
CD_OPEN_PREFIX = b"cdo:"
CD_CLOSED_PREFIX = b"cdx:"
SCHEDULE_HEAD_KEY = b"cd:head"
#: A charger or inverter of more than 10 MW is not a household device: refuse it as a typo.
MAX_RATE_W = 10_000_000
#: Devices that can take a C&D request.
CD_DEVICES = (Device.EV, Device.BATTERY)
#: The meter type that measures each C&D device (the same as settlement's DEVICE_METERS for
#: these devices, on either side).
CD_METER_TYPES: dict[Device, MeterType] = {
    Device.EV: MeterType.EV,
    Device.BATTERY: MeterType.BATTERY,
}


class CDStatus(enum.IntEnum):
    OPEN = 0
    #: A charge request received all its energy, or a discharge request gave all it offered.
    COMPLETE = 1
    #: The window ended first (a discharge request that gave less, or a charge request the
    #: chain could not finish because no block decided some of its intervals).
    ENDED = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@register(0x6A)
@dataclass(frozen=True, slots=True)
class CDRecord(Record):
    owner: Bytes20
    kind: U8
    device: U8
    arrival_ms: U64
    departure_ms: U64
    energy_wh: U64
    max_rate_w: U64
    limit_price_mc_per_kwh: U64
    #: The registered meter of the owner that measures the device (settlement reads it).
    meter_id: MeterId
    #: Window in intervals: [first_interval, end_interval).
    first_interval: U64
    end_interval: U64
    #: W-intervals it must receive (charge) or may give (discharge), and what it got so far.
    cap_units: U64
    delivered_units: U64
    submitted_height: U64
    status: U8 = int(CDStatus.OPEN)

    @property
    def is_charge(self) -> bool:
        return self.kind == int(CDKind.CHARGE)

    @property
    def residual_units(self) -> int:
        return self.cap_units - self.delivered_units

    def live_at(self, interval: int) -> bool:
        """Connected in ``interval`` with something left to move."""
        return self.first_interval <= interval < self.end_interval and self.residual_units > 0


@register(0x6C)
@dataclass(frozen=True, slots=True)
class ScheduleHead(Record):
    """Where scheduling stands: the next interval to decide and the load planned for the last."""

    next_interval: U64 = 0
    last_load_w: I64 = 0
    open_requests: U64 = 0


@dataclass(frozen=True, slots=True)
class IntervalClock:
    """Maps block time to scheduling intervals (the genesis parameters, in one place)."""

    genesis_time_ms: int
    interval_ms: int
    interval_minutes: int

    @classmethod
    def of(cls, genesis: Genesis) -> IntervalClock:
        p = genesis.params
        return cls(genesis.genesis_time_ms, p.schedule_interval_ms, p.schedule_interval_minutes)

    def interval_at(self, time_ms: int) -> int:
        """The interval that contains ``time_ms`` (times before genesis are in interval 0)."""
        return max(0, time_ms - self.genesis_time_ms) // self.interval_ms

    def start_ms(self, interval: int) -> int:
        return self.genesis_time_ms + interval * self.interval_ms

    def first_starting_at(self, time_ms: int) -> int:
        """The first interval that starts at or after ``time_ms``."""
        offset = time_ms - self.genesis_time_ms
        return max(0, -(-offset // self.interval_ms))

    def units(self, kind: CDKind, energy_wh: int) -> int:
        """W-intervals for ``energy_wh``: rounded up to charge, down to discharge."""
        if kind is CDKind.CHARGE:
            return -(-60 * energy_wh // self.interval_minutes)
        return 60 * energy_wh // self.interval_minutes


def request_key(request_id: bytes) -> bytes:
    return CD_RECORD_PREFIX + request_id


def get_request(state: StateReader, request_id: bytes) -> CDRecord | None:
    raw = state.get(request_key(request_id))
    return None if raw is None else decode(raw, CDRecord)


def put_request(view: Overlay, request_id: bytes, record: CDRecord) -> None:
    view.put(request_key(request_id), record.encode())


def get_head(state: StateReader) -> ScheduleHead:
    raw = state.get(SCHEDULE_HEAD_KEY)
    return ScheduleHead() if raw is None else decode(raw, ScheduleHead)


def put_head(view: Overlay, head: ScheduleHead) -> None:
    view.put(SCHEDULE_HEAD_KEY, head.encode())


def open_requests(state: StateReader) -> Iterator[tuple[bytes, CDRecord]]:
    """Every open request, in id order (the order a block's schedule lists them in)."""
    for key, _ in state.scan(CD_OPEN_PREFIX):
        request_id = key[len(CD_OPEN_PREFIX) :]
        record = get_request(state, request_id)
        if record is not None:
            yield request_id, record


def all_requests(state: StateReader) -> Iterator[tuple[bytes, CDRecord]]:
    """Every request ever accepted (open, complete or ended), in id order."""
    for key, raw in state.scan(CD_RECORD_PREFIX):
        yield key[len(CD_RECORD_PREFIX) :], decode(raw, CDRecord)


def closed_key(interval: int, request_id: bytes) -> bytes:
    return CD_CLOSED_PREFIX + interval.to_bytes(8, "big") + request_id


def close_request(
    view: Overlay, request_id: bytes, record: CDRecord, status: CDStatus, interval: int
) -> None:
    """Close a request in the decision of ``interval`` (it has no setpoint after it)."""
    put_request(view, request_id, replace(record, status=int(status)))
    view.delete(CD_OPEN_PREFIX + request_id)
    view.put(closed_key(interval, request_id), b"")
    head = get_head(view)
    put_head(view, replace(head, open_requests=head.open_requests - 1))


def _label(value: int, enum_type: type[enum.IntEnum], what: str) -> enum.IntEnum:
    try:
        return enum_type(value)
    except ValueError:
        raise InvalidCDRequestError(f"unknown {what} {value}") from None


def admit_request(
    view: Overlay,
    params: ChainParams,
    clock: IntervalClock,
    *,
    owner: bytes,
    request_id: bytes,
    body: CDRequest,
    is_governance: bool,
    height: int,
    block_ms: int,
) -> CDRecord:
    """Check a C&D request against the rules and open it; raise without writing on refusal."""
    if is_governance:
        raise NotAParticipantError("the governance key sends no C&D requests")
    kind = CDKind(_label(body.kind, CDKind, "C&D kind"))
    device = Device(_label(body.device, Device, "device"))
    if device not in CD_DEVICES:
        raise InvalidCDRequestError(f"a {device.label} takes no C&D requests (EV or Battery)")
    if body.energy_wh == 0:
        raise InvalidCDRequestError("a C&D request moves a positive energy")
    if not 0 < body.max_rate_w <= MAX_RATE_W:
        raise InvalidCDRequestError(f"max_rate_w must be in 1..{MAX_RATE_W}")
    if body.departure_ms <= body.arrival_ms:
        raise InvalidCDRequestError("departure must come after arrival")
    _check_meter(view, owner, device, body.meter_id)
    head = get_head(view)
    first = max(
        clock.first_starting_at(body.arrival_ms),
        head.next_interval,
        clock.interval_at(block_ms) + 1,
    )
    end = clock.interval_at(body.departure_ms) if body.departure_ms >= clock.genesis_time_ms else 0
    if end <= first:
        raise CDWindowError(
            f"no whole schedulable interval before departure: the next one is {first} "
            f"(starts at {clock.start_ms(first)} ms), departure is in interval {end}"
        )
    if end - first > params.cd_max_window_intervals:
        raise CDWindowError(
            f"window of {end - first} intervals exceeds {params.cd_max_window_intervals}"
        )
    cap = clock.units(kind, body.energy_wh)
    if cap == 0:
        raise InvalidCDRequestError("the energy is less than one W-interval")
    if kind is CDKind.CHARGE and cap > body.max_rate_w * (end - first):
        raise CDInfeasibleError(
            f"{body.energy_wh} Wh cannot be charged at {body.max_rate_w} W in {end - first} "
            f"intervals of {clock.interval_minutes} min"
        )
    usable = CDPrices(clock, params.tariffs).usable(
        kind is CDKind.CHARGE, body.limit_price_mc_per_kwh, first, end
    )
    if kind is CDKind.CHARGE and cap > body.max_rate_w * usable:
        raise CDLimitPriceError(
            f"{body.energy_wh} Wh cannot be charged at {body.max_rate_w} W in the {usable} "
            f"intervals of the window priced at or below {body.limit_price_mc_per_kwh} mc/kWh"
        )
    if usable == 0:
        raise CDLimitPriceError(
            f"no interval of the window is priced at or above the limit of "
            f"{body.limit_price_mc_per_kwh} mc/kWh"
        )
    if head.open_requests >= params.cd_max_open_requests:
        raise CDCapacityError(f"{head.open_requests} C&D requests are open, the most allowed")
    record = CDRecord(
        owner=owner,
        kind=int(kind),
        device=int(device),
        arrival_ms=body.arrival_ms,
        departure_ms=body.departure_ms,
        energy_wh=body.energy_wh,
        max_rate_w=body.max_rate_w,
        limit_price_mc_per_kwh=body.limit_price_mc_per_kwh,
        meter_id=body.meter_id,
        first_interval=first,
        end_interval=end,
        cap_units=cap,
        delivered_units=0,
        submitted_height=height,
    )
    put_request(view, request_id, record)
    view.put(CD_OPEN_PREFIX + request_id, b"")
    put_head(view, replace(head, open_requests=head.open_requests + 1))
    return record


def _check_meter(state: StateReader, owner: bytes, device: Device, meter_id: str) -> None:
    """The named meter must be registered, the sender's, and of the device's type."""
    meter = get_meter(state, meter_id)
    if meter is None:
        raise UnregisteredMeterError(f"meter {meter_id!r} is not registered")
    if meter.owner != owner:
        raise CDMeterError(f"meter {meter_id!r} belongs to another participant")
    wanted = CD_METER_TYPES[device]
    if meter.meter_type != wanted:
        found = MeterType(meter.meter_type).name
        raise CDMeterError(
            f"meter {meter_id!r} is a {found} meter; a {device.label} request names a "
            f"{wanted.name} meter"
        )
