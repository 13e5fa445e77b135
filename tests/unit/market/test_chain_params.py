"""Chain parameters changed by the council from a future height (market/chain_params.py, ADR 0043).

Why: tariffs, the imbalance penalty and gate closure change in a community's life (a new
supplier contract, a new grid fee), and with them read from genesis every change meant a new
chain.  These tests pin the rule (the parameters of block h are genesis's with every change of
effective height <= h), that every refusal is typed and writes nothing, that a slot settled
before the height pays the old tariff and one settled from it the new one, and that a chain
that never changes a parameter keeps its state root.
"""

from __future__ import annotations

import pytest

from gridchain.genesis.schema import Genesis
from gridchain.market.chain_params import (
    MAX_CHANGE_DELAY,
    MIN_CHANGE_DELAY,
    PARAMS_SCHEDULE_KEY,
    InvalidParameterValueError,
    ParameterChangeError,
    ParameterHeightError,
    ParameterNotChangeableError,
    SlotLengthUnchangeableError,
    apply_param_change,
    params_at,
)
from gridchain.market.errors import GateClosedError
from gridchain.market.governance import ProposalStatus
from gridchain.market.settlement import receipts
from gridchain.market.slot_settlement import get_pool_slot, pool_receipts
from gridchain.market.state import Overlay
from gridchain.protocol.errors import DecodeError
from gridchain.protocol.governance import SetParameter, SetTariffs, TariffBand, decode_proposed
from gridchain.protocol.tx import TX_BODY_TYPES, Propose, Side
from tests.helpers import addr
from tests.unit.market.conftest import EARLY_MS, SLOT, SLOT_MS, START_MS, Exchange
from tests.unit.market.metering import BRIDGE_1, BRIDGE_2
from tests.unit.market.test_governance import Chain, council_bundle
from tests.unit.market.test_settlement import (
    GRACE_MS,
    R_BUY,
    around_slot,
    make,
    meter,
    send,
    trade,
)

HEIGHT = 10
#: A day of flat prices: retail 200,000 and feed-in 50,000 mc/kWh.
FLAT = (TariffBand(0, 24, 200_000, 50_000),)


def _genesis() -> Genesis:
    return council_bundle().genesis


def _refused(record: SetParameter | SetTariffs, error: type[ParameterChangeError]) -> str:
    """Apply ``record`` at HEIGHT on a fresh state: it raises ``error`` and writes nothing."""
    view = Overlay(Chain(council_bundle()).view)
    with pytest.raises(error) as caught:
        apply_param_change(view, _genesis(), record, HEIGHT)
    assert view.writes == {}
    return caught.value.code


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "effective",
    [0, HEIGHT, HEIGHT + MIN_CHANGE_DELAY - 1, HEIGHT + MAX_CHANGE_DELAY + 1],
)
def test_an_effective_height_not_in_the_future_or_too_far_is_refused(effective: int) -> None:
    code = _refused(SetParameter("penalty_mc_per_kwh", 1, effective), ParameterHeightError)
    assert code == "invalid_effective_height"
    code = _refused(SetTariffs(FLAT, effective), ParameterHeightError)
    assert code == "invalid_effective_height"


def test_the_slot_length_is_refused_with_its_own_error() -> None:
    record = SetParameter("slot_length_ms", 1_800_000, HEIGHT + 5)
    assert _refused(record, SlotLengthUnchangeableError) == "slot_length_unchangeable"


@pytest.mark.parametrize(
    "name", ["block_interval_ms", "matching_rule", "settlement_grace_ms", "no_such_param"]
)
def test_a_parameter_outside_the_changeable_list_is_refused(name: str) -> None:
    record = SetParameter(name, 1000, HEIGHT + 5)
    assert _refused(record, ParameterNotChangeableError) == "parameter_not_changeable"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("penalty_mc_per_kwh", 10**9 + 1),  # over the genesis bound
        ("cd_tolerance_permille", 1001),
        ("gate_closure_ms", 7 * 86_400_000),  # not before the order horizon (7 days)
        ("day_ahead_gate_closure_ms", 60_000),  # before the intraday gate closure (1 h)
    ],
)
def test_a_value_the_genesis_rules_refuse_is_refused(name: str, value: int) -> None:
    record = SetParameter(name, value, HEIGHT + 5)
    assert _refused(record, InvalidParameterValueError) == "invalid_parameter_value"


