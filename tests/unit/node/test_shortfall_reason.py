"""Why a delivery fell short, as the API and the wallet say it (issue 16 item 4).

Settlement records how the seller's energy was measured (market.settlement.Metering): no
meter for the device, readings that did not cover the slot, or complete.  A receipt whose
delivered energy is below its quantity names the reason, so a household sees why it was fined
or paid less without reading the meter fields.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridchain.market.settlement import DeliveryStatus, Metering, Receipt
from gridchain.node.views import receipt_view, shortfall_reason

DELIVERED = Receipt(
    trade_id=7,
    market=1,
    slot=42,
    seller=b"\x01" * 20,
    buyer=b"\x02" * 20,
    seller_device=2,
    buyer_device=3,
    quantity_wh=1000,
    price_mc_per_kwh=120_000,
    escrow_mc=120_000,
    delivered_wh=1000,
    taken_wh=1000,
    paid_mc=120_000,
    released_mc=0,
    shortfall_wh=0,
    fine_mc=0,
    fine_paid_mc=0,
    seller_start_wh=5000,
    seller_end_wh=6000,
    seller_metered_wh=1000,
    seller_metering=int(Metering.COMPLETE),
    buyer_start_wh=700,
    buyer_end_wh=1700,
    buyer_metered_wh=1000,
    buyer_metering=int(Metering.COMPLETE),
    pool_p_sell_mc_per_kwh=50_000,
    pool_p_buy_mc_per_kwh=250_000,
    seller_pool_wh=0,
    seller_pool_mc=0,
    buyer_pool_wh=0,
    buyer_pool_mc=0,
    status=int(DeliveryStatus.DELIVERED),
    height=9,
    settled_ms=1_000,
)


def _short(metering: Metering, delivered: int) -> Receipt:
    return replace(
        DELIVERED,
        delivered_wh=delivered,
        shortfall_wh=1000 - delivered,
        seller_metering=int(metering),
        status=int(DeliveryStatus.PARTIAL if delivered else DeliveryStatus.NOT_DELIVERED),
    )


@pytest.mark.parametrize(
    ("receipt", "reason"),
    [
        (DELIVERED, None),
        (_short(Metering.NO_METER, 0), "no_meter"),
        (_short(Metering.MISSING_READINGS, 0), "missing_readings"),
        (_short(Metering.MISSING_READINGS, 400), "missing_readings"),
        (_short(Metering.COMPLETE, 400), "under_delivered"),
    ],
)
def test_the_reason_a_delivery_fell_short(receipt: Receipt, reason: str | None) -> None:
    assert shortfall_reason(receipt) == reason
    assert receipt_view(receipt).shortfall_reason == reason


def test_the_wallet_receipts_table_says_why() -> None:
    from gridchain.wallet.trading import _receipt_rows

    rows = _receipt_rows([receipt_view(_short(Metering.NO_METER, 0))], None)
    assert rows[0][-1] == "why"
    assert rows[1][-2:] == ["not_delivered", "no_meter"]
    assert _receipt_rows([receipt_view(DELIVERED)], None)[1][-1] == "-"
