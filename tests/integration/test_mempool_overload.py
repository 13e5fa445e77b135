"""A transaction a full peer refused is not lost: the validator holding it floods it again.

Before node/reannounce.py, gossip sent each transaction once.  A PBFT primary whose pool was
full refused it and did not remember it; nobody sent it again, so it never reached a block, and
every later transaction of its sender was refused there as a nonce gap: only transactions
submitted to the primary itself ever committed (found by issue 12's overload test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    http_post,
    make_chain,
    node_for,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pbft_cluster")]

N = 4
SMALL_POOL = 2
TXS = 8


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    """Validators 0-2 (the primary among them) hold 2 transactions; validator 3 holds many."""
    chain = make_chain(tmp_path / "chain", validators=N, engine="pbft", block_interval_ms=100)
    nodes = [node_for(chain, i) for i in range(N)]
    for node in nodes[:3]:
        node.env["GRIDCHAIN_MEMPOOL__MAX_TXS"] = str(SMALL_POOL)
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_healthy()
    yield chain, nodes
    for node in nodes:
        node.terminate()


def connected(node: NodeProcess) -> int:
    _, body = http_get(node.api_url + "/v1/status")
    return sum(1 for p in body.get("peers", []) if p.get("connected"))


def test_transactions_refused_by_a_full_primary_commit_later(
    cluster: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = cluster
    entry = nodes[3]
    wait_for(lambda: all(connected(n) == N - 1 for n in nodes), 30, nodes)
    _, status = http_get(entry.api_url + "/v1/status")
    primary = status["consensus"]["primary"]
    assert primary != chain.bundle.validators[3].key.public_key.hex(), (
        "the entry validator must not be the primary for this test to mean anything"
    )
    txs = [chain.transfer(0, 1, nonce, 1 + nonce) for nonce in range(TXS)]
    # One batch: the entry admits all eight and gossips them back to back, so the primary's
    # pool of two is full when most of them arrive and it refuses them.
    body = {"txs": [tx.encode().hex() for tx in txs]}
    code, answer = http_post(entry.api_url + "/v1/txs", json.dumps(body).encode())
    assert code == 200, answer
    assert [r.get("status") for r in answer["results"]] == ["pending"] * TXS
    for tx in txs:
        wait_committed(entry.api_url, tx.hash().hex(), timeout_s=90)
    _, metrics = http_get(entry.api_url + "/metrics")
    assert reannounced(metrics) > 0, "the primary took everything the first time; no overload"
    account = chain.bundle.participants[1].address
    _, entry_account = http_get(f"{entry.api_url}/v1/accounts/{account}")
    assert entry_account["balance_mc"] == 1_000_000 + sum(1 + n for n in range(TXS))


def reannounced(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("gridchain_txs_reannounced_total "):
            return float(line.split()[1])
    raise AssertionError("gridchain_txs_reannounced_total is missing from /metrics")
