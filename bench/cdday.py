"""The community PFL a chain of validators achieves over one simulated day of EV charging.

One seeded day of the scheduling library (``market.scheduling.scenarios``: by default the
source's ch. 6 community of 200 households and 100 EVs, 144 intervals of 10 minutes from
06:00) is played on a live cluster whose scheduling intervals are accelerated: each interval
lasts ``--interval-ms`` of block time and stands for ``--interval-minutes`` of energy.  What
the chain decided is then set beside what the library computes on the same day: uncontrolled
charging, the online scheduler and the offline optimum.

How the day is mapped onto the chain
    The chain's base load of interval j (``market.cd_schedule.base_load_at``) is the apartment
    profile at the minute of day ``genesis_time_ms // 60000 + j * minutes``, so genesis time
    fixes the clock time of every interval.  The genesis time is chosen with that minute of day
    equal to the scenario's ``start_minute``; since block time is wall time, the day cannot
    start at interval 0 unless the clock happens to read that minute, so it starts at the first
    interval ``k0`` (a multiple of the intervals in a day) that begins after the cluster is up.
    Scenario interval ``a`` is chain interval ``k0 + a``.  Every EV is a genesis participant
    with a balance; its ``CDRequest`` has ``arrival_ms`` = start of chain interval ``k0 +
    arrival`` and ``departure_ms`` = start of ``k0 + departure``, so the chain's window is the
    scenario's, and it is submitted ``--submit-lead`` intervals before its arrival interval
    starts.  (The first block of interval j - 1 decides interval j, and a block applies its
    schedule before its transactions, so a request committed during interval ``arrival - 1``
    would miss its first interval: the default lead of 2 leaves a whole interval to commit.)
    The windows the chain admitted are read back (``GET /v1/cd/{id}``) and any that differ
    are counted.

What is measured
    After the day, every interval's decision is read (``GET /v1/schedule?interval=N``).  The
    realised community load of an interval is the decision's ``load_w`` (base load + the
    rates it set); an interval without a decision has no EV power, only its base load.  The
    PFL is eq. 6.4 (sum of squared steps, kW^2) over the day's intervals, as
    ``gridchain bench schedule`` prints it.  A *missed* interval is one in which a vehicle
    was connected with energy left to move but no block decided it.  The library's rows are
    computed on a scenario with the chain's integer base loads and the same requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError, NodeRefusedError
from gridchain.bench import cdday_loop
from gridchain.bench.cluster import bench_bundle, running_cluster
from gridchain.bench.conditions import conditions
from gridchain.bench.consensus import (
    DEFAULT_ROUND_MS,
    chain_params,
    consensus_params,
    engine_available,
    parse_engines,
)
from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.schema import ConsensusParams, parse_genesis
from gridchain.market.base_load import base_load_at
from gridchain.market.scheduling.base import Scheduler, net_load
from gridchain.market.scheduling.heuristics import Uncontrolled
from gridchain.market.scheduling.metrics import pfl_eq_6_4
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario
from gridchain.market.scheduling.optimal import Offline, Online, epob
from gridchain.market.scheduling.registry import DEFAULT_EPOB_C
from gridchain.market.scheduling.scenarios import STANDARD, ScenarioParams, generate, scaled
from gridchain.market.scheduling.verify import unit_cap
from gridchain.protocol.tx import CDKind, Device, Transaction, sign_tx
from gridchain.protocol.tx import CDRequest as CDRequestTx

DAY_MINUTES = 1440
MINUTE_MS = 60_000
#: What each EV owner pays at most per kWh charged: above every default tariff, so the limit
#: leaves the scheduler every interval (ADR 0030); a discharge accepts any price (0).
LIMIT_PRICE_MC_PER_KWH = 400_000


# --- mapping the scenario's day onto block time ---------------------------------------------


@dataclass(frozen=True, slots=True)
class DayPlan:
    """Where the scenario's day lies on the chain: genesis time and the first interval."""

    genesis_time_ms: int
    first_interval: int  # k0: the chain interval of scenario interval 0
    interval_ms: int
    interval_minutes: int

    def start_ms(self, scenario_interval: int) -> int:
        """Block time at which scenario interval ``a`` (chain interval k0 + a) starts."""
        return self.genesis_time_ms + (self.first_interval + scenario_interval) * self.interval_ms

    def chain_interval(self, scenario_interval: int) -> int:
        return self.first_interval + scenario_interval


