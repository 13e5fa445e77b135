"""The operator page (/ui/, ADR 0038) in a real browser against a real node process.

One solo testnet for the module (two meters, a trade that settles with the seller's meter
silent, so a receipt falls short for ``missing_readings``): the page must load without a
console error, show the values the API gives, follow a new block over the websocket without a
reload, and say clearly when the API does not answer.  Screenshots go to the artifacts folder
(tests/browser/conftest.py); docs/img/operator-page.png is one of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import MeterReadings, PlaceOrder, Transaction, sign_tx
from tests.browser.support import BrowserPage, screenshot
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    node_for,
    pv_and_load_meters,
    submit,
    wait_committed,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("browser")]

SLOT_MS = 3000
GRACE_MS = 500
PRICE = 120_000
BRIDGE = SigningKey(sha256(b"browser-bridge"))
WAIT_S = 30.0


@dataclass
class Net:
    chain: Chain
    node: NodeProcess
    slot: int
    #: the next nonce of participant 2, who sends the transfers that make new blocks
    nonce: int = 0

    @property
    def url(self) -> str:
        return self.node.api_url

    def api(self, path: str) -> Any:
        status, body = http_get(self.url + path)
        assert status == 200, (path, status, body)
        return body

    def new_block(self) -> int:
        """Commit a transfer; return the height of its block."""
        tx = self.chain.transfer(2, 0, self.nonce, 1)
        self.nonce += 1
        return int(_commit(self.url, tx)["height"])


def _commit(url: str, tx: Transaction) -> dict[str, Any]:
    status, body = submit(url, tx)
    assert status == 202, body
    return wait_committed(url, tx.hash().hex())


def _load_readings(chain: Chain, start: int, end: int) -> Transaction:
    """The buyer's load meter read across the slot; the seller's PV meter sends nothing."""
    prev = GENESIS_READING_HASH
    readings = []
    for seq, (lo, hi, imported) in enumerate(((start - 1000, start, 700), (start, end, 1700))):
        record = ReadingRecord("load-b", lo, hi, imported, 0, 0, 2301, 0, seq, prev)
        readings.append(sign_reading(BRIDGE, chain.chain_id, record))
        prev = record.hash()
    return sign_tx(BRIDGE, chain.chain_id, 0, MeterReadings(tuple(readings)))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    chain = make_chain(
        tmp_path_factory.mktemp("operator-page") / "chain",
        block_interval_ms=200,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=60_000,
        settlement_grace_ms=GRACE_MS,
        genesis_changes=pv_and_load_meters(BRIDGE),
    )
    node = node_for(chain).start()
    try:
        markets = http_get(node.api_url + "/v1/markets")[1]
        slot = int(markets["first_open_slot"]["intraday"]) + 1
        start, end = slot * SLOT_MS, (slot + 1) * SLOT_MS
        sell = PlaceOrder(1, slot, 1, 2, PRICE, 1000)  # intraday, PV
        buy = PlaceOrder(1, slot, 0, 3, PRICE, 1000)  # intraday, load
        _commit(node.api_url, sign_tx(chain.peer(0), chain.chain_id, 0, sell))
        _commit(node.api_url, sign_tx(chain.peer(1), chain.chain_id, 0, buy))
        _commit(node.api_url, _load_readings(chain, start, end))
        net = Net(chain, node, slot)
        # After the slot's end and the grace period, the next block settles it.
        wait_until(lambda: time.time() * 1000 > end + GRACE_MS + 200, WAIT_S, "the slot to end")
        net.new_block()
        wait_until(lambda: net.api(f"/v1/settlements?slot={slot}")["receipts"], WAIT_S, "a receipt")
        yield net
    finally:
        node.terminate()


def _open(watched: BrowserPage, url: str) -> None:
    watched.page.goto(url + "/ui/")
    watched.page.wait_for_selector("body[data-loaded='true']", timeout=WAIT_S * 1000)


def _raw(watched: BrowserPage, selector: str) -> str | None:
    return watched.page.locator(selector).first.get_attribute("data-raw")


def _cells(watched: BrowserPage, row: str) -> list[str | None]:
    return [cell.get_attribute("data-raw") for cell in watched.page.locator(row + " td").all()]


def test_the_page_shows_what_the_api_says(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    _open(browser_page, net.url)
    page = browser_page.page
    status = net.api("/v1/status")
    assert page.locator("#chain-name").text_content() == status["chain_name"]
    assert page.locator("#node-name").text_content() == status["node"]
    wait_until(
        lambda: _raw(browser_page, "[data-k='height']") == str(net.api("/v1/status")["height"]),
        WAIT_S,
        "the page's height to be the node's",
    )
    validators = net.api("/v1/validators")["validators"]
    assert page.locator("#validators tbody tr").count() == len(validators)
    # participation: proposals and certificate signatures over the last 20 blocks
    height = int(net.api("/v1/status")["height"])
    blocks = net.api(f"/v1/blocks?from={max(1, height - 19)}&limit=20")["blocks"]
    for validator in validators:
        key = validator["public_key"]
        proposed = sum(b["header"]["proposer"] == key for b in blocks)
        signed = sum(
            any(s["validator"] == key for s in b["certificate"]["signatures"])
            for b in blocks
            if b["certificate"]
        )
        shown = _cells(browser_page, f"#validators tr[data-validator='{validator['name']}']")
        assert shown[3:5] == [str(proposed), str(signed)]

    # the slot that traded: one trade of 1 kWh at PRICE in the intraday book
    stats = net.api(f"/v1/stats/slots?from={net.slot}&count=1")["slots"][0]
    intraday = next(m for m in stats["markets"] if m["market"] == "intraday")
    assert (intraday["trades"], intraday["volume_wh"], intraday["vwap_mc_per_kwh"]) == (
        1,
        1000,
        PRICE,
    )
    wait_until(
        lambda: page.locator(f"#slot-markets tr[data-slot='{net.slot}']").count() > 0,
        WAIT_S,
        "the traded slot in the market table",
    )
    row = f"#slot-markets tr[data-slot='{net.slot}'][data-market='intraday']"
    cells = _cells(browser_page, row)
    assert cells[3:6] == [str(intraday["trades"]), str(intraday["volume_wh"]), str(PRICE)]

    settlement = stats["settlement"]
    assert settlement["shortfall_reasons"] == {"missing_readings": 1}
    row = f"#slot-settlement tr[data-slot='{net.slot}']"
    assert _cells(browser_page, row)[1:7] == [
        str(settlement[k])
        for k in (
            "receipts",
            "traded_wh",
            "delivered_wh",
            "taken_wh",
            "imbalance_wh",
            "shortfall_wh",
        )
    ]
    assert "missing_readings" in (page.locator(row + " td").nth(7).text_content() or "")

    for meter in net.api("/v1/meters")["meters"]:
        cells = _cells(browser_page, f"#meter-table tr[data-meter='{meter['meter_id']}']")
        expected = [meter["last_sequence"], meter["last_import_wh"], meter["last_export_wh"]]
        assert [cells[3], cells[5], cells[6]] == [None if v is None else str(v) for v in expected]

    screenshot(page, artifacts, "operator-page")
    assert browser_page.errors == []


def test_a_new_block_updates_the_page_over_the_websocket(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    _open(browser_page, net.url)
    page = browser_page.page
    page.wait_for_selector("#feed[data-feed='live']", timeout=WAIT_S * 1000)
    loads = page.evaluate("performance.getEntriesByType('navigation').length")
    height = net.new_block()
    page.wait_for_function(
        "h => Number(document.querySelector(\"[data-k='height']\").dataset.raw) >= h",
        arg=height,
        timeout=WAIT_S * 1000,
    )
    # the same document, not a reload, and the feed is still the websocket
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
    assert page.locator("#feed").get_attribute("data-feed") == "live"
    screenshot(page, artifacts, "operator-page-after-a-block")
    assert browser_page.errors == []


def test_the_api_down_is_said_not_shown_blank(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = browser_page.page
    # The page's files load; every API read and the feed fail as if the node had gone.
    page.route("**/v1/**", lambda route: route.abort("connectionrefused"))
    page.route_web_socket("**/v1/events", lambda ws: ws.close())
    page.goto(net.url + "/ui/")
    banner = page.locator("#banner")
    banner.wait_for(state="visible", timeout=WAIT_S * 1000)
    text = banner.text_content() or ""
    assert f"The node's API at {net.url} is not answering" in text
    assert "Nothing could be read yet" in text
    assert "Retrying every 3 s" in text
    assert page.locator("#feed").get_attribute("data-feed") != "live"
    screenshot(page, artifacts, "operator-page-api-down")
    # the failures are network errors, not script errors
    assert not [e for e in browser_page.errors if e.startswith("uncaught")]
    assert json.dumps(page.locator("body").get_attribute("data-loaded")) == "null"
