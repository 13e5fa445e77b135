"""Energy trading end to end: the source's three peers on a 4-validator PBFT testnet.

Peer A (PV and a battery) sells, Peer B (an EV) and Peer C (a consumer) buy, each through the
``gridchain wallet`` CLI in its own process against a different validator.  Every validator
must then hold the same trades, the same books, the same balances and escrow, and the same
state root; the near slot's gate closure must expire the same order everywhere.

Slots are 5 s long and close 5 s before they start, so the whole run takes seconds: the main
slot is chosen ~30 s ahead (no waiting for it), the near slot ~10-15 s ahead (the test waits
for its gate closure to see the expiry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.procs import (
    PASSWORD,
    REPO,
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    running_cluster,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pbft_cluster")]

N = 4
SLOT_MS = 5000


@pytest.fixture
def testnet(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    chain = make_chain(
        tmp_path / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=100,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=SLOT_MS,
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def wallet(chain: Chain, node: NodeProcess, peer: str, *argv: str) -> dict[str, Any]:
    """Run ``gridchain wallet ARGV --json`` as its own process; return its JSON answer."""
    cmd = [sys.executable, "-m", "gridchain", "wallet", *argv, "--json"]
    cmd += ["--wallet", str(chain.wallet_path(peer)), "--node", node.api_url]
    done = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD},
        timeout=60,
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def wallet_table(chain: Chain, node: NodeProcess, peer: str, *argv: str) -> str:
    cmd = [sys.executable, "-m", "gridchain", "wallet", *argv]
    cmd += ["--wallet", str(chain.wallet_path(peer)), "--node", node.api_url]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ledger_view(node: NodeProcess, chain: Chain, main: int, near: int) -> dict[str, Any]:
    """Everything the markets put on a validator's ledger, as its API shows it."""
    _, status = http_get(node.api_url + "/v1/status")
    _, trades = http_get(node.api_url + "/v1/trades")
    books = {}
    for market in ("day_ahead", "intraday"):
        for slot in (main, near):
            _, book = http_get(f"{node.api_url}/v1/markets/{market}/slots/{slot}/book")
            books[f"{market}/{slot}"] = (book["bids"], book["asks"])
    accounts = {}
    for peer in chain.bundle.participants:
        _, account = http_get(f"{node.api_url}/v1/accounts/{peer.address}")
        accounts[peer.name] = (account["balance_mc"], account["locked_mc"], account["nonce"])
    return {
        "height": status["height"],
        "state_root": status["state_root"],
        "trades": trades["trades"],
        "books": books,
        "accounts": accounts,
    }


