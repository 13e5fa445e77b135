"""Bad input over HTTP against a real node process: a 4xx with a typed error, nothing written.

One node serves the whole module; every test checks the exact error code, and the final test
checks that after all of it the chain's height, state root and mempool are as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transaction, Transfer, sign_tx
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    http_post,
    make_chain,
    node_for,
    submit,
    wait_committed,
)

# One worker runs the whole module in file order, so the last test sees every refusal.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("http_api")]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("api") / "chain", block_interval_ms=50)


@pytest.fixture(scope="module")
def node(chain: Chain) -> Iterator[NodeProcess]:
    proc = node_for(chain).start()
    # One committed transfer so replay and "committed" lookups have something to hit.
    tx = chain.transfer(0, 1, 0, 1_000)
    status, body = submit(proc.api_url, tx)
    assert status == 202, body
    wait_committed(proc.api_url, body["hash"])
    yield proc
    proc.terminate()


def post_raw(node: NodeProcess, body: bytes, content_type: str = "application/json") -> Any:
    return http_post(node.api_url + "/v1/txs", body, content_type)


def assert_error(result: tuple[int, Any], status: int, code: str) -> None:
    got_status, body = result
    assert got_status == status, body
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def snapshot(node: NodeProcess) -> tuple[int, str, int]:
    status, body = http_get(node.api_url + "/v1/status")
    assert status == 200
    return body["height"], body["state_root"], body["mempool"]["txs"]


def test_malformed_json(node: NodeProcess) -> None:
    assert_error(post_raw(node, b"{not json"), 400, "malformed_json")
    assert_error(post_raw(node, b"\xff\xfe"), 400, "malformed_json")


@pytest.mark.parametrize(
    "doc",
    [[], "tx", {"tx": 5}, {"tx": None}, {}, {"tx": "00", "extra": 1}, {"tx": "zz"}],
)
def test_wrong_request_shape(node: NodeProcess, doc: Any) -> None:
    assert_error(post_raw(node, json.dumps(doc).encode()), 400, "invalid_request")


def test_not_msgpack(node: NodeProcess) -> None:
    assert_error(post_raw(node, json.dumps({"tx": "c1"}).encode()), 400, "malformed")


def test_wrong_field_types(node: NodeProcess, chain: Chain) -> None:
    tx = chain.transfer(0, 1, 1, 5)
    wire = msgpack.unpackb(tx.encode())
    wire[3] = "one"  # nonce as a string
    bad = msgpack.packb(wire, use_bin_type=True)
    assert_error(post_raw(node, json.dumps({"tx": bad.hex()}).encode()), 400, "field_type")


def test_non_canonical_bytes(node: NodeProcess, chain: Chain) -> None:
    raw = chain.transfer(0, 1, 1, 5).encode()
    assert_error(
        post_raw(node, json.dumps({"tx": (raw + b"\x00").hex()}).encode()), 400, "non_canonical"
    )


def test_bad_signature(node: NodeProcess, chain: Chain) -> None:
    tx = chain.transfer(0, 1, 1, 5)
    forged = Transaction(tx.sender, tx.nonce, tx.body, bytes(64))
    assert_error(submit(node.api_url, forged), 400, "bad_signature")


def test_signature_for_another_chain(node: NodeProcess, chain: Chain) -> None:
    tx = sign_tx(chain.peer(0), b"\x07" * 32, 1, Transfer(chain.address(1), 5))
    assert_error(submit(node.api_url, tx), 400, "bad_signature")


def test_unregistered_sender(node: NodeProcess, chain: Chain) -> None:
    stranger = SigningKey(b"\x42" * 32)
    tx = sign_tx(stranger, chain.chain_id, 0, Transfer(chain.address(1), 5))
    assert_error(submit(node.api_url, tx), 403, "unregistered_sender")


def test_replayed_nonce(node: NodeProcess, chain: Chain) -> None:
    assert_error(submit(node.api_url, chain.transfer(0, 1, 0, 1_000)), 409, "nonce_replayed")


def test_nonce_gap(node: NodeProcess, chain: Chain) -> None:
    assert_error(submit(node.api_url, chain.transfer(0, 1, 7, 5)), 422, "nonce_gap")


def test_insufficient_balance(node: NodeProcess, chain: Chain) -> None:
    tx = chain.transfer(1, 2, 0, 10**12)
    assert_error(submit(node.api_url, tx), 422, "insufficient_balance")


def test_zero_amount(node: NodeProcess, chain: Chain) -> None:
    assert_error(submit(node.api_url, chain.transfer(1, 2, 0, 0)), 422, "invalid_amount")


def test_oversize_body(node: NodeProcess) -> None:
    body = json.dumps({"tx": "00" * 300_000}).encode()
    assert_error(post_raw(node, body), 413, "oversize")


def test_unknown_routes_and_methods(node: NodeProcess) -> None:
    assert_error(http_get(node.api_url + "/v1/nothing"), 404, "not_found")
    assert_error(http_get(node.api_url + "/"), 404, "not_found")
    assert_error(http_post(node.api_url + "/v1/status", b"{}"), 405, "method_not_allowed")


def test_bad_lookups(node: NodeProcess, chain: Chain) -> None:
    api = node.api_url
    assert_error(http_get(api + "/v1/txs/xyz"), 400, "invalid_request")
    assert_error(http_get(api + "/v1/txs/" + "ab" * 32), 404, "not_found")
    assert_error(http_get(api + "/v1/blocks/-1"), 400, "invalid_request")
    assert_error(http_get(api + "/v1/blocks/0"), 404, "not_found")
    assert_error(http_get(api + "/v1/blocks/999999"), 404, "not_found")
    assert_error(http_get(api + "/v1/accounts/gc1nothex"), 400, "bad_address")
    good = format_address(chain.address(0))
    typo = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert_error(http_get(api + "/v1/accounts/" + typo), 400, "bad_address_checksum")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_random_bytes_never_500(node: NodeProcess, data: bytes) -> None:
    for content_type in ("application/msgpack", "application/json"):
        status, body = post_raw(node, data, content_type)
        assert 400 <= status < 500, body
        assert set(body) == {"error"}


def test_reads_are_well_formed(node: NodeProcess, chain: Chain) -> None:
    status, block = http_get(node.api_url + "/v1/blocks/1")
    assert status == 200
    assert block["txs"][0]["body"]["to"] == format_address(chain.address(1))
    assert block["certificate"]["vote"]["block_hash"] == block["hash"]
    status, account = http_get(node.api_url + "/v1/accounts/" + format_address(chain.address(1)))
    assert status == 200
    assert account["balance_mc"] == 1_000_000 + 1_000
    status, text = http_get(node.api_url + "/metrics")
    assert status == 200
    assert "gridchain_blocks_committed_total" in text
    ledger = [
        line for line in text.splitlines() if line.startswith("gridchain_ledger_memory_bytes ")
    ]
    assert len(ledger) == 1
    assert float(ledger[0].split()[1]) > 0  # LevelDB's own estimate
    status, spec = http_get(node.api_url + "/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.")


def test_zz_bad_input_wrote_nothing(node: NodeProcess, chain: Chain) -> None:
    """Runs last in this module: after every refusal above, the chain is exactly as it was."""
    height, root, pending = snapshot(node)
    assert (height, pending) == (1, 0)
    _status, block = http_get(node.api_url + "/v1/blocks/1")
    assert block["header"]["state_root"] == root
    # The refused senders' nonces did not move either.
    for i in range(3):
        _, account = http_get(node.api_url + "/v1/accounts/" + format_address(chain.address(i)))
        assert account["nonce"] == (1 if i == 0 else 0)
        assert account["pending_nonce"] == account["nonce"]


def test_openapi_covers_every_route(tmp_path: Path) -> None:
    from gridchain.api.openapi import openapi_document
    from gridchain.node.api import build_app
    from gridchain.node.config import load_config
    from gridchain.node.runtime import Node

    chain = make_chain(tmp_path / "chain")
    node = Node(load_config(chain.config_path()))
    try:
        app = build_app(node)
        served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    finally:
        node.store.close()
    assert served == set(openapi_document()["paths"])
