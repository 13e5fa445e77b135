"""``gridchain bench cdday --loop``: a community day with the control loop closed, in process.

Issue 14's chain decides every EV's rate interval by interval; here those rates are *followed*
and *measured* the way a community's devices would, and the PFL (eq. 6.4) is taken of what the
meters saw, not of what the chain planned:

    C&D request -> block decision -> charger plan (meterbridge.setpoints.charger_plan, by the
    request's meter) -> OCPP charging profile (meterbridge.csms.schedule_profile, serialised as
    the ocpp library sends it) -> simulated charger and EV (meterbridge.sim_charger
    .ChargerModel: profile stacking, battery, arrival and departure) -> EV meter register ->
    signed reading -> MeterReadings transaction -> chain (C&D settlement, base-load history)

plus the households' load, measured by feeder load meters (``Loadmeter``) whose readings go on
chain the same way and feed the base-load forecast the schedules plan on (ADR 0036).

**In process, and why.** Everything above is the real code: the Application builds each
block as a proposer and executes it again as a validator would (the state roots must agree),
readings are signed and pass the chain's checks, profiles go through the same functions as
the bridge's central system.  What is left out is the transport: no sockets, no OCPP
websocket, no consensus rounds.  A real-time day is 24 h, and an accelerated testnet day
(``gridchain bench cdday`` without ``--loop``) runs block time faster than the meters' energy,
which the OCPP profiles (wall-clock times) and the meters' registers cannot follow without
the simulator's speed-up warping both; in process, block time *is* the simulated time, so a
day of 10-minute intervals takes a few minutes of CPU and the profiles, meters and chain all
agree on the clock.  The transport is covered by the e2e tests of ADR 0028/0030.

**The day.**  The scenario library's seeded community (default: the source's ch. 6, 200
households, 100 EVs, 144 intervals of 10 minutes from 06:00).  OCPP 1.6 cannot discharge
(ADR 0028), so the EVs here only charge (``v2g_share`` 0).  The households' true load is the
scenario's profile times a per-day factor and a per-interval noise (``--noise-permille``),
seeded; ``--warmup-days`` days of it are metered before the EV day, so the forecast plans the
EV day on the median of the metered days rather than on the genesis profile.

**What is printed.**  eq. 6.4 PFL over the EV day of (a) the metered community load (load
meters + EV meters, from the chain's readings), (b) the scheduled load (each decision's
``load_w``: forecast base load + rates), (c) uncontrolled charging on the same true load
(every EV at full rate from arrival: the library's Uncontrolled), (d) the offline optimum on
the true load for reference; and energy requested vs delivered (metered by the EV meters, and
as the chain's records count it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ocpp.charge_point import remove_nones, serialize_as_dict

from gridchain.api import models as m
from gridchain.bench.cluster import bench_bundle
from gridchain.bench.conditions import conditions
from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.schema import parse_genesis
from gridchain.market.app import Application, BlockContext
from gridchain.market.base_load import forecast_base_load
from gridchain.market.cd_requests import CDStatus, IntervalClock, get_request
from gridchain.market.cd_schedule import Decision, get_decision
from gridchain.market.scheduling.base import net_load
from gridchain.market.scheduling.heuristics import Uncontrolled
from gridchain.market.scheduling.metrics import pfl_eq_6_4
from gridchain.market.scheduling.model import CDRequest, Scenario
from gridchain.market.scheduling.optimal import Offline
from gridchain.market.scheduling.scenarios import STANDARD, ScenarioParams, generate, scaled
from gridchain.market.scheduling.verify import unit_cap
from gridchain.market.settlement import meters_metering
from gridchain.market.state import MerkleState, Overlay, StateReader
from gridchain.meterbridge.csms import schedule_profile
from gridchain.meterbridge.setpoints import charger_plan
from gridchain.meterbridge.sim_charger import ChargerModel, SimEV, parse_profile
from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    ReadingRecord,
    SignedReading,
    sign_reading,
)
from gridchain.protocol.tx import CDKind, Device, MeterReadings, Side, Transaction, sign_tx
from gridchain.protocol.tx import CDRequest as CDRequestTx

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
#: 2026-07-01 00:00 UTC: the warm-up days start at the scenario's minute of this day.
DAY_ZERO_MS = 1_782_864_000_000
LIMIT_PRICE_MC_PER_KWH = 400_000  # above every default tariff: the limit leaves every interval
FEEDERS = 10  # load meters: the households in ten feeders
#: Intervals after the day's last decision still run: settlement and the last readings land.
TAIL_INTERVALS = 3


@dataclass
class ReadingChain:
    """The bridge's hash chain of one meter (what meterbridge/ keeps on disk)."""

    meter_id: str
    sequence: int = 0
    prev_hash: bytes = GENESIS_READING_HASH
    register_wh: float = 0.0

    def next(self, key: SigningKey, chain_id: bytes, start_ms: int, end_ms: int) -> SignedReading:
        record = ReadingRecord(
            meter_id=self.meter_id,
            interval_start_ms=start_ms,
            interval_end_ms=end_ms,
            import_wh=round(self.register_wh),
            export_wh=0,
            power_w=0,
            voltage_dv=2300,
            status=0,
            sequence=self.sequence,
            prev_hash=self.prev_hash,
        )
        self.sequence += 1
        self.prev_hash = record.hash()
        return sign_reading(key, chain_id, record)


