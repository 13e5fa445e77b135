"""``gridchain gov``, ``gridchain node init`` and ``genesis init --council`` against a live node.

Why: the council's commands are how a community admits a household without writing Python;
each action must build the record the chain applies, print a table for people and one JSON
object for scripts, and pass every refusal through with the chain's own code.  The node is a
solo validator in this process (tests/unit/node/conftest.py) whose genesis names a council of
three approving by two.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import open_keystore
from gridchain.wallet.keystore_file import read_keystore
from tests.procs import PASSWORD
from tests.unit.node.conftest import LiveNode, live_node
from tests.unit.wallet.conftest import CliRunner

NEWCOMER = SigningKey(bytes([21]) * 32)
BRIDGE = SigningKey(bytes([22]) * 32)


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveNode]:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    async with live_node(tmp_path / "chain", council=3, threshold=2) as running:
        yield running


#: The in-process node logs to the same stdout the command prints on.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def printed(out: str) -> str:
    """What the command printed, without the live node's log lines."""
    return "\n".join(line for line in out.splitlines() if not LOG_LINE.match(line))


def printed_json(out: str) -> Any:
    return json.loads(printed(out))


def member(live: LiveNode, i: int) -> list[str]:
    return ["--wallet", str(live.chain.wallet_path(f"council-{i}")), "--node", live.url]


async def gov_json(cli: CliRunner, *argv: str) -> dict[str, Any]:
    run = await cli(["gov", *argv, "--json"])
    assert run.code == 0, run.out + run.err
    found: dict[str, Any] = printed_json(run.out)
    return found


async def refused(cli: CliRunner, *argv: str) -> dict[str, Any]:
    run = await cli(["gov", *argv, "--json"])
    assert run.code == 1, run.out
    error: dict[str, Any] = printed_json(run.out)["error"]
    return error


async def passed(cli: CliRunner, live: LiveNode, *action: str) -> dict[str, Any]:
    """Propose as member 1, approve as member 2: the applied proposal."""
    proposed = await gov_json(cli, "propose", *action, *member(live, 1))
    approved = await gov_json(cli, "approve", proposed["proposal_id"], *member(live, 2))
    found: dict[str, Any] = approved["proposal"]
    return found


def admit_args(key: SigningKey = NEWCOMER, name: str = "peer-new") -> list[str]:
    return ["admit", "--public-key", key.public_key.hex(), "--name", name]


# --- propose, approve, list, show ----------------------------------------------------------


async def test_propose_then_approve_admits_a_household(live: LiveNode, cli: CliRunner) -> None:
    proposed = await gov_json(cli, "propose", *admit_args(), *member(live, 1))
    assert proposed["status"] == "committed"
    proposal = proposed["proposal"]
    assert proposal["id"] == proposed["proposal_id"] == proposed["hash"]
    assert proposal["status"] == "open"
    assert proposal["kind"] == "RegisterParticipant"
    assert proposal["record"]["name"] == "peer-new"
    assert proposal["threshold"] == 2
    assert proposal["expires_at_height"] > proposed["height"]
    approved = await gov_json(cli, "approve", proposal["id"], *member(live, 2))
    assert approved["proposal"]["status"] == "applied"
    assert approved["proposal"]["approvals"] == [
        read_keystore(live.chain.wallet_path(f"council-{i}"))["public_key"] for i in (1, 2)
    ]
    code, body = await live.get("/v1/participants")
    assert code == 200
    assert "peer-new" in {p["name"] for p in body["participants"]}


async def test_the_human_output_is_a_table(live: LiveNode, cli: CliRunner) -> None:
    run = await cli(["gov", "propose", *admit_args(), *member(live, 1)])
    assert run.code == 0, run.err
    table = printed(run.out)
    assert re.search(r"^outcome +open$", table, re.MULTILINE)
    assert re.search(r"^approvals +1 of 2$", table, re.MULTILINE)
    assert re.search(r"^action +RegisterParticipant peer-new ", table, re.MULTILINE)
    listing = await cli(["gov", "list", "--node", live.url])
    assert listing.code == 0, listing.err
    header, row = printed(listing.out).splitlines()[:2]
    assert header.split() == ["ID", "ACTION", "STATUS", "APPROVALS", "EXPIRES", "WHAT"]
    assert row.split()[1:4] == ["RegisterParticipant", "open", "1/2"]
    assert "council: 3 members, threshold 2" in listing.out
    proposal_id = (await gov_json(cli, "list", "--node", live.url))["proposals"][0]["id"]
    shown = await cli(["gov", "show", proposal_id, "--node", live.url])
    assert shown.code == 0, shown.err
    assert re.search(rf"^proposal +{proposal_id}$", printed(shown.out), re.MULTILINE)
    assert re.search(r"^approvals +1 of 2$", printed(shown.out), re.MULTILINE)


