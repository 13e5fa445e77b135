"""The batch form of POST /v1/txs admits each transaction on its own, in order."""

from __future__ import annotations

import json

import pytest

from tests.procs import Chain, NodeProcess, http_get, http_post, wait_committed

pytestmark = pytest.mark.integration


def test_batch_admits_in_order_and_refuses_items_alone(
    solo_chain: Chain, solo_node: NodeProcess
) -> None:
    good = [solo_chain.transfer(0, 1, n, 10 + n) for n in range(3)]
    replay = good[0]
    gap = solo_chain.transfer(1, 2, 5, 1)
    body = {"txs": [tx.encode().hex() for tx in [*good, replay, gap]] + ["zz"]}
    status, answer = http_post(solo_node.api_url + "/v1/txs", json.dumps(body).encode())
    assert status == 400, answer  # a malformed item makes the whole request malformed
    assert answer["error"]["code"] == "invalid_request"

    body["txs"] = body["txs"][:-1]
    status, answer = http_post(solo_node.api_url + "/v1/txs", json.dumps(body).encode())
    assert status == 200, answer
    results = answer["results"]
    assert [r.get("status") for r in results[:3]] == ["pending"] * 3
    assert results[3]["error"]["code"] == "duplicate_tx"
    assert results[4]["error"]["code"] == "nonce_gap"
    for item, tx in zip(results[:3], good, strict=True):
        assert item["hash"] == tx.hash().hex()
        wait_committed(solo_node.api_url, item["hash"])
    _, account = http_get(
        f"{solo_node.api_url}/v1/accounts/{solo_chain.bundle.participants[1].address}"
    )
    assert account["balance_mc"] == 1_000_000 + 10 + 11 + 12


@pytest.mark.parametrize("doc", [{"txs": []}, {"txs": "00"}, {"txs": [5]}, {"tx": "00", "txs": []}])
def test_malformed_batches(solo_node: NodeProcess, doc: object) -> None:
    status, answer = http_post(solo_node.api_url + "/v1/txs", json.dumps(doc).encode())
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
