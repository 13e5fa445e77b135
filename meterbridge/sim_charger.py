"""Simulated OCPP 1.6J charge points with EVs, and a simulated battery inverter (ADR 0028).

Part of ``gridchain meterbridge simulate``: the loop a testnet needs to show C&D request ->
block decision -> charging profile -> charger power -> meter -> signed reading -> chain.

* :class:`ChargerModel` is the charger's physics: the charging profiles it holds (OCPP 1.6
  stacking: the valid profile of the highest stack level, a TxProfile over a TxDefaultProfile,
  capped by a ChargePointMaxProfile), the EV behind it (battery, state of charge, maximum
  power, arrival and departure) and the energy it has delivered.  The power it draws is the
  smallest of the profile's limit, the EV's maximum and what the battery still takes.
* :class:`SimChargePoint` is the charger's OCPP side, a real ``ocpp`` ChargePoint over a
  websocket: BootNotification, StatusNotification, Start/StopTransaction when the EV arrives and
  leaves, MeterValues, Heartbeat; it takes SetChargingProfile and ClearChargingProfile (or
  refuses them, for tests) and reconnects when the connection drops, keeping its profiles,
  as a charger keeps them in flash.
* :class:`InverterModel` follows the setpoint written into its Modbus register and returns to
  0 W when its revert timer expires without a new write.

Both models are a meter's power source (:class:`meterbridge.simulator.SimMeter`), so the
meter's registers advance by exactly what the device delivered.  Profiles are evaluated on the
wall clock (their times are block times); energy is integrated on the simulator's clock, which
may run faster (``--speed``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    Action,
    ChargePointErrorCode,
    ChargePointStatus,
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    Measurand,
    Reason,
    UnitOfMeasure,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from gridchain.meterbridge.ocpp_time import iso_ms, parse_iso_ms

log = structlog.get_logger("meterbridge.sim_charger")

MS_PER_HOUR = 3_600_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A charging profile as the charger stores it (times in wall ms, limits in W)."""

    profile_id: int
    stack_level: int
    purpose: str
    start_ms: int
    duration_ms: int | None
    #: (offset from start in ms, limit in W), by offset
    periods: tuple[tuple[int, float], ...]

    def limit_at(self, t_ms: int) -> float | None:
        if t_ms < self.start_ms:
            return None
        if self.duration_ms is not None and t_ms >= self.start_ms + self.duration_ms:
            return None
        limit = None
        for offset, value in self.periods:
            if offset <= t_ms - self.start_ms:
                limit = value
        return limit


class ProfileNotSupportedError(ValueError):
    """A profile this simulated charger does not implement (amps, relative, recurring)."""


def parse_profile(doc: dict[str, Any], received_ms: int) -> InstalledProfile:
    """An OCPP 1.6 ChargingProfile (snake_case, as the ocpp library hands it) -> stored form."""
    schedule = doc["charging_schedule"]
    if schedule.get("charging_rate_unit") != "W":
        raise ProfileNotSupportedError("only W schedules are simulated")
    kind = doc.get("charging_profile_kind")
    if kind != "Absolute":
        raise ProfileNotSupportedError(f"{kind} profiles are not simulated")
    start = schedule.get("start_schedule")
    duration = schedule.get("duration")
    return InstalledProfile(
        profile_id=int(doc["charging_profile_id"]),
        stack_level=int(doc["stack_level"]),
        purpose=str(doc["charging_profile_purpose"]),
        start_ms=parse_iso_ms(start) if start else received_ms,
        duration_ms=None if duration is None else int(duration) * 1000,
        periods=tuple(
            sorted(
                (int(p["start_period"]) * 1000, float(p["limit"]))
                for p in schedule["charging_schedule_period"]
            )
        ),
    )


@dataclass
class SimEV:
    """A vehicle: battery, state of charge, the most it takes, and when it is plugged in.

    ``arrive_s`` and ``depart_s`` are wall seconds after the simulator started (None: stays).
    """

    capacity_wh: float
    soc: float
    max_power_w: float
    arrive_s: float = 0.0
    depart_s: float | None = None

    @property
    def room_wh(self) -> float:
        return max(0.0, self.capacity_wh * (1.0 - self.soc))