async def test_list_filters_by_status_and_says_when_there_are_none(
    live: LiveNode, cli: CliRunner
) -> None:
    empty = await cli(["gov", "list", "--node", live.url])
    assert printed(empty.out).startswith("no proposals")
    await passed(cli, live, *admit_args())
    await gov_json(cli, "propose", *admit_args(BRIDGE, "peer-two"), *member(live, 3))
    everything = await gov_json(cli, "list", "--node", live.url)
    assert sorted(p["status"] for p in everything["proposals"]) == ["applied", "open"]
    assert len(everything["council"]) == 3
    only_open = await gov_json(cli, "list", "--status", "open", "--node", live.url)
    assert [p["record"]["name"] for p in only_open["proposals"]] == ["peer-two"]


async def test_every_action_builds_the_record_the_chain_applies(
    live: LiveNode, cli: CliRunner
) -> None:
    admitted = await passed(cli, live, *admit_args())
    assert admitted["status"] == "applied"
    owner = live.chain.bundle.participants[0].address
    meter = await passed(
        cli, live, "meter", "--meter-id", "new-net", "--owner", owner, "--type", "Netmeter",
        "--bridge-key", BRIDGE.public_key.hex(), "--profile", "eastron-sdm630",
    )  # fmt: skip
    assert meter["status"] == "applied", meter
    code, body = await live.get("/v1/meters/new-net")
    assert code == 200
    assert body["bridge_key"] == BRIDGE.public_key.hex()
    rekey = await passed(
        cli, live, "replace-bridge", "--meter-id", "new-net", "--bridge-key",
        NEWCOMER.public_key.hex(),
    )  # fmt: skip
    assert rekey["status"] == "applied"
    code, body = await live.get("/v1/meters/new-net")
    assert body["bridge_key"] == NEWCOMER.public_key.hex()
    before = (await live.get(f"/v1/accounts/{owner}"))[1]["balance_mc"]
    assert (await passed(cli, live, "mint", "--to", owner, "--amount", "2"))["status"] == "applied"
    assert (await passed(cli, live, "burn", "--account", owner, "--amount", "0.5"))[
        "status"
    ] == "applied"
    after = (await live.get(f"/v1/accounts/{owner}"))[1]["balance_mc"]
    assert after - before == 1500
    removed = await passed(cli, live, "remove", "--address", owner)
    assert removed["status"] == "applied"
    code, body = await live.get(f"/v1/accounts/{owner}")
    assert body["registered"] is False


async def test_a_record_that_fails_shows_the_chains_error(live: LiveNode, cli: CliRunner) -> None:
    stranger = format_address(bytes(20))
    failed = await passed(cli, live, "mint", "--to", stranger, "--amount", "1")
    assert failed["status"] == "failed"
    assert failed["error"] == "unknown_recipient"
    run = await cli(["gov", "show", failed["id"], "--node", live.url])
    assert "failed (unknown_recipient)" in run.out


# --- refusals --------------------------------------------------------------------------------


async def test_refusals_carry_the_chains_code(live: LiveNode, cli: CliRunner) -> None:
    peer = ["--wallet", str(live.chain.wallet_path("peer-a")), "--node", live.url]
    assert (await refused(cli, "propose", *admit_args(), *peer))["code"] == "not_council_member"
    proposed = await gov_json(cli, "propose", *admit_args(), *member(live, 1))
    proposal_id = proposed["proposal_id"]
    again = await refused(cli, "approve", proposal_id, *member(live, 1))
    assert again["code"] == "already_approved"
    assert (await refused(cli, "approve", proposal_id, *peer))["code"] == "not_council_member"
    await gov_json(cli, "approve", proposal_id, *member(live, 2))
    assert (await refused(cli, "approve", proposal_id, *member(live, 3)))["code"] == (
        "proposal_closed"
    )
    unknown = await refused(cli, "approve", "ab" * 32, *member(live, 3))
    assert unknown["code"] == "unknown_proposal"
    assert (await refused(cli, "show", "ab" * 32, "--node", live.url))["code"] == (
        "unknown_proposal"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["propose", "admit", "--public-key", "zz", "--name", "x"],
        ["propose", "admit", "--public-key", "00" * 31, "--name", "x"],
        ["propose", "admit", "--public-key", "01" + "00" * 31, "--name", "x"],  # small order
        ["propose", "admit", "--public-key", NEWCOMER.public_key.hex(), "--name", "x" * 65],
        ["propose", "mint", "--to", format_address(bytes(20)), "--amount", "0"],
        ["propose", *admit_args(), "--expires-in", "0"],
        ["approve", "not-hex"],
    ],
)
async def test_bad_arguments_are_refused_before_any_traffic(
    live: LiveNode, cli: CliRunner, argv: list[str]
) -> None:
    run = await cli(["gov", *argv, *member(live, 1), "--json"])
    assert run.code == 1
    assert printed_json(run.out)["error"]["code"] in {"bad_argument", "bad_amount"}
    _, body = await live.get("/v1/proposals")
    assert body["proposals"] == []


