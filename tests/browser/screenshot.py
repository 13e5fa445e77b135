"""The README's picture of the operator page: ``python -m tests.browser.screenshot OUT.png``.

A 4-validator PBFT testnet on loopback (tests.procs) with what an operator looks at: trades in
two intraday slots (one delivered, one whose seller's meter went silent, so it settles short
for ``missing_readings``), resting orders in later books, two EV charge requests that the chain
schedules, and the meters' readings; then Debian's chromium photographs ``/ui/`` of the first
validator once the page is live.  Ports come from $GRIDCHAIN_TEST_PORT_BASE/SPAN like the
tests'.  Not a test: it asserts only what it needs to go on, and prints the console errors.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import (
    CDRequest,
    Device,
    MeterReadings,
    PlaceOrder,
    Transaction,
    Transfer,
    TxBody,
    sign_tx,
)
from tests.browser.conftest import CHROMIUM, VIEWPORT
from tests.helpers import cd_meter_id, cd_meters
from tests.procs import (
    Chain,
    http_get,
    make_chain,
    pv_and_load_meters,
    running_cluster,
    submit,
    wait_committed,
    wait_until,
)

BRIDGE = SigningKey(sha256(b"screenshot-bridge"))
SLOT_MS = 4000
DAY_AHEAD, INTRADAY, BUY, SELL, PV, LOAD = 0, 1, 0, 1, 2, 3


def _meters(bundle: GenesisBundle) -> dict[str, Any]:
    return {"meters": pv_and_load_meters(BRIDGE)(bundle)["meters"] + cd_meters(bundle)}


class Sender:
    """Signs and commits each participant's transactions with its next nonce."""

    def __init__(self, chain: Chain, url: str) -> None:
        self.chain, self.url = chain, url
        self.nonces: dict[int, int] = {}

    def commit(self, tx: Transaction) -> None:
        status, body = submit(self.url, tx)
        if status != 202:
            raise RuntimeError(f"refused: {body}")
        wait_committed(self.url, tx.hash().hex(), 60)

    def send(self, peer: int, body: TxBody) -> None:
        nonce = self.nonces.get(peer, 0)
        self.nonces[peer] = nonce + 1
        self.commit(sign_tx(self.chain.peer(peer), self.chain.chain_id, nonce, body))


def _readings(chain: Chain, s1: int, s2: int) -> Transaction:
    """PV meter read over slot 1 only; load meter over both slots."""
    a1, b1, a2, b2 = s1 * SLOT_MS, (s1 + 1) * SLOT_MS, s2 * SLOT_MS, (s2 + 1) * SLOT_MS
    signed = []
    for meter, records in (
        ("pv-a", [(a1 - 1000, a1, 0, 5000), (a1, b1, 0, 6000)]),
        ("load-b", [(a1 - 1000, a1, 700, 0), (a1, b1, 1700, 0), (a2, b2, 3200, 0)]),
    ):
        prev = GENESIS_READING_HASH
        for seq, (lo, hi, imported, exported) in enumerate(records):
            record = ReadingRecord(meter, lo, hi, imported, exported, 0, 2301, 0, seq, prev)
            signed.append(sign_reading(BRIDGE, chain.chain_id, record))
            prev = record.hash()
    return sign_tx(BRIDGE, chain.chain_id, 0, MeterReadings(tuple(signed)))


def photograph(out: Path) -> list[str]:
    """Build the scene, save the screenshot to ``out``; return the page's console errors."""
    from playwright.sync_api import ConsoleMessage, sync_playwright

    chain = make_chain(
        Path(tempfile.mkdtemp()) / "chain",
        validators=4,
        engine="pbft",
        block_interval_ms=400,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=120_000,
        settlement_grace_ms=500,
        schedule_interval_ms=1000,
        schedule_interval_minutes=10,
        genesis_changes=_meters,
    )
    with running_cluster(chain) as nodes:
        url = nodes[0].api_url
        tx = Sender(chain, url)
        s1 = int(http_get(url + "/v1/markets")[1]["first_open_slot"]["intraday"]) + 1
        s2 = s1 + 1
        tx.send(0, PlaceOrder(INTRADAY, s1, SELL, PV, 120_000, 1000))
        tx.send(1, PlaceOrder(INTRADAY, s1, BUY, LOAD, 125_000, 1000))
        tx.send(0, PlaceOrder(INTRADAY, s2, SELL, PV, 130_000, 2000))
        tx.send(1, PlaceOrder(INTRADAY, s2, BUY, LOAD, 130_000, 1500))
        now = int(time.time() * 1000)
        for peer, arrive, stay, energy in ((2, 0, 8000, 3000), (1, 2000, 7000, 2000)):
            body = CDRequest(
                kind=1,
                device=0,
                arrival_ms=now + arrive,
                departure_ms=now + arrive + stay,
                energy_wh=energy,
                max_rate_w=3000,
                limit_price_mc_per_kwh=2**64 - 1,
                meter_id=cd_meter_id(peer, Device.EV),
            )
            tx.send(peer, body)
        # later books with resting orders, still open when the picture is taken
        markets = http_get(url + "/v1/markets")[1]
        later = int(markets["first_open_slot"]["intraday"]) + 5
        tx.send(0, PlaceOrder(INTRADAY, later, SELL, PV, 140_000, 1000))
        tx.send(0, PlaceOrder(INTRADAY, later, SELL, PV, 145_000, 2500))
        tx.send(1, PlaceOrder(INTRADAY, later, BUY, LOAD, 100_000, 500))
        ahead = int(markets["first_open_slot"]["day_ahead"]) + 6
        tx.send(0, PlaceOrder(DAY_AHEAD, ahead, SELL, PV, 150_000, 3000))
        tx.send(1, PlaceOrder(DAY_AHEAD, ahead, BUY, LOAD, 95_000, 1000))
        tx.commit(_readings(chain, s1, s2))
        ended = (s2 + 1) * SLOT_MS + 600
        wait_until(lambda: time.time() * 1000 > ended, 60, "slot 2 to end")
        tx.send(2, Transfer(chain.address(0), 1, ""))  # a block after the grace settles
        wait_until(
            lambda: http_get(url + f"/v1/settlements?slot={s2}")[1]["receipts"], 60, "settlement"
        )
        errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(message.text)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("console", on_console)
            page.goto(url + "/ui/")
            page.wait_for_selector("body[data-loaded='true']")
            page.wait_for_selector("#feed[data-feed='live']")
            page.wait_for_function("document.querySelector('#open-slot').dataset.raw")
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    return errors


if __name__ == "__main__":
    problems = photograph(Path(sys.argv[1]))
    print("console errors:", problems or "none")
    sys.exit(1 if problems else 0)
