"""The house's OCPP 1.6J central system: chargers connect here and get the chain's limits.

Each configured charger connects over a websocket to ``ws://HOST:PORT/<charge point id>`` with
the ``ocpp1.6`` subprotocol (an id that is not configured is refused before the upgrade).  The
central system answers BootNotification, StatusNotification, Heartbeat, Authorize,
Start/StopTransaction and MeterValues, remembers what each charger reported, and installs two
charging profiles on connector ``connector_id`` (ADR 0028):

* id 1, ``TxDefaultProfile`` at stack level 0, Absolute, no duration: the **safe limit**.  It
  governs whenever nothing above it is valid, on the charger itself;
* id 2, ``TxDefaultProfile`` at stack level 1, Absolute from the first decided interval, one
  period per decided interval, and a duration that ends with the last one: the **schedule**.
  When it runs out (no newer decision arrived) the charger is back on the safe limit without
  any message; when the chain is unreachable the controller clears it.

TxDefaultProfile rather than TxProfile: it applies to the transaction running now and to the
next one, so a car that plugs in mid-interval follows the schedule from its first second
without a transaction id round trip.  Limits are in W (``chargingRateUnit`` W).

A profile the charger refuses (Rejected, NotSupported, a CallError, no answer in time) is a
:class:`ProfileRefusedError`: logged, counted in ``meterbridge_ocpp_profiles_total``, and sent
again at the controller's next pass; nothing else stops.  After a reconnect everything is sent
again, since the central system cannot know what the charger kept.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import structlog
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import ChargingProfile, ChargingSchedule, ChargingSchedulePeriod, IdTagInfo
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargingProfileKindType,
    ChargingProfilePurposeType,
    ChargingProfileStatus,
    ChargingRateUnitType,
    RegistrationStatus,
)
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gridchain.meterbridge.config import ChargerConfig, DevicesConfig
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.ocpp_time import iso_ms
from gridchain.meterbridge.setpoints import ChargerPlan
from gridchain.protocol.errors import GridchainError

log = structlog.get_logger("meterbridge.csms")

SUBPROTOCOL = Subprotocol("ocpp1.6")
SAFE_PROFILE_ID = 1
SCHEDULE_PROFILE_ID = 2


class ProfileRefusedError(GridchainError):
    """A charger did not take a charging profile (or its clearing)."""

    code = "charging_profile_refused"

    def __init__(self, charger: str, outcome: str, detail: str) -> None:
        super().__init__(f"charger {charger}: profile {outcome}: {detail}")
        self.charger = charger
        self.outcome = outcome


class ChargerOfflineError(GridchainError):
    code = "charger_offline"


def basic_auth_matches(header: str | None, user: str, password: str) -> bool:
    """An HTTP Basic ``Authorization`` header carrying exactly this user and password."""
    if header is None or not header.startswith("Basic "):
        return False
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    return hmac.compare_digest(header[len("Basic ") :].strip().encode(), expected.encode())


def safe_profile(limit_w: int, since_ms: int) -> ChargingProfile:
    return ChargingProfile(
        charging_profile_id=SAFE_PROFILE_ID,
        stack_level=0,
        charging_profile_purpose=ChargingProfilePurposeType.tx_default_profile,
        charging_profile_kind=ChargingProfileKindType.absolute,
        charging_schedule=ChargingSchedule(
            charging_rate_unit=ChargingRateUnitType.watts,
            charging_schedule_period=[ChargingSchedulePeriod(start_period=0, limit=limit_w)],
            start_schedule=iso_ms(since_ms),
        ),
    )


def schedule_profile(plan: ChargerPlan) -> ChargingProfile:
    """The plan as one Absolute profile; OCPP periods start on whole seconds from its start."""
    first = plan.periods[0].start_ms
    periods = [
        ChargingSchedulePeriod(start_period=(p.start_ms - first) // 1000, limit=p.limit_w)
        for p in plan.periods
    ]
    return ChargingProfile(
        charging_profile_id=SCHEDULE_PROFILE_ID,
        stack_level=1,
        charging_profile_purpose=ChargingProfilePurposeType.tx_default_profile,
        charging_profile_kind=ChargingProfileKindType.absolute,
        charging_schedule=ChargingSchedule(
            charging_rate_unit=ChargingRateUnitType.watts,
            charging_schedule_period=periods,
            duration=(plan.periods[-1].end_ms - first) // 1000,
            start_schedule=iso_ms(first),
        ),
    )


def plan_key(plan: ChargerPlan | None) -> tuple[tuple[int, int, int], ...]:
    """What identifies an installed schedule (empty: none, i.e. cleared)."""
    if plan is None:
        return ()
    return tuple((p.start_ms, p.end_ms, p.limit_w) for p in plan.periods)


@dataclass
class ChargerStatus:
    """What a charger last told the central system."""

    connected: bool = False
    boots: int = 0
    connections: int = 0
    vendor: str | None = None
    model: str | None = None
    #: connector id -> OCPP ChargePointStatus (Available, Preparing, Charging, ...).
    connectors: dict[int, str] = field(default_factory=dict)
    transaction_id: int | None = None
    meter_start_wh: int | None = None
    meter_stop_wh: int | None = None
    power_w: float | None = None
    energy_wh: float | None = None
    last_message_ms: int | None = None
    #: The schedule the charger accepted last ((start, end, W) per period; () cleared).
    installed: tuple[tuple[int, int, int], ...] | None = None
    safe_installed: bool = False
    refusals: int = 0


class _Session(OcppChargePoint):  # type: ignore[misc] # ocpp is untyped
    """One charger's websocket, as the central system sees it."""

    def __init__(
        self, charger: ChargerConfig, connection: ServerConnection, system: CentralSystem
    ) -> None:
        super().__init__(
            charger.charge_point_id, connection, response_timeout=system.config.call_timeout_s
        )
        self.charger = charger
        self.system = system

    def _seen(self, action: str) -> ChargerStatus:
        status = self.system.status[self.id]
        status.last_message_ms = self.system.now_ms()
        self.system.metrics.ocpp_messages.labels(self.id, action).inc()
        return status

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        status = self._seen("BootNotification")
        status.boots += 1
        status.vendor, status.model = charge_point_vendor, charge_point_model
        # a boot may have lost the profiles: install them again once the boot is accepted
        status.installed, status.safe_installed = None, False
        return call_result.BootNotification(
            current_time=iso_ms(self.system.now_ms()),
            interval=self.system.config.heartbeat_s,
            status=RegistrationStatus.accepted,
        )

    @after(Action.boot_notification)  # type: ignore[untyped-decorator]
    def after_boot(self, **_: Any) -> None:
        """OCPP: the central system sends nothing before its BootNotification answer."""
        self.system.wake(self.id)

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self) -> Any:
        self._seen("Heartbeat")
        return call_result.Heartbeat(current_time=iso_ms(self.system.now_ms()))

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    def on_status(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
        seen = self._seen("StatusNotification")
        seen.connectors[connector_id] = status
        log.info(
            "charger_status",
            charger=self.id,
            connector=connector_id,
            status=status,
            error_code=error_code,
        )
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[untyped-decorator]
    def on_authorize(self, id_tag: str) -> Any:
        self._seen("Authorize")
        return call_result.Authorize(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @on(Action.start_transaction)  # type: ignore[untyped-decorator]
    def on_start(self, connector_id: int, id_tag: str, meter_start: int, **_: Any) -> Any:
        seen = self._seen("StartTransaction")
        seen.transaction_id = next(self.system.transaction_ids)
        seen.meter_start_wh, seen.meter_stop_wh = meter_start, None
        log.info(
            "charger_transaction_started",
            charger=self.id,
            connector=connector_id,
            transaction=seen.transaction_id,
            meter_start_wh=meter_start,
        )
        return call_result.StartTransaction(
            transaction_id=seen.transaction_id,
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted),
        )

    @on(Action.stop_transaction)  # type: ignore[untyped-decorator]
    def on_stop(self, meter_stop: int, transaction_id: int, **_: Any) -> Any:
        seen = self._seen("StopTransaction")
        seen.meter_stop_wh = meter_stop
        if seen.transaction_id == transaction_id:
            seen.transaction_id = None
        log.info(
            "charger_transaction_stopped",
            charger=self.id,
            transaction=transaction_id,
            meter_stop_wh=meter_stop,
        )
        return call_result.StopTransaction(
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(self, connector_id: int, meter_value: list[Any], **_: Any) -> Any:
        seen = self._seen("MeterValues")
        for value in meter_value:
            for sample in value.get("sampled_value", []):
                measurand = sample.get("measurand", "Energy.Active.Import.Register")
                try:
                    number = float(sample["value"])
                except (KeyError, ValueError):
                    log.warning("charger_bad_meter_value", charger=self.id, sample=sample)
                    continue
                scale = 1000.0 if sample.get("unit") in ("kW", "kWh") else 1.0
                if measurand == "Power.Active.Import":
                    seen.power_w = number * scale
                elif measurand == "Energy.Active.Import.Register":
                    seen.energy_wh = number * scale
        return call_result.MeterValues()


WakeCallback = Callable[[str], Awaitable[None]]


class CentralSystem:
    """The websocket server and one session per connected charger."""

    def __init__(
        self,
        config: DevicesConfig,
        metrics: BridgeMetrics,
        *,
        now_ms: Callable[[], int],
        on_connect: WakeCallback | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.now_ms = now_ms
        self.chargers = {c.charge_point_id: c for c in config.chargers}
        self.status = {cp: ChargerStatus() for cp in self.chargers}
        self.transaction_ids = itertools.count(1)
        self._sessions: dict[str, _Session] = {}
        self._on_connect = on_connect
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.config.csms_host,
            self.config.csms_port,
            subprotocols=[SUBPROTOCOL],
            process_request=self._admit,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info(
            "csms_started",
            host=self.config.csms_host,
            port=self.port,
            chargers=sorted(self.chargers),
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse, before the upgrade, an unknown charge point id or a wrong password."""
        charger = request.path.strip("/")
        if charger not in self.chargers:
            # one label for every unknown id: a stranger cannot grow the metrics without bound
            self.metrics.ocpp_connections.labels("(unknown)", "unknown").inc()
            log.warning("csms_unknown_charger", path=request.path[:100])
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
        key = self.chargers[charger].auth_key
        if key is not None and not basic_auth_matches(
            request.headers.get("Authorization"), charger, key
        ):
            self.metrics.ocpp_connections.labels(charger, "unauthorized").inc()
            log.warning("csms_bad_credentials", charger=charger)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "authorization required\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
            return response
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        charger_id = connection.request.path.strip("/") if connection.request else ""
        if connection.subprotocol != SUBPROTOCOL:
            self.metrics.ocpp_connections.labels(charger_id, "no_subprotocol").inc()
            await connection.close(1002, "ocpp1.6 subprotocol required")
            return
        session = _Session(self.chargers[charger_id], connection, self)
        old = self._sessions.get(charger_id)
        self._sessions[charger_id] = session
        if old is not None:  # the charger reconnected before the old socket timed out
            await old._connection.close()
        status = self.status[charger_id]
        status.connected, status.installed, status.safe_installed = True, None, False
        status.connections += 1
        self.metrics.ocpp_connections.labels(charger_id, "accepted").inc()
        log.info("charger_connected", charger=charger_id, connections=status.connections)
        self.wake(charger_id)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self._sessions.get(charger_id) is session:
                del self._sessions[charger_id]
                status.connected = False
                log.info("charger_disconnected", charger=charger_id)

    def wake(self, charger_id: str) -> None:
        """Ask the controller to bring this charger up to date (after connect or boot)."""
        if self._on_connect is None:
            return
        task = asyncio.ensure_future(self._on_connect(charger_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connected(self, charger_id: str) -> bool:
        return charger_id in self._sessions

    async def ensure(self, charger_id: str, plan: ChargerPlan | None) -> bool:
        """Make the charger hold the safe profile and ``plan`` (None or empty: no schedule).

        Returns True if something was sent and accepted; raises ProfileRefusedError when the
        charger refuses; does nothing for a charger that is not connected (it gets everything
        when it connects).
        """
        session = self._sessions.get(charger_id)
        if session is None:
            return False
        status = self.status[charger_id]
        charger = self.chargers[charger_id]
        sent = False
        if not status.safe_installed:
            await self._set(session, safe_profile(charger.safe_limit_w, self.now_ms()))
            status.safe_installed = sent = True
        key = plan_key(plan if plan is not None and not plan.empty else None)
        if status.installed == key:
            return sent
        if key:
            assert plan is not None
            await self._set(session, schedule_profile(plan))
        else:
            await self._clear(session)
        status.installed = key
        log.info("charger_schedule_installed", charger=charger_id, periods=[list(p) for p in key])
        return True

    async def _set(self, session: _Session, profile: ChargingProfile) -> None:
        request = call.SetChargingProfile(
            connector_id=session.charger.connector_id, cs_charging_profiles=profile
        )
        result = await self._call(session, request)
        status = getattr(result, "status", None)
        if status != ChargingProfileStatus.accepted:
            self._refused(session.id, str(status).lower(), f"SetChargingProfile answered {status}")
        self.metrics.ocpp_profiles.labels(session.id, "accepted").inc()

    async def _clear(self, session: _Session) -> None:
        request = call.ClearChargingProfile(id=SCHEDULE_PROFILE_ID)
        # Unknown is fine: the charger had no schedule profile (it expired or was never set)
        await self._call(session, request)
        self.metrics.ocpp_profiles.labels(session.id, "cleared").inc()

    async def _call(self, session: _Session, request: Any) -> Any:
        try:
            return await session.call(request, suppress=False)
        except TimeoutError as exc:
            self._refused(session.id, "timeout", str(exc)[:200])
        except OCPPError as exc:
            self._refused(session.id, "error", f"{type(exc).__name__}: {exc.description}")
        except ConnectionClosed as exc:
            raise ChargerOfflineError(f"charger {session.id} disconnected: {exc}") from exc

    def _refused(self, charger_id: str, outcome: str, detail: str) -> None:
        self.metrics.ocpp_profiles.labels(charger_id, outcome).inc()
        self.status[charger_id].refusals += 1
        raise ProfileRefusedError(charger_id, outcome, detail)