@dataclass
class ChargerModel:
    """One connector's physics: profiles, the EV, the power drawn, the energy delivered."""

    charger_max_w: float = 7_400.0
    ev: SimEV | None = None
    profiles: dict[int, InstalledProfile] = field(default_factory=dict)
    in_transaction: bool = False
    power_w: float = 0.0
    import_wh: float = 0.0
    export_wh: float = 0.0
    t_ms: int | None = None
    started_wall_ms: int = field(default_factory=wall_ms)
    wall: Callable[[], int] = wall_ms

    def limit_w(self, t_wall_ms: int) -> float:
        """The composite limit at ``t_wall_ms``: what OCPP 1.6's stacking rules leave."""
        by_purpose: dict[str, tuple[int, float]] = {}
        for profile in self.profiles.values():
            limit = profile.limit_at(t_wall_ms)
            if limit is None:
                continue
            best = by_purpose.get(profile.purpose)
            if best is None or profile.stack_level > best[0]:
                by_purpose[profile.purpose] = (profile.stack_level, limit)
        limit = self.charger_max_w
        tx = by_purpose.get("TxProfile") if self.in_transaction else None
        chosen = tx or by_purpose.get("TxDefaultProfile")
        if chosen is not None:
            limit = min(limit, chosen[1])
        cap = by_purpose.get("ChargePointMaxProfile")
        if cap is not None:
            limit = min(limit, cap[1])
        return max(0.0, limit)

    def ev_present(self, t_wall_ms: int) -> bool:
        ev = self.ev
        if ev is None:
            return False
        elapsed_s = (t_wall_ms - self.started_wall_ms) / 1000
        return elapsed_s >= ev.arrive_s and (ev.depart_s is None or elapsed_s < ev.depart_s)

    def sync(self, sim_ms: int) -> None:
        """Integrate the power held since the last sync up to ``sim_ms``, then set it anew."""
        if self.t_ms is not None and sim_ms > self.t_ms:
            wh = self.power_w * (sim_ms - self.t_ms) / MS_PER_HOUR
            self.import_wh += wh
            if self.ev is not None:
                self.ev.soc = min(1.0, self.ev.soc + wh / self.ev.capacity_wh)
        self.t_ms = sim_ms if self.t_ms is None else max(self.t_ms, sim_ms)
        self.power_w = self.target_power_w(self.wall())

    def ev_full(self) -> bool:
        return self.ev is None or self.ev.room_wh <= 0

    def target_power_w(self, t_wall_ms: int) -> float:
        ev = self.ev
        if ev is None or not self.in_transaction or not self.ev_present(t_wall_ms):
            return 0.0
        if ev.room_wh <= 0:
            return 0.0
        return min(self.limit_w(t_wall_ms), ev.max_power_w)


class _ChargePointSession(OcppChargePoint):  # type: ignore[misc] # ocpp is untyped
    """The charger's end of the websocket: answers the central system's calls."""

    def __init__(self, owner: SimChargePoint, connection: Any) -> None:
        super().__init__(owner.charge_point_id, connection, response_timeout=10)
        self.owner = owner

    @on(Action.set_charging_profile)  # type: ignore[untyped-decorator]
    def on_set_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        return call_result.SetChargingProfile(
            status=self.owner.take_profile(connector_id, cs_charging_profiles)
        )

    @on(Action.clear_charging_profile)  # type: ignore[untyped-decorator]
    def on_clear_profile(self, id: int | None = None, **_: Any) -> Any:
        return call_result.ClearChargingProfile(status=self.owner.clear_profile(id))


@dataclass
class ReceivedProfile:
    """A SetChargingProfile as the charger got it (for tests and logs)."""

    wall_ms: int
    connector_id: int
    profile: InstalledProfile | None
    accepted: bool


