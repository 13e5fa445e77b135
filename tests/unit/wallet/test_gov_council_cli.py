"""``gridchain gov propose council`` against a live node (ADR 0043).

Why: the council replaces its members and threshold with the same commands it uses for
everything else; the chain's refusals (duplicate keys, a threshold above the members, the
governance key as a member) come back with their codes, and ``gov list`` shows the council in
office.  The node is a solo validator in this process with a council of three approving by two.
"""

from __future__ import annotations

import re

import pytest

from gridchain.protocol.crypto import SigningKey
from gridchain.wallet.keystore_file import read_keystore
from tests.unit.node.conftest import LiveNode
from tests.unit.wallet.conftest import CliRunner
from tests.unit.wallet.test_gov_cli import gov_json, live, member, printed, refused
from tests.unit.wallet.test_gov_params_cli import passed

__all__ = ["live"]

NEW = SigningKey(bytes([31]) * 32)


def council_key(live: LiveNode, i: int) -> str:
    key: str = read_keystore(live.chain.wallet_path(f"council-{i}"))["public_key"]
    return key


async def test_the_council_replaces_itself(live: LiveNode, cli: CliRunner) -> None:
    keep, new = council_key(live, 3), NEW.public_key.hex()
    proposal = await passed(
        cli, live, "council", "--member", keep, "--member", new, "--threshold", "1"
    )
    assert proposal["status"] == "applied", proposal
    assert proposal["kind"] == "UpdateCouncil"
    listing = await gov_json(cli, "list", "--node", live.url)
    assert (listing["council"], listing["threshold"]) == ([keep, new], 1)
    table = await cli(["gov", "list", "--node", live.url])
    assert "council: 2 members, threshold 1" in printed(table.out)
    # member 1 left: refused with the chain's code; member 3 alone now applies a proposal
    again = await refused(cli, "propose", "council", "--member", keep, "--threshold", "1",
                          *member(live, 1))  # fmt: skip
    assert again["code"] == "unregistered_sender"
    alone = await gov_json(
        cli, "propose", "council", "--member", keep, "--threshold", "1", *member(live, 3)
    )
    assert alone["proposal"]["status"] == "applied"


@pytest.mark.parametrize(
    ("members", "threshold", "code"),
    [
        ((1, 1), "1", "duplicate_council_member"),
        ((1, 2), "3", "invalid_council_threshold"),
        ((1, "governance"), "1", "council_role_conflict"),
    ],
)
async def test_a_wrong_council_fails_with_the_chains_code(
    live: LiveNode,
    cli: CliRunner,
    members: tuple[int | str, ...],
    threshold: str,
    code: str,
) -> None:
    governance = live.chain.bundle.genesis.governance_public_key
    argv = []
    for m in members:
        argv += ["--member", governance if m == "governance" else council_key(live, int(m))]
    proposal = await passed(cli, live, "council", *argv, "--threshold", threshold)
    assert (proposal["status"], proposal["error"]) == ("failed", code)
    listing = await gov_json(cli, "list", "--node", live.url)
    assert listing["threshold"] == 2
    assert len(listing["council"]) == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["council", "--member", "zz", "--threshold", "1"],
        ["council", "--member", "01" + "00" * 31, "--threshold", "1"],  # small order
        ["council", "--member", NEW.public_key.hex(), "--threshold", "0"],
    ],
)
async def test_bad_council_arguments_are_refused_before_any_traffic(
    live: LiveNode, cli: CliRunner, argv: list[str]
) -> None:
    error = await refused(cli, "propose", *argv, *member(live, 1))
    assert error["code"] == "bad_argument"
    _, body = await live.get("/v1/proposals")
    assert body["proposals"] == []


async def test_gateways_on_a_solo_chain_without_gateways_fail_with_the_chains_code(
    live: LiveNode, cli: CliRunner
) -> None:
    """The e2e (tests/e2e/test_gov_gateways.py) admits and removes one on PBFT; a solo
    validator without genesis gateways runs no peer network to link one with."""
    proposal = await passed(cli, live, "gateways", "--add", NEW.public_key.hex())
    assert (proposal["kind"], proposal["status"], proposal["error"]) == (
        "UpdateGateways",
        "failed",
        "gateway_change_unsupported",
    )
    run = await cli(["gov", "show", proposal["id"], "--node", live.url])
    assert re.search(r"^action +UpdateGateways \+1 -0 gateways$", printed(run.out), re.MULTILINE)


@pytest.mark.parametrize(
    "argv", [["gateways"], ["gateways", "--add", "zz"], ["gateways", "--remove", "00" * 31]]
)
async def test_bad_gateway_arguments_are_refused_before_any_traffic(
    live: LiveNode, cli: CliRunner, argv: list[str]
) -> None:
    error = await refused(cli, "propose", *argv, *member(live, 1))
    assert error["code"] == "bad_argument"
    _, body = await live.get("/v1/proposals")
    assert body["proposals"] == []