def test_three_peers_trade_through_the_wallet_on_four_validators(
    testnet: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = testnet
    _, markets = http_get(nodes[0].api_url + "/v1/markets")
    main = markets["first_open_slot"]["day_ahead"] + 6  # gate closure ~30 s away
    a, b, c = "peer-a", "peer-b", "peer-c"

    # Peer A offers PV energy as an iceberg, and battery energy at a higher price.
    pv = wallet(chain, nodes[0], a, "order", "sell", "--slot", str(main), "--price", "120",
                "--quantity", "2", "--peak", "0.5", "--device", "PV")  # fmt: skip
    battery = wallet(chain, nodes[1], a, "order", "sell", "--slot", str(main), "--price",
                     "150000mc", "--quantity", "1000Wh", "--device", "Battery")  # fmt: skip
    assert pv["order"]["status"] == battery["order"]["status"] == "open"
    assert pv["order"]["display_wh"] == 500

    # Peer B's EV names the slot by a time inside it; three 0.5 kWh clips fill it at 120.
    delivery = datetime.fromtimestamp((main * SLOT_MS + 1000) / 1000, tz=UTC).isoformat()
    ev = wallet(chain, nodes[2], b, "order", "buy", "--delivery", delivery, "--price", "130",
                "--quantity", "1.5", "--device", "EV")  # fmt: skip
    assert ev["order"]["slot"] == main
    assert (ev["order"]["status"], ev["order"]["filled_wh"]) == ("filled", 1500)

    # Peer C takes the iceberg's last clip at 120 and half of the battery offer at 150.
    home = wallet(chain, nodes[3], c, "order", "buy", "--slot", str(main), "--price", "160",
                  "--quantity", "1")  # fmt: skip
    assert (home["order"]["status"], home["order"]["filled_wh"]) == ("filled", 1000)

    # Peer B bids low, then cancels: the escrow comes back.
    low = wallet(chain, nodes[0], b, "order", "buy", "--slot", str(main), "--price", "50",
                 "--quantity", "0.2", "--device", "EV")  # fmt: skip
    assert low["order"]["locked_mc"] == 10_000
    cancelled = wallet(chain, nodes[1], b, "order", "cancel", low["order_id"])
    assert cancelled["order"]["status"] == "cancelled"

    # Peer C bids in the near slot, which closes in seconds.
    _, markets = http_get(nodes[2].api_url + "/v1/markets")
    near = markets["first_open_slot"]["day_ahead"] + 2  # closes in 10-15 s
    waiting = wallet(chain, nodes[2], c, "order", "buy", "--slot", str(near), "--price", "100",
                     "--quantity", "0.5")  # fmt: skip
    assert waiting["order"]["status"] == "open"

    book = wallet(chain, nodes[1], c, "book", "--slot", str(main))
    assert book["asks"] == [{"price_mc_per_kwh": 150_000, "quantity_wh": 500, "orders": 1}]
    assert book["bids"] == []
    table = wallet_table(chain, nodes[1], c, "book", "--slot", str(main))
    assert "150.000" in table
    assert "0.500" in table
    mine = wallet(chain, nodes[3], c, "trades")
    assert [(t["price_mc_per_kwh"], t["quantity_wh"]) for t in mine["trades"]] == [
        (120_000, 500),
        (150_000, 500),
    ]
    orders = wallet(chain, nodes[0], a, "orders", "--slot", str(main))
    assert {o["status"] for o in orders["orders"]} == {"filled", "open"}

    # After the near slot's gate closure, the next block expires Peer C's bid everywhere.
    gate = near * SLOT_MS - SLOT_MS
    wait_for(lambda: int(http_get(nodes[0].api_url + "/v1/markets")[1]["now_ms"]) > gate, 20, nodes)
    wallet(chain, nodes[3], a, "transfer", "--to", chain.bundle.participants[2].address,
           "--amount", "1")  # fmt: skip
    expired = http_get(f"{nodes[3].api_url}/v1/orders/{waiting['order_id']}")[1]
    assert expired["status"] == "expired"

    # Every validator holds the same ledger.
    _, head = http_get(nodes[3].api_url + "/v1/status")
    wait_for(lambda: all(http_get(n.api_url + "/v1/status")[1]["height"] >= head["height"]
                         for n in nodes), 20, nodes)  # fmt: skip
    views = [ledger_view(n, chain, main, near) for n in nodes]
    assert all(v == views[0] for v in views), json.dumps(views, indent=1)[:4000]
    view = views[0]
    assert [(t["buyer"], t["price_mc_per_kwh"], t["quantity_wh"]) for t in view["trades"]] == [
        (chain.bundle.participants[1].address, 120_000, 500),
        (chain.bundle.participants[1].address, 120_000, 500),
        (chain.bundle.participants[1].address, 120_000, 500),
        (chain.bundle.participants[2].address, 120_000, 500),
        (chain.bundle.participants[2].address, 150_000, 500),
    ]
    assert view["accounts"] == {
        "peer-a": (1_000_000 - 1_000, 0, 3),  # sells lock nothing; one transfer
        "peer-b": (1_000_000, 3 * 60_000, 3),  # three contracts at 120 in escrow
        "peer-c": (1_000_000 + 1_000, 60_000 + 75_000, 2),  # the expired bid released
    }
    assert view["books"][f"day_ahead/{near}"] == ([], [])
