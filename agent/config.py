"""The agent's TOML configuration, validated by pydantic so a bad value stops it at start.

Example (docs/agent.md has every field)::

    name = "peer-a"
    node_url = "http://127.0.0.1:8700"
    wallet = "wallets/peer-a.json"        # the household's keystore ($GRIDCHAIN_PASSWORD)

    [api]
    port = 8650

    [bridge]                              # optional: history from the meter bridge
    url = "http://127.0.0.1:8800"
    net = ["peer-a-net"]
    pv = ["peer-a-pv"]
    battery = ["peer-a-battery"]

    [history]
    file = "history.csv"                  # optional: start_ms,pv_kw,load_kw rows
    days = 30

    [limits]                              # what the agent may do without asking
    max_sell_wh_per_slot = 1000
    max_buy_wh_per_slot = 1000
    min_sell_price_mc_per_kwh = 100000
    max_buy_price_mc_per_kwh = 300000

    [battery]                             # optional: seed 000 Peer A's BESS by default
    [ev]                                  # optional: "goal_kwh by by_hour", plugged in a window

Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridchain.agent.errors import AgentConfigError

Hour = Annotated[int, Field(ge=0, le=24)]
Price = Annotated[int, Field(ge=0, le=10**9)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8650, ge=0, le=65535)


class BridgeSource(_Strict):
    """The bridge's agent API and which of its meters play which role in the house."""

    url: str
    net: tuple[str, ...] = Field(min_length=1)
    pv: tuple[str, ...] = ()
    battery: tuple[str, ...] = ()
    ev: tuple[str, ...] = ()


class HistoryConfig(_Strict):
    file: Path | None = None
    #: The source forecasts from the previous 30 days.
    days: int = Field(default=30, ge=8, le=366)
    #: The source's meters are read every 15 minutes.
    interval_minutes: int = Field(default=15, ge=1, le=60)

    @model_validator(mode="after")
    def _divides_day(self) -> HistoryConfig:
        if 1440 % self.interval_minutes:
            raise ValueError("interval_minutes must divide a day")
        return self


class PlanConfig(_Strict):
    #: Slots planned ahead (96 x 15 min = the next day).
    horizon_slots: int = Field(default=96, ge=1, le=2016)
    #: Of the open slots, how many the agent places orders in per cycle (the rest are planned,
    #: and ordered in a later cycle with a fresher forecast).
    act_slots: int = Field(default=4, ge=0, le=2016)
    cycle_seconds: float = Field(default=60.0, gt=0, le=86_400)
    wear_mc_per_kwh: float = Field(default=1.0, ge=0)
    #: Trade in the day-ahead book (the source's market) or the intraday one.
    market: str = Field(default="day_ahead", pattern="^(day_ahead|intraday)$")
    #: Smallest order the agent places (Wh); below it a slot's surplus or deficit is left to
    #: the pool.
    min_order_wh: int = Field(default=1, ge=1)
    #: Re-plan on today's readings (agent/intraday.py): when today's forecast so far is off by
    #: more than this nRMSE over at least ``replan_min_intervals`` measured intervals, the rest
    #: of today is scaled by the measured / forecast ratio before planning.
    replan_error: float = Field(default=0.3, ge=0)
    replan_min_intervals: int = Field(default=4, ge=1)


class Limits(_Strict):
    """What the user lets the agent do on its own (and caps what its API accepts)."""

    max_sell_wh_per_slot: int = Field(default=1000, ge=0)
    max_buy_wh_per_slot: int = Field(default=1000, ge=0)
    min_sell_price_mc_per_kwh: Price = 0
    max_buy_price_mc_per_kwh: Price = 10**9


class BatteryConfig(_Strict):
    """Seed 000 Peer A's BESS (text under fig. 2.1) unless set."""

    capacity_kwh: float = Field(default=7.5, gt=0)
    soe0_kwh: float = Field(default=3.5, ge=0)
    soe_min_kwh: float = Field(default=1.5, ge=0)
    soe_max_kwh: float = Field(default=6.75, gt=0)
    max_charge_kw: float = Field(default=3.3, ge=0)
    max_discharge_kw: float = Field(default=3.3, ge=0)
    efficiency: float = Field(default=0.97, gt=0, le=1)
    #: The battery's registered meter: the household page's charge form needs it (a C&D
    #: request names the meter settlement reads the energy from).
    meter: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BatteryConfig:
        if not self.soe_min_kwh <= self.soe_max_kwh <= self.capacity_kwh:
            raise ValueError("need soe_min_kwh <= soe_max_kwh <= capacity_kwh")
        return self


class EVConfig(_Strict):
    """Seed 000 Peer B's EV (table 2.3) unless set, and the user's goal for it."""

    capacity_kwh: float = Field(default=4.096, gt=0)
    soe0_kwh: float = Field(default=1.0, ge=0)
    max_charge_kw: float = Field(default=2.048, ge=0)
    max_discharge_kw: float = Field(default=3.84, ge=0)
    efficiency: float = Field(default=0.97, gt=0, le=1)
    v2g: bool = False
    #: evcc's "X kWh within Y hours": goal_kwh more by by_hour (UTC) of the plan's day.
    goal_kwh: float = Field(default=0.0, ge=0)
    by_hour: Hour = 7
    #: When the car is plugged in: from plugged_from_hour to plugged_until_hour (UTC; a window
    #: over midnight when from > until).
    plugged_from_hour: Hour = 18
    plugged_until_hour: Hour = 7
    #: Ask the chain's C&D scheduler to charge it (a signed CDRequest from the EV meter).
    request_cd: bool = False
    meter: str | None = None
    limit_price_mc_per_kwh: Price = 10**9

    @model_validator(mode="after")
    def _cd_meter(self) -> EVConfig:
        if self.request_cd and not self.meter:
            raise ValueError("request_cd needs the EV's meter id (meter)")
        return self


class AgentConfig(_Strict):
    name: str = Field(min_length=1, max_length=64)
    node_url: str
    node_ca: Path | None = None
    wallet: Path
    data_dir: Path | None = None
    api: ApiConfig = ApiConfig()
    bridge: BridgeSource | None = None
    history: HistoryConfig = HistoryConfig()
    plan: PlanConfig = PlanConfig()
    limits: Limits = Limits()
    battery: BatteryConfig | None = None
    ev: EVConfig | None = None

    @model_validator(mode="after")
    def _some_history(self) -> AgentConfig:
        if self.bridge is None and self.history.file is None:
            raise ValueError("set [bridge] or history.file: the agent forecasts from history")
        return self


def load_config(path: Path) -> AgentConfig:
    """Read and validate; relative paths in the file are relative to the file's directory."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AgentConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent
    for key in ("wallet", "data_dir", "node_ca"):
        if isinstance(doc.get(key), str) and not Path(doc[key]).is_absolute():
            doc[key] = str(base / doc[key])
    history = doc.get("history")
    file = history.get("file") if isinstance(history, dict) else None
    if isinstance(history, dict) and isinstance(file, str) and not Path(file).is_absolute():
        history["file"] = str(base / file)
    try:
        return AgentConfig.model_validate(doc)
    except ValidationError as exc:
        raise AgentConfigError(f"{path}: {exc}") from exc
