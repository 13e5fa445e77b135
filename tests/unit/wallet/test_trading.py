"""``gridchain wallet order ...``: exact units, checks before signing, the bytes it sends.

Why: a person types "1.5" kWh at "120.5" credits; the chain must receive exactly 1500 Wh at
120500 mc/kWh for the slot the person meant, or nothing.  A wallet that rounded, guessed a
time zone or signed an order for a closed slot would spend a nonce (or money in escrow) on
something the user did not ask for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from gridchain.protocol.address import format_address
from gridchain.protocol.tx import CancelOrder, PlaceOrder
from gridchain.wallet.trading import parse_time_ms
from gridchain.wallet.units import UnitError, format_energy, format_price, parse_energy, parse_price
from tests.unit.wallet.conftest import CliRunner, FakeNode, Wallet, account_doc, serve

SLOT_MS = 900_000
NOW_MS = 1_704_067_200_000  # 2024-01-01T00:00Z
OPEN_SLOT = NOW_MS // SLOT_MS + 8  # closes 1 h before it starts: in an hour


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mc_per_kwh"),
    [
        ("120", 120_000),
        ("120.5", 120_500),
        ("120.5/kWh", 120_500),
        ("0.001", 1),
        ("120500mc", 120_500),
        ("120500 mc/kWh", 120_500),
        (" 7.25 ", 7_250),
    ],
)
def test_prices_convert_exactly(text: str, mc_per_kwh: int) -> None:
    assert parse_price(text) == mc_per_kwh


@pytest.mark.parametrize(
    "text", ["", "-1", "1e3", "1,5", "1.0005", "12.5mc", "abc", "١٢٣", "nan", "1/MWh"]
)
def test_inexact_or_unreadable_prices_are_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_price(text)


@pytest.mark.parametrize(
    ("text", "wh"),
    [("1.5", 1500), ("1.5kWh", 1500), ("2 kwh", 2000), ("1500Wh", 1500), ("0.001", 1)],
)
def test_energy_converts_exactly(text: str, wh: int) -> None:
    assert parse_energy(text) == wh


@pytest.mark.parametrize("text", ["", "-2", "1.0001", "1.5Wh", "2 MWh", "1e3"])
def test_inexact_or_unreadable_energy_is_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_energy(text)


@given(st.integers(0, 10**12))
def test_formatted_units_read_back_to_the_same_integers(value: int) -> None:
    assert parse_price(format_price(value)) == value
    assert parse_energy(format_energy(value).replace(" ", "")) == value


def test_times_need_a_zone() -> None:
    assert parse_time_ms("2024-01-01T00:00Z", "--delivery") == NOW_MS
    assert parse_time_ms("2024-01-01T05:30+05:30", "--delivery") == NOW_MS
    assert parse_time_ms(str(NOW_MS), "--delivery") == NOW_MS
    with pytest.raises(Exception, match="needs a zone"):
        parse_time_ms("2024-01-01T00:00", "--delivery")
    with pytest.raises(Exception, match="ISO 8601"):
        parse_time_ms("tomorrow", "--delivery")


# --- the commands against a canned node ------------------------------------------------------


@dataclass
class MarketNode(FakeNode):
    """The canned node, with the market routes the trading commands read."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/v1/markets", self._markets)
        app.router.add_get("/v1/orders/{id}", self._order)
        return app

    async def _markets(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "markets": ["day_ahead", "intraday"],
                "slot_length_ms": SLOT_MS,
                "gate_closure_ms": 3_600_000,
                "day_ahead_gate_closure_ms": 3_600_000,
                "order_horizon_ms": 7 * 86_400_000,
                "matching_rule": "price_time",
                "adbev_price_weight": 10,
                "adbev_time_weight": 1,
                "iceberg_execution": "standard",
                "iceberg_waiting_limit_ms": 0,
                "now_ms": NOW_MS,
                "current_slot": NOW_MS // SLOT_MS,
                "first_open_slot": {"day_ahead": OPEN_SLOT - 3, "intraday": OPEN_SLOT - 3},
            }
        )

    async def _order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["id"]
        doc = self.orders.get(order_id)
        if doc is None:
            for tx in self.submitted:
                if tx.hash().hex() == order_id and isinstance(tx.body, PlaceOrder):
                    doc = order_doc(order_id, format_address(tx.sender_address), tx.body)
        if doc is None:
            error = {"error": {"code": "not_found", "message": f"no order {order_id}"}}
            return web.json_response(error, status=404)
        return web.json_response(doc)