@dataclass
class House:
    """One EV's house: its owner, its request, its charger and the EV meter's chain."""

    owner: Any  # NamedKey
    request: CDRequest
    model: ChargerModel
    meter: ReadingChain
    tx: Transaction | None = None


@dataclass
class Loop:
    bundle: GenesisBundle
    app: Application
    state: MerkleState
    bridge: SigningKey
    houses: list[House]
    feeders: list[ReadingChain]
    true_load_w: list[float]  # the households' true load, per chain interval
    now_ms: list[int] = field(default_factory=lambda: [0])
    height: int = 0
    bridge_nonce: int = 0
    metered_w: dict[int, float] = field(default_factory=dict)
    ev_metered_w: dict[int, float] = field(default_factory=dict)
    roots_agreed: int = 0
    #: what pruning moved out of the live state (a node keeps it in its archive index)
    archive: dict[bytes, bytes] = field(default_factory=dict)

    def served(self) -> StateReader:
        """The live state with the archive behind it, as a node's API reads it."""
        view = Overlay(self.state)
        for key, value in self.archive.items():
            if self.state.get(key) is None:
                view.put(key, value)
        return view

    @property
    def clock(self) -> IntervalClock:
        return self.app.interval_clock

    def block(self, at_ms: int, txs: list[Transaction]) -> None:
        """Propose, execute again as a validator, check the roots agree, commit."""
        ctx = BlockContext(self.height + 1, at_ms, b"")
        built = self.app.build_block(self.state, txs, ctx)
        if built.left_out:
            codes = sorted({exc.code for _, exc in built.left_out})
            raise RuntimeError(f"block {ctx.height} left out transactions: {codes}")
        checked = self.app.execute_block(
            self.state, built.txs, ctx, schedule=built.schedule, benefit=built.benefit
        )
        if checked.state_root != built.execution.state_root:
            raise RuntimeError(f"block {ctx.height}: the validator's state root differs")
        self.roots_agreed += 1
        self.state.apply(checked.writes)
        self.archive.update(checked.archived)
        self.height += 1


def _profile_doc(plan: Any) -> dict[str, Any]:
    """The schedule profile as the charger's ocpp library hands it over (snake_case dict)."""
    doc: dict[str, Any] = remove_nones(serialize_as_dict(schedule_profile(plan)))
    wire: dict[str, Any] = json.loads(json.dumps(doc))  # enums as their wire strings
    return wire


def _as_served(loop: Loop, decision: Decision) -> m.Decision:
    """A decision as the node's API serves it to the bridge (entries with owner, device and
    the request's meter, from its record)."""
    start = loop.clock.start_ms(decision.interval)
    entries = []
    for e in decision.entries:
        record = get_request(loop.state, e.request_id)
        assert record is not None  # a decision names requests the chain holds
        entries.append(
            m.ScheduleEntry(
                request_id=e.request_id.hex(),
                owner=format_address(record.owner),
                kind=CDKind(record.kind).label,
                device=Device(record.device).label,
                rate_w=e.rate_w,
                meter_id=record.meter_id,
            )
        )
    return m.Decision(
        interval=decision.interval,
        start_ms=start,
        end_ms=start + loop.clock.interval_ms,
        height=decision.height,
        base_load_w=decision.base_load_w,
        load_w=decision.load_w,
        benefit=str(decision.benefit),
        entries=entries,
    )


def _install_profiles(loop: Loop, decisions: list[Decision], now_ms: int) -> None:
    """What the bridge's controller does after a commit: each charger's plan by its meter."""
    views = [_as_served(loop, d) for d in decisions]
    for house in loop.houses:
        plan = charger_plan(
            views, house.owner.address, now_ms, safe_limit_w=0, meter_id=house.meter.meter_id
        )
        house.model.profiles.pop(2, None)
        if not plan.empty:
            house.model.profiles[2] = parse_profile(_profile_doc(plan), now_ms)


