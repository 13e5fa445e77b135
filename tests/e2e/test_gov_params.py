"""ADR 0043: the council changes a tariff from a future height on a running PBFT community.

Four PBFT validators (``gridchain node run``), a council of three approving by two.  Member 1
proposes new time-of-use tariffs through validator 0 (``gridchain gov propose tariffs``),
member 2 approves through validator 1; the chain applies the change at the second approval,
to take effect at a height the council named.  Every validator's GET /v1/params shows the old
tariffs while its head is below that height and the new ones from it on, and the pool prices
every validator quotes follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_gov_household import propose_and_approve
from tests.procs import Chain, NodeProcess, http_get, make_chain, running_cluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("gov_e2e")]

#: Blocks between the head read before proposing and the effective height.  The two
#: transactions commit within a few blocks of 200 ms, but each goes through a `gridchain gov`
#: process whose start-up alone took seconds on a loaded machine: 40 blocks (8 s) once ran
#: out before the approval was applied, so the margin is 20 s.
AHEAD = 100
NEW_BANDS = ["--band", "0-6:150000:40000", "--band", "6-24:220000:80000"]


@pytest.fixture
def community(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    chain = make_chain(
        tmp_path / "chain",
        validators=4,
        engine="pbft",
        block_interval_ms=200,
        empty_blocks=True,
        council=3,
        threshold=2,
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def params(node: NodeProcess) -> dict[str, Any]:
    code, body = http_get(node.api_url + "/v1/params")
    assert code == 200, body
    found: dict[str, Any] = body
    return found


def retail(values: dict[str, Any]) -> list[int]:
    return [band["retail_mc_per_kwh"] for band in values["tariffs"]]


def test_a_tariff_change_takes_effect_at_its_height_on_every_validator(
    community: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = community
    genesis_retail = [t.retail_mc_per_kwh for t in chain.bundle.genesis.params.tariffs]
    effective = params(nodes[0])["height"] + AHEAD
    proposal = propose_and_approve(
        chain, nodes[0].api_url, "tariffs", *NEW_BANDS, "--effective-height", str(effective)
    )
    assert proposal["kind"] == "SetTariffs"
    for node in nodes:
        wait_until(lambda n=node: params(n)["changes"], 20, f"{node.api_url} has the change")
        before = params(node)
        assert before["height"] < effective, "the change was applied too late for this test"
        assert retail(before["in_force"]) == genesis_retail
        (change,) = before["changes"]
        assert (change["effective_height"], change["in_force"]) == (effective, False)
        assert retail(change) == [150_000, 220_000]
    for node in nodes:
        wait_until(lambda n=node: params(n)["height"] >= effective, 60, f"{node.api_url} head")
        after = params(node)
        assert retail(after["in_force"]) == [150_000, 220_000]
        assert after["changes"][0]["in_force"] is True
        code, prices = http_get(node.api_url + "/v1/pool/prices?count=96")
        assert code == 200
        assert {i["r_buy_mc_per_kwh"] for i in prices["intervals"]} == {150_000, 220_000}
    # every validator committed the same state at the effective height
    roots = set()
    for node in nodes:
        code, block = http_get(f"{node.api_url}/v1/blocks/{effective}")
        assert code == 200, block
        roots.add(block["header"]["state_root"])
    assert len(roots) == 1
