"""The agent API's bodies (seed 000 table 2.5 plus the plan and orders), as pydantic models.

Responses are built from these models so the household page (issue 16 item 2) and any other
client read one documented shape; request bodies are parsed strictly (no type coercion, no
unknown fields), so a wrong type is a 400 and never a guess.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from gridchain.api import models as m

UInt = Annotated[StrictInt, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]

#: The sign conventions every plan is served with (plan.py's module text).
SIGN_CONVENTIONS = {
    "power": "kW averaged over the slot; every power is >= 0 in its own direction",
    "import_kw": "from the grid or market into the house",
    "export_kw": "out of the house to the grid or market",
    "net_kw": "import_kw - export_kw: positive when the house buys",
    "charge_kw": "into the battery or EV; discharge_kw: out of it",
    "cost_mc": "milli-credits; negative is an income",
}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(Model):
    code: str
    message: str


class ErrorResponse(Model):
    error: ErrorBody


class MeterHealth(Model):
    meter_id: str
    intervals: UInt


class Health(Model):
    status: Literal["ok", "degraded", "starting"]
    name: str
    address: str
    node_url: str
    node_reachable: bool
    bridge_url: str | None
    last_cycle_ms: UInt | None
    last_error: str | None
    plan_version: UInt | None
    history_days: UInt
    history_filled_intervals: UInt
    actions: UInt


class Interval(Model):
    start_ms: UInt
    pv_kw: float
    load_kw: float


class HistoricalData(Model):
    interval_ms: PositiveInt
    intervals: list[Interval]


class ErrorMeasures(Model):
    mae_kw: float
    rmse_kw: float
    nrmse: float
    mape: float


class ForecastQuality(Model):
    """Regression vs persistence on the last held-out days of the history (source: 7)."""

    train_days: UInt
    test_days: UInt
    regression: ErrorMeasures
    persistence: ErrorMeasures


class IntradayCorrection(Model):
    """Today's forecast against today's readings so far (agent/intraday.py)."""

    intervals: UInt = Field(description="measured intervals of today compared")
    nrmse: float = Field(description="the error of today's forecast over them")
    factor: float = Field(description="measured / forecast energy over them")
    applied: bool = Field(description="the rest of today was scaled by factor")


class ForecastData(Model):
    made_ms: UInt
    interval_ms: PositiveInt
    history_days: UInt
    intervals: list[Interval]
    pv_quality: ForecastQuality | None
    load_quality: ForecastQuality | None
    #: null until enough of today was measured
    pv_intraday: IntradayCorrection | None = None
    load_intraday: IntradayCorrection | None = None


class PlanSlot(Model):
    slot: UInt
    start_ms: UInt
    pv_kw: float
    load_kw: float
    buy_mc_per_kwh: float
    sell_mc_per_kwh: float
    import_kw: float
    export_kw: float
    net_kw: float
    curtail_kw: float
    battery_charge_kw: float
    battery_discharge_kw: float
    battery_soe_kwh: float
    ev_charge_kw: float
    ev_discharge_kw: float
    ev_soe_kwh: float


class ViolationBody(Model):
    goal: str
    short_kwh: float
    reason: str


class PlanBody(Model):
    version: PositiveInt
    made_ms: UInt
    slot_length_ms: PositiveInt
    market: str
    sign_conventions: dict[str, str]
    cost_mc: float
    base_case_cost_mc: float
    violations: list[ViolationBody]
    slots: list[PlanSlot]


class PlanVersions(Model):
    versions: list[UInt]


ActionStatus = Literal["committed", "pending", "refused", "failed"]


class Action(Model):
    """Something the agent signed and sent, and what became of it."""

    id: UInt
    time_ms: UInt
    origin: Literal["plan", "user"]
    kind: Literal["order", "cd_request"]
    plan_version: UInt | None
    market: str | None
    slot: UInt | None
    side: str | None
    device: str
    quantity_wh: UInt
    price_mc_per_kwh: UInt
    tx_hash: str | None
    status: ActionStatus
    error: str | None


class TransactionData(Model):
    actions: list[Action]
    orders: list[dict[str, object]] | None = Field(
        description="the account's orders on chain; null when the node did not answer"
    )
    trades: list[dict[str, object]] | None


class OrderRequest(Model):
    """A manual order through the agent (the household page's sell/buy form)."""

    side: Literal["buy", "sell"]
    slot: UInt
    quantity_wh: PositiveInt
    price_mc_per_kwh: PositiveInt
    device: Literal["PV", "Battery", "EV", "Load"] | None = None
    #: The book: the plan's market (``plan.market``) when unset.
    market: Literal["day_ahead", "intraday"] | None = None


Market = Literal["day_ahead", "intraday"]


class TakeRequest(Model):
    """Take one resting offer at its price (the household page's "take" button)."""

    market: Market
    slot: UInt
    offer_id: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
    device: Literal["PV", "Battery", "EV", "Load"] | None = None


class ChargeRequest(Model):
    """Ask the chain's C&D scheduler to charge (or discharge) the EV or the battery by a time."""

    device: Literal["EV", "Battery"]
    kind: Literal["charge", "discharge"] = "charge"
    energy_wh: PositiveInt
    max_rate_w: PositiveInt
    #: When the device must have its energy (UTC ms); it is connected from now until then.
    departure_ms: UInt
    #: The most paid per kWh charged (least taken per kWh discharged); the user's limit if unset.
    limit_price_mc_per_kwh: UInt | None = None


class ReceiptView(Model):
    """A settlement receipt as the household sees it: its side and the tariffs it is set against."""

    role: Literal["seller", "buyer"]
    receipt: m.Receipt
    #: the chain's feed-in (seller) and retail (buyer) tariffs of the receipt's slot
    feed_in_mc_per_kwh: UInt | None
    retail_mc_per_kwh: UInt | None
    #: seller: paid - fine paid - feed-in value of what was delivered; buyer: retail value of
    #: what was delivered - paid + fine received.  Positive: better than the grid's tariff.
    vs_tariff_mc: int | None


class Earnings(Model):
    """What trading on the chain made against the grid's tariffs, over the receipts shown."""

    receipts: UInt
    sold_wh: UInt
    sold_paid_mc: UInt
    sold_at_feed_in_mc: UInt
    bought_wh: UInt
    bought_paid_mc: UInt
    bought_at_retail_mc: UInt
    fines_paid_mc: UInt
    fines_received_mc: UInt
    #: (sold_paid - fines_paid - sold_at_feed_in) + (bought_at_retail - bought_paid +
    #: fines_received): positive when the market paid better than feed-in and retail
    vs_tariffs_mc: int


class Household(Model):
    """Everything the household page shows from the chain, read by the agent for its account."""

    name: str
    address: str
    node_url: str
    markets: m.Markets
    account: m.Account
    open_orders: list[m.Order]
    trades: list[m.Trade]
    receipts: list[ReceiptView]
    earnings: Earnings
    cd_requests: list[m.CDRequest]
    #: the agent's latest actions, newest first (the whole log: GET /fetchTransactionData)
    actions: list[Action]


class HouseholdOffers(Model):
    """A book's individual offers and which of them are the household's own."""

    offers: m.Offers
    own: list[str]