def _advance_devices(loop: Loop, t_ms: int) -> None:
    """The devices run up to ``t_ms``: each charger integrates the power it held."""
    loop.now_ms[0] = t_ms
    for house in loop.houses:
        house.model.in_transaction = house.model.ev_present(t_ms)
        house.model.sync(t_ms)


def _measure(loop: Loop, interval: int) -> None:
    """The community's metered load in ``interval`` from the chain's readings (W)."""
    start, end = loop.clock.start_ms(interval), loop.clock.start_ms(interval + 1)
    ids = [f.meter_id for f in loop.feeders]
    evs = [h.meter.meter_id for h in loop.houses]
    state: StateReader = loop.state
    load = meters_metering(state, ids, int(Side.BUY), net=False, start_ms=start, end_ms=end)
    ev = meters_metering(state, evs, int(Side.BUY), net=False, start_ms=start, end_ms=end)
    hours = (end - start) / HOUR_MS
    loop.metered_w[interval] = (load.metered_wh + ev.metered_wh) / hours
    loop.ev_metered_w[interval] = ev.metered_wh / hours


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    params = _params(args)
    scenario = generate(params, args.seed)
    requests = [r for r in scenario.requests if unit_cap(r, scenario.interval_min) > 0]
    per_day = params.n_intervals
    day0 = args.warmup_days * per_day  # the EV day's first chain interval
    genesis_ms = DAY_ZERO_MS + params.start_minute * MINUTE_MS
    interval_ms = scenario.interval_min * MINUTE_MS
    bridge = SigningKey(sha256(b"bench-cdday-loop-bridge"))
    bundle = _bundle(args, params, scenario, len(requests), genesis_ms, bridge)
    app = Application(bundle.genesis)
    rng = np.random.default_rng(args.seed + 1)
    true_load: list[float] = []
    for _ in range(args.warmup_days + 1):
        factor = 1.0 + rng.uniform(-1.0, 1.0) * args.day_permille / 1000
        noise = rng.normal(0.0, args.noise_permille / 1000, per_day)
        true_load.extend(
            float(b) * factor * (1.0 + n) for b, n in zip(scenario.base_load_w, noise, strict=True)
        )
    true_load.extend(true_load[-per_day:][: TAIL_INTERVALS + 1])
    houses = []
    for owner, r in zip(bundle.participants, requests, strict=True):
        room = r.energy_wh  # the battery takes what was asked, no more
        ev = SimEV(
            capacity_wh=room / 0.6,
            soc=0.4,
            max_power_w=r.max_rate_w,
            arrive_s=(r.arrival + day0) * interval_ms / 1000,
            depart_s=(r.departure + day0) * interval_ms / 1000,
        )
        model = ChargerModel(charger_max_w=float(r.max_rate_w), ev=ev, started_wall_ms=genesis_ms)
        houses.append(House(owner, r, model, ReadingChain(f"{owner.name}-ev")))
    loop = Loop(
        bundle,
        app,
        app.genesis_state(),
        bridge,
        houses,
        [ReadingChain(f"feeder-{i}") for i in range(FEEDERS)],
        true_load,
    )
    for house in houses:
        house.model.wall = lambda: loop.now_ms[0]
    chain_id = bundle.genesis.chain_id
    started = time.perf_counter()
    last = day0 + per_day + TAIL_INTERVALS
    for k in range(last + 1):
        t = loop.clock.start_ms(k)
        _advance_devices(loop, t)
        readings: list[SignedReading] = []
        if k > 0:
            prev = loop.clock.start_ms(k - 1)
            for f in loop.feeders:
                f.register_wh += true_load[k - 1] / FEEDERS * (t - prev) / HOUR_MS
                readings.append(f.next(bridge, chain_id, prev, t))
            if k >= day0:
                for house in houses:
                    house.meter.register_wh = house.model.import_wh
                    readings.append(house.meter.next(bridge, chain_id, prev, t))
        txs = []
        if readings:
            body = MeterReadings(tuple(readings))
            txs.append(sign_tx(bridge, chain_id, loop.bridge_nonce, body))
            loop.bridge_nonce += 1
        for house in houses:
            # Sent two intervals before arrival: admitted before the block deciding it.
            if house.tx is None and k == max(0, day0 + house.request.arrival - 2):
                house.tx = sign_tx(house.owner.key, chain_id, 0, _request_tx(loop, house, day0))
                txs.append(house.tx)
        loop.block(t + 1, txs)
        if k > 0:
            _measure(loop, k - 1)
        recent = [d for j in (k, k + 1) if (d := get_decision(loop.state, j)) is not None]
        _install_profiles(loop, recent, t + 1)
    elapsed = time.perf_counter() - started
    return _report(args, params, scenario, loop, requests, day0, elapsed)


