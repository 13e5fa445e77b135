"""Issue 16: two households' agents trade with each other from their forecasts, unattended.

A 4-validator testnet with the meter simulator and one bridge per peer (``testnet up
--with-meters``, daylight clock, 12-second slots).  Peer A (PV) and peer C (a consumer) each
run ``gridchain agent run`` with 30 days of history of their household (the simulator's
household with weather, shifted by the same daylight hours as the simulated meters, so the
history and the live meters keep the same hours; the seller's array is larger in its history,
see SELLER_HISTORY_PV_KW).  Nobody places an order: peer A's agent forecasts a PV
surplus and sells it, peer C's forecasts a deficit and buys; their orders meet in the
day-ahead book; the chain settles the trades from the bridges' readings; the receipts show
both agents' orders.  The same run checks that bad input on an agent's API is refused with a
clear error and changes nothing (no action, no transaction: the account's nonce stays).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridchain.agent.history import write_csv
from gridchain.bench.agent_days import simulated_days
from gridchain.meterbridge.simulator import Household, daylight_offset_ms
from tests.procs import REPO, free_port_block, http_get, http_post, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meters_e2e")]

SLOT_S = 12
DAY_MS = 86_400_000
INTERVAL_MS = 900_000
PASSWORD = "testnet"
#: The seller's history is of a 10 kW array against the simulator's 4 kW. The weather in the
#: history makes the regression forecast about a third of clear sky; with 4 kW, near either
#: end of the daylight clock's window (9:00 to 15:00 kept unshifted) the forecast surplus over
#: the load is 0.8 to 0.9 Wh in a 12 s slot, and the agent rightly orders no fraction of a Wh
#: (CI failed so at 14:43 UTC). With 10 kW it is 3.9 Wh or more from 9:00 to 15:30; the live
#: meter then delivers less than the forecast at noon, which settlement measures.
SELLER_HISTORY_PV_KW = 10.0


def gridchain(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
    )  # fmt: skip


def write_history(path: Path, household: Household, seed: int, now_ms: int) -> None:
    """30 whole days before today of the household, on the simulator's daylight clock."""
    shift_h = daylight_offset_ms(now_ms) / 3_600_000
    today = now_ms // DAY_MS
    days = simulated_days(
        seed=seed, days=30, first_day=today - 30, household=household, hour_shift=shift_h
    )
    per_day = DAY_MS // INTERVAL_MS
    pv: dict[int, float] = {}
    load: dict[int, float] = {}
    for d in range(30):
        for i in range(per_day):
            k = (days.first_day + d) * per_day + i
            pv[k] = float(days.pv_kw[d, i])
            load[k] = float(days.load_kw[d, i])
    write_csv(path, INTERVAL_MS, pv, load)


def agent_config(path: Path, *, name: str, node: str, wallet: Path, port: int, limits: str) -> None:
    path.write_text(
        f'name = "{name}"\n'
        f'node_url = "{node}"\n'
        f'wallet = "{wallet}"\n'
        f'data_dir = "{path.parent / "data"}"\n'
        f"[api]\nport = {port}\n"
        f'[history]\nfile = "{path.parent / "history.csv"}"\n'
        "[plan]\nhorizon_slots = 12\nact_slots = 3\ncycle_seconds = 2\n"
        f"[limits]\n{limits}\n",
        encoding="utf-8",
    )