def plan_day(
    now_ms: int, start_minute: int, interval_ms: int, interval_minutes: int, lead_ms: int
) -> DayPlan:
    """The earliest day start at or after ``now_ms + lead_ms`` whose minute of day is right.

    ``genesis_time_ms // 60000`` must be ``start_minute`` modulo a day (that is what
    ``base_load_at`` reads), genesis time must not be in the future (block times come from
    the validators' clocks), and the day must start at an interval ``k0`` with
    ``k0 * interval_minutes`` a whole number of days.
    """
    if interval_ms <= 0 or interval_minutes <= 0:
        raise ValueError("interval length must be positive")
    per_day = DAY_MINUTES // math.gcd(interval_minutes, DAY_MINUTES)
    period = per_day * interval_ms  # block time between two starts of the simulated day
    target = now_ms + lead_ms
    latest_minute = now_ms // MINUTE_MS
    m = latest_minute - (latest_minute - start_minute) % DAY_MINUTES
    best: tuple[int, int, int] | None = None  # (day start, genesis, k0)
    for minute in (m, m - DAY_MINUTES):
        base = minute * MINUTE_MS
        if base < 0:
            continue
        # genesis = base + s with 0 <= s < 60 s and genesis <= now; the day starts at
        # genesis + k0 * period (k0 in days), the first such start at or after target.
        s_max = min(MINUTE_MS - 1, now_ms - base)
        r = (target - base) % period
        genesis = base + r if r <= s_max else base
        k = -(-(target - genesis) // period)
        start = genesis + k * period
        if best is None or start < best[0]:
            best = (start, genesis, k * per_day)
    assert best is not None
    _, genesis, k0 = best
    return DayPlan(genesis, k0, interval_ms, interval_minutes)


def ev_meter_id(participant: str) -> str:
    """The EV meter genesis registers for each bench participant (its requests name it)."""
    return f"{participant}-ev"


def chain_request(plan: DayPlan, request: CDRequest, meter_id: str) -> CDRequestTx:
    """The on-chain request for a scenario request: its window in block time, same energy."""
    charge = request.kind is Kind.CHARGE
    return CDRequestTx(
        kind=int(CDKind.CHARGE if charge else CDKind.DISCHARGE),
        device=int(Device.EV),
        arrival_ms=plan.start_ms(request.arrival),
        departure_ms=plan.start_ms(request.departure),
        energy_wh=request.energy_wh,
        max_rate_w=request.max_rate_w,
        limit_price_mc_per_kwh=LIMIT_PRICE_MC_PER_KWH if charge else 0,
        meter_id=meter_id,
    )


def submit_time_ms(plan: DayPlan, request: CDRequest, lead_intervals: float) -> int:
    """When to send a request: ``lead_intervals`` before its arrival interval starts."""
    return plan.start_ms(request.arrival) - round(lead_intervals * plan.interval_ms)


def schedulable(requests: Sequence[CDRequest], interval_min: int) -> list[CDRequest]:
    """The requests the chain admits: at least one W-interval to move (zero-energy ones are
    refused by the chain and change nothing in the library)."""
    return [r for r in requests if unit_cap(r, interval_min) > 0]


# --- what the chain decided -------------------------------------------------------------


def realised_load(base_load_w: Sequence[int], decided_load_w: Mapping[int, int]) -> list[int]:
    """The community load per scenario interval: the decision's load, else the base load."""
    return [decided_load_w.get(a, base) for a, base in enumerate(base_load_w)]


@dataclass(frozen=True, slots=True)
class Window:
    """A request as the chain holds it, in scenario intervals: [first, end), units to move."""

    first: int
    end: int
    units: int


def missed_intervals(
    n_intervals: int,
    windows: Mapping[str, Window],
    decided_rates: Mapping[int, Mapping[str, int]],
) -> list[int]:
    """Intervals in which some request was connected with units left but nothing was decided.

    ``decided_rates`` maps a scenario interval to the rates (W, signed) its decision set, by
    request id; an interval absent from it had no decision.
    """
    left = {rid: w.units for rid, w in windows.items()}
    missed = []
    for a in range(n_intervals):
        rates = decided_rates.get(a)
        if rates is None:
            if any(w.first <= a < w.end and left[rid] > 0 for rid, w in windows.items()):
                missed.append(a)
            continue
        for rid, rate in rates.items():
            if rid in left:
                left[rid] -= abs(rate)
    return missed


def library_scenario(
    name: str,
    base_load_w: Sequence[int],
    requests: Sequence[CDRequest],
    interval_min: int,
    start_minute: int,
) -> Scenario:
    """The day the library schedules: the chain's integer base loads, the same requests."""
    return Scenario(
        name=name,
        interval_min=interval_min,
        base_load_w=tuple(base_load_w),
        requests=tuple(requests),
        start_minute=start_minute,
    )


def library_rows(scenario: Scenario, c: float) -> dict[str, dict[str, Any]]:
    """eq. 6.4, peak and solve time of the library's schedulers on ``scenario``."""
    schedulers: list[Scheduler] = [Uncontrolled(), Online(), Offline()]
    if c != 1.0:
        schedulers.insert(2, epob(c))
    rows: dict[str, dict[str, Any]] = {}
    for scheduler in schedulers:
        started = time.perf_counter()
        schedule = scheduler.schedule(scenario)
        elapsed = time.perf_counter() - started
        load = net_load(scenario, np.asarray(schedule.rates_w, dtype=np.int64))
        rows[scheduler.name] = {
            "eq6_4_kw2": pfl_eq_6_4(load),
            "peak_kw": float(load.max()) / 1000.0,
            "seconds": elapsed,
            "load_kw": [round(float(v) / 1000.0, 3) for v in load],
        }
    return rows


# --- one engine's day on a live cluster ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaySetup:
    scenario: Scenario
    requests: tuple[CDRequest, ...]  # the schedulable ones, in scenario order
    engine: str
    validators: int
    scheduler: str
    interval_ms: int
    round_ms: int
    finality_depth: int
    block_interval_ms: int
    epob_speedup_milli: int
    submit_lead: float
    empty_blocks: str
    startup_s: float
    grace_s: float


def _bundle(setup: DaySetup, plan: DayPlan, params: ScenarioParams) -> GenesisBundle:
    bundle = _chain_bundle(setup, plan, params)
    doc = bundle.genesis.model_dump(mode="json")
    doc["meters"] = [
        {
            "meter_id": ev_meter_id(p.name),
            "owner": p.address,
            "meter_type": "EV",
            "bridge_public_key": p.key.public_key.hex(),
            "profile": "generic",
        }
        for p in bundle.participants
    ]
    return replace(bundle, genesis=parse_genesis(doc))


def _chain_bundle(setup: DaySetup, plan: DayPlan, params: ScenarioParams) -> GenesisBundle:
    return bench_bundle(
        f"bench-cdday-{setup.engine}",
        engine=setup.engine,
        validators=setup.validators,
        participants=len(setup.requests),
        block_interval_ms=setup.block_interval_ms,
        balance_mc=1_000_000,
        consensus_params=consensus_params(setup.engine, setup.round_ms, setup.finality_depth),
        genesis_time_ms=plan.genesis_time_ms,
        scheduler=setup.scheduler,
        epob_speedup_milli=setup.epob_speedup_milli,
        schedule_interval_ms=setup.interval_ms,
        schedule_interval_minutes=setup.scenario.interval_min,
        base_load_households=params.households,
        base_load_household_mean_w=params.household_mean_w,
        base_load_month=params.month,
        cd_max_open_requests=max(2000, len(setup.requests)),
        cd_max_window_intervals=max(288, setup.scenario.n_intervals),
        **chain_params(setup.engine, setup.empty_blocks),
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _sleep_until(when_ms: int) -> None:
    await asyncio.sleep(max(0.0, (when_ms - _now_ms()) / 1000))


async def _submit_all(
    clients: Sequence[NodeClient],
    plan: DayPlan,
    requests: Sequence[CDRequest],
    txs: Sequence[Transaction],
    *,
    lead: float,
) -> dict[str, Any]:
    """Send the requests in groups of one arrival interval, each at its time."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.arrival, []).append(i)
    late_ms: list[int] = []
    refused: list[str] = []
    for n, arrival in enumerate(sorted(groups)):
        due = submit_time_ms(plan, requests[groups[arrival][0]], lead)
        await _sleep_until(due)
        late_ms.append(max(0, _now_ms() - due))
        batch = [txs[i].encode().hex() for i in groups[arrival]]
        try:
            answer = await clients[n % len(clients)].submit_batch(batch)
        except NodeError as exc:
            refused.append(exc.message[:200])
            continue
        for result in answer.results:
            if isinstance(result, m.Error):
                refused.append(str(result.error.model_dump())[:200])
    return {"max_late_ms": max(late_ms, default=0), "refused": refused}


async def _watch(url: str, seen: dict[int, int]) -> None:
    """When each interval's decision was committed: its ``schedule`` event on the websocket."""
    async with NodeClient(url) as client:
        async for event in client.events():
            if isinstance(event, m.ScheduleEvent):
                seen.setdefault(event.interval, _now_ms())


def decision_leads(plan: DayPlan, seen: Mapping[int, int]) -> dict[str, Any]:
    """How long before its interval started each decision was seen committed (ms; negative:
    after the interval had started, so its vehicles ran without setpoints for a while)."""
    leads = sorted(
        plan.genesis_time_ms + j * plan.interval_ms - at
        for j, at in seen.items()
        if j >= plan.first_interval
    )
    if not leads:
        return {"n": 0, "p50_ms": None, "min_ms": None, "late": 0}
    return {
        "n": len(leads),
        "p50_ms": leads[len(leads) // 2],
        "min_ms": leads[0],
        "late": sum(1 for v in leads if v < 0),
    }


async def _play(urls: list[str], setup: DaySetup, plan: DayPlan, bundle: GenesisBundle) -> Any:
    chain_id = bundle.genesis.chain_id
    txs = [
        sign_tx(p.key, chain_id, 0, chain_request(plan, r, ev_meter_id(p.name)))
        for p, r in zip(bundle.participants, setup.requests, strict=True)
    ]
    n = setup.scenario.n_intervals
    seen: dict[int, int] = {}
    watcher = asyncio.create_task(_watch(urls[0], seen))
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(NodeClient(url, request_timeout_s=30)) for url in urls
        ]
        node = clients[0]
        submitted = await _submit_all(clients, plan, setup.requests, txs, lead=setup.submit_lead)
        # PoB shows a block's decision once it is final: finality_depth more rounds.
        finality_ms = (setup.finality_depth + 1) * setup.round_ms if setup.engine == "pob" else 0
        await _sleep_until(plan.start_ms(n) + round(1000 * setup.grace_s) + finality_ms)
        decisions: dict[int, dict[str, Any]] = {}
        for a in range(n):
            j = plan.chain_interval(a)
            with contextlib.suppress(NodeRefusedError):  # not decided: no decision kept
                schedule = await node.schedule(interval=j)
                if schedule.decisions:
                    decisions[a] = schedule.decisions[0].model_dump(mode="json")
        records: dict[str, dict[str, Any]] = {}
        for tx in txs:
            rid = tx.hash().hex()
            try:
                records[rid] = (await node.cd_request(rid)).model_dump(mode="json")
            except NodeRefusedError:  # why it has no record: what the node says about the tx
                found = await node.tx(rid)
                answer = None if found is None else found.model_dump(mode="json")
                submitted["refused"].append(f"{rid[:16]}: {json.dumps(answer)[:200]}")
        chain_status = (await node.status()).model_dump(mode="json")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, NodeError):
        await watcher
    submitted["decision_leads"] = decision_leads(plan, seen)
    return submitted, decisions, records, [tx.hash().hex() for tx in txs], chain_status


def run_day(setup: DaySetup, params: ScenarioParams) -> dict[str, Any]:
    """Play the day on a fresh cluster; the chain's realised load and what it delivered."""
    scenario = setup.scenario
    n = scenario.n_intervals
    first_submit = min((r.arrival for r in setup.requests), default=0) - setup.submit_lead
    lead_ms = round(1000 * setup.startup_s + max(0.0, -first_submit + 1) * setup.interval_ms)
    plan = plan_day(
        _now_ms(), scenario.start_minute, setup.interval_ms, scenario.interval_min, lead_ms
    )
    bundle = _bundle(setup, plan, params)
    genesis = bundle.genesis
    base = [base_load_at(genesis, plan.chain_interval(a)) for a in range(n)]
    started = time.perf_counter()
    with running_cluster(bundle) as urls:
        up_s = time.perf_counter() - started
        slack_ms = plan.start_ms(0) - _now_ms()
        submitted, decisions, records, ids, chain_status = asyncio.run(
            _play(urls, setup, plan, bundle)
        )
    k0 = plan.first_interval
    decided_load = {a: int(d["load_w"]) for a, d in decisions.items()}
    decided_rates = {
        a: {str(e["request_id"]): int(e["rate_w"]) for e in d["entries"]}
        for a, d in decisions.items()
    }
    windows: dict[str, Window] = {}
    mismatched = 0
    mismatch_examples: list[dict[str, list[int]]] = []
    for rid, r in zip(ids, setup.requests, strict=True):
        rec = records.get(rid)
        if rec is None:
            continue
        first, end = int(rec["first_interval"]) - k0, int(rec["end_interval"]) - k0
        if (first, end) != (r.arrival, r.departure):
            mismatched += 1
            if len(mismatch_examples) < 5:
                mismatch_examples.append(
                    {"scenario": [r.arrival, r.departure], "chain": [first, end]}
                )
        windows[rid] = Window(first, end, int(rec["cap_units"]))
    load = realised_load(base, decided_load)
    missed = missed_intervals(n, windows, decided_rates)
    charge = [
        (records.get(rid), r)
        for rid, r in zip(ids, setup.requests, strict=True)
        if r.kind is Kind.CHARGE
    ]
    discharge = [
        (records.get(rid), r)
        for rid, r in zip(ids, setup.requests, strict=True)
        if r.kind is Kind.DISCHARGE
    ]
    return {
        "engine": setup.engine,
        "validators": setup.validators,
        "scheduler": setup.scheduler,
        "eq6_4_kw2": pfl_eq_6_4(load),
        "peak_kw": max(load) / 1000.0,
        "load_kw": [round(v / 1000.0, 3) for v in load],
        "decided_intervals": len(decisions),
        "missed_intervals": len(missed),
        "missed": missed,
        **energy_summary(charge, discharge),
        "admitted": len(records),
        "requests": len(setup.requests),
        "window_mismatches": mismatched,
        "window_mismatch_examples": mismatch_examples,
        "refused": submitted["refused"][:5],
        "refused_count": len(submitted["refused"]),
        "max_submit_late_ms": submitted["max_late_ms"],
        "decision_lead": submitted["decision_leads"],
        "base_load_w": base,
        "genesis_time_ms": plan.genesis_time_ms,
        "first_interval": k0,
        "startup_s": round(up_s, 1),
        "slack_before_day_ms": slack_ms,
        "height": chain_status.get("height") if isinstance(chain_status, dict) else None,
    }


def energy_summary(
    charge: Sequence[tuple[Mapping[str, Any] | None, CDRequest]],
    discharge: Sequence[tuple[Mapping[str, Any] | None, CDRequest]],
) -> dict[str, Any]:
    """Charge energy requested and delivered (Wh), complete charge requests, discharge given."""

    def delivered(rec: Mapping[str, Any] | None) -> int:
        return 0 if rec is None else int(rec["delivered_wh"])

    return {
        "charge_requested_wh": sum(r.energy_wh for _, r in charge),
        "charge_delivered_wh": sum(delivered(rec) for rec, _ in charge),
        "charge_complete": sum(1 for rec, _ in charge if rec and rec["status"] == "complete"),
        "charge_requests": len(charge),
        "discharge_offered_wh": sum(r.energy_wh for _, r in discharge),
        "discharge_given_wh": sum(delivered(rec) for rec, _ in discharge),
    }


# --- main -----------------------------------------------------------------------------------


def _scenario_params(evs: int, interval_minutes: int | None) -> ScenarioParams:
    params = STANDARD if evs == STANDARD.evs else scaled(STANDARD, evs)
    if interval_minutes is not None and interval_minutes != params.interval_min:
        params = replace(params, interval_min=interval_minutes)
    return params


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridchain bench cdday", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--seed", type=int, default=0, help="scenario seed")
    p.add_argument("--evs", type=int, default=STANDARD.evs, help="EVs (households scale along)")
    p.add_argument(
        "--interval-minutes",
        type=int,
        default=None,
        help="minutes one interval stands for (default the scenario's 10; 120 gives 12)",
    )
    p.add_argument(
        "--engines",
        "--engine",
        dest="engines",
        default="epob",
        help="comma-separated consensus engines, each on its own cluster (--engine: alias)",
    )
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--scheduler", default="online", choices=["uncontrolled", "online", "epob"])
    p.add_argument("--c", type=float, default=DEFAULT_EPOB_C, help="ePoB scheduler speed-up")
    p.add_argument("--interval-ms", type=int, default=1000, help="block time of one interval")
    p.add_argument("--round-ms", type=int, default=DEFAULT_ROUND_MS, help="PoB/ePoB round")
    p.add_argument("--finality-depth", type=int, default=ConsensusParams().finality_depth)
    p.add_argument("--block-interval-ms", type=int, default=100)
    p.add_argument(
        "--submit-lead",
        type=float,
        default=2.0,
        help="intervals between sending a request and the start of its arrival interval",
    )
    p.add_argument(
        "--empty-blocks",
        choices=["on", "off"],
        default="off",
        help="genesis params.empty_blocks (off, the default, still lets PoB finalize: its "
        "validators build empty blocks only on pending content)",
    )
    p.add_argument("--startup-s", type=float, default=20.0, help="time allowed to start nodes")
    p.add_argument("--grace-s", type=float, default=3.0, help="wait after the day ends")
    p.add_argument(
        "--loop",
        action="store_true",
        help="close the loop in process: chargers follow the decisions, meters measure, "
        "readings go on chain (bench/cdday_loop.py); ignores the cluster options",
    )
    p.add_argument("--warmup-days", type=int, default=3, help="--loop: metered days before")
    p.add_argument(
        "--noise-permille", type=int, default=10, help="--loop: household load noise/interval"
    )
    p.add_argument(
        "--day-permille", type=int, default=30, help="--loop: household load change per day"
    )
    p.add_argument("--capacity-kw", type=float, default=None, help="--loop: transformer, kW")
    p.add_argument("--json", action="store_true")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    engines = parse_engines(args.engines)
    params = _scenario_params(args.evs, args.interval_minutes)
    generated = generate(params, args.seed)
    requests = tuple(schedulable(generated.requests, generated.interval_min))
    skipped = len(generated.requests) - len(requests)
    rows: list[dict[str, Any]] = []
    for engine in engines:
        if not engine_available(engine):
            rows.append({"engine": engine, "error": f"consensus/{engine} is not in this build"})
            continue
        setup = DaySetup(
            scenario=generated,
            requests=requests,
            engine=engine,
            validators=1 if engine == "solo" else args.validators,
            scheduler=args.scheduler,
            interval_ms=args.interval_ms,
            round_ms=args.round_ms,
            finality_depth=args.finality_depth,
            block_interval_ms=args.block_interval_ms,
            epob_speedup_milli=round(1000 * args.c),
            submit_lead=args.submit_lead,
            empty_blocks=args.empty_blocks,
            startup_s=args.startup_s,
            grace_s=args.grace_s,
        )
        try:
            row = run_day(setup, params)
        except Exception as exc:  # noqa: BLE001 - one broken engine must not lose the others
            rows.append({"engine": engine, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        rows.append(row)
    # The chain's base loads depend only on the minute of day and the genesis parameters,
    # which every engine's chain shares; compute them from a bundle of the same parameters.
    probe = bench_bundle(
        "bench-cdday-probe",
        engine="solo",
        validators=1,
        participants=1,
        genesis_time_ms=generated.start_minute * MINUTE_MS,
        schedule_interval_minutes=generated.interval_min,
        base_load_households=params.households,
        base_load_household_mean_w=params.household_mean_w,
        base_load_month=params.month,
    )
    base = [base_load_at(probe.genesis, a) for a in range(generated.n_intervals)]
    for row in rows:
        if "base_load_w" in row:  # every chain saw the same base loads as the probe
            row["base_load_matches"] = row.pop("base_load_w") == base
    scenario = library_scenario(
        generated.name, base, requests, generated.interval_min, generated.start_minute
    )
    library = library_rows(scenario, args.c)
    offline = library["offline"]["eq6_4_kw2"]
    for row in rows:
        if "eq6_4_kw2" in row:
            row["ratio_to_offline"] = row["eq6_4_kw2"] / offline
    for lib in library.values():
        lib["ratio_to_offline"] = lib["eq6_4_kw2"] / offline
    charge = [r for r in requests if r.kind is Kind.CHARGE]
    return {
        "scenario": {
            "name": generated.name,
            "seed": args.seed,
            "households": params.households,
            "household_mean_w": params.household_mean_w,
            "month": params.month,
            "evs": args.evs,
            "requests": len(requests),
            "charge_requests": len(charge),
            "skipped_zero_energy": skipped,
            "intervals": generated.n_intervals,
            "interval_minutes": generated.interval_min,
            "start_minute": generated.start_minute,
            "charge_requested_wh": sum(r.energy_wh for r in charge),
        },
        "chain": {
            "engines": engines,
            "validators": args.validators,
            "scheduler": args.scheduler,
            "epob_c": args.c,
            "interval_ms": args.interval_ms,
            "round_ms": args.round_ms,
            "finality_depth": args.finality_depth,
            "block_interval_ms": args.block_interval_ms,
            "submit_lead_intervals": args.submit_lead,
            "empty_blocks": args.empty_blocks,
        },
        "base_load_kw": [round(v / 1000.0, 3) for v in base],
        "rows": rows,
        "library": library,
        "conditions": conditions(),
    }


def format_report(report: dict[str, Any]) -> list[str]:
    sc, ch = report["scenario"], report["chain"]
    lines = [
        f"gridchain bench cdday: seed {sc['seed']}, {sc['households']} households x "
        f"{sc['household_mean_w']} W mean, month {sc['month']}, {sc['evs']} EVs "
        f"({sc['requests']} requests, {sc['charge_requests']} charge; "
        f"{sc['skipped_zero_energy']} with no energy left out), {sc['intervals']} intervals of "
        f"{sc['interval_minutes']} min from minute {sc['start_minute']}",
        f"chain: {ch['validators']} validators per engine (solo: 1) on loopback, scheduler "
        f"{ch['scheduler']}, {ch['interval_ms']} ms per interval, rounds {ch['round_ms']} ms "
        f"(pob/epob), PoB finality depth {ch['finality_depth']}, block interval "
        f"{ch['block_interval_ms']} ms, empty blocks {ch['empty_blocks']}, requests sent "
        f"{ch['submit_lead_intervals']:g} intervals before arrival",
        f"{'row':<30}{'PFL eq6.4':>11}{'/offline':>10}{'peak':>8}{'charge kWh':>16}"
        f"{'complete':>10}{'missed':>8}{'decided':>9}{'windows':>9}",
        f"{'':<30}{'kW^2':>11}{'':>10}{'kW':>8}{'given/asked':>16}{'':>10}{'':>8}{'':>9}"
        f"{'wrong':>9}",
    ]
    asked = sc["charge_requested_wh"] / 1000
    for r in report["rows"]:
        name = f"chain {r['engine']} x{r.get('validators', ch['validators'])}"
        if "scheduler" in r:
            name += f" {r['scheduler']}"
        if "error" in r:
            lines.append(f"{name:<30}  error: {r['error']}")
            continue
        given = f"{r['charge_delivered_wh'] / 1000:.1f}/{r['charge_requested_wh'] / 1000:.1f}"
        complete = f"{r['charge_complete']}/{r['charge_requests']}"
        lines.append(
            f"{name:<30}{r['eq6_4_kw2']:>11.1f}{r['ratio_to_offline']:>10.3f}"
            f"{r['peak_kw']:>8.1f}{given:>16}{complete:>10}{r['missed_intervals']:>8}"
            f"{r['decided_intervals']:>9}{r['window_mismatches']:>9}"
        )
    for name, lib in report["library"].items():
        label = f"library {name}"
        lines.append(
            f"{label:<30}{lib['eq6_4_kw2']:>11.1f}{lib['ratio_to_offline']:>10.3f}"
            f"{lib['peak_kw']:>8.1f}{f'{asked:.1f}/{asked:.1f}':>16}{'all':>10}{'-':>8}"
            f"{'-':>9}{'-':>9}"
        )
    for r in report["rows"]:
        if "error" not in r:
            lines.append(
                f"  {r['engine']}: {r['admitted']}/{r['requests']} requests admitted, "
                f"{r['refused_count']} refused or not admitted, discharge given "
                f"{r['discharge_given_wh'] / 1000:.1f}/{r['discharge_offered_wh'] / 1000:.1f} "
                f"kWh, height {r['height']}, nodes up in {r['startup_s']} s, day started "
                f"at chain interval {r['first_interval']}, latest send "
                f"{r['max_submit_late_ms']} ms late"
            )
            lead = r["decision_lead"]
            lines.append(
                f"    {lead['n']} decisions seen committed on validator 1's websocket; start of "
                f"their interval - commit: median {lead['p50_ms']} ms, worst {lead['min_ms']} "
                f"ms; {lead['late']} committed after their interval had started"
            )
    lines.append(f"conditions: {json.dumps(report['conditions'])}")
    return lines


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        parse_engines(args.engines)
    except ValueError as exc:
        parser.error(str(exc))
    if args.evs < 1 or args.validators < 1 or args.interval_ms < 100:
        print("--evs and --validators must be >= 1, --interval-ms >= 100", file=sys.stderr)
        return 2
    if args.interval_minutes is not None and (
        args.interval_minutes < 1 or DAY_MINUTES % args.interval_minutes
    ):
        print("--interval-minutes must divide a day", file=sys.stderr)
        return 2
    if args.loop:
        loop_report = cdday_loop.run_loop(args)
        if args.json:
            print(json.dumps(loop_report, indent=2))
        else:
            print("\n".join(cdday_loop.format_report(loop_report)))
        return 0
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(format_report(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