def _request_tx(loop: Loop, house: House, day0: int) -> CDRequestTx:
    r = house.request
    return CDRequestTx(
        kind=int(CDKind.CHARGE),
        device=int(Device.EV),
        arrival_ms=loop.clock.start_ms(day0 + r.arrival),
        departure_ms=loop.clock.start_ms(day0 + r.departure),
        energy_wh=r.energy_wh,
        max_rate_w=r.max_rate_w,
        limit_price_mc_per_kwh=LIMIT_PRICE_MC_PER_KWH,
        meter_id=house.meter.meter_id,
    )


def _params(args: argparse.Namespace) -> ScenarioParams:
    params = STANDARD if args.evs == STANDARD.evs else scaled(STANDARD, args.evs)
    return replace(params, v2g_share=0.0)


def _bundle(  # noqa: PLR0917 - one call site, in run_loop
    args: argparse.Namespace,
    params: ScenarioParams,
    scenario: Scenario,
    participants: int,
    genesis_ms: int,
    bridge: SigningKey,
) -> GenesisBundle:
    capacity = None if args.capacity_kw is None else round(args.capacity_kw * 1000)
    bundle = bench_bundle(
        "bench-cdday-loop",
        engine="solo",
        validators=1,
        participants=participants,
        genesis_time_ms=genesis_ms,
        scheduler=args.scheduler,
        schedule_interval_ms=scenario.interval_min * MINUTE_MS,
        schedule_interval_minutes=scenario.interval_min,
        base_load_households=params.households,
        base_load_household_mean_w=params.household_mean_w,
        base_load_month=params.month,
        base_load_min_days=min(args.warmup_days, 7) if args.warmup_days else 1,
        transformer_capacity_w=capacity,
        cd_max_open_requests=max(2000, participants),
        cd_max_window_intervals=max(288, scenario.n_intervals),
    )
    doc = bundle.genesis.model_dump(mode="json")
    owner = bundle.participants[0].address
    doc["meters"] = [
        *(
            {
                "meter_id": f"feeder-{i}",
                "owner": owner,
                "meter_type": "Loadmeter",
                "bridge_public_key": bridge.public_key.hex(),
                "profile": "generic",
            }
            for i in range(FEEDERS)
        ),
        *(
            {
                "meter_id": f"{p.name}-ev",
                "owner": p.address,
                "meter_type": "EV",
                "bridge_public_key": bridge.public_key.hex(),
                "profile": "generic",
            }
            for p in bundle.participants
        ),
    ]
    return dataclasses.replace(bundle, genesis=parse_genesis(doc))


