"""``gridchain gov propose param|tariffs`` and ``gov params`` against a live node (ADR 0043).

Why: a tariff or penalty change is something the council does with a command, and the chain
must show every validator's value (GET /v1/params) switching at the height the council named.
The node is a solo validator in this process with a council of three approving by two; it
makes empty blocks so that heights pass without traffic.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import PASSWORD
from tests.unit.node.conftest import LiveNode, live_node
from tests.unit.wallet.conftest import CliRunner
from tests.unit.wallet.test_gov_cli import gov_json, member, printed, refused

TOO_TOLERANT = ["param", "--name", "cd_tolerance_permille", "--value", "1001"]
#: The head is read before proposing; the change applies two blocks later at the earliest.
AHEAD = 25


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveNode]:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    async with live_node(tmp_path / "chain", council=3, threshold=2, empty_blocks=True) as node:
        yield node


async def head(live: LiveNode) -> int:
    _, body = await live.get("/v1/status")
    height: int = body["height"]
    return height


async def params_at_least(live: LiveNode, height: int, timeout_s: float = 60.0) -> Any:
    """GET /v1/params once the head reached ``height``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code, body = await live.get("/v1/params")
        assert code == 200
        if body["height"] >= height:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"head did not reach {height} within {timeout_s} s")


async def passed(cli: CliRunner, live: LiveNode, *action: str) -> dict[str, Any]:
    proposed = await gov_json(cli, "propose", *action, *member(live, 1))
    approved = await gov_json(cli, "approve", proposed["proposal_id"], *member(live, 2))
    found: dict[str, Any] = approved["proposal"]
    return found


async def test_the_council_changes_the_tariffs_from_a_height(
    live: LiveNode, cli: CliRunner
) -> None:
    effective = await head(live) + AHEAD
    bands = ["--band", "0-12:200000:50000", "--band", "12-24:300000:70000"]
    proposal = await passed(cli, live, "tariffs", *bands, "--effective-height", str(effective))
    assert proposal["status"] == "applied", proposal
    assert proposal["kind"] == "SetTariffs"
    before = await gov_json(cli, "params", "--node", live.url)
    assert before["height"] < effective
    assert before["in_force"]["tariffs"][0]["retail_mc_per_kwh"] == 180_000  # genesis 0-7 h
    (change,) = before["changes"]
    assert (change["name"], change["effective_height"], change["in_force"]) == (
        "tariffs",
        effective,
        False,
    )
    at = await params_at_least(live, effective)
    assert [b["retail_mc_per_kwh"] for b in at["in_force"]["tariffs"]] == [200_000, 300_000]
    assert at["changes"][0]["in_force"] is True
    # the pool's prices (what the agents plan with) follow the chain's tariffs
    _, prices = await live.get("/v1/pool/prices?count=96")
    assert {i["r_buy_mc_per_kwh"] for i in prices["intervals"]} == {200_000, 300_000}


async def test_a_parameter_change_and_the_params_table(live: LiveNode, cli: CliRunner) -> None:
    effective = await head(live) + AHEAD
    proposal = await passed(
        cli, live, "param", "--name", "penalty_mc_per_kwh", "--value", "250000",
        "--effective-height", str(effective),
    )  # fmt: skip
    assert proposal["status"] == "applied", proposal
    run = await cli(["gov", "show", proposal["id"], "--node", live.url])
    assert re.search(
        rf"^action +SetParameter penalty_mc_per_kwh = 250000 from height {effective}$",
        printed(run.out),
        re.MULTILINE,
    )
    await params_at_least(live, effective)
    table = await cli(["gov", "params", "--node", live.url])
    assert table.code == 0, table.err
    text = printed(table.out)
    assert re.search(r"^penalty_mc_per_kwh +250000 +yes$", text, re.MULTILINE)
    assert re.search(r"^slot_length_ms +900000 +no$", text, re.MULTILINE)
    assert re.search(rf"^{effective} +penalty_mc_per_kwh = 250000 +yes$", text, re.MULTILINE)
    _, markets = await live.get("/v1/markets")
    assert markets["penalty_mc_per_kwh"] == 250_000


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (["param", "--name", "slot_length_ms", "--value", "1800000"], "slot_length_unchangeable"),
        (["param", "--name", "matching_rule", "--value", "1"], "parameter_not_changeable"),
        (TOO_TOLERANT, "invalid_parameter_value"),
        (["tariffs", "--band", "0-12:200000:50000"], "invalid_parameter_value"),
        (["tariffs", "--band", "0-24:50000:200000"], "invalid_parameter_value"),
    ],
)
async def test_a_refused_change_fails_with_the_chains_code(
    live: LiveNode, cli: CliRunner, action: list[str], code: str
) -> None:
    effective = await head(live) + AHEAD
    proposal = await passed(cli, live, *action, "--effective-height", str(effective))
    assert (proposal["status"], proposal["error"]) == ("failed", code)
    _, body = await live.get("/v1/params")
    assert body["changes"] == []


async def test_an_effective_height_in_the_past_fails(live: LiveNode, cli: CliRunner) -> None:
    past = max(0, await head(live) - 1)
    proposal = await passed(
        cli, live, "param", "--name", "penalty_mc_per_kwh", "--value", "1",
        "--effective-height", str(past),
    )  # fmt: skip
    assert (proposal["status"], proposal["error"]) == ("failed", "invalid_effective_height")


@pytest.mark.parametrize(
    "argv",
    [
        ["tariffs", "--band", "0-24", "--effective-height", "10"],
        ["tariffs", "--band", "7-3:1:1", "--effective-height", "10"],
        ["tariffs", "--band", "0-24:x:1", "--effective-height", "10"],
        ["param", "--name", "x" * 65, "--value", "1", "--effective-height", "10"],
    ],
)
async def test_bad_arguments_are_refused_before_any_traffic(
    live: LiveNode, cli: CliRunner, argv: list[str]
) -> None:
    error = await refused(cli, "propose", *argv, *member(live, 1))
    assert error["code"] == "bad_argument"
    _, body = await live.get("/v1/proposals")
    assert body["proposals"] == []
