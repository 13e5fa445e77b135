"""Sealed transactions and sealed reads against a real node process (docs/sealed.md).

Why: a relaying gateway must see only the envelope of a sealed order and only ciphertext of a
private read; the owner must get its data, and a replayed request, someone else's request, an
expired one or one valid for too long must be refused with a typed error that changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.api import models as m
from gridchain.protocol.address import address_of
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.sealed import seal_tx
from gridchain.protocol.sealed_read import (
    MAX_READ_WINDOW_MS,
    ReadKind,
    ReadQuery,
    SignedRead,
    open_reply,
    sign_read,
)
from gridchain.protocol.tx import Market, PlaceOrder, Side, Transaction
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

pytestmark = pytest.mark.integration

SLOT_MS = 60_000
#: Seven digits: the chance that hex text contains the price by accident is about 1e-5.
PRICE, QUANTITY = 1_234_567, 500


@pytest.fixture(scope="module")
def sealed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Chain, NodeProcess]]:
    directory = tmp_path_factory.mktemp("sealed") / "chain"
    chain = make_chain(directory, block_interval_ms=50, slot_length_ms=SLOT_MS, sealed=True)
    node = node_for(chain)
    node.env["GRIDCHAIN_API__SEALED_READS_ONLY"] = "true"  # private data is read sealed only
    node.start()
    yield chain, node
    node.terminate()


def _keys(node: NodeProcess) -> tuple[bytes, ...]:
    _, doc = http_get(node.api_url + "/v1/validators")
    return tuple(bytes.fromhex(v["encryption_key"]) for v in doc["validators"])


#: The slot the module's sealed order is for (set by the ``placed`` fixture).
PLACED_SLOT: list[int] = []


def _sealed_order(chain: Chain, node: NodeProcess, who: int, nonce: int) -> Transaction:
    _, markets = http_get(node.api_url + "/v1/markets")
    slot = int(markets["first_open_slot"]["intraday"]) + 2
    PLACED_SLOT.append(slot)
    body = PlaceOrder(int(Market.INTRADAY), slot, int(Side.BUY), 3, PRICE, QUANTITY, 0, 0)
    return seal_tx(
        chain.peer(who), chain.chain_id, nonce, body, _keys(node), content_key=os.urandom(32)
    )


def _request(
    chain: Chain,
    signer: SigningKey,
    account: bytes,
    kind: ReadKind = ReadKind.ORDERS,
    *,
    valid_for_ms: int = 30_000,
) -> tuple[SignedRead, X25519PrivateKey]:
    reply_key = X25519PrivateKey.generate()
    query = ReadQuery(
        account=account,
        kind=int(kind),
        meter_id="",
        request_id=os.urandom(16),
        valid_until_ms=time.time_ns() // 1_000_000 + valid_for_ms,
        reply_key=public_bytes(reply_key),
    )
    return sign_read(signer, chain.chain_id, query), reply_key


def _post(node: NodeProcess, request: SignedRead) -> tuple[int, Any, str]:
    body = json.dumps({"request": request.encode().hex()}).encode()
    status, doc = http_post(node.api_url + "/v1/sealed-reads", body)
    return status, doc, json.dumps(doc)


@pytest.fixture(scope="module")
def placed(sealed_node: tuple[Chain, NodeProcess]) -> Transaction:
    chain, node = sealed_node
    tx = _sealed_order(chain, node, 0, 0)
    status, body = submit(node.api_url, tx)
    assert status == 202, body
    wait_committed(node.api_url, tx.hash().hex())
    return tx


def test_the_stored_and_served_transaction_carries_no_price_or_quantity(
    sealed_node: tuple[Chain, NodeProcess], placed: Transaction
) -> None:
    _, node = sealed_node
    _, record = http_get(f"{node.api_url}/v1/txs/{placed.hash().hex()}")
    assert record["tx"]["kind"] == "SealedTx"
    served = json.dumps(record)
    assert "price_mc_per_kwh" not in served
    assert str(PRICE) not in served
    assert "quantity_wh" not in served


def test_the_owner_reads_its_orders_sealed(
    sealed_node: tuple[Chain, NodeProcess], placed: Transaction
) -> None:
    chain, node = sealed_node
    outcomes_request, key = _request(
        chain, chain.peer(0), chain.address(0), ReadKind.SEALED_OUTCOMES
    )
    status, doc, _ = _post(node, outcomes_request)
    assert status == 200, doc
    outcomes = m.SealedOutcomeList.model_validate_json(
        open_reply(chain.chain_id, outcomes_request, key, bytes.fromhex(doc["sealed"]))
    )
    assert [(o.tx_hash, o.status) for o in outcomes.outcomes] == [
        (placed.hash().hex(), "applied")
    ], outcomes
    request, reply_key = _request(chain, chain.peer(0), chain.address(0))
    status, doc, text = _post(node, request)
    assert status == 200, doc
    reply = m.SealedReply.model_validate(doc)
    assert reply.kind == "orders"
    assert str(PRICE) not in text  # what a relay sees is ciphertext
    plain = open_reply(chain.chain_id, request, reply_key, bytes.fromhex(reply.sealed))
    orders = m.OrderList.model_validate_json(plain)
    (order,) = orders.orders
    assert (order.id, order.price_mc_per_kwh, order.quantity_wh) == (
        placed.hash().hex(),
        PRICE,
        QUANTITY,
    )


def test_a_replayed_request_is_refused(sealed_node: tuple[Chain, NodeProcess]) -> None:
    chain, node = sealed_node
    request, _ = _request(chain, chain.peer(1), chain.address(1), ReadKind.TRADES)
    assert _post(node, request)[0] == 200
    status, doc, _ = _post(node, request)
    assert (status, doc["error"]["code"]) == (409, "read_replayed")


def test_someone_elses_request_is_refused(sealed_node: tuple[Chain, NodeProcess]) -> None:
    chain, node = sealed_node
    request, _ = _request(chain, chain.peer(1), chain.address(0))  # peer 1 asks for peer 0's
    status, doc, _ = _post(node, request)
    assert (status, doc["error"]["code"]) == (403, "not_owner")


def test_a_request_with_a_forged_signature_is_refused(
    sealed_node: tuple[Chain, NodeProcess],
) -> None:
    chain, node = sealed_node
    request, _ = _request(chain, chain.peer(0), chain.address(0))
    forged = SignedRead(request.signer, request.query, bytes(64))
    status, doc, _ = _post(node, forged)
    assert (status, doc["error"]["code"]) == (400, "bad_signature")


def test_an_expired_request_is_refused(sealed_node: tuple[Chain, NodeProcess]) -> None:
    chain, node = sealed_node
    request, _ = _request(chain, chain.peer(0), chain.address(0), valid_for_ms=-5_000)
    status, doc, _ = _post(node, request)
    assert (status, doc["error"]["code"]) == (400, "read_expired")


def test_a_request_valid_for_too_long_is_refused(sealed_node: tuple[Chain, NodeProcess]) -> None:
    chain, node = sealed_node
    request, _ = _request(
        chain, chain.peer(0), chain.address(0), valid_for_ms=MAX_READ_WINDOW_MS + 60_000
    )
    status, doc, _ = _post(node, request)
    assert (status, doc["error"]["code"]) == (400, "read_window")


def test_a_reply_does_not_open_for_another_request(
    sealed_node: tuple[Chain, NodeProcess], placed: Transaction
) -> None:
    chain, node = sealed_node
    first, key = _request(chain, chain.peer(0), chain.address(0))
    _, doc, _ = _post(node, first)
    other = SignedRead(first.signer, first.query, first.signature)
    assert other == first  # the same request opens ...
    open_reply(chain.chain_id, other, key, bytes.fromhex(doc["sealed"]))
    second, _ = _request(chain, chain.peer(0), chain.address(0))
    with pytest.raises(Exception, match=r"cannot open|reply key"):
        open_reply(chain.chain_id, second, key, bytes.fromhex(doc["sealed"]))


def test_a_malformed_request_is_refused(sealed_node: tuple[Chain, NodeProcess]) -> None:
    _, node = sealed_node
    status, doc = http_post(node.api_url + "/v1/sealed-reads", b'{"request": "00ff"}')
    assert status == 400
    assert doc["error"]["code"] in {"malformed", "non_canonical", "unknown_type", "field_count"}
    status, doc = http_post(node.api_url + "/v1/sealed-reads", b'{"nope": 1}')
    assert (status, doc["error"]["code"]) == (400, "invalid_request")


def test_a_sealed_order_whose_body_does_not_apply_is_recorded_and_uses_the_nonce(
    sealed_node: tuple[Chain, NodeProcess],
) -> None:
    chain, node = sealed_node
    _, account = http_get(f"{node.api_url}/v1/accounts/{chain.bundle.participants[2].address}")
    nonce = int(account["pending_nonce"])
    body = PlaceOrder(
        int(Market.INTRADAY), 1, int(Side.BUY), 3, PRICE, QUANTITY, 0, 0
    )  # slot 1: long closed
    tx = seal_tx(
        chain.peer(2), chain.chain_id, nonce, body, _keys(node), content_key=os.urandom(32)
    )
    status, doc = submit(node.api_url, tx)
    assert status == 202, doc
    wait_committed(node.api_url, tx.hash().hex())
    _, account = http_get(f"{node.api_url}/v1/accounts/{chain.bundle.participants[2].address}")
    assert account["nonce"] == nonce + 1
    request, key = _request(chain, chain.peer(2), chain.address(2), ReadKind.SEALED_OUTCOMES)
    _, doc, _ = _post(node, request)
    outcomes = m.SealedOutcomeList.model_validate_json(
        open_reply(chain.chain_id, request, key, bytes.fromhex(doc["sealed"]))
    )
    (outcome,) = [o for o in outcomes.outcomes if o.tx_hash == tx.hash().hex()]
    assert outcome.status == "refused"
    assert outcome.code != ""
    assert address_of(chain.peer(2).public_key) == chain.address(2)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/orders?address={address}",
        "/v1/orders/{order}",
        "/v1/trades?address={address}",
        "/v1/trades",
        "/v1/settlements?address={address}",
        "/v1/events",
    ],
)
def test_a_sealed_reads_only_node_refuses_the_open_private_routes(
    sealed_node: tuple[Chain, NodeProcess], placed: Transaction, path: str
) -> None:
    chain, node = sealed_node
    url = node.api_url + path.format(
        address=chain.bundle.participants[0].address, order=placed.hash().hex()
    )
    status, doc = http_get(url)
    assert (status, doc["error"]["code"]) == (403, "sealed_reads_only")


def test_public_data_stays_open_on_a_sealed_reads_only_node(
    sealed_node: tuple[Chain, NodeProcess], placed: Transaction
) -> None:
    _, node = sealed_node
    status, book = http_get(f"{node.api_url}/v1/markets/intraday/slots/{PLACED_SLOT[0]}/book")
    assert status == 200
    assert book["bids"][0]["price_mc_per_kwh"] == PRICE  # the book is public (aggregated)
    assert http_get(node.api_url + "/v1/status")[0] == 200
    assert http_get(node.api_url + "/v1/blocks/latest")[0] == 200