def _report(  # noqa: PLR0917 - one call site, in run_loop
    args: argparse.Namespace,
    params: ScenarioParams,
    scenario: Scenario,
    loop: Loop,
    requests: list[CDRequest],
    day0: int,
    elapsed: float,
) -> dict[str, Any]:
    n = params.n_intervals
    day = range(day0, day0 + n)
    genesis = loop.bundle.genesis
    metered = [loop.metered_w[j] for j in day]
    scheduled = []
    decided = 0
    for j in day:
        found = get_decision(loop.state, j)
        if found is None:
            scheduled.append(float(forecast_base_load(genesis, loop.state, j)))
        else:
            decided += 1
            scheduled.append(float(found.load_w))
    true_base = tuple(round(loop.true_load_w[j]) for j in day)
    truth = Scenario(
        name="true-load",
        interval_min=scenario.interval_min,
        base_load_w=true_base,
        requests=tuple(requests),
        start_minute=scenario.start_minute,
    )
    rows: dict[str, list[float]] = {"metered": metered, "scheduled": scheduled}
    for scheduler in (Uncontrolled(), Offline()):
        rates = np.asarray(scheduler.schedule(truth).rates_w, dtype=np.int64)
        rows[scheduler.name] = [float(v) for v in net_load(truth, rates)]
    rows["base load only"] = [float(v) for v in true_base]
    pfl = {name: pfl_eq_6_4(load) for name, load in rows.items()}
    # What the metered load adds to the scheduled one is the forecast's error (the EVs drew
    # what was scheduled): its own eq. 6.4 is the part of the metered PFL no schedule planned.
    error = [a - b for a, b in zip(metered, scheduled, strict=True)]
    peak = {name: max(load) / 1000 for name, load in rows.items()}
    requested = sum(r.energy_wh for r in requests)
    interval_h = scenario.interval_min / 60
    ev_metered_wh = sum(loop.ev_metered_w[j] * interval_h for j in day if j in loop.ev_metered_w)
    chain_delivered = 0
    complete = 0
    served = loop.served()
    for house in loop.houses:
        assert house.tx is not None
        record = get_request(served, house.tx.hash())
        if record is None:
            continue
        chain_delivered += record.delivered_units * scenario.interval_min // 60
        complete += record.status == int(CDStatus.COMPLETE)
    forecast_error = [
        abs(s_base - t) / t
        for j, t in zip(day, true_base, strict=True)
        if (s := get_decision(loop.state, j)) is not None and (s_base := s.base_load_w)
    ]
    return {
        "scenario": {
            "name": scenario.name,
            "seed": args.seed,
            "households": params.households,
            "evs": args.evs,
            "charge_requests": len(requests),
            "intervals": n,
            "interval_minutes": scenario.interval_min,
            "start_minute": scenario.start_minute,
            "warmup_days": args.warmup_days,
            "noise_permille": args.noise_permille,
            "day_permille": args.day_permille,
        },
        "chain": {
            "scheduler": args.scheduler,
            "capacity_kw": args.capacity_kw,
            "blocks": loop.height,
            "roots_agreed": loop.roots_agreed,
            "decided_intervals": decided,
            "over_capacity_intervals": sum(
                1 for j in day if (d := get_decision(loop.state, j)) and d.over_capacity
            ),
            "seconds": round(elapsed, 1),
        },
        "pfl_kw2": pfl,
        "peak_kw": peak,
        "metered_vs_scheduled": pfl["metered"] / pfl["scheduled"] - 1,
        "forecast_error_pfl_kw2": pfl_eq_6_4(error),
        "load_kw": {name: [round(v / 1000, 3) for v in load] for name, load in rows.items()},
        "metered_vs_uncontrolled": 1 - pfl["metered"] / pfl["uncontrolled"],
        "forecast_mean_abs_error": float(np.mean(forecast_error)) if forecast_error else None,
        "energy": {
            "requested_wh": requested,
            "ev_metered_wh": round(ev_metered_wh),
            "chain_delivered_wh": chain_delivered,
            "complete": complete,
            "requests": len(requests),
        },
        "conditions": conditions(),
    }


def format_report(report: dict[str, Any]) -> list[str]:
    sc, ch, en = report["scenario"], report["chain"], report["energy"]
    lines = [
        f"gridchain bench cdday --loop: seed {sc['seed']}, {sc['households']} households, "
        f"{sc['evs']} EVs ({sc['charge_requests']} charge requests; OCPP 1.6 cannot discharge), "
        f"{sc['intervals']} intervals of {sc['interval_minutes']} min from minute "
        f"{sc['start_minute']}, after {sc['warmup_days']} metered days; household load noise "
        f"{sc['noise_permille']} permille per interval, {sc['day_permille']} per day",
        f"chain: in process (real Application, proposer + validator execution, roots agreed "
        f"{ch['roots_agreed']}/{ch['blocks']}), scheduler {ch['scheduler']}, capacity "
        f"{ch['capacity_kw'] if ch['capacity_kw'] is not None else 'none'} kW, "
        f"{ch['decided_intervals']} intervals decided, {ch['over_capacity_intervals']} over "
        f"capacity, {ch['seconds']} s",
        f"{'community load':<22}{'PFL eq6.4 kW^2':>16}{'peak kW':>10}",
    ]
    for name, value in report["pfl_kw2"].items():
        lines.append(f"{name:<22}{value:>16.1f}{report['peak_kw'][name]:>10.1f}")
    lines.append(
        f"metered vs scheduled: {100 * report['metered_vs_scheduled']:+.1f}% (goal within 5%); "
        f"metered vs uncontrolled: {100 * report['metered_vs_uncontrolled']:.1f}% lower "
        f"(goal >= 50%)"
    )
    err = report["forecast_mean_abs_error"]
    if err is not None:
        lines.append(
            f"base-load forecast vs true household load: mean |error| {100 * err:.1f}%; "
            f"eq. 6.4 of (metered - scheduled) {report['forecast_error_pfl_kw2']:.1f} kW^2"
        )
    lines.append(
        f"energy: requested {en['requested_wh'] / 1000:.1f} kWh, EV meters measured "
        f"{en['ev_metered_wh'] / 1000:.1f} kWh, chain records delivered "
        f"{en['chain_delivered_wh'] / 1000:.1f} kWh, {en['complete']}/{en['requests']} complete"
    )
    lines.append(f"conditions: {json.dumps(report['conditions'])}")
    return lines