class SimChargePoint:
    """A charger with one connector that speaks OCPP 1.6J to ``csms_url``/``charge_point_id``."""

    def __init__(
        self,
        charge_point_id: str,
        csms_url: str,
        model: ChargerModel,
        *,
        sim_now_ms: Callable[[], int],
        refuse_profiles: bool = False,
        auth_key: str | None = None,
        meter_values_s: float = 5.0,
        tick_s: float = 0.1,
        reconnect_s: float = 0.5,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.csms_url = csms_url.rstrip("/")
        self.model = model
        self.sim_now_ms = sim_now_ms
        self.refuse_profiles = refuse_profiles
        self.auth_key = auth_key
        self.meter_values_s = meter_values_s
        self.tick_s = tick_s
        self.reconnect_s = reconnect_s
        self.received: list[ReceivedProfile] = []
        self.connections = 0
        self.booted = False
        self.transaction_id: int | None = None
        self._session: _ChargePointSession | None = None
        self._status: str | None = None
        self._last_meter_values = 0.0

    # --- profiles (called from the session) -----------------------------------------

    def take_profile(self, connector_id: int, doc: dict[str, Any]) -> str:
        now = self.model.wall()
        if self.refuse_profiles:
            self.received.append(ReceivedProfile(now, connector_id, None, False))
            log.info("sim_profile_refused", charger=self.charge_point_id)
            return str(ChargingProfileStatus.rejected)
        try:
            profile = parse_profile(doc, now)
        except (ProfileNotSupportedError, KeyError, ValueError) as exc:
            log.info("sim_profile_not_supported", charger=self.charge_point_id, error=str(exc))
            self.received.append(ReceivedProfile(now, connector_id, None, False))
            return str(ChargingProfileStatus.not_supported)
        self.model.sync(self.sim_now_ms())
        self.model.profiles[profile.profile_id] = profile
        self.model.sync(self.sim_now_ms())
        self.received.append(ReceivedProfile(now, connector_id, profile, True))
        log.info(
            "sim_profile_installed",
            charger=self.charge_point_id,
            id=profile.profile_id,
            stack_level=profile.stack_level,
            periods=list(profile.periods),
        )
        return str(ChargingProfileStatus.accepted)

    def clear_profile(self, profile_id: int | None) -> str:
        self.model.sync(self.sim_now_ms())
        if profile_id is None:
            found = bool(self.model.profiles)
            self.model.profiles.clear()
        else:
            found = self.model.profiles.pop(profile_id, None) is not None
        self.model.sync(self.sim_now_ms())
        log.info("sim_profile_cleared", charger=self.charge_point_id, id=profile_id, found=found)
        status = (
            ClearChargingProfileStatus.accepted if found else ClearChargingProfileStatus.unknown
        )
        return str(status)

    # --- the loops -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Physics ticks all the time; the websocket comes and goes (reconnected)."""
        physics = asyncio.ensure_future(self._physics(stop))
        try:
            while not stop.is_set():
                try:
                    await self._connected(stop)
                except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                    log.info(
                        "sim_charger_disconnected",
                        charger=self.charge_point_id,
                        error=f"{type(exc).__name__}: {exc}"[:200],
                    )
                self._session = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.reconnect_s)
        finally:
            physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await physics

    async def _physics(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.model.sync(self.sim_now_ms())
            await asyncio.sleep(self.tick_s)

    async def _connected(self, stop: asyncio.Event) -> None:
        url = f"{self.csms_url}/{self.charge_point_id}"
        headers = {}
        if self.auth_key is not None:
            token = f"{self.charge_point_id}:{self.auth_key}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        async with connect(
            url, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=5, additional_headers=headers
        ) as ws:
            session = _ChargePointSession(self, ws)
            reader = asyncio.ensure_future(session.start())
            self._session = session
            self.connections += 1
            self._status = None
            try:
                if not self.booted:
                    await session.call(
                        call.BootNotification(
                            charge_point_model="gridchain-sim", charge_point_vendor="gridchain"
                        )
                    )
                    self.booted = True
                while not stop.is_set() and not reader.done():
                    await self._step(session)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.tick_s)
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reader

    async def _step(self, session: _ChargePointSession) -> None:
        """Report what changed: the EV plugged in or left, a full battery, meter values."""
        model = self.model
        now = model.wall()
        present = model.ev_present(now)
        if present and self.transaction_id is None and model.ev is not None:
            if model.ev.room_wh > 0:
                await self._notify(session, ChargePointStatus.preparing)
                model.sync(self.sim_now_ms())
                result = await session.call(
                    call.StartTransaction(
                        connector_id=1,
                        id_tag="SIMEV",
                        meter_start=round(model.import_wh),
                        timestamp=iso_ms(now),
                    )
                )
                self.transaction_id = result.transaction_id
                model.in_transaction = True
                model.sync(self.sim_now_ms())
        elif self.transaction_id is not None and (
            not present or not model.ev or model.ev.room_wh <= 0
        ):
            model.sync(self.sim_now_ms())
            model.in_transaction = False
            model.sync(self.sim_now_ms())  # the power drops to 0 at this instant
            transaction, self.transaction_id = self.transaction_id, None
            await session.call(
                call.StopTransaction(
                    meter_stop=round(model.import_wh),
                    timestamp=iso_ms(now),
                    transaction_id=transaction,
                    reason=Reason.ev_disconnected if not present else Reason.local,
                )
            )
        if self.transaction_id is None:
            status = ChargePointStatus.finishing if present else ChargePointStatus.available
        elif model.power_w > 0:
            status = ChargePointStatus.charging
        else:
            status = ChargePointStatus.suspended_evse
        await self._notify(session, status)
        if time.monotonic() - self._last_meter_values >= self.meter_values_s:
            self._last_meter_values = time.monotonic()
            await session.call(self.meter_values(now))

    def meter_values(self, now: int) -> Any:
        self.model.sync(self.sim_now_ms())
        return call.MeterValues(
            connector_id=1,
            transaction_id=self.transaction_id,
            meter_value=[
                {
                    "timestamp": iso_ms(now),
                    "sampledValue": [
                        {
                            "value": f"{self.model.import_wh:.1f}",
                            "measurand": Measurand.energy_active_import_register,
                            "unit": UnitOfMeasure.wh,
                        },
                        {
                            "value": f"{self.model.power_w:.1f}",
                            "measurand": Measurand.power_active_import,
                            "unit": UnitOfMeasure.w,
                        },
                    ],
                }
            ],
        )

    async def _notify(self, session: _ChargePointSession, status: str) -> None:
        if status == self._status:
            return
        self._status = status
        await session.call(
            call.StatusNotification(
                connector_id=1, error_code=ChargePointErrorCode.no_error, status=status
            )
        )


