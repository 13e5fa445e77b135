"""``gridchain wallet cd ...`` and ``gridchain wallet schedule`` against a real node.

Why: an EV owner types a window ("now" to "+3600") and an energy; the chain must receive
exactly that request, or nothing when it is plainly wrong (zero energy, a departure before the
arrival, a PV panel).  A refusal by the chain (an infeasible charge) must reach a script under
the chain's own code, and the committed setpoints must be readable from the wallet.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.protocol.address import format_address
from gridchain.wallet.cd import parse_when
from gridchain.wallet.commands import WalletArgumentError
from tests.procs import PASSWORD
from tests.unit.node.conftest import INTERVAL_MS, LiveNode, live_node
from tests.unit.wallet.conftest import CliRunner, FakeNode, Wallet

NOW = 1_704_067_200_000  # 2024-01-01T00:00Z


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("+0", NOW),
        ("+3600", NOW + 3_600_000),
        ("+1.5", NOW + 1500),
        ("+0.001", NOW + 1),
        ("2024-01-01T01:00Z", NOW + 3_600_000),
        ("2024-01-01T02:00+01:00", NOW + 3_600_000),
        ("1704067260000", NOW + 60_000),
    ],
)
def test_times_are_now_relative_or_absolute(text: str, ms: int) -> None:
    assert parse_when(text, "--arrive", NOW) == ms


@pytest.mark.parametrize(
    "text", ["", "+", "+-5", "+1e3", "+1.0005", "+ 5", "tomorrow", "2024-01-01T01:00", "-60"]
)
def test_unreadable_times_are_refused(text: str) -> None:
    with pytest.raises(WalletArgumentError):
        parse_when(text, "--depart", NOW)


# --- checks before anything is sent ------------------------------------------------------


def _cd_args(*extra: str, node: str, wallet: Path, kind: str = "charge") -> list[str]:
    base = {
        "--energy-wh": "1000",
        "--max-rate-w": "3000",
        "--arrive": "now",
        "--depart": "+5",
        "--meter": "peer-a-ev",
    }
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    args = ["wallet", "cd", kind, "--node", node, "--wallet", str(wallet), "--json"]
    for flag, value in {**base, **given}.items():
        args += [flag, value]
    return args


@pytest.mark.parametrize(
    "case",
    [
        (("--energy-wh", "0"), "invalid_cd_request", "--energy-wh"),
        (("--energy-wh", "-5"), "invalid_cd_request", "--energy-wh"),
        (("--energy-wh", "1.5"), "invalid_cd_request", "--energy-wh"),
        (("--max-rate-w", "0"), "invalid_cd_request", "--max-rate-w"),
        (("--max-rate-w", "10000001"), "invalid_cd_request", "--max-rate-w"),
        (("--device", "Toaster"), "invalid_cd_request", "unknown device"),
        (("--device", "PV"), "invalid_cd_request", "EV or Battery"),
        (("--arrive", "+10", "--depart", "+5"), "invalid_cd_request", "after arrival"),
        (("--arrive", "+5", "--depart", "+5"), "invalid_cd_request", "after arrival"),
        (("--arrive", "1000", "--depart", "2000"), "invalid_cd_request", "in the past"),
        (("--depart", "soon"), "bad_argument", "--depart"),
        (("--limit-price", "1.5"), "invalid_cd_request", "--limit-price"),
        (("--meter", " "), "invalid_cd_request", "--meter"),
        (("--meter", "m" * 65), "invalid_cd_request", "--meter"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_sent(
    cli: CliRunner,
    node: FakeNode,
    wallet: Wallet,
    case: tuple[tuple[str, ...], str, str],
) -> None:
    extra, code, words = case
    run = await cli(_cd_args(*extra, node=node.url, wallet=wallet.path))
    assert run.code == 1
    error = json.loads(run.out)["error"]
    assert error["code"] == code
    assert words in error["message"]
    assert node.requests == []  # not even the status


async def test_a_bad_request_without_json_is_a_sentence(
    cli: CliRunner, node: FakeNode, wallet: Wallet
) -> None:
    args = _cd_args("--energy-wh", "0", node=node.url, wallet=wallet.path)
    args.remove("--json")
    run = await cli(args)
    assert run.code == 1
    assert run.err.startswith("error: --energy-wh")
    assert node.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["wallet", "cd", "status", "xyz"],
        ["wallet", "schedule", "--interval", "-1"],
        ["wallet", "schedule", "--limit", "0"],
        ["wallet", "schedule", "--limit", "101"],
    ],
)
async def test_bad_reads_are_refused_before_asking(
    cli: CliRunner, node: FakeNode, argv: list[str]
) -> None:
    run = await cli([*argv, "--node", node.url, "--json"])
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "bad_argument"
    assert node.requests == []


# --- against a node ------------------------------------------------------------------------


@pytest.fixture
async def chain_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveNode]:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    async with live_node(tmp_path / "chain") as running:
        yield running


def _peer_wallet(live: LiveNode, i: int) -> str:
    return str(live.chain.wallet_path(live.chain.bundle.participants[i].name))


async def _json_run(cli: CliRunner, argv: list[str]) -> tuple[int, dict[str, Any]]:
    """Run with --json; the node's own log lines share this process's stdout, so the wallet's
    one JSON object is the last line that is one."""
    run = await cli([*argv, "--json"])
    lines = [line for line in run.out.splitlines() if line.startswith("{")]
    doc: dict[str, Any] = json.loads(lines[-1])
    return run.code, doc


async def test_charge_is_committed_scheduled_and_listed(
    cli: CliRunner, chain_node: LiveNode
) -> None:
    live = chain_node
    where = ["--node", live.url, "--wallet", _peer_wallet(live, 0)]
    owner = format_address(live.chain.address(0))
    started = time.time_ns() // 1_000_000
    code, sent = await _json_run(
        cli,
        [
            "wallet",
            "cd",
            "charge",
            *where,
            "--energy-wh",
            "500",
            "--max-rate-w",
            "3000",
            "--arrive",
            "now",
            "--depart",
            "+4",
            "--limit-price",
            "350000mc",  # the default tariffs' highest price: every hour is within it
            "--meter",
            "peer-a-ev",
        ],
    )
    assert code == 0, sent
    assert sent["status"] == "committed"
    assert sent["height"] >= 1
    assert sent["request_id"] == sent["hash"]
    request = sent["request"]
    assert request["id"] == sent["hash"]
    assert request["owner"] == owner
    assert (request["kind"], request["device"], request["energy_wh"]) == ("charge", "EV", 500)
    assert request["limit_price_mc_per_kwh"] == 350_000
    assert request["meter_id"] == "peer-a-ev"
    assert started <= request["arrival_ms"] < request["departure_ms"]
    assert request["departure_ms"] - request["arrival_ms"] == 4000
    assert request["first_interval"] < request["end_interval"]
    assert request["status"] in ("open", "complete")

    code, status = await _json_run(cli, ["wallet", "cd", "status", sent["hash"], *where])
    assert code == 0
    assert status["id"] == sent["hash"]
    assert status["receipts"] == []  # nothing settled before the readings' grace period

    code, listed = await _json_run(cli, ["wallet", "cd", "list", *where])
    assert code == 0
    assert listed["owner"] == owner
    assert [r["id"] for r in listed["requests"]] in ([sent["hash"]], [])  # open ones only

    # Wait until the chain finished it, then read the setpoints it committed.
    deadline = time.monotonic() + 15
    while status["status"] == "open":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
        _, status = await _json_run(cli, ["wallet", "cd", "status", sent["hash"], *where])
    assert status["status"] == "complete"
    assert (status["delivered_wh"], status["remaining_wh"]) == (500, 0)

    code, everything = await _json_run(cli, ["wallet", "cd", "list", "--all", *where])
    assert code == 0
    assert [r["id"] for r in everything["requests"]] == [sent["hash"]]
    _, only_open = await _json_run(cli, ["wallet", "cd", "list", *where])
    assert only_open["requests"] == []

    code, schedule = await _json_run(cli, ["wallet", "schedule", *where])
    assert code == 0
    assert schedule["decisions"]
    total = 0
    for decision in schedule["decisions"]:
        (entry,) = decision["entries"]
        assert (entry["request_id"], entry["owner"]) == (sent["hash"], owner)
        total += entry["rate_w"]
    assert total == status["cap_units"]
    newest = schedule["decisions"][0]
    code, one = await _json_run(
        cli, ["wallet", "schedule", "--interval", str(newest["interval"]), *where]
    )
    assert code == 0
    assert one["decisions"] == [newest]
    code, limited = await _json_run(cli, ["wallet", "schedule", "--limit", "1", *where])
    assert code == 0
    assert limited["decisions"] == [newest]

    # The tables a person reads.
    human = await cli(["wallet", "schedule", *where])
    assert human.code == 0
    assert "next interval" in human.out
    assert sent["hash"][:16] in human.out
    human = await cli(["wallet", "cd", "status", sent["hash"], *where])
    assert human.code == 0
    assert "complete" in human.out
    assert "intervals" in human.out
    human = await cli(["wallet", "cd", "list", "--all", *where])
    assert human.code == 0
    assert sent["hash"][:16] in human.out


async def test_discharge_from_a_battery_is_committed(cli: CliRunner, chain_node: LiveNode) -> None:
    live = chain_node
    where = ["--node", live.url, "--wallet", _peer_wallet(live, 1)]
    run = await cli(
        [
            "wallet",
            "cd",
            "discharge",
            *where,
            "--energy-wh",
            "400",
            "--max-rate-w",
            "2000",
            "--device",
            "battery",
            "--meter",
            "peer-b-battery",
            "--arrive",
            "now",
            "--depart",
            "+3",
        ]
    )
    assert run.code == 0, run.err
    assert "committed" in run.out
    assert "discharge Battery" in run.out
    assert "window" in run.out


async def test_the_chains_refusal_reaches_the_script_under_its_code(
    cli: CliRunner, chain_node: LiveNode
) -> None:
    """100 kWh at 3 kW within two or three 10-minute intervals cannot be charged."""
    live = chain_node
    where = ["--node", live.url, "--wallet", _peer_wallet(live, 0)]
    before = (live.node.head.height, live.node.state.root())
    argv = [
        "wallet",
        "cd",
        "charge",
        *where,
        "--energy-wh",
        "100000",
        "--max-rate-w",
        "3000",
        "--arrive",
        "now",
        "--depart",
        f"+{3 * INTERVAL_MS / 1000 + 0.5}",
        "--meter",
        "peer-a-ev",
    ]
    code, doc = await _json_run(cli, argv)
    assert code == 1
    assert doc["error"]["code"] == "cd_infeasible"
    assert doc["error"]["http_status"] == 422
    human = await cli(argv)
    assert human.code == 1
    assert "[cd_infeasible]" in human.err
    assert (live.node.head.height, live.node.state.root()) == before
    code, unknown = await _json_run(cli, ["wallet", "cd", "status", "00" * 32, *where])
    assert code == 1
    assert unknown["error"]["code"] == "not_found"
