"""``wallet market``, ``offers``, ``take`` and ids by prefix, each call its own process,
against one real solo node (issue 16 item 4).

Peer A rests two asks in one intraday book: 1 kWh at 110 and 2 kWh at 120 credits/kWh.  A buy
at 120 would meet the cheaper ask first, so ``take`` of the 120 ask is refused with the one
ahead named and nothing signed; ``take`` of the 110 ask buys exactly it (the trade's sell
order is that offer); peer A cannot take its own ask; and peer A cancels the other ask by the
16-digit prefix ``wallet orders`` shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gridchain.protocol.tx import PlaceOrder, Transaction, sign_tx
from tests.procs import (
    PASSWORD,
    REPO,
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    node_for,
    submit,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("wallet_offers")]

SLOT_MS = 60_000
INTRADAY = 1
SELL = 1
PV = 2


@dataclass
class Book:
    chain: Chain
    node: NodeProcess
    slot: int
    cheap: str  # the 110 ask's id
    dear: str  # the 120 ask's id

    def wallet(self, peer: str, *argv: str) -> tuple[int, dict[str, Any]]:
        """``gridchain wallet ARGV --json`` as peer; its exit code and JSON answer."""
        cmd = [sys.executable, "-m", "gridchain", "wallet", *argv, "--json"]
        cmd += ["--wallet", str(self.chain.wallet_path(peer)), "--node", self.node.api_url]
        done = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD},
            cwd=REPO,
            timeout=60,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    def api(self, path: str) -> Any:
        status, body = http_get(self.node.api_url + path)
        assert status == 200, (path, body)
        return body

    def book_args(self) -> tuple[str, ...]:
        return ("--market", "intraday", "--slot", str(self.slot))


def _commit(url: str, tx: Transaction) -> None:
    status, body = submit(url, tx)
    assert status == 202, body
    wait_committed(url, tx.hash().hex())


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Book]:
    chain = make_chain(
        tmp_path_factory.mktemp("wallet-offers") / "chain",
        block_interval_ms=100,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=10 * SLOT_MS,
    )
    node = node_for(chain).start()
    try:
        markets = http_get(node.api_url + "/v1/markets")[1]
        slot = int(markets["first_open_slot"]["intraday"]) + 1
        cheap = sign_tx(
            chain.peer(0), chain.chain_id, 0, PlaceOrder(INTRADAY, slot, SELL, PV, 110_000, 1000)
        )
        dear = sign_tx(
            chain.peer(0), chain.chain_id, 1, PlaceOrder(INTRADAY, slot, SELL, PV, 120_000, 2000)
        )
        _commit(node.api_url, cheap)
        _commit(node.api_url, dear)
        yield Book(chain, node, slot, cheap.hash().hex(), dear.hash().hex())
    finally:
        node.terminate()


def test_market_and_offers_show_what_the_chain_holds(book: Book) -> None:
    code, market = book.wallet("peer-b", "market")
    assert code == 0, market
    api = book.api("/v1/markets")
    assert market["first_open_slot"] == api["first_open_slot"]
    assert market["penalty_mc_per_kwh"] == api["penalty_mc_per_kwh"] == 100_000
    intraday = [b for b in market["books"] if b["market"] == "intraday" and b["slot"] == book.slot]
    assert [(b["best_ask"], b["ask_depth_wh"], b["best_bid"]) for b in intraday] == [
        (110_000, 3000, None)
    ]
    tariff = book.api(f"/v1/pool/prices?slot={market['tariff']['slot']}&count=1")["intervals"][0]
    assert market["tariff"]["r_buy_mc_per_kwh"] == tariff["r_buy_mc_per_kwh"]

    code, offers = book.wallet("peer-b", "offers", *book.book_args())
    assert code == 0, offers
    assert [(o["id"], o["priority"], o["display_wh"]) for o in offers["asks"]] == [
        (book.cheap, 1, 1000),
        (book.dear, 2, 2000),
    ]
    assert offers["bids"] == []


def test_take_buys_exactly_the_first_offer_and_ids_go_by_prefix(book: Book) -> None:
    buyer = book.chain.bundle.participants[1].address
    # the dearer ask is behind the cheaper one: refused, the cheaper one named, nothing signed
    code, refused = book.wallet("peer-b", "take", book.dear[:10], *book.book_args())
    assert (code, refused["error"]["code"]) == (1, "offer_not_first")
    assert book.cheap[:16] in refused["error"]["message"]
    assert book.api(f"/v1/accounts/{buyer}")["pending_nonce"] == 0

    # one's own offer is not taken
    code, own = book.wallet("peer-a", "take", book.cheap[:10], *book.book_args())
    assert (code, own["error"]["code"]) == (1, "own_offer")

    code, taken = book.wallet("peer-b", "take", book.cheap[:12], *book.book_args())
    assert code == 0, taken
    assert taken["taken"] is True
    assert (taken["order"]["price_mc_per_kwh"], taken["order"]["filled_wh"]) == (110_000, 1000)
    trades = book.api(f"/v1/trades?slot={book.slot}")["trades"]
    assert [(t["sell_order"], t["buy_order"], t["quantity_wh"]) for t in trades] == [
        (book.cheap, taken["order_id"], 1000)
    ]
    # now the dearer ask is first: its offer list says so
    assert [
        o["id"] for o in book.api(f"/v1/markets/intraday/slots/{book.slot}/offers")["asks"]
    ] == [book.dear]

    # ids by the prefix the lists show; an unknown one and a malformed one are refused
    code, unknown = book.wallet("peer-a", "order", "cancel", "0123456789abcdef")
    assert (code, unknown["error"]["code"]) == (1, "unknown_id")
    code, bad = book.wallet("peer-a", "order", "cancel", "xyz")
    assert (code, bad["error"]["code"]) == (1, "bad_argument")
    code, cancelled = book.wallet("peer-a", "order", "cancel", book.dear[:16])
    assert code == 0, cancelled
    assert cancelled["order_id"] == book.dear
    assert book.api(f"/v1/orders/{book.dear}")["status"] == "cancelled"


def test_an_empty_closed_book_has_no_offers(book: Book) -> None:
    """A book nobody used, long past its gate closure, answers `offers` plainly."""
    code, offers = book.wallet("peer-c", "offers", "--market", "day_ahead", "--slot", "1")
    assert code == 0, offers
    assert (offers["asks"], offers["bids"], offers["open"]) == ([], [], False)
