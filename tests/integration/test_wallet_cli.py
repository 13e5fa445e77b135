"""The wallet CLI as a user runs it (a separate process) against a real node process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gridchain.protocol.address import format_address
from tests.procs import PASSWORD, REPO, Chain, NodeProcess, http_get
from tests.procs import free_test_port as free_port

pytestmark = pytest.mark.integration


def wallet(
    chain: Chain, node_url: str, name: str, *argv: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDCHAIN_PASSWORD": password}
    cmd = [sys.executable, "-m", "gridchain", "wallet", *argv]
    cmd += ["--wallet", str(chain.wallet_path(name)), "--node", node_url]
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def test_transfer_commits_and_moves_money(solo_chain: Chain, solo_node: NodeProcess) -> None:
    to = solo_chain.bundle.participants[1].address
    done = wallet(
        solo_chain,
        solo_node.api_url,
        "peer-a",
        "transfer",
        "--to",
        to,
        "--amount",
        "12.345",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "committed"
    status, body = http_get(f"{solo_node.api_url}/v1/txs/{result['hash']}")
    assert status == 200
    assert body["tx"]["body"]["amount_mc"] == 12_345
    _, account = http_get(f"{solo_node.api_url}/v1/accounts/{to}")
    assert account["balance_mc"] == 1_000_000 + 12_345

    table = wallet(solo_chain, solo_node.api_url, "peer-b", "balance")
    assert table.returncode == 0, table.stderr
    assert "1012.345" in table.stdout


def test_wrong_password(solo_chain: Chain, solo_node: NodeProcess) -> None:
    to = solo_chain.bundle.participants[1].address
    done = wallet(
        solo_chain,
        solo_node.api_url,
        "peer-a",
        "transfer",
        "--to",
        to,
        "--amount",
        "1",
        password="nope",
    )
    assert done.returncode == 1
    assert "wrong password" in done.stderr
    assert "Traceback" not in done.stderr


def test_insufficient_balance_is_refused_before_signing(
    solo_chain: Chain, solo_node: NodeProcess
) -> None:
    to = solo_chain.bundle.participants[1].address
    done = wallet(
        solo_chain,
        solo_node.api_url,
        "peer-a",
        "transfer",
        "--to",
        to,
        "--amount",
        "5000000",
        "--json",
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "insufficient_balance"
    _, account = http_get(
        f"{solo_node.api_url}/v1/accounts/{solo_chain.bundle.participants[0].address}"
    )
    assert account["pending_nonce"] == 0


def test_bad_address_checksum(solo_chain: Chain, solo_node: NodeProcess) -> None:
    good = solo_chain.bundle.participants[1].address
    typo = good[:10] + ("1" if good[10] != "1" else "2") + good[11:]
    done = wallet(
        solo_chain, solo_node.api_url, "peer-a", "transfer", "--to", typo, "--amount", "1"
    )
    assert done.returncode == 1
    assert "checksum" in done.stderr


def test_unreachable_node(solo_chain: Chain) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = wallet(solo_chain, url, "peer-a", "balance")
    assert done.returncode == 1
    assert url in done.stderr
    assert "Traceback" not in done.stderr


def test_address_needs_no_node_or_password(solo_chain: Chain) -> None:
    done = wallet(solo_chain, "http://127.0.0.1:1", "peer-c", "address", password="irrelevant")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(solo_chain.bundle.participants[2].address)
    assert format_address(solo_chain.address(2)) == solo_chain.bundle.participants[2].address