@pytest.mark.parametrize(
    "bands",
    [
        (TariffBand(0, 12, 200_000, 50_000),),  # ends before 24 h
        (TariffBand(0, 12, 200_000, 50_000), TariffBand(13, 24, 200_000, 50_000)),  # a gap
        (TariffBand(0, 24, 50_000, 200_000),),  # feed-in above retail
        (TariffBand(0, 25, 200_000, 50_000),),  # past the day
        (TariffBand(0, 24, 10**9 + 1, 0),),  # over the price bound
    ],
)
def test_tariffs_that_do_not_cover_the_day_or_invert_prices_are_refused(
    bands: tuple[TariffBand, ...],
) -> None:
    assert _refused(SetTariffs(bands, HEIGHT + 5), InvalidParameterValueError) == (
        "invalid_parameter_value"
    )


def test_a_change_that_breaks_a_later_scheduled_change_is_refused() -> None:
    """gate closure 2 h from height 30 after a day-ahead gate closure of 90 min from height
    20: the day-ahead book would close after the intraday one from height 30."""
    genesis = _genesis()
    view = Overlay(Chain(council_bundle()).view)
    apply_param_change(view, genesis, SetParameter("day_ahead_gate_closure_ms", 5_400_000, 20), 1)
    before = dict(view.writes)
    with pytest.raises(InvalidParameterValueError, match="from height 30"):
        apply_param_change(view, genesis, SetParameter("gate_closure_ms", 7_200_000, 30), 1)
    assert view.writes == before
    # ...and the other way round: the earlier change breaks the one scheduled later.
    apply_param_change(view, genesis, SetParameter("gate_closure_ms", 5_400_000, 30), 1)
    with pytest.raises(InvalidParameterValueError, match="from height 30"):
        apply_param_change(
            view, genesis, SetParameter("day_ahead_gate_closure_ms", 3_600_000, 25), 1
        )


def test_a_refused_change_closes_the_proposal_failed_with_the_code() -> None:
    chain = Chain(council_bundle())
    a, b, _ = chain.bundle.council
    pid = chain.propose(a, SetParameter("slot_length_ms", 1_800_000, 50))
    proposal = chain.approve(b, pid)
    assert (proposal.status, proposal.error) == (ProposalStatus.FAILED, "slot_length_unchangeable")
    assert chain.view.get(PARAMS_SCHEDULE_KEY) is None


def test_a_change_signed_without_a_proposal_is_not_a_transaction() -> None:
    """The records exist only inside proposals: the decoder refuses them as a body."""
    assert SetParameter not in TX_BODY_TYPES
    assert SetTariffs not in TX_BODY_TYPES
    assert isinstance(decode_proposed(SetTariffs(FLAT, 9).encode()), SetTariffs)
    with pytest.raises(DecodeError):
        decode_proposed(b"\x00not a record")


# --- the rule ----------------------------------------------------------------------------------


def test_the_council_schedules_a_change_that_applies_from_its_height() -> None:
    chain = Chain(council_bundle())
    a, b, _ = chain.bundle.council
    genesis = chain.bundle.genesis
    pid = chain.propose(a, SetParameter("penalty_mc_per_kwh", 250_000, 40))
    assert params_at(chain.view, genesis, 40) is genesis.params  # one approval of two
    proposal = chain.approve(b, pid)
    assert proposal.status == ProposalStatus.APPLIED
    assert params_at(chain.view, genesis, 39).penalty_mc_per_kwh == 100_000
    assert params_at(chain.view, genesis, 40).penalty_mc_per_kwh == 250_000
    assert params_at(chain.view, genesis, 10**6).penalty_mc_per_kwh == 250_000
    # the rest stays genesis's
    assert params_at(chain.view, genesis, 40).tariffs == genesis.params.tariffs


def test_later_changes_win_from_their_height_and_at_one_height_the_later_commit() -> None:
    genesis = _genesis()
    view = Overlay(Chain(council_bundle()).view)
    for value, effective in [(1, 30), (2, 20), (3, 30)]:
        apply_param_change(view, genesis, SetParameter("cd_tolerance_wh", value, effective), 5)
    apply_param_change(view, genesis, SetTariffs(FLAT, 25), 5)
    seen = {h: params_at(view, genesis, h) for h in (19, 20, 25, 30)}
    assert [seen[h].cd_tolerance_wh for h in (19, 20, 25, 30)] == [10, 2, 2, 3]
    assert seen[20].tariffs == genesis.params.tariffs
    assert seen[25].tariff_at_hour(18).retail_mc_per_kwh == 200_000