def order_doc(order_id: str, owner: str, body: PlaceOrder) -> dict[str, Any]:
    return {
        "id": order_id,
        "owner": owner,
        "market": ["day_ahead", "intraday"][body.market],
        "slot": body.slot,
        "side": ["buy", "sell"][body.side],
        "device": ["EV", "Battery", "PV", "Load"][body.device],
        "price_mc_per_kwh": body.price_mc_per_kwh,
        "quantity_wh": body.quantity_wh,
        "iceberg": body.peak_wh > 0,
        "peak_wh": body.peak_wh,
        "open_wh": body.quantity_wh,
        "display_wh": body.peak_wh or body.quantity_wh,
        "hidden_wh": body.quantity_wh - (body.peak_wh or body.quantity_wh),
        "filled_wh": 0,
        "cancelled_wh": 0,
        "locked_mc": -(-body.price_mc_per_kwh * body.quantity_wh // 1000) if body.side == 0 else 0,
        "status": "open",
        "seq": 1,
        "placed_height": 1,
        "placed_ms": NOW_MS,
        "expires_ms": body.slot * SLOT_MS - 3_600_000,
    }


@pytest.fixture
async def market_node(wallet: Wallet) -> Any:
    fake = MarketNode(polls_before_commit=0)
    fake.accounts[wallet.address] = account_doc(wallet.address, balance_mc=500_000, locked_mc=0)
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


def _argv(wallet: Wallet, node: MarketNode, *argv: str) -> list[str]:
    return ["wallet", *argv, "--wallet", str(wallet.path), "--node", node.url]


async def test_an_order_is_signed_with_exact_integers_for_the_slot_meant(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode
) -> None:
    delivery = "2024-01-01T02:07+00:00"  # inside slot OPEN_SLOT (02:00-02:15)
    run = await cli(
        _argv(
            wallet,
            market_node,
            "order",
            "buy",
            "--market",
            "intraday",
            "--delivery",
            delivery,
            "--price",
            "120.5",
            "--quantity",
            "1.5",
            "--peak",
            "0.5",
            "--device",
            "EV",
            "--json",
        )
    )
    assert run.code == 0, run.out + run.err
    [tx] = market_node.submitted
    assert tx.nonce == 5  # the account's pending nonce
    assert tx.body == PlaceOrder(1, OPEN_SLOT, 0, 0, 120_500, 1500, 500, 0)
    result = json.loads(run.out)
    assert result["order_id"] == tx.hash().hex()
    assert result["order"]["locked_mc"] == 180_750
    assert result["status"] == "committed"


async def test_a_closed_slot_is_refused_before_signing(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode
) -> None:
    closed = str(OPEN_SLOT - 4)  # starts at 01:00, so its book closed at 00:00: now
    run = await cli(
        _argv(
            wallet,
            market_node,
            "order",
            "sell",
            "--slot",
            closed,
            "--price",
            "100",
            "--quantity",
            "1",
            "--json",
        )
    )
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "gate_closed"
    assert market_node.submitted == []


async def test_a_buy_beyond_the_spendable_balance_is_refused_before_signing(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode
) -> None:
    run = await cli(
        _argv(
            wallet,
            market_node,
            "order",
            "buy",
            "--slot",
            str(OPEN_SLOT),
            "--price",
            "500",
            "--quantity",
            "1.001",
            "--json",
        )
    )
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "insufficient_balance"
    assert market_node.submitted == []


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--price", "1.0005", "--quantity", "1"], "bad_unit"),
        (["--price", "1", "--quantity", "1", "--peak", "1"], "bad_argument"),
        (["--price", "0", "--quantity", "1"], "bad_argument"),
    ],
)
async def test_bad_values_are_refused_before_anything_is_sent(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode, extra: list[str], code: str
) -> None:
    run = await cli(
        _argv(wallet, market_node, "order", "buy", "--slot", str(OPEN_SLOT), *extra, "--json")
    )
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == code
    assert market_node.requests == []


async def test_a_delivery_time_without_a_zone_is_refused(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode
) -> None:
    run = await cli(
        _argv(
            wallet,
            market_node,
            "order",
            "buy",
            "--delivery",
            "2024-01-01T02:07",
            "--price",
            "1",
            "--quantity",
            "1",
        )
    )
    assert run.code == 1
    assert "needs a zone" in run.err
    assert market_node.submitted == []


async def test_cancel_refuses_someone_elses_order_and_sends_ones_own(
    cli: CliRunner, wallet: Wallet, market_node: MarketNode
) -> None:
    theirs, mine = "aa" * 32, "bb" * 32
    body = PlaceOrder(1, OPEN_SLOT, 0, 3, 100_000, 1000, 0, 0)
    market_node.orders[theirs] = order_doc(theirs, "gc1" + "0" * 48, body)
    market_node.orders[mine] = order_doc(mine, wallet.address, body)
    run = await cli(_argv(wallet, market_node, "order", "cancel", theirs, "--json"))
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "bad_argument"
    assert market_node.submitted == []
    run = await cli(_argv(wallet, market_node, "order", "cancel", mine, "--json"))
    assert run.code == 0, run.out
    [tx] = market_node.submitted
    assert tx.body == CancelOrder(bytes.fromhex(mine))
