"""EVs schedule their charging through the wallet on 4-validator PoB and ePoB testnets.

Each validator is its own ``gridchain node run`` process.  Peer B (an EV) asks for a charge and
peer A for a discharge, through the ``gridchain wallet cd`` CLI against different validators;
peer C trades a transfer meanwhile.  The scheduling intervals are 1.5 s of block time (each
standing for 10 minutes), so the charge completes within seconds.  Every validator must then
hold the same blocks, the same decided setpoints for every interval and the same request
records, and the charge must have received exactly its energy by departure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_markets import wallet
from tests.helpers import cd_meters
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    running_cluster,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pbft_cluster")]

N = 4
INTERVAL_MS = 1500


@pytest.fixture(params=["pob", "epob"])
def testnet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    engine: str = request.param
    consensus: dict[str, Any] = {"engine": engine, "round_ms": 400}
    if engine == "pob":
        consensus["finality_depth"] = 3
    chain = make_chain(
        tmp_path / "chain",
        validators=N,
        engine=engine,
        block_interval_ms=100,
        schedule_interval_ms=INTERVAL_MS,
        genesis_changes=lambda bundle: {"consensus": consensus, "meters": cd_meters(bundle)},
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def _get(node: NodeProcess, path: str) -> Any:
    code, body = http_get(node.api_url + path, timeout=5.0)
    assert code == 200, (path, body)
    return body


def _height(node: NodeProcess) -> int:
    height: int = _get(node, "/v1/status")["height"]
    return height


def test_every_validator_commits_the_same_schedules(
    testnet: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = testnet
    charge = wallet(
        chain,
        nodes[1],
        "peer-b",
        "cd",
        "charge",
        "--energy-wh",
        "2000",
        "--max-rate-w",
        "22000",
        "--arrive",
        "now",
        "--depart",
        "+12",
        "--meter",
        "peer-b-ev",
    )
    discharge = wallet(
        chain,
        nodes[2],
        "peer-a",
        "cd",
        "discharge",
        "--device",
        "Battery",
        "--energy-wh",
        "1000",
        "--max-rate-w",
        "5000",
        "--arrive",
        "now",
        "--depart",
        "+10",
        "--meter",
        "peer-a-battery",
    )
    peer_a = chain.bundle.participants[0].address
    wallet(chain, nodes[3], "peer-c", "transfer", "--to", peer_a, "--amount", "3")
    charge_id, discharge_id = charge["request"]["id"], discharge["request"]["id"]

    def closed(node: NodeProcess) -> bool:
        return all(
            _get(node, f"/v1/cd/{rid}")["status"] != "open" for rid in (charge_id, discharge_id)
        )

    wait_for(lambda: all(closed(n) for n in nodes), 60, nodes)
    # Compare at a height every validator has reached.
    target = max(_height(n) for n in nodes)
    wait_for(lambda: all(_height(n) >= target for n in nodes), 30, nodes)
    hashes = [[_get(n, f"/v1/blocks/{h}")["hash"] for h in range(1, target + 1)] for n in nodes]
    assert all(h == hashes[0] for h in hashes[1:])
    schedules = [_get(n, "/v1/schedule?limit=100") for n in nodes]
    decided = [[d for d in s["decisions"] if d["height"] <= target] for s in schedules]
    assert decided[0], "no interval was decided"
    assert all(d == decided[0] for d in decided[1:])
    requests = [[_get(n, f"/v1/cd/{rid}") for rid in (charge_id, discharge_id)] for n in nodes]
    assert all(r == requests[0] for r in requests[1:])
    charged, discharged = requests[0]
    assert charged["status"] == "complete"
    assert charged["delivered_units"] == charged["cap_units"]
    assert discharged["delivered_units"] <= discharged["cap_units"]
    # Every decision lists the charge while it was live, with a rate it was allowed.
    for decision in decided[0]:
        for entry in decision["entries"]:
            if entry["request_id"] == charge_id:
                assert 0 <= entry["rate_w"] <= 22_000
            else:
                assert -5_000 <= entry["rate_w"] <= 0
        assert int(decision["benefit"]) > 0
    # The benefit each header claims is the one its decision recorded.
    for decision in decided[0]:
        block = _get(nodes[0], f"/v1/blocks/{decision['height']}")
        assert str(block["header"]["benefit"]) == decision["benefit"]