def test_a_chain_without_changes_keeps_its_state_and_root() -> None:
    chain = Chain(council_bundle())
    assert chain.view.get(PARAMS_SCHEDULE_KEY) is None
    genesis = chain.bundle.genesis
    assert params_at(chain.view, genesis, 123) is genesis.params


# --- settlement and the books across the height --------------------------------------------------


def _schedule(ex: Exchange, record: SetParameter | SetTariffs, at_ms: int = EARLY_MS) -> None:
    """The governance key is the whole council here (k = n = 1): its Propose applies at once."""
    ex.block([ex.sign(ex.bundle.governance, Propose(record.encode(), ex.height + 100))], at_ms)


def test_a_slot_settled_before_the_height_pays_the_old_tariff_and_one_after_the_new() -> None:
    ex = make()
    c = ex.peers[2]
    end = START_MS + SLOT_MS
    effective = 5
    _schedule(ex, SetTariffs(FLAT, effective))  # block 1
    net = meter(ex, "net-c", BRIDGE_2)
    send(ex, BRIDGE_2, net.reading(START_MS - SLOT_MS, START_MS, 0, 0))
    send(ex, BRIDGE_2, net.reading(START_MS, end, 400, 0), at=end)  # block 3
    ex.block([], end + GRACE_MS)  # block 4 settles SLOT: before the height
    assert ex.height == effective - 1
    send(ex, BRIDGE_2, net.reading(end, end + SLOT_MS, 1000, 0), at=end + SLOT_MS)  # block 5
    ex.block([], end + SLOT_MS + GRACE_MS)  # block 6 settles SLOT + 1: from the height on
    old, new = get_pool_slot(ex.state, SLOT), get_pool_slot(ex.state, SLOT + 1)
    assert old is not None
    assert new is not None
    assert (old.height, old.r_buy_mc_per_kwh, old.p_buy_mc_per_kwh) == (4, R_BUY, R_BUY)
    assert (new.height, new.r_buy_mc_per_kwh, new.p_buy_mc_per_kwh) == (6, 200_000, 200_000)
    (paid_old,) = pool_receipts(ex.state, slot=SLOT)
    (paid_new,) = pool_receipts(ex.state, slot=SLOT + 1)
    assert paid_old.participant == paid_new.participant == addr(c)
    assert (paid_old.net_wh, paid_old.paid_mc) == (-400, -(400 * R_BUY // 1000))
    assert (paid_new.net_wh, paid_new.paid_mc) == (-600, -(600 * 200_000 // 1000))
    assert receipts(ex.state) == []


def test_the_penalty_in_force_at_the_settling_block_fines_a_short_seller() -> None:
    ex = make()
    a, b, _ = ex.peers
    _schedule(ex, SetParameter("penalty_mc_per_kwh", 300_000, 3))
    trade(ex, a, b, 1000)  # block 2
    send(
        ex,
        BRIDGE_1,
        *around_slot(meter(ex, "pv-a"), (0, 0), (0, 600)),
        *around_slot(meter(ex, "load-b"), (0, 0), (1000, 0)),
    )  # block 3
    ex.block([], START_MS + SLOT_MS + GRACE_MS)  # block 4: the new penalty is in force
    (r,) = receipts(ex.state, slot=SLOT)
    assert (r.shortfall_wh, r.fine_mc) == (400, 400 * 300_000 // 1000)


def test_gate_closure_moves_for_orders_from_the_height() -> None:
    """Gate closure 1 h -> 2 h from height 3: an order 90 min before its slot is accepted in
    block 2 and refused at admission from block 3 on."""
    ex = make()
    a = ex.peers[0]
    _schedule(ex, SetParameter("gate_closure_ms", 7_200_000, 3))
    at = START_MS - 5_400_000
    ex.block([ex.place(a, side=Side.SELL, price=100_000, quantity=100)], at)  # block 2
    assert len(ex.app.exchange_at(ex.state, 2).params.tariffs) == 4
    with pytest.raises(GateClosedError):
        ex.admit(ex.place(a, side=Side.SELL, price=100_000, quantity=100, probe=True), at)
    assert ex.app.exchange_at(ex.state, 3).gate_closure_ms(1, SLOT) == START_MS - 7_200_000
