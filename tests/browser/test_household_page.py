"""The household page (``/`` of ``gridchain agent run``, ADR 0042) in a real browser.

One solo testnet for the module (a PV and a load meter, an EV meter per participant) and one
agent process holding participant 0's keystore, with its planned orders switched off
(``act_slots = 0``) so every order in these tests is one the page placed.  Before the agent
starts, participant 0 sells 1 kWh to participant 1 in a slot whose PV meter stays silent, so a
receipt settles short for ``missing_readings``; participant 1 leaves an ask and a bid resting
in a later book for the page to take.

The page must load without a console error, show what the node's API says (balance, open
orders, the receipt and why it fell short), follow a new trade without a reload, place a sell
that the operator page's book then shows, refuse bad input with a clear message and change
nothing, work on a phone's screen, and say clearly when the node does not answer.
Screenshots go to the artifacts folder (tests/browser/conftest.py); docs/img/household-page.png
is ``household-page-after-a-take`` and docs/img/household-page-phone.png ``household-page-phone``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gridchain.agent.history import write_csv
from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.tx import PlaceOrder, Transaction, sign_tx
from tests.browser.conftest import VIEWPORT
from tests.browser.support import BrowserPage, screenshot
from tests.helpers import cd_meters
from tests.procs import (
    PASSWORD,
    REPO,
    Chain,
    NodeProcess,
    die_with_parent,
    free_port_block,
    http_get,
    make_chain,
    node_for,
    pv_and_load_meters,
    submit,
    wait_committed,
    wait_until,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("browser")]

SLOT_MS = 3000
GRACE_MS = 500
BRIDGE = SigningKey(sha256(b"household-browser-bridge"))
WAIT_S = 30.0
INTERVAL_MS = 900_000
DAY_MS = 86_400_000
INTRADAY, BUY, SELL, PV, LOAD = 1, 0, 1, 2, 3
#: participant 1's resting offers in a later book: the page takes the ask
ASK_PRICE, BID_PRICE = 140_000, 110_000
PHONE = {"width": 390, "height": 844}


@dataclass
class Net:
    chain: Chain
    node: NodeProcess
    agent_url: str
    #: an agent whose node is not running
    orphan_url: str
    traded_slot: int
    #: the later book with participant 1's ask and bid
    book_slot: int

    @property
    def url(self) -> str:
        return self.node.api_url

    @property
    def address(self) -> str:
        return self.chain.bundle.participants[0].address

    def api(self, path: str, base: str | None = None) -> Any:
        status, body = http_get((base or self.url) + path)
        assert status == 200, (path, status, body)
        return body

    def account(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api(f"/v1/accounts/{self.address}")
        return result

    def open_orders(self) -> list[str]:
        orders = self.api(f"/v1/orders?address={self.address}&status=open")["orders"]
        return sorted(o["id"] for o in orders)

    def agent_actions(self) -> int:
        return int(self.api("/agent/health", self.agent_url)["actions"])


def _meters(bundle: GenesisBundle) -> dict[str, Any]:
    return {"meters": pv_and_load_meters(BRIDGE)(bundle)["meters"] + cd_meters(bundle)}


def _commit(url: str, tx: Transaction) -> dict[str, Any]:
    status, body = submit(url, tx)
    assert status == 202, body
    return wait_committed(url, tx.hash().hex())


def _history(path: Path, now_ms: int) -> None:
    """Ten whole days of a PV house: a daylight sine of 3 kW and a 0.6 kW load."""
    per_day = DAY_MS // INTERVAL_MS
    today = now_ms // DAY_MS
    pv: dict[int, float] = {}
    load: dict[int, float] = {}
    for day in range(today - 10, today):
        for i in range(per_day):
            hour = i * 24 / per_day
            k = day * per_day + i
            pv[k] = max(0.0, 3.0 * math.sin(math.pi * (hour - 6) / 12)) if 6 < hour < 18 else 0.0
            load[k] = 0.6 + 0.2 * (i % 4) / 4
    write_csv(path, INTERVAL_MS, pv, load)


def _start_agent(directory: Path, *, name: str, node_url: str, wallet: Path, port: int) -> Any:
    directory.mkdir(parents=True)
    _history(directory / "history.csv", time.time_ns() // 1_000_000)
    config = directory / "agent.toml"
    config.write_text(
        f'name = "{name}"\nnode_url = "{node_url}"\nwallet = "{wallet}"\n'
        f'data_dir = "{directory / "data"}"\n'
        f"[api]\nport = {port}\n"
        f'[history]\nfile = "{directory / "history.csv"}"\ndays = 10\n'
        '[plan]\nhorizon_slots = 12\nact_slots = 0\ncycle_seconds = 2\nmarket = "intraday"\n'
        "[limits]\nmax_sell_wh_per_slot = 2000\nmax_buy_wh_per_slot = 2000\n"
        "min_sell_price_mc_per_kwh = 100000\nmax_buy_price_mc_per_kwh = 300000\n"
        '[ev]\nmeter = "peer-0-ev"\ncapacity_kwh = 40\nmax_charge_kw = 7\n',
        encoding="utf-8",
    )
    log = (directory / "agent.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "gridchain", "agent", "run", "--config", str(config)],
        cwd=REPO, env={**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD}, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,  # noqa: PLW1509
    )  # fmt: skip


def _answers(url: str) -> bool:
    status, _ = http_get(url + "/agent/health")
    return status == 200


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("household-page")
    chain = make_chain(
        root / "chain",
        block_interval_ms=200,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=90_000,
        settlement_grace_ms=GRACE_MS,
        genesis_changes=_meters,
    )
    node = node_for(chain).start()
    agents: list[Any] = []
    try:
        url = node.api_url
        first = int(http_get(url + "/v1/markets")[1]["first_open_slot"]["intraday"])
        traded, book = first + 1, first + 25
        for peer, nonce, order in (
            (0, 0, PlaceOrder(INTRADAY, traded, SELL, PV, 120_000, 1000)),
            (1, 0, PlaceOrder(INTRADAY, traded, BUY, LOAD, 120_000, 1000)),
            (1, 1, PlaceOrder(INTRADAY, book, SELL, PV, ASK_PRICE, 400)),
            (1, 2, PlaceOrder(INTRADAY, book, BUY, LOAD, BID_PRICE, 300)),
        ):
            _commit(url, sign_tx(chain.peer(peer), chain.chain_id, nonce, order))
        end = (traded + 1) * SLOT_MS
        wait_until(lambda: time.time() * 1000 > end + GRACE_MS + 200, WAIT_S, "the slot to end")
        _commit(url, chain.transfer(2, 0, 0, 1))  # a block after the grace settles the slot
        wait_until(
            lambda: http_get(url + f"/v1/settlements?slot={traded}")[1]["receipts"],
            WAIT_S,
            "a receipt",
        )
        port = free_port_block(2)
        wallet = chain.wallet_path(chain.bundle.participants[0].name)
        agents.append(
            _start_agent(root / "agent", name="peer-a", node_url=url, wallet=wallet, port=port)
        )
        dead = f"http://127.0.0.1:{free_port_block(1)}"  # nothing listens there
        agents.append(
            _start_agent(
                root / "orphan", name="peer-a", node_url=dead, wallet=wallet, port=port + 1
            )
        )
        net = Net(
            chain, node, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}", traded, book
        )
        wait_until(lambda: _answers(net.agent_url), WAIT_S, "the agent's API")
        wait_until(
            lambda: net.api("/agent/health", net.agent_url)["plan_version"] is not None,
            WAIT_S,
            "the agent's first plan",
        )
        wait_until(lambda: _answers(net.orphan_url), WAIT_S, "the orphan agent's API")
        yield net
    finally:
        for proc in agents:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        node.terminate()


def _open(watched: BrowserPage, url: str) -> Page:
    watched.page.goto(url + "/")
    watched.page.wait_for_selector("body[data-loaded='true']", timeout=WAIT_S * 1000)
    return watched.page


def _raw(page: Page, selector: str) -> str | None:
    return page.locator(selector).first.get_attribute("data-raw")


def _row_ids(page: Page, table: str, attribute: str) -> list[str]:
    rows = page.locator(f"{table} tbody tr[{attribute}]").all()
    return sorted(r.get_attribute(attribute) or "" for r in rows)


def _shows_the_account(net: Net, page: Page) -> bool:
    account = net.account()
    return (
        _raw(page, "[data-k='balance']") == str(account["balance_mc"])
        and _raw(page, "[data-k='locked']") == str(account["locked_mc"])
        and _row_ids(page, "#order-table", "data-order") == net.open_orders()
    )


def test_the_page_shows_what_the_api_says(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = _open(browser_page, net.agent_url)
    assert page.locator("#household-name").text_content() == "peer-a"
    wait_until(lambda: _shows_the_account(net, page), WAIT_S, "the page's account to be the API's")
    # the receipt of the slot that traded: sold 1 kWh, nothing delivered, and why
    [receipt] = net.api(f"/v1/settlements?slot={net.traded_slot}")["receipts"]
    assert receipt["shortfall_reason"] == "missing_readings"
    row = page.locator(f"#receipt-table tr[data-trade='{receipt['trade_id']}'] td")
    cells = [c.get_attribute("data-raw") for c in row.all()]
    assert cells[3:6] == [str(receipt[k]) for k in ("quantity_wh", "delivered_wh", "paid_mc")]
    assert cells[8] == "missing_readings"
    assert "missing readings" in (row.nth(8).text_content() or "")
    # the book of the later slot: participant 1's ask and bid, each with a button
    page.select_option("#book-market", "intraday")
    page.select_option("#book-slot", str(net.book_slot))
    page.wait_for_function(
        "s => document.querySelector('#book').dataset.slot === String(s)", arg=net.book_slot
    )
    offers = net.api(f"/v1/markets/intraday/slots/{net.book_slot}/offers")
    assert _row_ids(page, "#asks", "data-offer") == [o["id"] for o in offers["asks"]]
    assert _row_ids(page, "#bids", "data-offer") == [o["id"] for o in offers["bids"]]
    assert page.locator("#asks button.take").count() == 1
    # the plan and its forecast
    plan = net.api("/fetchOptimizationsData", net.agent_url)
    assert page.locator("#plan-table tbody tr[data-slot]").count() == min(12, len(plan["slots"]))
    screenshot(page, artifacts, "household-page")
    assert browser_page.errors == []


def test_taking_an_offer_updates_the_page_without_a_reload(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = _open(browser_page, net.agent_url)
    loads = page.evaluate("performance.getEntriesByType('navigation').length")
    trades_before = page.locator("#trade-table tbody tr[data-trade]").count()
    page.select_option("#book-market", "intraday")
    page.select_option("#book-slot", str(net.book_slot))
    button = page.locator("#asks button.take")
    button.wait_for(timeout=WAIT_S * 1000)
    button.click()
    page.wait_for_selector("#take-result[data-outcome]", timeout=WAIT_S * 1000)
    assert page.locator("#take-result").get_attribute("data-outcome") == "ok", page.locator(
        "#take-result"
    ).text_content()
    [trade] = [
        t
        for t in net.api(f"/v1/trades?address={net.address}&slot={net.book_slot}")["trades"]
        if t["buyer"] == net.address
    ]
    assert (trade["quantity_wh"], trade["price_mc_per_kwh"]) == (400, ASK_PRICE)
    page.wait_for_selector(
        f"#trade-table tr[data-trade='{trade['trade_id']}']", timeout=WAIT_S * 1000
    )
    assert page.locator("#trade-table tbody tr[data-trade]").count() == trades_before + 1
    wait_until(lambda: _shows_the_account(net, page), WAIT_S, "the page's account after the trade")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
    screenshot(page, artifacts, "household-page-after-a-take")
    assert browser_page.errors == []


def test_a_sell_placed_here_shows_in_the_operator_book(
    net: Net, browser: Browser, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = _open(browser_page, net.agent_url)
    markets = net.api("/v1/markets")
    slot = int(markets["first_open_slot"]["intraday"]) + 3
    page.select_option("#order-form select[name='side']", "sell")
    page.select_option("#order-form select[name='market']", "intraday")
    page.fill("#order-form input[name='slot']", str(slot))
    page.fill("#order-form input[name='kwh']", "0.5")
    page.fill("#order-form input[name='price']", "155")
    page.click("#order-form button")
    page.wait_for_selector("#order-result[data-outcome]", timeout=WAIT_S * 1000)
    assert page.locator("#order-result").get_attribute("data-outcome") == "ok", page.locator(
        "#order-result"
    ).text_content()
    [order] = [
        o
        for o in net.api(f"/v1/orders?address={net.address}&slot={slot}&status=open")["orders"]
        if o["side"] == "sell"
    ]
    assert (order["quantity_wh"], order["price_mc_per_kwh"]) == (500, 155_000)
    page.wait_for_selector(f"#order-table tr[data-order='{order['id']}']", timeout=WAIT_S * 1000)
    # the operator page of the node shows the sell in that slot's book
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        operator = context.new_page()
        operator.goto(net.url + "/ui/")
        row = f"#slot-markets tr[data-slot='{slot}'][data-market='intraday']"
        operator.wait_for_selector(row, timeout=WAIT_S * 1000)
        ask_depth = operator.locator(row + " td").nth(10).get_attribute("data-raw")
        assert ask_depth is not None
        assert int(ask_depth) >= 500
        assert operator.locator(row + " td").nth(8).get_attribute("data-raw") is not None
    finally:
        context.close()
    assert browser_page.errors == []


def test_bad_input_is_said_and_changes_nothing(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = _open(browser_page, net.agent_url)
    markets = net.api("/v1/markets")
    first = int(markets["first_open_slot"]["intraday"])
    nonce, actions, orders = net.account()["pending_nonce"], net.agent_actions(), net.open_orders()
    cases = [
        # (slot, kWh, price, what the message must say)
        (first + 4, "lots", "150", "kWh must be a positive number"),
        (first + 4, "0.5", "150.0005", "credits/kWh takes at most 3 decimals"),
        (first + 4, "5", "150", "Refused (over_user_limit)"),  # 5 kWh > 2 kWh a slot
        (first + 4, "0.5", "50", "below the minimum sell price"),  # 50 < 100 credits/kWh
        (max(0, first - 2), "0.5", "150", "Refused (slot_closed)"),  # an expired slot
    ]
    for slot, quantity, price, said in cases:
        page.evaluate("document.querySelector('#order-result').removeAttribute('data-outcome')")
        page.select_option("#order-form select[name='side']", "sell")
        page.select_option("#order-form select[name='market']", "intraday")
        page.fill("#order-form input[name='slot']", str(slot))
        page.fill("#order-form input[name='kwh']", quantity)
        page.fill("#order-form input[name='price']", price)
        page.click("#order-form button")
        page.wait_for_selector("#order-result[data-outcome]", timeout=WAIT_S * 1000)
        result = page.locator("#order-result")
        assert result.get_attribute("data-outcome") == "error"
        text = result.text_content() or ""
        assert said in text, text
        assert "Nothing was sent" in text
    screenshot(page, artifacts, "household-page-refused")
    assert net.account()["pending_nonce"] == nonce
    assert net.agent_actions() == actions
    assert net.open_orders() == orders
    # the browser logs each refused request (422, 409); nothing else went wrong
    refused = "Failed to load resource: the server responded with a status of 4"
    assert [e for e in browser_page.errors if refused not in e] == []
    assert len(browser_page.errors) == 3  # the two refusals by the agent and the closed slot


def test_the_page_fits_a_phone(net: Net, browser: Browser, artifacts: Path) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        watched = BrowserPage(page)
        page.on("console", watched.on_console)
        page.on("pageerror", watched.on_error)
        _open(watched, net.agent_url)
        # nothing wider than the screen: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for form in ("#order-form", "#charge-form"):
            box = page.locator(form).bounding_box()
            assert box is not None
            assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE["width"]
        page.screenshot(path=str(artifacts / "household-page-phone.png"), full_page=False)
        screenshot(page, artifacts, "household-page-phone-full")
        assert watched.errors == []
    finally:
        context.close()


def test_the_node_down_is_said_not_shown_blank(
    net: Net, browser_page: BrowserPage, artifacts: Path
) -> None:
    page = browser_page.page
    page.goto(net.orphan_url + "/")
    banner = page.locator("#banner")
    banner.wait_for(state="visible", timeout=WAIT_S * 1000)
    page.wait_for_function(
        "() => document.querySelector('#banner').textContent.includes(\"node's API\")",
        timeout=WAIT_S * 1000,
    )
    text = banner.text_content() or ""
    health = net.api("/agent/health", net.orphan_url)
    assert f"The node's API at {health['node_url']} is not answering" in text
    assert "Your agent is running" in text
    assert "Nothing could be read yet" in text
    # who this is still shows: it comes from the agent, not the node
    assert page.locator("#household-name").text_content() == health["name"]
    screenshot(page, artifacts, "household-page-node-down")
    # the failures are HTTP answers of the agent (502), not script errors
    assert not [e for e in browser_page.errors if e.startswith("uncaught")]
    assert page.locator("body").get_attribute("data-loaded") is None
