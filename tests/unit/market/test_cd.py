"""C&D requests and the schedule section of blocks (market/cd_requests.py, cd_schedule.py).

The chain here is the real application on an in-memory state; blocks are built as a proposer
builds them (``build_block``, which runs the genesis scheduler) and checked as a validator
checks them (``execute_block`` with the block's schedule and claimed benefit).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.market.accounts import get_account
from gridchain.market.app import Application, BlockContext, Execution
from gridchain.market.base_load import base_load_at
from gridchain.market.cd_requests import CDStatus, IntervalClock, get_head, get_request
from gridchain.market.cd_schedule import BENEFIT_SCALE, get_decision
from gridchain.market.errors import (
    BenefitMismatchError,
    CDCapacityError,
    CDInfeasibleError,
    CDWindowError,
    InvalidCDRequestError,
    NotAParticipantError,
    ScheduleRejectedError,
)
from gridchain.market.scheduling.loadprofiles import DayType, base_load_w
from gridchain.market.state import MerkleState, Overlay
from gridchain.protocol.block import ScheduleEntry
from gridchain.protocol.tx import CDKind, CDRequest, Device, Transaction
from tests.helpers import (
    GENESIS_TIME_MS,
    addr,
    cd_meter_id,
    signed,
    small_bundle,
    with_cd_meters,
)

INTERVAL_MS = 600_000  # real time: one interval of 10 minutes


@dataclass
class Chain:
    bundle: GenesisBundle
    app: Application
    state: MerkleState
    height: int = 0
    last_ms: int = GENESIS_TIME_MS
    nonces: dict[bytes, int] = field(default_factory=dict)
    blocks: list[tuple[int, tuple[ScheduleEntry, ...], int]] = field(default_factory=list)
    #: what pruning moved out of the live state (a node's archive index)
    archive: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def served(self) -> Overlay:
        """The live state with the archive behind it: every record the chain ever held, as
        a node's API reads it (node/archive.py)."""
        view = Overlay(self.state)
        for key, value in self.archive.items():
            if self.state.get(key) is None:
                view.put(key, value)
        return view

    @property
    def clock(self) -> IntervalClock:
        return self.app.interval_clock

    def request(
        self,
        who: NamedKey,
        kind: CDKind,
        *,
        arrival_ms: int,
        departure_ms: int,
        energy_wh: int,
        max_rate_w: int,
        device: Device = Device.EV,
    ) -> Transaction:
        index = self.bundle.participants.index(who)
        limit = 250_000 if kind is CDKind.CHARGE else 0
        body = CDRequest(
            int(kind),
            int(device),
            arrival_ms,
            departure_ms,
            energy_wh,
            max_rate_w,
            limit,
            cd_meter_id(index, device),
        )
        address = addr(who)
        nonce = self.nonces.get(address, 0)
        self.nonces[address] = nonce + 1
        return signed(who, self.bundle.genesis.chain_id, nonce, body)

    def build(self, at_ms: int, txs: list[Transaction] | None = None) -> Execution:
        """Propose a block at ``at_ms`` (every tx must apply), check it as a validator, commit."""
        ctx = BlockContext(self.height + 1, at_ms, b"")
        built = self.app.build_block(self.state, txs or [], ctx)
        assert not built.left_out, [exc.code for _, exc in built.left_out]
        checked = self.app.execute_block(
            self.state, built.txs, ctx, schedule=built.schedule, benefit=built.benefit
        )
        assert checked.state_root == built.execution.state_root
        self.state.apply(checked.writes)
        self.archive.update(checked.archived)
        self.height += 1
        self.last_ms = at_ms
        self.blocks.append((at_ms, built.schedule, built.benefit))
        return checked

    def at(self, interval: int, offset_ms: int = 1) -> int:
        return self.clock.start_ms(interval) + offset_ms


def make_chain(balance_mc: int = 1_000_000, **params: Any) -> Chain:
    bundle = with_cd_meters(small_bundle(balance_mc=balance_mc, **params))
    app = Application(bundle.genesis)
    return Chain(bundle, app, app.genesis_state())


