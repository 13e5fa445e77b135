"""The device controller: the house's chargers and inverters follow the chain (ADR 0028).

Runs inside the meter bridge process (the bridge owns the Modbus buses, and an inverter on the
meters' RS-485 line can only be reached by the process that holds the line).  Every ``poll_s``
and at every interval boundary it asks the node for the latest schedule decisions
(``GET /v1/schedule``) and which meter each charger and inverter follows
(``GET /v1/devices/{id}``, :mod:`meterbridge.device_meters`), works out each device's value
(:mod:`meterbridge.setpoints`) and applies it: chargers through the OCPP central system
(:mod:`meterbridge.csms`), inverters by writing their setpoint register over Modbus.

**Fail-safe.** If the node has not answered for ``failsafe_after_s``, every charger's schedule
profile is cleared (its safe profile, installed on connect, governs) and every inverter is set
to its safe setpoint: the devices are at their safe values at most ``failsafe_after_s`` +
``poll_s`` + one OCPP or Modbus exchange after the last answer.  Independently, on the
devices themselves: a charger's schedule profile ends with the last decided interval, and an
inverter with a revert timer returns to 0 W ``failsafe_after_s`` after the last write, so a
controller that dies does not leave a device on an old setpoint either.  When the node
answers again the schedule is installed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError, with_query
from gridchain.meterbridge.config import DevicesConfig, InverterConfig
from gridchain.meterbridge.csms import CentralSystem, ChargerOfflineError, ProfileRefusedError
from gridchain.meterbridge.device_meters import DeviceMeters
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient, SetpointWriteError
from gridchain.meterbridge.profiles import ProfileError, SetpointSpec, load_profile
from gridchain.meterbridge.setpoints import charger_plan, inverter_setpoint

log = structlog.get_logger("meterbridge.devices")

#: Decisions asked for at each poll: the current interval, the next, and one of slack.
DECISIONS_PER_POLL = 3


@dataclass
class InverterState:
    config: InverterConfig
    spec: SetpointSpec
    bus: BusClient
    written_w: int | None = None
    written_at: float = -math.inf
    last_error: str | None = None


@dataclass
class ControllerState:
    """What the controller knows of the chain (monotonic seconds)."""

    decisions: Sequence[m.Decision] = ()
    last_answer: float | None = None
    started: float = field(default_factory=time.monotonic)
    failsafe: bool = False


class DeviceController:
    def __init__(
        self,
        config: DevicesConfig,
        node: NodeClient,
        buses: Mapping[str, BusClient],
        metrics: BridgeMetrics,
        *,
        profile_dirs: Sequence[Path] = (),
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.config = config
        self.node = node
        self.metrics = metrics
        self.now_ms = now_ms
        self.state = ControllerState()
        self.csms = CentralSystem(config, metrics, now_ms=now_ms, on_connect=self._on_connect)
        self.charger_meters = DeviceMeters.of_chargers(config.chargers)
        self.inverter_meters = DeviceMeters.of_inverters(config.inverters)
        self.inverters: dict[str, InverterState] = {}
        for inverter in config.inverters:
            profile = load_profile(inverter.profile, profile_dirs)
            if profile.setpoint is None:
                raise ProfileError(
                    f"inverter {inverter.name}: profile {inverter.profile} has no [setpoint]"
                )
            self.inverters[inverter.name] = InverterState(
                inverter, profile.setpoint, buses[inverter.bus]
            )
        self._lock = asyncio.Lock()
        #: (charger, interval) discharge rates already logged as not expressible.
        self._discharge_reported: set[tuple[str, int]] = set()

    # --- the chain --------------------------------------------------------------------

    async def poll(self) -> bool:
        """Ask the node for the latest decisions; False if it did not answer."""
        path = with_query("/v1/schedule", {"limit": DECISIONS_PER_POLL})
        try:
            schedule = await self.node.get(
                m.Schedule, path, timeout_s=max(0.5, self.config.poll_s), retries=0
            )
        except NodeError as exc:
            self.metrics.node_errors.labels(exc.code).inc()
            log.warning("schedule_unavailable", error=exc.message)
            return False
        self.state.decisions = schedule.decisions
        self.state.last_answer = time.monotonic()
        timeout_s = max(0.5, self.config.poll_s)
        await self.charger_meters.refresh(self.node, timeout_s=timeout_s)
        await self.inverter_meters.refresh(self.node, timeout_s=timeout_s)
        return True

    def failsafe_due(self) -> bool:
        """True once the node has been silent for ``failsafe_after_s`` (or never answered)."""
        since = self.state.last_answer if self.state.last_answer is not None else self.state.started
        return time.monotonic() - since >= self.config.failsafe_after_s

    # --- the devices ------------------------------------------------------------------

    async def apply(self) -> None:
        """Bring every device to what the chain (or the fail-safe) says now."""
        async with self._lock:
            failsafe = self.failsafe_due()
            if failsafe != self.state.failsafe:
                self.state.failsafe = failsafe
                self.metrics.failsafe.set(1 if failsafe else 0)
                log.warning(
                    "failsafe_on" if failsafe else "failsafe_off",
                    after_s=self.config.failsafe_after_s,
                )
            for charger_id in self.csms.chargers:
                await self._apply_charger(charger_id, failsafe)
            for inverter in self.inverters.values():
                await self._apply_inverter(inverter, failsafe)

    async def _apply_charger(self, charger_id: str, failsafe: bool) -> None:
        charger = self.csms.chargers[charger_id]
        plan = None
        if not failsafe:
            plan = charger_plan(
                self.state.decisions,
                charger.owner,
                self.now_ms(),
                charger.safe_limit_w,
                self.charger_meters.follow(charger_id).meter_id,
            )
            for interval in plan.discharge_intervals:
                if (charger_id, interval) in self._discharge_reported:
                    continue
                self._discharge_reported.add((charger_id, interval))
                self.metrics.discharge_not_expressible.labels(charger_id).inc()
                log.warning(
                    "discharge_not_expressible",
                    charger=charger_id,
                    interval=interval,
                    detail="OCPP 1.6 limits are never negative; the charger gets 0 W",
                )
        try:
            await self.csms.ensure(charger_id, plan)
        except ProfileRefusedError as exc:
            log.warning(
                "charging_profile_refused",
                charger=charger_id,
                outcome=exc.outcome,
                error=exc.message,
            )
        except ChargerOfflineError as exc:
            log.info("charger_offline", charger=charger_id, error=exc.message)

    async def _apply_inverter(self, inverter: InverterState, failsafe: bool) -> None:
        cfg = inverter.config
        if failsafe:
            watts, decided = cfg.safe_setpoint_w, False
        else:
            watts, decided = inverter_setpoint(
                self.state.decisions,
                cfg.owner,
                self.now_ms(),
                cfg.safe_setpoint_w,
                self.inverter_meters.follow(cfg.name).meter_id,
            )
        revert_s = math.ceil(self.config.failsafe_after_s)
        # rewrite before the device's revert timer runs out, even when nothing changed
        fresh = time.monotonic() - inverter.written_at < revert_s / 3
        if watts == inverter.written_w and fresh:
            return
        try:
            await inverter.bus.write_setpoint(
                cfg.name, cfg.slave_id, inverter.spec, watts, revert_s
            )
        except SetpointWriteError as exc:
            inverter.last_error = exc.message
            inverter.written_w = None
            self.metrics.setpoint_writes.labels(cfg.name, "error").inc()
            log.warning(
                "setpoint_not_taken", inverter=cfg.name, setpoint_w=watts, error=exc.message
            )
            return
        if watts != inverter.written_w:
            log.info("setpoint_written", inverter=cfg.name, setpoint_w=watts, decided=decided)
        inverter.written_w, inverter.written_at, inverter.last_error = watts, time.monotonic(), None
        self.metrics.setpoint_writes.labels(cfg.name, "ok").inc()

    async def _on_connect(self, charger_id: str) -> None:
        async with self._lock:
            await self._apply_charger(charger_id, self.failsafe_due())

    def health(self) -> dict[str, Any]:
        """The devices' state for ``/agent/health``."""
        chargers = {}
        for charger_id, status in self.csms.status.items():
            followed = self.charger_meters.follow(charger_id)
            chargers[charger_id] = {
                "meter_id": followed.meter_id,
                "meter_source": followed.source,
                "connected": status.connected,
                "boots": status.boots,
                "connections": status.connections,
                "connectors": {str(k): v for k, v in status.connectors.items()},
                "transaction_id": status.transaction_id,
                "power_w": status.power_w,
                "energy_wh": status.energy_wh,
                "schedule": None
                if status.installed is None
                else [list(p) for p in status.installed],
                "refusals": status.refusals,
            }
        inverters: dict[str, dict[str, Any]] = {}
        for name, inv in self.inverters.items():
            followed = self.inverter_meters.follow(name)
            inverters[name] = {
                "meter_id": followed.meter_id,
                "meter_source": followed.source,
                "setpoint_w": inv.written_w,
                "last_error": inv.last_error,
            }
        return {"failsafe": self.state.failsafe, "chargers": chargers, "inverters": inverters}

    # --- the loop ---------------------------------------------------------------------

    def _sleep_s(self) -> float:
        """Until the next poll, or just past the next interval boundary if that is sooner."""
        wait = self.config.poll_s
        now = self.now_ms()
        for decision in self.state.decisions:
            for edge in (decision.start_ms, decision.end_ms):
                if edge > now:
                    wait = min(wait, (edge - now) / 1000 + 0.01)
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        if self.csms.chargers:
            await self.csms.start()
        try:
            while not stop.is_set():
                await self.poll()
                await self.apply()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._sleep_s())
        finally:
            await self.csms.stop()
