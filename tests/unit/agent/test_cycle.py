"""One agent cycle on a fake node: history file -> forecast -> plan -> orders within limits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from gridchain.agent.config import AgentConfig, EVConfig, Limits, PlanConfig
from gridchain.agent.errors import HistoryError
from gridchain.agent.history import write_csv
from gridchain.agent.runner import Agent
from gridchain.api.client import NodeClient
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import CDRequest, PlaceOrder
from tests.unit.agent.test_api import NOW_MS, SLOT_MS, FakeNode

DAY_MS = 86_400_000
#: NOW_MS is 2026-05-28 20:26 UTC; the day is shifted so it is noon for the sun
NOON_SHIFT_H = 12 - (NOW_MS % DAY_MS) / 3_600_000


class PricedNode(FakeNode):
    """FakeNode plus the chain's default tariffs per slot and no recent trades."""

    async def pool_prices(self, *, slot: int, count: int) -> Any:
        def interval(s: int) -> Any:
            hour = (s * SLOT_MS) % DAY_MS // 3_600_000
            retail = (
                180_000 if hour < 7 else 250_000 if hour < 17 else 350_000 if hour < 21 else 250_000
            )
            return SimpleNamespace(r_buy_mc_per_kwh=retail, r_sell_mc_per_kwh=60_000)

        return SimpleNamespace(intervals=[interval(slot + i) for i in range(count)])

    async def trades(self, *, address: str | None = None, market: str | None = None) -> list[Any]:
        return []


def history(path: Path, pv_peak_kw: float) -> None:
    per_day = 96
    today = NOW_MS // DAY_MS
    hours = (np.arange(per_day) / 4 + NOON_SHIFT_H) % 24
    shape = np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None) * pv_peak_kw
    rng = np.random.default_rng(0)
    pv: dict[int, float] = {}
    load: dict[int, float] = {}
    for day in range(today - 30, today):
        level = rng.uniform(0.6, 1.0)
        for i in range(per_day):
            pv[day * per_day + i] = float(shape[i] * level)
            load[day * per_day + i] = 0.6
    write_csv(path, 900_000, pv, load)


def agent(tmp_path: Path, pv_peak_kw: float, **config: Any) -> tuple[Agent, PricedNode]:
    history(tmp_path / "h.csv", pv_peak_kw)
    cfg = AgentConfig(
        name="peer",
        node_url="http://127.0.0.1:1",
        wallet=tmp_path / "w.json",
        data_dir=tmp_path / "data",
        history={"file": tmp_path / "h.csv"},
        plan=PlanConfig(horizon_slots=16, act_slots=3),
        **config,
    )
    node = PricedNode()
    key = SigningKey.generate()
    return Agent(cfg, key, "gc1" + "00" * 24, cast(NodeClient, node), now_ms=lambda: NOW_MS), node


async def test_a_pv_surplus_is_sold_within_the_limits(tmp_path: Path) -> None:
    limits = Limits(max_sell_wh_per_slot=300, min_sell_price_mc_per_kwh=200_000)
    a, node = agent(tmp_path, 4.0, limits=limits)
    plan = await a.cycle()
    assert plan.version == 1
    assert a.forecast is not None
    assert a.forecast.pv_quality is not None
    first = plan.slots[0].slot
    orders = [tx.body for tx in node.submitted]
    assert [o.slot for o in orders if isinstance(o, PlaceOrder)] == [first, first + 1, first + 2]
    for order in orders:
        assert isinstance(order, PlaceOrder)
        assert order.side == 1  # sell
        assert 0 < order.quantity_wh <= 300
        assert order.price_mc_per_kwh >= 200_000  # the user's minimum beats the midpoint
    # the plan never exports more than the limit lets it
    assert max(s.export_kw for s in plan.slots) <= 300 / 1000 / 0.25 + 1e-6
    assert [x.origin for x in a.actions] == ["plan"] * 3
    # a second cycle plans again (version 2) but does not order the same slots twice
    plan2 = await a.cycle()
    assert plan2.version == 2
    assert len(node.submitted) == 3
    # the log survives a restart and still counts against the limits
    b, _ = agent(tmp_path, 4.0, limits=limits)
    b.load_actions()
    assert b.acted_slots == a.acted_slots
    assert b.placed_wh == a.placed_wh


async def test_a_consumer_buys_its_deficit_and_asks_for_its_ev_charge(tmp_path: Path) -> None:
    ev = EVConfig(goal_kwh=2.0, by_hour=7, plugged_from_hour=0, plugged_until_hour=24,
                  request_cd=True, meter="peer-ev")  # fmt: skip
    a, node = agent(tmp_path, 0.0, limits=Limits(max_buy_wh_per_slot=100), ev=ev)
    a.config = a.config.model_copy(update={"plan": PlanConfig(horizon_slots=96, act_slots=3)})
    plan = await a.cycle()
    bodies = [tx.body for tx in node.submitted]
    buys = [b for b in bodies if isinstance(b, PlaceOrder)]
    assert len(buys) == 3
    assert all(b.side == 0 and 0 < b.quantity_wh <= 100 for b in buys)
    [cd] = [b for b in bodies if isinstance(b, CDRequest)]
    assert (cd.energy_wh, cd.meter_id, cd.max_rate_w) == (2000, "peer-ev", 2048)
    assert cd.departure_ms % DAY_MS == 7 * 3_600_000
    assert plan.violations == []
    # one C&D request per goal, not one per cycle
    await a.cycle()
    assert sum(isinstance(tx.body, CDRequest) for tx in node.submitted) == 1


async def test_too_little_history_is_a_failed_cycle_with_a_reason(tmp_path: Path) -> None:
    a, _ = agent(tmp_path, 4.0)
    a.config = a.config.model_copy(
        update={"history": a.config.history.model_copy(update={"days": 60})}
    )
    with pytest.raises(HistoryError, match="no history for day"):
        await a.cycle()