@dataclass
class InverterModel:
    """A battery inverter that follows its setpoint register (W, import positive)."""

    capacity_wh: float
    soc: float
    max_w: float
    setpoint_w: float = 0.0
    #: Seconds after the last setpoint write at which the inverter goes to 0 W (0: never).
    revert_s: int = 0
    written_wall_ms: int | None = None
    power_w: float = 0.0
    import_wh: float = 0.0
    export_wh: float = 0.0
    t_ms: int | None = None
    wall: Callable[[], int] = wall_ms

    def write_setpoint(self, watts: float) -> None:
        self.setpoint_w = watts
        self.written_wall_ms = self.wall()

    def effective_setpoint_w(self) -> float:
        if (
            self.revert_s
            and self.written_wall_ms is not None
            and self.wall() - self.written_wall_ms >= self.revert_s * 1000
        ):
            return 0.0
        return self.setpoint_w

    def sync(self, sim_ms: int) -> None:
        if self.t_ms is not None and sim_ms > self.t_ms:
            wh = self.power_w * (sim_ms - self.t_ms) / MS_PER_HOUR
            if wh >= 0:
                self.import_wh += wh
            else:
                self.export_wh -= wh
            self.soc = min(1.0, max(0.0, self.soc + wh / self.capacity_wh))
        self.t_ms = sim_ms if self.t_ms is None else max(self.t_ms, sim_ms)
        target = max(-self.max_w, min(self.max_w, self.effective_setpoint_w()))
        if (target > 0 and self.soc >= 1.0) or (target < 0 and self.soc <= 0.0):
            target = 0.0
        self.power_w = target