def start_agent(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD}
    log = (config.parent / "agent.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "gridchain", "agent", "run", "--config", str(config)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def receipts(directory: Path, wallet: str, node: str) -> list[dict[str, Any]]:
    done = gridchain(
        "wallet", "receipts", "--json", "--wallet", str(directory / "wallets" / f"{wallet}.json"),
        "--node", node,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)["receipts"]
    return found


def test_two_agents_trade_from_their_forecasts_and_settle(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    api, p2p, sim = free_port_block(4), free_port_block(4), free_port_block(1)
    agents_port = free_port_block(2)
    now = time.time_ns() // 1_000_000
    started = gridchain(
        "testnet", "up", "--dir", str(directory), "--with-meters", "--meter-clock", "daylight",
        "--slot-seconds", str(SLOT_S), "--gate-closure-seconds", "3", "--grace-seconds", "6",
        "--meter-interval-s", "2", "--base-api-port", str(api), "--base-p2p-port", str(p2p),
        "--meter-sim-port", str(sim), "--json",
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        nodes = [f"http://127.0.0.1:{api + i}" for i in range(4)]
        seller_dir, buyer_dir = tmp_path / "agent-a", tmp_path / "agent-c"
        seller_dir.mkdir()
        buyer_dir.mkdir()
        # peer A: the simulator's household with a larger PV array in its history (see
        # SELLER_HISTORY_PV_KW); peer C: a consumer (no PV)
        write_history(
            seller_dir / "history.csv",
            Household(pv_peak_kw=SELLER_HISTORY_PV_KW),
            seed=1,
            now_ms=now,
        )
        write_history(buyer_dir / "history.csv", Household(pv_peak_kw=0.0), seed=2, now_ms=now)
        agent_config(
            seller_dir / "agent.toml", name="peer-a", node=nodes[0],
            wallet=directory / "wallets" / "peer-a.json", port=agents_port,
            limits="max_sell_wh_per_slot = 20\nmin_sell_price_mc_per_kwh = 100000",
        )  # fmt: skip
        agent_config(
            buyer_dir / "agent.toml", name="peer-c", node=nodes[2],
            wallet=directory / "wallets" / "peer-c.json", port=agents_port + 1,
            limits="max_buy_wh_per_slot = 20\nmax_buy_price_mc_per_kwh = 400000",
        )  # fmt: skip
        procs = [start_agent(seller_dir / "agent.toml"), start_agent(buyer_dir / "agent.toml")]
        seller_api = f"http://127.0.0.1:{agents_port}"
        buyer_api = f"http://127.0.0.1:{agents_port + 1}"

        def planned(url: str) -> bool:
            code, body = http_get(url + "/agent/health")
            return code == 200 and body["plan_version"] is not None

        wait_until(lambda: planned(seller_api) and planned(buyer_api), 60, "both agents plan")

        # the forecasts are what the orders come from: A has a surplus, C a deficit
        _, plan_a = http_get(seller_api + "/fetchOptimizationsData")
        _, plan_c = http_get(buyer_api + "/fetchOptimizationsData")
        # an order is whole Wh: the surplus must be at least 1 Wh in a slot of SLOT_S seconds
        assert any(s["export_kw"] * SLOT_S / 3.6 >= 1 for s in plan_a["slots"]), plan_a
        assert all(s["export_kw"] == 0 for s in plan_c["slots"]), plan_c
        assert plan_a["sign_conventions"]["net_kw"].startswith("import_kw - export_kw")
        _, forecast_a = http_get(seller_api + "/fetchForecastData")
        assert forecast_a["pv_quality"]["test_days"] == 7

        bad_input_changes_nothing(seller_api, nodes[0], directory)

        # no human command from here on: wait for receipts of trades between the two agents
        def agent_receipts() -> list[dict[str, Any]]:
            return [
                r
                for r in receipts(directory, "peer-c", nodes[1])
                if r["seller"] == address(directory, "peer-a")
            ]

        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 8 * SLOT_S + 90
        while time.monotonic() < deadline and not found:
            time.sleep(2)
            found = agent_receipts()
        logs = "".join((d / "agent.log").read_text() for d in (seller_dir, buyer_dir))
        assert found, f"no settled trade between the agents\n{logs[-4000:]}"
        _, tx_a = http_get(seller_api + "/fetchTransactionData")
        _, tx_c = http_get(buyer_api + "/fetchTransactionData")
        sells = {a["tx_hash"] for a in tx_a["actions"] if a["origin"] == "plan"}
        buys = {a["tx_hash"] for a in tx_c["actions"] if a["origin"] == "plan"}
        trades = {t["trade_id"]: t for t in tx_a["trades"]}
        for receipt in found:
            trade = trades[receipt["trade_id"]]
            assert trade["sell_order"] in sells, "the sell order was not the seller agent's"
            assert trade["buy_order"] in buys, "the buy order was not the buyer agent's"
            seller = receipt["seller_reading"]
            assert seller["metered_wh"] == seller["end_wh"] - seller["start_wh"]
            assert receipt["delivered_wh"] == min(receipt["quantity_wh"], seller["metered_wh"])
            assert receipt["escrow_mc"] == receipt["paid_mc"] + receipt["released_mc"]
        for node in nodes:  # the same receipts on every validator
            assert [r for r in receipts(directory, "peer-a", node) if r in found] == found
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        gridchain("testnet", "down", "--dir", str(directory))


def address(directory: Path, wallet: str) -> str:
    doc = json.loads((directory / "wallets" / f"{wallet}.json").read_text())
    return str(doc["address"])


def bad_input_changes_nothing(agent_api: str, node: str, directory: Path) -> None:
    """Wrong types, a sell beyond the user's limit, an expired slot: 4xx, and nothing sent."""
    _, markets = http_get(node + "/v1/markets")
    first_open = markets["first_open_slot"]["day_ahead"]
    _, before = http_get(agent_api + "/fetchTransactionData")
    cases = [
        ({"side": "sell", "slot": "soon", "quantity_wh": 5, "price_mc_per_kwh": 150000}, 400,
         "bad_request"),
        ({"side": "sell", "slot": first_open + 2, "quantity_wh": 5.5,
          "price_mc_per_kwh": 150000}, 400, "bad_request"),
        ({"side": "sell", "slot": first_open + 2, "quantity_wh": 5, "price_mc_per_kwh": 150000,
          "extra": 1}, 400, "bad_request"),
        ({"side": "sell", "slot": first_open + 2, "quantity_wh": 21,
          "price_mc_per_kwh": 150000}, 422, "over_user_limit"),
        ({"side": "sell", "slot": first_open + 2, "quantity_wh": 5,
          "price_mc_per_kwh": 99999}, 422, "over_user_limit"),
        ({"side": "sell", "slot": first_open - 5, "quantity_wh": 5,
          "price_mc_per_kwh": 150000}, 409, "slot_closed"),
    ]  # fmt: skip
    for body, status, code in cases:
        got, answer = http_post(agent_api + "/v1/orders", json.dumps(body).encode())
        assert (got, answer["error"]["code"]) == (status, code), (body, answer)
        assert answer["error"]["message"]
    got, answer = http_post(agent_api + "/v1/orders", b"{not json")
    assert (got, answer["error"]["code"]) == (400, "bad_request")
    _, after = http_get(agent_api + "/fetchTransactionData")
    user_actions = [a for a in after["actions"] if a["origin"] == "user"]
    assert user_actions == [a for a in before["actions"] if a["origin"] == "user"] == []
    # the agent goes on placing its own plan orders meanwhile (asks half-way between feed-in
    # and retail, never 150000 mc/kWh); none of the refused ones reached the chain
    _, orders = http_get(f"{node}/v1/orders?address={address(directory, 'peer-a')}")
    refused = [o for o in orders["orders"] if o["price_mc_per_kwh"] in (150000, 99999)]
    assert refused == []