@pytest.fixture
def chain() -> Chain:
    return make_chain()


# --- base load ------------------------------------------------------------------------------


@pytest.mark.parametrize("month", [1, 7, 12])
def test_integer_base_load_matches_the_scenario_library(month: int) -> None:
    """Validators' integer base load is the library's float curve to within rounding."""
    c = make_chain(base_load_month=month)
    floats = base_load_w(
        households=200,
        household_mean_w=800,
        month=month,
        day_type=DayType.WEEKDAY,
        interval_min=10,
        start_minute=0,
        n_intervals=144,
    )
    ints = [base_load_at(c.bundle.genesis, j) for j in range(144)]
    assert max(abs(a - b) for a, b in zip(ints, floats, strict=True)) <= 1
    # The day repeats: interval 144 is interval 0 of the next day.
    assert base_load_at(c.bundle.genesis, 144) == ints[0]


# --- admission ------------------------------------------------------------------------------


def test_a_request_opens_on_the_whole_intervals_of_its_window(chain: Chain) -> None:
    peer = chain.bundle.participants[0]
    arrive = chain.at(2, 5_000)  # inside interval 2: first whole interval is 3
    depart = chain.at(9, 0)  # interval 9 starts at departure: last interval is 8
    tx = chain.request(
        peer,
        CDKind.CHARGE,
        arrival_ms=arrive,
        departure_ms=depart,
        energy_wh=7_000,
        max_rate_w=7_000,
    )
    chain.build(chain.at(0), [tx])
    record = get_request(chain.served, tx.hash())
    assert record is not None
    assert (record.first_interval, record.end_interval) == (3, 9)
    assert record.cap_units == 7_000 * 60 // 10  # W-intervals of 10 minutes
    assert record.status == CDStatus.OPEN
    assert get_head(chain.state).open_requests == 1
    assert get_account(chain.state, addr(peer)).nonce == 1


def test_a_request_arriving_now_starts_at_the_next_interval(chain: Chain) -> None:
    peer = chain.bundle.participants[0]
    now = chain.at(4, 100_000)
    tx = chain.request(
        peer,
        CDKind.DISCHARGE,
        arrival_ms=now - 3_600_000,
        departure_ms=now + 3_600_000,
        energy_wh=5_000,
        max_rate_w=15_000,
    )
    chain.build(now, [tx])
    record = get_request(chain.served, tx.hash())
    assert record is not None
    assert record.first_interval == 5


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"kind": 3}, InvalidCDRequestError),
        ({"device": int(Device.PV)}, InvalidCDRequestError),
        ({"device": 9}, InvalidCDRequestError),
        ({"energy_wh": 0}, InvalidCDRequestError),
        ({"max_rate_w": 0}, InvalidCDRequestError),
        ({"max_rate_w": 10_000_001}, InvalidCDRequestError),
        ({"departure_ms": GENESIS_TIME_MS + 600_000}, InvalidCDRequestError),  # before arrival
        ({"departure_ms": GENESIS_TIME_MS + 2_700_000}, CDWindowError),  # no whole interval
        ({"departure_ms": GENESIS_TIME_MS + 300 * INTERVAL_MS}, CDWindowError),  # > 288
        ({"energy_wh": 100_000, "max_rate_w": 3_000}, CDInfeasibleError),
    ],
)
def test_bad_requests_are_refused_with_a_typed_error_and_change_nothing(
    chain: Chain, change: dict[str, int], error: type[Exception]
) -> None:
    peer = chain.bundle.participants[0]
    body = CDRequest(
        int(CDKind.CHARGE),
        int(Device.EV),
        GENESIS_TIME_MS + 2_400_000,  # in interval 4
        GENESIS_TIME_MS + 3_600_000 + 600_000 * 2,
        3_000,
        7_000,
        250_000,
        cd_meter_id(0, Device.EV),
    )
    fields: dict[str, Any] = dict(change)
    body = dataclasses.replace(body, **fields)
    tx = signed(peer, chain.bundle.genesis.chain_id, 0, body)
    before = chain.state.root()
    with pytest.raises(error):
        chain.app.check_tx(tx, chain.state, BlockContext(1, GENESIS_TIME_MS + 1000, b""))
    assert chain.state.root() == before


