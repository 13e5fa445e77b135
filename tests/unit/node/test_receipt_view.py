"""A receipt's signed fields reach the API as they are on chain (found by issue 16's e2e).

The chain stores the pool positions and the summed registers of a receipt as signed integers
(market/settlement.py): a buyer that drew more from the pool than it bought has a negative
position, a net meter on a producer negative registers.  The view refused them, so every
``GET /v1/settlements`` listing such a receipt answered 500.
"""

from __future__ import annotations

from gridchain.market.settlement import Receipt
from gridchain.node.views import receipt_view


def _receipt(**signed: int) -> Receipt:
    fields: dict[str, object] = dict.fromkeys(Receipt.__dataclass_fields__, 0)
    fields.update(seller=b"\x01" * 20, buyer=b"\x02" * 20, market=0, seller_device=2,
                  buyer_device=3, status=1)  # fmt: skip
    fields.update(signed)
    return Receipt(**fields)  # type: ignore[arg-type]  # every field is set above


def test_negative_pool_positions_and_net_registers_are_shown() -> None:
    view = receipt_view(
        _receipt(
            buyer_pool_wh=-1, buyer_pool_mc=-60, seller_pool_wh=-2, seller_pool_mc=-7,
            seller_start_wh=-667_900, seller_end_wh=-666_800,
        )
    )  # fmt: skip
    assert (view.pool.buyer_wh, view.pool.buyer_mc) == (-1, -60)
    assert (view.pool.seller_wh, view.pool.seller_mc) == (-2, -7)
    assert (view.seller_reading.start_wh, view.seller_reading.end_wh) == (-667_900, -666_800)
