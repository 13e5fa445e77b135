"""Issue 16 leftovers: the agent's C&D path against a real testnet with meters.

A 4-validator testnet with the meter simulator and a bridge per peer (``testnet up
--with-meters``; C&D intervals of 13 s or more, each standing for 10 minutes).  Peer B runs
``gridchain agent run`` with its EV meter (``peer-b-ev``, registered by the testnet), the goal
"2 kWh by the next full hour" (at least 10 minutes away, inside its plan's horizon) and
``request_cd = true``.  Without a human command the agent's plan must send a C&D charge
request, signed with peer B's key, naming the EV meter, due at the goal's deadline, and the
chain must hold it.  Then the household page's route (``POST /v1/charge``) asks for 0.5 kWh
within two minutes: the chain holds that request too and schedules setpoints for it; bad input
on the same route changes nothing (the account's nonce stays, no action is logged).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gridchain.meterbridge.simulator import Household
from tests.e2e.test_agents_trade import address, gridchain, start_agent, write_history
from tests.procs import free_port_block, http_get, http_post, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meters_e2e")]

SLOT_S = 12
HOUR_MS = 3_600_000
EV_METER = "peer-b-ev"
DAY_MS = 86_400_000


def goal_clock(now_ms: int) -> tuple[int, int, int]:
    """The EV goal's hour (the next full hour at least 10 minutes away), the plan's horizon in
    slots to cover it, and a C&D interval's block time.  The chain refuses a request window
    longer than cd_max_window_intervals (288 by default: 48 h of 10-minute intervals), so on
    this accelerated chain an interval must last at least 1/280 of the time to the goal."""
    deadline = (now_ms // HOUR_MS + 1) * HOUR_MS
    if deadline - now_ms < 600_000:
        deadline += HOUR_MS
    lead = deadline - now_ms
    return deadline % DAY_MS // HOUR_MS, lead // (SLOT_S * 1000) + 20, max(13_000, -(-lead // 280))


def _config(path: Path, *, node: str, wallet: Path, port: int, by_hour: int, horizon: int) -> None:
    path.write_text(
        f'name = "peer-b"\nnode_url = "{node}"\nwallet = "{wallet}"\n'
        f'data_dir = "{path.parent / "data"}"\n'
        f"[api]\nport = {port}\n"
        f'[history]\nfile = "{path.parent / "history.csv"}"\n'
        f"[plan]\nhorizon_slots = {horizon}\nact_slots = 0\ncycle_seconds = 3\n"
        "[limits]\nmax_buy_price_mc_per_kwh = 400000\n"
        f"[ev]\ngoal_kwh = 2.0\nby_hour = {by_hour}\nplugged_from_hour = 0\n"
        "plugged_until_hour = 0\ncapacity_kwh = 40\nmax_charge_kw = 7\nsoe0_kwh = 5\n"
        f'request_cd = true\nmeter = "{EV_METER}"\nlimit_price_mc_per_kwh = 400000\n',
        encoding="utf-8",
    )


def _requests(node: str, owner: str) -> list[dict[str, Any]]:
    code, body = http_get(f"{node}/v1/cd?owner={owner}")
    assert code == 200, body
    found: list[dict[str, Any]] = body["requests"]
    return found


def _scheduled(node: str, request_id: str) -> bool:
    code, body = http_get(f"{node}/v1/schedule?limit=50")
    assert code == 200, body
    return any(
        e["request_id"] == request_id and e["rate_w"] > 0
        for d in body["decisions"]
        for e in d["entries"]
    )


def test_the_agent_requests_charges_on_a_real_chain(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    api, p2p, sim = free_port_block(4), free_port_block(4), free_port_block(1)
    agent_port = free_port_block(1)
    now = time.time_ns() // 1_000_000
    by_hour, horizon, interval_ms = goal_clock(now)
    started = gridchain(
        "testnet", "up", "--dir", str(directory), "--with-meters", "--meter-clock", "daylight",
        "--slot-seconds", str(SLOT_S), "--gate-closure-seconds", "3", "--grace-seconds", "6",
        "--meter-interval-s", "2", "--schedule-interval-ms", str(interval_ms),
        "--base-api-port", str(api), "--base-p2p-port", str(p2p),
        "--meter-sim-port", str(sim), "--json",
    )  # fmt: skip
    proc: subprocess.Popen[bytes] | None = None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        nodes = [f"http://127.0.0.1:{api + i}" for i in range(4)]
        home = tmp_path / "agent-b"
        home.mkdir()
        write_history(home / "history.csv", Household(), seed=3, now_ms=now)
        wallet = directory / "wallets" / "peer-b.json"
        _config(
            home / "agent.toml", node=nodes[1], wallet=wallet, port=agent_port,
            by_hour=by_hour, horizon=horizon,
        )  # fmt: skip
        proc = start_agent(home / "agent.toml")
        agent_api = f"http://127.0.0.1:{agent_port}"
        owner = address(directory, "peer-b")

        # the plan's request, sent by the agent on its own
        def planned_request() -> list[dict[str, Any]]:
            code, body = http_get(agent_api + "/fetchTransactionData")
            if code != 200:
                return []
            return [a for a in body["actions"] if a["kind"] == "cd_request"]

        wait_until(planned_request, 90, "the agent's planned C&D request")
        [action] = planned_request()
        log = (home / "agent.log").read_text()
        assert action["status"] == "committed", (action["error"], log[-3000:])
        assert (action["origin"], action["device"], action["quantity_wh"]) == ("plan", "EV", 2000)
        [on_chain] = [r for r in _requests(nodes[2], owner) if r["id"] == action["tx_hash"]]
        assert (on_chain["meter_id"], on_chain["kind"], on_chain["energy_wh"]) == (
            EV_METER, "charge", 2000,
        )  # fmt: skip
        assert on_chain["departure_ms"] % HOUR_MS == 0  # the goal's deadline: a full hour
        assert on_chain["limit_price_mc_per_kwh"] == 400_000

        # bad input on the page's route: refused, nothing sent
        nonce = http_get(f"{nodes[0]}/v1/accounts/{owner}")[1]["pending_nonce"]
        departure = time.time_ns() // 1_000_000 + 120_000
        good: dict[str, Any] = {
            "device": "EV", "energy_wh": 500, "max_rate_w": 3000, "departure_ms": departure,
        }  # fmt: skip
        refusals: list[tuple[dict[str, Any], int]] = [
            ({"energy_wh": "500"}, 400),  # a string for a number
            ({"device": "Battery"}, 409),  # no battery meter configured
            ({"departure_ms": 1}, 409),  # a deadline passed
            ({"energy_wh": 50_000}, 422),  # beyond the EV's 40 kWh
        ]
        for change, status in refusals:
            bad = {**good, **change}
            code, body = http_post(agent_api + "/v1/charge", _json(bad))
            assert code == status, body
            assert body["error"]["message"]
        assert http_get(f"{nodes[0]}/v1/accounts/{owner}")[1]["pending_nonce"] == nonce
        assert len(planned_request()) == 1

        # the user's request through the page's route: on chain, and scheduled
        code, action = http_post(agent_api + "/v1/charge", _json(good))
        assert code == 201, action
        assert (action["origin"], action["status"]) == ("user", "committed")
        [mine] = [r for r in _requests(nodes[3], owner) if r["id"] == action["tx_hash"]]
        assert (mine["meter_id"], mine["energy_wh"], mine["max_rate_w"]) == (EV_METER, 500, 3000)
        wait_until(lambda: _scheduled(nodes[0], action["tx_hash"]), 120, "setpoints for it")
        # the household page's read lists both requests
        code, household = http_get(agent_api + "/v1/household")
        assert code == 200, household
        listed = {r["id"] for r in household["cd_requests"]}
        assert {action["tx_hash"], on_chain["id"]} <= listed
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        gridchain("testnet", "down", "--dir", str(directory))


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()