def test_the_governance_key_sends_no_requests(chain: Chain) -> None:
    gov = chain.bundle.governance
    body = CDRequest(
        1,
        0,
        GENESIS_TIME_MS,
        GENESIS_TIME_MS + 7_200_000,
        1_000,
        7_000,
        0,
        cd_meter_id(0, Device.EV),
    )
    tx = signed(gov, chain.bundle.genesis.chain_id, 0, body)
    with pytest.raises(NotAParticipantError):
        chain.app.check_tx(tx, chain.state, BlockContext(1, GENESIS_TIME_MS + 1000, b""))


def test_open_requests_are_bounded_by_genesis() -> None:
    c = make_chain(cd_max_open_requests=2)
    peer = c.bundle.participants[0]
    txs = [
        c.request(
            peer,
            CDKind.CHARGE,
            arrival_ms=GENESIS_TIME_MS,
            departure_ms=c.at(20, 0),
            energy_wh=1_000,
            max_rate_w=7_000,
        )
        for _ in range(3)
    ]
    c.build(c.at(0), txs[:2])
    with pytest.raises(CDCapacityError):
        c.app.check_tx(txs[2], c.state, BlockContext(2, c.at(0, 2), b""))


# --- decisions ------------------------------------------------------------------------------


def _fleet(c: Chain, count: int = 4) -> list[Transaction]:
    peers = c.bundle.participants
    txs = []
    for i in range(count):
        kind = CDKind.DISCHARGE if i % 3 == 2 else CDKind.CHARGE
        txs.append(
            c.request(
                peers[i % len(peers)],
                kind,
                arrival_ms=GENESIS_TIME_MS,
                departure_ms=c.at(8 + 2 * i, 0),
                energy_wh=2_000 + 1_000 * i,
                max_rate_w=[7_000, 11_000, 22_000, 3_000][i % 4],
            )
        )
    return txs


def test_the_first_block_of_an_interval_decides_the_next_one(chain: Chain) -> None:
    txs = _fleet(chain)
    chain.build(chain.at(0), txs)
    ids = sorted(tx.hash() for tx in txs)
    assert get_decision(chain.state, 1) is None  # requests start in interval 1
    executed = chain.build(chain.at(0, 2))  # the first block with live requests decides 1
    decision = executed.decision
    assert decision is not None
    assert decision.interval == 1
    assert [e.request_id for e in decision.entries] == ids
    assert get_head(chain.state).next_interval == 2
    # A second block of interval 0 decides nothing and carries no schedule.
    again = chain.build(chain.at(0, 3))
    assert again.decision is None
    assert chain.blocks[-1][1:] == ((), 0)


def test_a_validator_recomputes_the_benefit_and_refuses_a_claim_that_differs(
    chain: Chain,
) -> None:
    chain.build(chain.at(0), _fleet(chain))
    ctx = BlockContext(chain.height + 1, chain.at(0, 2), b"")
    built = chain.app.build_block(chain.state, [], ctx)
    assert built.schedule
    assert 0 < built.benefit <= BENEFIT_SCALE
    decision = built.execution.decision
    assert decision is not None
    step = decision.load_w - base_load_at(chain.bundle.genesis, 0)
    assert built.benefit == BENEFIT_SCALE // (1 + step * step)
    for claim in (built.benefit + 1, built.benefit * 2, 0):
        with pytest.raises(BenefitMismatchError):
            chain.app.execute_block(chain.state, [], ctx, schedule=built.schedule, benefit=claim)