# --- the API ---------------------------------------------------------------------------------


async def test_the_api_documents_and_answers_proposals_participants_and_meters(
    live: LiveNode,
) -> None:
    code, doc = await live.get("/openapi.json")
    assert code == 200
    assert "/v1/proposals" in doc["paths"]
    assert "/v1/proposals/{id}" in doc["paths"]
    assert "ProposalList" in doc["components"]["schemas"]
    for path in ("/v1/proposals", "/v1/participants", "/v1/meters"):
        code, _ = await live.get(path)
        assert code == 200, path
    code, _ = await live.get("/v1/proposals?status=bogus")
    assert code == 400
    code, _ = await live.get(f"/v1/proposals/{'cd' * 32}")
    assert code == 404


# --- node init and genesis init --council -----------------------------------------------------


async def test_node_init_makes_private_keys_and_prints_the_admission(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    out = tmp_path / "device"
    run = await cli(["node", "init", "--out", str(out), "--name", "peer-d", "--fast-kdf", "--json"])
    assert run.code == 0, run.err
    found = printed_json(run.out)
    assert json.loads((out / "admission.json").read_text()) == found
    key = open_keystore(read_keystore(out / "wallet.json"), "pw")
    assert found["participant"]["public_key"] == key.public_key.hex()
    for private in ("keys.toml", "wallet.json"):
        assert stat.S_IMODE((out / private).stat().st_mode) == 0o600
    keys = (out / "keys.toml").read_text()
    seed = keys.split('key_seed_hex = "')[1][:64]
    assert SigningKey(bytes.fromhex(seed)).public_key.hex() == found["bridge"]["public_key"]
    node_seed = keys.split('private_key = "')[1][:64]
    assert SigningKey(bytes.fromhex(node_seed)).public_key.hex() == found["validator"]["public_key"]
    assert found["council_commands"][0].startswith("gridchain gov propose admit --public-key")
    again = await cli(["node", "init", "--out", str(out), "--name", "peer-d", "--json"])
    assert again.code == 1
    assert printed_json(again.out)["error"]["code"] == "output_exists"
    human = await cli(
        ["node", "init", "--out", str(tmp_path / "d2"), "--name", "peer-e", "--fast-kdf"]
    )
    assert "Give the council admission.json" in human.out


@pytest.mark.parametrize(
    ("flags", "wallets", "threshold"),
    [
        ([], {"governance.json"}, 1),
        (["--council", "3", "--threshold", "2"], {f"council-{i}.json" for i in (1, 2, 3)}, 2),
        (["--council", "4"], {f"council-{i}.json" for i in (1, 2, 3, 4)}, 3),
    ],
)
async def test_genesis_init_writes_the_council_wallets(
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    flags: list[str],
    wallets: set[str],
    threshold: int,
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    out = tmp_path / "tn"
    argv = ["genesis", "init", "--out", str(out), "--participants", "1", "--fast-kdf", "--json"]
    run = await cli([*argv, *flags])
    assert run.code == 0, run.err
    governing = {p.name for p in (out / "wallets").iterdir()} - {"peer-a.json"}
    assert governing == wallets
    summary = printed_json(run.out)
    assert summary["council"]["threshold"] == threshold
    doc = json.loads((out / "genesis.json").read_text())
    assert doc["council_threshold"] == (threshold if flags else 0)


async def test_genesis_init_refuses_a_threshold_without_a_council(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    argv = ["genesis", "init", "--out", str(tmp_path / "x"), "--fast-kdf", "--json"]
    run = await cli([*argv, "--threshold", "2"])
    assert run.code == 1
    run = await cli([*argv, "--council", "2", "--threshold", "3"])
    assert run.code == 1
    assert "council_threshold" in printed_json(run.out)["error"]["message"]
