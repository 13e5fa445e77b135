"""Planning on metered load and the grid limit (issue 14 items 4 and 5, ADR 0036).

Why: the scheduler flattens base load + EV charging, so the base load must be what the
community's meters show (a forecast every validator recomputes from the chain, never a number
a proposer may choose), and the transformer must not be planned over its capacity while the
requests allow less.  These tests drive the real Application (proposer build, validator
execute, commit) over simulated days with hourly intervals and a feeder load meter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.schema import parse_genesis
from gridchain.market import cd_schedule
from gridchain.market.app import Application, BlockBuild, BlockContext
from gridchain.market.base_load import (
    LOAD_HISTORY_PREFIX,
    base_load_at,
    forecast_base_load,
    integer_median,
    metered_load,
)
from gridchain.market.cd_requests import IntervalClock
from gridchain.market.cd_schedule import due_interval, get_decision
from gridchain.market.errors import BenefitMismatchError, GridLimitError
from gridchain.market.state import MerkleState
from gridchain.protocol.block import ScheduleEntry
from gridchain.protocol.tx import CDKind, CDRequest, Device, MeterReadings, Transaction
from tests.helpers import cd_meter_id, det_key, signed, small_bundle, with_cd_meters
from tests.unit.market.metering import MeterChain, meter_entry

HOUR_MS = 3_600_000
DAY = 24  # hourly intervals
BRIDGE = det_key("bridge/feeder")


@dataclass
class Chain:
    bundle: GenesisBundle
    app: Application
    state: MerkleState
    feeder: MeterChain
    height: int = 0
    nonces: dict[bytes, int] = field(default_factory=dict)
    register_wh: int = 0

    @property
    def clock(self) -> IntervalClock:
        return self.app.interval_clock

    def tx(self, key: Any, body: Any) -> Transaction:
        public = key.key.public_key if hasattr(key, "key") else key.public_key
        nonce = self.nonces.get(public, 0)
        self.nonces[public] = nonce + 1
        return signed(key, self.bundle.genesis.chain_id, nonce, body)

    def propose(self, at_ms: int, txs: list[Transaction]) -> tuple[BlockContext, BlockBuild]:
        ctx = BlockContext(self.height + 1, at_ms, b"")
        built = self.app.build_block(self.state, txs, ctx)
        assert not built.left_out, [exc.code for _, exc in built.left_out]
        return ctx, built

    def commit(self, ctx: BlockContext, built: BlockBuild) -> None:
        checked = self.app.execute_block(
            self.state, built.txs, ctx, schedule=built.schedule, benefit=built.benefit
        )
        assert checked.state_root == built.execution.state_root
        self.state.apply(checked.writes)
        self.height += 1

    def block(self, at_ms: int, txs: list[Transaction] | None = None) -> None:
        self.commit(*self.propose(at_ms, txs or []))

    def metered_hour(self, interval: int, load_w: int) -> None:
        """The feeder meter's reading of ``interval`` (``load_w`` for an hour), sent in a block
        just after the interval ends."""
        start = self.clock.start_ms(interval)
        readings = []
        if interval == 0 or self.feeder.sequence == 0:
            readings.append(self.feeder.reading(start - HOUR_MS, start, self.register_wh, 0))
        self.register_wh += load_w
        readings.append(self.feeder.reading(start, start + HOUR_MS, self.register_wh, 0))
        self.block(start + HOUR_MS + 1, [self.tx(BRIDGE, MeterReadings(tuple(readings)))])


def make_chain(**params: Any) -> Chain:
    base: dict[str, Any] = dict(
        schedule_interval_ms=HOUR_MS,
        schedule_interval_minutes=60,
        settlement_grace_ms=1000,
        base_load_history_days=3,
        base_load_min_days=2,
        scheduler="uncontrolled",
    )
    bundle = with_cd_meters(small_bundle(**(base | params)))
    doc = bundle.genesis.model_dump(mode="json")
    feeder = meter_entry("feeder", bundle.participants[0].address, "Loadmeter", BRIDGE)
    doc["meters"] = [*doc["meters"], feeder]
    bundle = dataclasses.replace(bundle, genesis=parse_genesis(doc))
    app = Application(bundle.genesis)
    chain_id = bundle.genesis.chain_id
    return Chain(bundle, app, app.genesis_state(), MeterChain("feeder", BRIDGE, chain_id))


def charge(c: Chain, participant: int, first: int, end: int, energy_wh: int, rate_w: int) -> Any:  # noqa: PLR0917
    body = CDRequest(
        int(CDKind.CHARGE),
        int(Device.EV),
        c.clock.start_ms(first),
        c.clock.start_ms(end),
        energy_wh,
        rate_w,
        10**9,
        cd_meter_id(participant, Device.EV),
    )
    return c.tx(c.bundle.participants[participant], body)


def test_the_median_is_an_integer_and_takes_the_middle_pair_down() -> None:
    assert integer_median([5]) == 5
    assert integer_median([9, 1, 5]) == 5
    assert integer_median([4, 1, 2, 7]) == 3  # (2 + 4) // 2
    assert integer_median([1, 2]) == 1  # 1.5 rounded down


def test_the_forecast_falls_back_to_genesis_then_follows_the_meters() -> None:
    c = make_chain()
    genesis = c.bundle.genesis
    profile = [base_load_at(genesis, j) for j in range(5 * DAY)]
    days = [5_000, 7_000, 9_000, 100_000]  # the feeder's load, constant over each day
    for day, load_w in enumerate(days):
        for hour in range(DAY):
            c.metered_hour(day * DAY + hour, load_w)
    c.block(c.clock.start_ms(4 * DAY) + 5_000)  # measures the last hour of day 3
    # Every interval was measured, once; only the last three days are kept.
    assert metered_load(c.state, 3 * DAY + 5) == 100_000
    assert metered_load(c.state, 0) is None  # day 0 left the history
    assert len(list(c.state.scan(LOAD_HISTORY_PREFIX))) == 3 * DAY
    # Day 1: one day of history (< base_load_min_days = 2): the genesis profile.
    assert forecast_base_load(genesis, c.state, DAY + 7) == profile[DAY + 7]
    # Day 2 could look back at days 0 and 1 while they were kept: median (5000 + 7000) // 2.
    # Day 4 looks back at days 3, 2, 1: the median of 100000, 9000 and 7000 is 9000; one
    # unusual day does not move the plan.
    assert forecast_base_load(genesis, c.state, 4 * DAY + 7) == 9_000
    # A decision plans on the forecast: a request in day 4 is scheduled on 9000 W.
    c.block(
        c.clock.start_ms(4 * DAY) + 6_000, [charge(c, 1, 4 * DAY + 8, 4 * DAY + 12, 4_000, 3_000)]
    )
    c.block(c.clock.start_ms(4 * DAY + 7) + 10)
    decision = get_decision(c.state, 4 * DAY + 8)
    assert decision is not None
    assert decision.base_load_w == 9_000
    assert decision.load_w == 9_000 + sum(e.rate_w for e in decision.entries)


def test_day_two_plans_on_the_median_of_the_first_two_days() -> None:
    c = make_chain()
    for day, load_w in enumerate((5_000, 7_000)):
        for hour in range(DAY):
            c.metered_hour(day * DAY + hour, load_w)
    c.block(c.clock.start_ms(2 * DAY) + 5_000)
    assert forecast_base_load(c.bundle.genesis, c.state, 2 * DAY + 3) == 6_000


def test_a_schedule_built_on_a_forged_base_load_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_chain(scheduler="online")
    c.block(c.clock.start_ms(0) + 10, [charge(c, 1, 2, 8, 6_000, 3_000)])
    at = c.clock.start_ms(1) + 10
    real = forecast_base_load(c.bundle.genesis, c.state, 2)

    def forged_proposal(only_the_decided: bool) -> tuple[BlockContext, BlockBuild]:
        def forged(genesis: Any, state: Any, interval: int) -> int:
            honest = forecast_base_load(genesis, state, interval)
            return honest if only_the_decided and interval != 2 else honest - 2_500

        with monkeypatch.context() as patched:
            patched.setattr(cd_schedule, "forecast_base_load", forged)
            ctx, built = c.propose(at, [])
        assert built.schedule  # it decided interval 2 ...
        assert built.execution.decision is not None
        assert built.execution.decision.base_load_w == real - 2_500  # ... on a forged base
        return ctx, built

    # The step from the previous interval's load, so the header's benefit, is another one.
    ctx, built = forged_proposal(only_the_decided=True)
    with pytest.raises(BenefitMismatchError):
        c.commit(ctx, built)
    # Forged for the previous interval too, the step (and benefit) may be the same, but the
    # decision the block writes is not: its state root differs from the validator's, which a
    # node refuses (node/driver.py: "block state root differs").
    ctx, built = forged_proposal(only_the_decided=False)
    checked = c.app.execute_block(
        c.state, built.txs, ctx, schedule=built.schedule, benefit=built.benefit
    )
    assert checked.state_root != built.execution.state_root
    assert checked.decision is not None
    assert checked.decision.base_load_w == real
    # The honest proposal of the same block is accepted.
    c.commit(*c.propose(at, []))
    decision = get_decision(c.state, 2)
    assert decision is not None
    assert decision.base_load_w == real


def test_the_grid_limit_is_kept_when_the_requests_allow_it() -> None:
    probe = make_chain()
    base = base_load_at(probe.bundle.genesis, 2)
    # Room for 4 kW of the 2 x 3 kW the uncontrolled scheduler would give at once.
    c = make_chain(transformer_capacity_w=base + 4_000)
    c.block(
        c.clock.start_ms(0) + 10,
        [charge(c, 1, 2, 8, 3_000, 3_000), charge(c, 2, 2, 8, 3_000, 3_000)],
    )
    c.block(c.clock.start_ms(1) + 10)
    decision = get_decision(c.state, 2)
    assert decision is not None
    assert decision.load_w == base + 4_000
    assert sorted(abs(e.rate_w) for e in decision.entries) == [1_000, 3_000]
    assert (decision.capacity_w, decision.over_capacity) == (base + 4_000, 0)


def test_a_schedule_over_the_grid_limit_is_refused() -> None:
    probe = make_chain()
    base = base_load_at(probe.bundle.genesis, 2)
    c = make_chain(transformer_capacity_w=base + 4_000)
    txs = [charge(c, 1, 2, 8, 3_000, 3_000), charge(c, 2, 2, 8, 3_000, 3_000)]
    c.block(c.clock.start_ms(0) + 10, txs)
    ctx, built = c.propose(c.clock.start_ms(1) + 10, [])
    over = tuple(ScheduleEntry(e.request_id, 3_000) for e in built.schedule)  # 6 kW > 4 kW
    forged = dataclasses.replace(built, schedule=over)
    with pytest.raises(GridLimitError, match="over the transformer capacity"):
        c.commit(ctx, forged)
    c.commit(ctx, built)


def test_an_infeasible_interval_is_reported_at_its_least_load_not_overloaded() -> None:
    probe = make_chain()
    base = base_load_at(probe.bundle.genesis, 2)
    # A request that must take 3 kW in each of its two intervals, under a transformer whose
    # capacity is below the base load alone: nothing fits, so the schedule gives only what
    # the request cannot do without and says so.
    c = make_chain(transformer_capacity_w=base - 1_000)
    c.block(c.clock.start_ms(0) + 10, [charge(c, 1, 2, 4, 6_000, 3_000)])
    ctx, built = c.propose(c.clock.start_ms(1) + 10, [])
    due = due_interval(c.bundle.genesis, c.state, ctx.timestamp_ms)
    assert due is not None
    assert due.over_capacity
    assert [abs(e.rate_w) for e in built.schedule] == [3_000]
    c.commit(ctx, built)
    decision = get_decision(c.state, 2)
    assert decision is not None
    assert decision.over_capacity == 1
    assert decision.load_w == base + 3_000


def test_an_infeasible_interval_must_not_be_loaded_beyond_its_least_load() -> None:
    probe = make_chain()
    base = base_load_at(probe.bundle.genesis, 2)
    c = make_chain(transformer_capacity_w=base - 1_000)
    # 3 kWh over three intervals at up to 3 kW: at least 0 W is due now, 3 kW allowed.
    c.block(c.clock.start_ms(0) + 10, [charge(c, 1, 2, 5, 3_000, 3_000)])
    ctx, built = c.propose(c.clock.start_ms(1) + 10, [])
    assert [e.rate_w for e in built.schedule] == [0]  # the least load
    more = tuple(ScheduleEntry(e.request_id, 1_000) for e in built.schedule)
    with pytest.raises(GridLimitError, match="must be at it"):
        c.commit(ctx, dataclasses.replace(built, schedule=more))
    c.commit(ctx, built)