def _mutated(chain: Chain, mutate: Any) -> None:
    ctx = BlockContext(chain.height + 1, chain.at(0, 2), b"")
    built = chain.app.build_block(chain.state, [], ctx)
    schedule = mutate(list(built.schedule))
    with pytest.raises(ScheduleRejectedError):
        chain.app.execute_block(chain.state, [], ctx, schedule=tuple(schedule), benefit=0)


def test_a_schedule_must_list_every_live_request_in_id_order(chain: Chain) -> None:
    chain.build(chain.at(0), _fleet(chain))
    _mutated(chain, lambda s: s[1:])  # one left out
    _mutated(chain, lambda s: list(reversed(s)))  # out of order
    _mutated(chain, lambda s: [*s, ScheduleEntry(b"\x01" * 32, 100)])  # not a live request
    _mutated(chain, lambda s: [])  # nobody scheduled


def test_rates_must_respect_sign_maximum_and_deadline(chain: Chain) -> None:
    txs = _fleet(chain)
    chain.build(chain.at(0), txs)
    records = {tx.hash(): get_request(chain.served, tx.hash()) for tx in txs}

    def set_rate(index: int, rate: int) -> Any:
        def mutate(s: list[ScheduleEntry]) -> list[ScheduleEntry]:
            s[index] = ScheduleEntry(s[index].request_id, rate)
            return s

        return mutate

    ordered = sorted(records)
    for i, rid in enumerate(ordered):
        record = records[rid]
        assert record is not None
        sign = 1 if record.is_charge else -1
        _mutated(chain, set_rate(i, sign * (record.max_rate_w + 1)))  # above the maximum
        _mutated(chain, set_rate(i, -sign * 1))  # wrong direction


def test_a_charge_request_short_of_time_must_get_what_is_due_now() -> None:
    c = make_chain()
    peer = c.bundle.participants[0]
    # 1,000 Wh at 3 kW in 2 intervals of 10 min: 6,000 W-intervals, 3,000 W each interval.
    tx = c.request(
        peer,
        CDKind.CHARGE,
        arrival_ms=GENESIS_TIME_MS,
        departure_ms=c.at(3, 0),
        energy_wh=1_000,
        max_rate_w=3_000,
    )
    c.build(c.at(0), [tx])
    ctx = BlockContext(c.height + 1, c.at(0, 2), b"")
    built = c.app.build_block(c.state, [], ctx)
    assert built.schedule == (ScheduleEntry(tx.hash(), 3_000),)
    with pytest.raises(ScheduleRejectedError, match="unable to finish"):
        c.app.execute_block(
            c.state, [], ctx, schedule=(ScheduleEntry(tx.hash(), 2_999),), benefit=0
        )
    with pytest.raises(ScheduleRejectedError):
        c.app.execute_block(c.state, [], ctx, schedule=(ScheduleEntry(tx.hash(), 3_001),))


def test_a_block_that_decides_nothing_carries_no_schedule_and_no_benefit(chain: Chain) -> None:
    txs = _fleet(chain)
    chain.build(chain.at(0), txs)
    chain.build(chain.at(0, 2))  # decides interval 1
    ctx = BlockContext(chain.height + 1, chain.at(0, 3), b"")
    entry = ScheduleEntry(sorted(t.hash() for t in txs)[0], 1)
    with pytest.raises(ScheduleRejectedError):
        chain.app.execute_block(chain.state, [], ctx, schedule=(entry,), benefit=0)
    with pytest.raises(BenefitMismatchError):
        chain.app.execute_block(chain.state, [], ctx, schedule=(), benefit=5)


@pytest.mark.parametrize("scheduler", ["uncontrolled", "online", "epob"])
def test_every_charge_request_gets_its_energy_by_departure(scheduler: str) -> None:
    c = make_chain(scheduler=scheduler, epob_speedup_milli=1200)
    txs = _fleet(c, 6)
    c.build(c.at(0), txs)
    for interval in range(0, 20):
        c.build(c.at(interval, 10))
    for tx in txs:
        record = get_request(c.served, tx.hash())
        assert record is not None
        assert record.status != CDStatus.OPEN
        if record.is_charge:
            assert record.delivered_units == record.cap_units
            assert record.status == CDStatus.COMPLETE
        else:
            assert record.delivered_units <= record.cap_units
    assert get_head(c.state).open_requests == 0


