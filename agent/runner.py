"""The agent's cycle: history -> forecast -> plan -> orders, and what it keeps for its API.

Each cycle (every ``plan.cycle_seconds``) the agent

1. rebuilds the history (history file and bridge readings) as whole UTC days;
2. forecasts PV and load for the days the horizon covers (forecast.py) and measures the
   regression against persistence on the last seven days it has;
3. reads the market's clock and the chain's tariffs for the horizon's slots (the first open
   slot on), and the market's recent prices;
4. solves the LP (plan.py) and keeps the plan as a new version beside the base case's cost;
5. acts in the first ``act_slots`` slots it has not acted in yet: a sell order for a planned
   export, a buy order for a planned import, each within the user's limits (acting.py), and,
   when configured, one C&D request per EV goal.

Nothing here reads the clock but :attr:`Agent.now_ms` (wall time by default; tests pass
their own), and nothing is sent that :func:`acting.check_order` refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gridchain.agent import forecast as fc
from gridchain.agent import intraday
from gridchain.agent.acting import Signer, check_order, order_body
from gridchain.agent.bridge_history import BridgeUnavailableError, household_meters
from gridchain.agent.config import AgentConfig
from gridchain.agent.errors import HistoryError, SlotClosedError
from gridchain.agent.history import DAY_MS, Days, read_csv, whole_days
from gridchain.agent.horizon import ev_for, slot_prices, slot_values
from gridchain.agent.models import (
    SIGN_CONVENTIONS,
    Action,
    ActionStatus,
    ErrorMeasures,
    ForecastData,
    ForecastQuality,
    HistoricalData,
    Interval,
    IntradayCorrection,
    OrderRequest,
    PlanBody,
    PlanSlot,
    ViolationBody,
)
from gridchain.agent.plan import Battery, PlanInputs, base_case, energy_cost_mc, optimise
from gridchain.api.client import NodeClient, NodeUnreachableError
from gridchain.api.models import Markets
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import (
    CD_KIND_BY_LABEL,
    DEVICE_BY_LABEL,
    CDKind,
    CDRequest,
    Device,
    TxBody,
)

log = logging.getLogger("gridchain.agent")

#: Plans kept for GET /fetchOptimizationsData?version=N.
KEEP_PLANS = 50
#: Trades whose prices make the "recent market price".
RECENT_TRADES = 50
#: The pool's price endpoint serves at most 96 slots a request.
POOL_PAGE = 96
COMMIT_TIMEOUT_S = 30.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class History:
    pv: Days
    load: Days
    interval_ms: int
    #: today's readings so far, by interval of the day (kW): the intraday correction's input
    pv_today: dict[int, float] = field(default_factory=dict)
    load_today: dict[int, float] = field(default_factory=dict)


def _today(series: dict[int, float], interval_ms: int, now_ms: int) -> dict[int, float]:
    per_day = DAY_MS // interval_ms
    first = now_ms // DAY_MS * per_day
    return {k - first: v for k, v in series.items() if first <= k < first + per_day}


def _intraday(c: intraday.Correction | None) -> IntradayCorrection | None:
    if c is None:
        return None
    return IntradayCorrection(
        intervals=c.intervals, nrmse=c.nrmse, factor=c.factor, applied=c.applied
    )


def _quality(evaluation: fc.Evaluation) -> ForecastQuality:
    def measures(e: fc.Errors) -> ErrorMeasures:
        return ErrorMeasures(mae_kw=e.mae_kw, rmse_kw=e.rmse_kw, nrmse=e.nrmse, mape=e.mape)

    return ForecastQuality(
        train_days=evaluation.train_days,
        test_days=evaluation.test_days,
        regression=measures(evaluation.regression),
        persistence=measures(evaluation.persistence),
    )


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        key: SigningKey,
        address: str,
        node: NodeClient,
        *,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.config = config
        self.address = address
        self.node = node
        self.now_ms = now_ms
        self.signer = Signer(node, key, COMMIT_TIMEOUT_S)
        self.interval_ms = config.history.interval_minutes * 60_000
        self.history: History | None = None
        self.forecast: ForecastData | None = None
        self.plans: dict[int, PlanBody] = {}
        self.actions: list[Action] = []
        self.last_cycle_ms: int | None = None
        self.last_error: str | None = None
        self.node_reachable = False
        #: What the agent ordered per (slot, side), Wh: the user's per-slot limits bound it.
        self.placed_wh: dict[tuple[int, str], int] = {}
        #: Slots the plan has acted in (each is acted in once, with the freshest plan then).
        self.acted_slots: set[int] = set()
        #: EV goal deadlines a C&D request was sent for.
        self.cd_deadlines: set[int] = set()
        self._log_path = None if config.data_dir is None else config.data_dir / "actions.jsonl"

    # --- history and forecast -----------------------------------------------------------

    async def load_history(self) -> History:
        cfg = self.config.history
        now = self.now_ms()
        pv: dict[int, float] = {}
        load: dict[int, float] = {}
        if cfg.file is not None:
            pv, load = read_csv(cfg.file, self.interval_ms)
        if self.config.bridge is not None:
            since = (now // DAY_MS - cfg.days) * DAY_MS
            try:
                meters = await household_meters(self.config.bridge, self.interval_ms, since)
            except BridgeUnavailableError as exc:
                log.warning("bridge unavailable: %s", exc)
            else:
                bridge_pv, bridge_load = meters.series_kw(self.interval_ms)
                pv.update(bridge_pv)
                load.update(bridge_load)
        history = History(
            pv=whole_days(pv, self.interval_ms, days=cfg.days, before_ms=now),
            load=whole_days(load, self.interval_ms, days=cfg.days, before_ms=now),
            interval_ms=self.interval_ms,
            pv_today=_today(pv, self.interval_ms, now),
            load_today=_today(load, self.interval_ms, now),
        )
        self.history = history
        return history

    def forecast_horizon(
        self, history: History, slot_starts: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """PV and load (kW) per slot, and the ForecastData the API serves."""
        first_day = history.pv.first_day
        last_needed = slot_starts[-1] // DAY_MS
        count = last_needed - (first_day + len(history.pv.values)) + 1
        pv_days = fc.forecast_days(history.pv.values, first_day, count, weekly=False)
        load_days = fc.forecast_days(history.load.values, first_day, count, weekly=True)
        forecast_first = first_day + len(history.pv.values)
        # forecast day 0 is today: correct the rest of it on today's readings so far
        now = self.now_ms()
        now_index = (now % DAY_MS) // history.interval_ms
        plan_cfg = self.config.plan
        corrections: list[intraday.Correction | None] = [None, None]
        if forecast_first == now // DAY_MS:
            measured = (history.pv_today, history.load_today)
            for i, series in enumerate((pv_days, load_days)):
                series[0], corrections[i] = intraday.correct_today(
                    series[0], measured[i], now_index,
                    threshold=plan_cfg.replan_error, min_intervals=plan_cfg.replan_min_intervals,
                )  # fmt: skip
        pv = slot_values(pv_days, forecast_first, history.interval_ms, slot_starts)
        load = slot_values(load_days, forecast_first, history.interval_ms, slot_starts)
        quality: list[ForecastQuality | None] = []
        for days, weekly in ((history.pv, False), (history.load, True)):
            try:
                quality.append(_quality(fc.evaluate(days.values, first_day, weekly=weekly)))
            except HistoryError:
                quality.append(None)
        per_day = DAY_MS // history.interval_ms
        intervals = [
            Interval(
                start_ms=(forecast_first + d) * DAY_MS + i * history.interval_ms,
                pv_kw=float(pv_days[d, i]),
                load_kw=float(load_days[d, i]),
            )
            for d in range(count)
            for i in range(per_day)
        ]
        self.forecast = ForecastData(
            made_ms=self.now_ms(),
            interval_ms=history.interval_ms,
            history_days=len(history.pv.values),
            intervals=intervals,
            pv_quality=quality[0],
            load_quality=quality[1],
            pv_intraday=_intraday(corrections[0]),
            load_intraday=_intraday(corrections[1]),
        )
        return pv, load

    def historical(self, from_ms: int, to_ms: int | None) -> HistoricalData:
        intervals: list[Interval] = []
        if self.history is not None:
            h = self.history
            per_day = DAY_MS // h.interval_ms
            for d in range(len(h.pv.values)):
                for i in range(per_day):
                    start = (h.pv.first_day + d) * DAY_MS + i * h.interval_ms
                    if start < from_ms or (to_ms is not None and start >= to_ms):
                        continue
                    intervals.append(
                        Interval(
                            start_ms=start,
                            pv_kw=float(h.pv.values[d, i]),
                            load_kw=float(h.load.values[d, i]),
                        )
                    )
        return HistoricalData(interval_ms=self.interval_ms, intervals=intervals)

    # --- prices --------------------------------------------------------------------------

    async def tariffs(self, first_slot: int, count: int) -> tuple[list[int], list[int]]:
        retail: list[int] = []
        feed_in: list[int] = []
        slot = first_slot
        while len(retail) < count:
            page = await self.node.pool_prices(slot=slot, count=min(POOL_PAGE, count - len(retail)))
            for interval in page.intervals:
                retail.append(interval.r_buy_mc_per_kwh)
                feed_in.append(interval.r_sell_mc_per_kwh)
            slot = first_slot + len(retail)
        return retail[:count], feed_in[:count]

    async def recent_prices(self) -> list[int]:
        trades = await self.node.trades(market=self.config.plan.market)
        return [t.price_mc_per_kwh for t in trades[-RECENT_TRADES:]]

    # --- the cycle -----------------------------------------------------------------------

    async def cycle(self) -> PlanBody:
        """One forecast, plan and act; returns the new plan."""
        cfg = self.config
        market = cfg.plan.market
        history = await self.load_history()
        markets = await self.node.markets()
        self.node_reachable = True
        first = markets.first_open_slot.get(market)
        if first is None:
            raise SlotClosedError(f"the node has no {market} market (plan.market)")
        length = markets.slot_length_ms
        slots = list(range(first, first + cfg.plan.horizon_slots))
        starts = [s * length for s in slots]
        pv, load = self.forecast_horizon(history, starts)
        retail, feed_in = await self.tariffs(first, len(slots))
        prices = slot_prices(retail, feed_in, await self.recent_prices())
        battery = None
        if cfg.battery is not None:
            b = cfg.battery
            battery = Battery(
                capacity_kwh=b.capacity_kwh,
                soe0_kwh=b.soe0_kwh,
                soe_min_kwh=b.soe_min_kwh,
                soe_max_kwh=b.soe_max_kwh,
                max_charge_kw=b.max_charge_kw,
                max_discharge_kw=b.max_discharge_kw,
                charge_efficiency=b.efficiency,
                discharge_efficiency=b.efficiency,
            )
        ev, deadline = (None, 0) if cfg.ev is None else ev_for(cfg.ev, starts, length)
        hours = length / 3_600_000
        inputs = PlanInputs(
            slot_hours=hours,
            pv_kw=pv,
            load_kw=load,
            buy_mc_per_kwh=prices.buy,
            sell_mc_per_kwh=prices.sell,
            battery=battery,
            ev=ev,
            max_export_kw=cfg.limits.max_sell_wh_per_slot / 1000 / hours,
            wear_mc_per_kwh=cfg.plan.wear_mc_per_kwh,
        )
        schedule = optimise(inputs)
        version = max(self.plans, default=0) + 1
        plan = PlanBody(
            version=version,
            made_ms=self.now_ms(),
            slot_length_ms=length,
            market=market,
            sign_conventions=SIGN_CONVENTIONS,
            cost_mc=energy_cost_mc(inputs, schedule),
            base_case_cost_mc=energy_cost_mc(inputs, base_case(inputs)),
            violations=[
                ViolationBody(goal=v.goal, short_kwh=v.short_kwh, reason=v.reason)
                for v in schedule.violations
            ],
            slots=[
                PlanSlot(
                    slot=slot,
                    start_ms=starts[i],
                    pv_kw=float(pv[i]),
                    load_kw=float(load[i]),
                    buy_mc_per_kwh=float(prices.buy[i]),
                    sell_mc_per_kwh=float(prices.sell[i]),
                    import_kw=float(schedule.import_kw[i]),
                    export_kw=float(schedule.export_kw[i]),
                    net_kw=float(schedule.net_kw[i]),
                    curtail_kw=float(schedule.curtail_kw[i]),
                    battery_charge_kw=float(schedule.battery_charge_kw[i]),
                    battery_discharge_kw=float(schedule.battery_discharge_kw[i]),
                    battery_soe_kwh=float(schedule.battery_soe_kwh[i]),
                    ev_charge_kw=float(schedule.ev_charge_kw[i]),
                    ev_discharge_kw=float(schedule.ev_discharge_kw[i]),
                    ev_soe_kwh=float(schedule.ev_soe_kwh[i]),
                )
                for i, slot in enumerate(slots)
            ],
        )
        self.plans[version] = plan
        for old in sorted(self.plans)[:-KEEP_PLANS]:
            del self.plans[old]
        await self.act(plan, markets, prices.retail, prices.feed_in)
        if ev is not None and cfg.ev is not None and cfg.ev.request_cd and ev.goal_kwh > 0:
            await self.request_charge(plan, deadline, starts)
        self.last_cycle_ms = self.now_ms()
        self.last_error = None
        return plan

    async def act(
        self, plan: PlanBody, markets: Markets, retail: np.ndarray, feed_in: np.ndarray
    ) -> None:
        """Orders for the first ``act_slots`` slots of the plan not acted in yet."""
        cfg = self.config
        hours = plan.slot_length_ms / 3_600_000
        for i, row in enumerate(plan.slots[: cfg.plan.act_slots]):
            if row.slot in self.acted_slots:
                continue
            self.acted_slots.add(row.slot)
            sell_wh = int(row.export_kw * hours * 1000)
            buy_wh = int(row.import_kw * hours * 1000)
            if sell_wh >= cfg.plan.min_order_wh:
                # ask between the feed-in tariff and retail: a neighbour saves, the house earns
                # more than feeding in; never below the user's minimum
                ask = max(int((retail[i] + feed_in[i]) // 2), cfg.limits.min_sell_price_mc_per_kwh)
                device = "Battery" if row.battery_discharge_kw > row.pv_kw else "PV"
                request = OrderRequest(
                    side="sell",
                    slot=row.slot,
                    quantity_wh=min(sell_wh, cfg.limits.max_sell_wh_per_slot),
                    price_mc_per_kwh=ask,
                    device=device,
                )
            elif buy_wh >= cfg.plan.min_order_wh:
                # bid up to retail (what the grid would cost), never above the user's maximum
                bid = min(int(retail[i]), cfg.limits.max_buy_price_mc_per_kwh)
                device = "EV" if row.ev_charge_kw > row.load_kw else "Load"
                request = OrderRequest(
                    side="buy",
                    slot=row.slot,
                    quantity_wh=min(buy_wh, cfg.limits.max_buy_wh_per_slot),
                    price_mc_per_kwh=bid,
                    device=device,
                )
            else:
                continue
            if request.quantity_wh == 0 or request.price_mc_per_kwh == 0:
                continue
            try:
                await self.place(request, origin="plan", plan_version=plan.version, markets=markets)
            except GridchainError as exc:
                log.warning("plan order for slot %d not placed: %s", row.slot, exc.message)

    async def place(
        self,
        request: OrderRequest,
        *,
        origin: str,
        plan_version: int | None,
        markets: Markets | None = None,
    ) -> Action:
        """Check, sign, submit and log one order; a refused check sends and logs nothing."""
        market = request.market or self.config.plan.market
        if markets is None:
            markets = await self.node.markets()
        check_order(
            request, market=market, markets=markets, limits=self.config.limits,
            placed_wh=self.placed_wh,
        )  # fmt: skip
        body = order_body(request, market)
        key = (request.slot, request.side)
        self.placed_wh[key] = self.placed_wh.get(key, 0) + request.quantity_wh
        tx_hash, status, error = await self.sign_and_commit(body)
        if status == "refused":  # the node refused it: nothing is ordered
            self.placed_wh[key] -= request.quantity_wh
        action = Action(
            id=len(self.actions) + 1,
            time_ms=self.now_ms(),
            origin="plan" if origin == "plan" else "user",
            kind="order",
            plan_version=plan_version,
            market=market,
            slot=request.slot,
            side=request.side,
            device=order_body_device(request),
            quantity_wh=request.quantity_wh,
            price_mc_per_kwh=request.price_mc_per_kwh,
            tx_hash=tx_hash,
            status=status,
            error=error,
        )
        self.record(action)
        return action

    async def request_charge(self, plan: PlanBody, deadline_ms: int, starts: list[int]) -> None:
        """One C&D charge request per EV goal deadline, signed from the household key."""
        ev = self.config.ev
        if ev is None or ev.meter is None or deadline_ms in self.cd_deadlines:
            return
        self.cd_deadlines.add(deadline_ms)
        plugged = [s for s, row in zip(starts, plan.slots, strict=True) if row.ev_charge_kw > 0]
        arrival = max(self.now_ms(), plugged[0] if plugged else starts[0])
        body = CDRequest(
            kind=int(CD_KIND_BY_LABEL["charge"]),
            device=int(DEVICE_BY_LABEL["EV"]),
            arrival_ms=arrival,
            departure_ms=deadline_ms,
            energy_wh=int(ev.goal_kwh * 1000),
            max_rate_w=int(ev.max_charge_kw * 1000),
            limit_price_mc_per_kwh=ev.limit_price_mc_per_kwh,
            meter_id=ev.meter,
        )
        await self.send_cd(body, origin="plan", plan_version=plan.version)

    async def send_cd(self, body: CDRequest, *, origin: str, plan_version: int | None) -> Action:
        """Sign, submit and log one C&D request (the plan's or the user's)."""
        tx_hash, status, error = await self.sign_and_commit(body)
        action = Action(
            id=len(self.actions) + 1,
            time_ms=self.now_ms(),
            origin="plan" if origin == "plan" else "user",
            kind="cd_request",
            plan_version=plan_version,
            market=None,
            slot=None,
            side=CDKind(body.kind).label,
            device=Device(body.device).label,
            quantity_wh=body.energy_wh,
            price_mc_per_kwh=body.limit_price_mc_per_kwh,
            tx_hash=tx_hash,
            status=status,
            error=error,
        )
        self.record(action)
        return action

    async def sign_and_commit(self, body: TxBody) -> tuple[str | None, ActionStatus, str | None]:
        """Sign ``body`` with the household key, submit it and wait for its commit: the hash
        (None when the node refused it), ``committed``, ``refused`` (nothing happened) or
        ``failed`` (sent, but not seen committed), and the error's message."""
        tx_hash: str | None = None
        try:
            tx_hash = await self.signer.submit(self.address, body)
            await self.signer.committed(tx_hash)
        except GridchainError as exc:
            return tx_hash, ("refused" if tx_hash is None else "failed"), exc.message
        return tx_hash, "committed", None

    def record(self, action: Action) -> None:
        self.actions.append(action)
        log.info("action %s", action.model_dump_json())
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            with self._log_path.open("a", encoding="utf-8") as fh:
                fh.write(action.model_dump_json() + "\n")

    def load_actions(self) -> None:
        """The actions of an earlier run (the log survives a restart; limits count them)."""
        if self._log_path is None or not self._log_path.exists():
            return
        for line in self._log_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            action = Action.model_validate(json.loads(line))
            self.actions.append(action)
            if action.kind == "order" and action.slot is not None and action.side is not None:
                if action.status in ("committed", "pending", "failed"):
                    key = (action.slot, action.side)
                    self.placed_wh[key] = self.placed_wh.get(key, 0) + action.quantity_wh
                if action.origin == "plan":
                    self.acted_slots.add(action.slot)

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until ``stop`` is set; a failed cycle is logged and retried next time."""
        while not stop.is_set():
            try:
                plan = await self.cycle()
                log.info("plan %d: cost %.0f mc", plan.version, plan.cost_mc)
            except GridchainError as exc:
                self.last_error = f"{exc.code}: {exc.message}"
                self.node_reachable = not isinstance(exc, NodeUnreachableError)
                log.warning("cycle failed: %s", self.last_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.plan.cycle_seconds)


def order_body_device(request: OrderRequest) -> str:
    return request.device or ("PV" if request.side == "sell" else "Load")
