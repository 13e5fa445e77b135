"""Every household in the real-time pool: the metered position of a household without a contract
in a slot (issue 14 item 6; ADR 0041).

ADR 0010 pooled only the parties of a slot's contracts: a household that signed nothing bought
its imports from, and sold its exports to, the utility off chain.  Since every house is metered on
chain anyway, its whole imbalance clears in the same SDR pool as the contract holders', so the
pool's prices see the community's real supply and demand and every kWh that crosses a house's
connection is paid for once, on chain.

A household's position over a slot [S, E] (> 0 supplies, < 0 demands), from its meters with the
reader contract settlement uses (:func:`market.settlement.meters_metering`; missing readings
count as nothing and the receipt says so):

* **Which meters.**  If it has net meters, those alone: a net meter sits at the grid connection
  and already sees every device behind it, so adding the device meters would count them twice.
  Otherwise every dedicated meter (PV, generator, load, EV, battery).  Either way the position is
  minus the change of import - export.
* **C&D energy is not pooled twice.**  Energy a device draws or feeds under a committed C&D
  decision is settled by C&D settlement (ADR 0030) over the decided interval's window.  For each
  such window overlapping the slot, the C&D meter's import - export over the overlap is added
  back.  Both settlements read registers with "the last reading at or before t", so the
  overlap's part and the rest of the window add up to exactly what C&D settlement counted:
  nothing is paid twice and nothing between the windows escapes.

Pure: a function of the state, the genesis and the slot's bounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gridchain.genesis.schema import Genesis
from gridchain.market.cd_requests import IntervalClock, get_request
from gridchain.market.cd_schedule import DECISION_PREFIX, Decision, decision_key
from gridchain.market.meters import MeterRecord, iter_meters
from gridchain.market.settlement import Metering, meters_metering
from gridchain.market.state import StateReader
from gridchain.protocol.encoding import decode
from gridchain.protocol.meter import MeterType
from gridchain.protocol.tx import Side

Window = tuple[int, int]


@dataclass(frozen=True, slots=True)
class HouseholdPosition:
    """A household's pooled energy in a slot and how it was measured."""

    net_wh: int
    #: The registers' import - export summed over the meters used, at the slot's two ends.
    start_wh: int
    end_wh: int
    #: The C&D energy (import - export) taken out because C&D settlement pays for it.
    cd_wh: int
    metering: Metering


def _signed_delta(
    state: StateReader, meter_ids: list[str], start_ms: int, end_ms: int
) -> tuple[int, int, Metering]:
    """Summed import - export registers at both ends (missing readings count as no change)."""
    found = meters_metering(
        state, meter_ids, int(Side.BUY), net=True, start_ms=start_ms, end_ms=end_ms
    )
    return found.start_wh, found.end_wh, found.metering


def cd_windows(
    genesis: Genesis, state: StateReader, start_ms: int, end_ms: int
) -> dict[str, list[Window]]:
    """Per meter, the parts of [start_ms, end_ms] that C&D settlement meters (decided intervals
    with an entry for a request on that meter), clipped to the slot."""
    clock = IntervalClock.of(genesis)
    first, last = clock.interval_at(start_ms), clock.interval_at(max(start_ms, end_ms - 1))
    out: dict[str, list[Window]] = {}
    for _, raw in state.scan_from(DECISION_PREFIX, decision_key(first), inclusive=True):
        decision = decode(raw, Decision)
        if decision.interval > last:
            break
        a = max(start_ms, clock.start_ms(decision.interval))
        b = min(end_ms, clock.start_ms(decision.interval + 1))
        if a >= b:
            continue
        for entry in decision.entries:
            record = get_request(state, entry.request_id)
            if record is not None:
                out.setdefault(record.meter_id, []).append((a, b))
    return out


def household_positions(
    genesis: Genesis,
    state: StateReader,
    start_ms: int,
    end_ms: int,
    *,
    exclude: Iterable[bytes] = (),
) -> dict[bytes, HouseholdPosition]:
    """The pooled position of every meter owner not in ``exclude`` (module text), by owner."""
    skip = set(exclude)
    by_owner: dict[bytes, list[MeterRecord]] = {}
    for meter in iter_meters(state):
        if meter.owner not in skip:
            by_owner.setdefault(meter.owner, []).append(meter)
    windows = cd_windows(genesis, state, start_ms, end_ms) if by_owner else {}
    return {
        owner: _position(state, meters, windows, start_ms, end_ms)
        for owner, meters in sorted(by_owner.items())
    }


def _position(
    state: StateReader,
    meters: list[MeterRecord],
    windows: Mapping[str, list[Window]],
    start_ms: int,
    end_ms: int,
) -> HouseholdPosition:
    net = [m.meter_id for m in meters if m.meter_type == MeterType.NETMETER]
    chosen = net or [m.meter_id for m in meters]
    start_wh, end_wh, metering = _signed_delta(state, chosen, start_ms, end_ms)
    cd_wh = 0
    for meter in meters:
        for a, b in windows.get(meter.meter_id, ()):
            first, last, _ = _signed_delta(state, [meter.meter_id], a, b)
            cd_wh += last - first
    return HouseholdPosition(
        net_wh=-(end_wh - start_wh) + cd_wh,
        start_wh=start_wh,
        end_wh=end_wh,
        cd_wh=cd_wh,
        metering=metering,
    )