def test_a_request_is_scheduled_at_most_two_rounds_after_it_is_sent() -> None:
    """Sent during interval k, it is in the decision for k + 1 or, if k + 1 was already
    decided when its block came, for k + 2 (the source's 'waits at most two rounds')."""
    c = make_chain()
    first = _fleet(c, 1)
    c.build(c.at(0), first)
    c.build(c.at(0, 2))  # decides 1
    peer = c.bundle.participants[1]
    late = c.request(
        peer,
        CDKind.CHARGE,
        arrival_ms=c.at(0, 3),
        departure_ms=c.at(12, 0),
        energy_wh=2_000,
        max_rate_w=7_000,
    )
    c.build(c.at(0, 4), [late])  # interval 0, after interval 1 was decided
    executed = c.build(c.at(1, 1))  # decides 2
    assert executed.decision is not None
    assert executed.decision.interval == 2
    assert late.hash() in {e.request_id for e in executed.decision.entries}


def test_online_scheduling_flattens_the_load_compared_with_uncontrolled() -> None:
    costs = {}
    for scheduler in ("uncontrolled", "online"):
        c = make_chain(scheduler=scheduler)
        c.build(c.at(0), _fleet(c, 6))
        loads = []
        for interval in range(0, 20):
            executed = c.build(c.at(interval, 10))
            if executed.decision is not None:
                loads.append(executed.decision.load_w)
        costs[scheduler] = sum((b - a) ** 2 for a, b in itertools.pairwise(loads))
    assert costs["online"] < costs["uncontrolled"]


def test_intervals_without_a_block_close_requests_that_ended_then() -> None:
    c = make_chain()
    txs = _fleet(c, 2)
    c.build(c.at(0), txs)
    c.build(c.at(40))  # a long stall: every window has ended
    for tx in txs:
        record = get_request(c.served, tx.hash())
        assert record is not None
        assert record.status == CDStatus.ENDED
    assert get_head(c.state).open_requests == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from([CDKind.CHARGE, CDKind.DISCHARGE]),
            st.integers(0, 6),  # arrival interval
            st.integers(1, 12),  # window length
            st.integers(1, 20_000),  # energy Wh
            st.sampled_from([3_000, 7_000, 22_000, 50_000]),
        ),
        min_size=1,
        max_size=6,
    ),
    scheduler=st.sampled_from(["uncontrolled", "online", "epob"]),
    gaps=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_every_proposed_schedule_is_accepted_by_every_validator(
    specs: list[tuple[CDKind, int, int, int, int]], scheduler: str, gaps: list[bool]
) -> None:
    """Whatever the requests and however many intervals pass without a block, the proposer's
    schedule passes the validators' checks and nobody gets more than asked or offered."""
    c = make_chain(scheduler=scheduler, epob_speedup_milli=1500)
    peers = c.bundle.participants
    txs = []
    for i, (kind, arrive, length, energy, rate) in enumerate(specs):
        first, end = max(arrive, 1), arrive + 1 + length
        if kind is CDKind.CHARGE and c.clock.units(kind, energy) > rate * (end - first):
            continue  # refused at admission (CDInfeasibleError), tested above
        txs.append(
            c.request(
                peers[i % len(peers)],
                kind,
                arrival_ms=c.at(arrive, 0),
                departure_ms=c.at(end, 0),
                energy_wh=energy,
                max_rate_w=rate,
            )
        )
    c.build(c.at(0), txs)
    for interval, skip in enumerate(gaps):
        if not skip:
            c.build(c.at(interval, 20))  # build() asserts the validator accepts it
    for tx in txs:
        record = get_request(c.served, tx.hash())
        assert record is not None
        assert record.delivered_units <= record.cap_units
