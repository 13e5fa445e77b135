"""Which meter each charger and inverter follows: its config's ``meter_id``, else the chain's
link (ADR 0048).

Why: a device's setpoints are the chain's rates for the C&D requests that name the meter
measuring it (meterbridge/setpoints.py): EV requests for a charger, Battery requests for an
inverter.  The bridge config could name that meter; since ADR 0048 the council records it on
chain (LinkDevice, ``GET /v1/devices/{device id}``), so a device installed without
``meter_id`` follows the meter the chain links it to, and follows a new link when the council
changes it.  Without either, a house with two batteries (or two vehicles) would drive each
device with the sum of both.  The controller asks at every poll (``devices.poll_s``, 2 s by
default), one request per device.

A device's id on chain is a charger's charge point id and an inverter's config ``name``.  A
name the chain cannot hold as a device id (``protocol.governance.DEVICE_ID_PATTERN``) is never
looked up: logged once (``inverter_link_not_looked_up``), the device follows its config or its
owner.  Charge point ids always can (the config requires the same pattern).

Rules, each logged once per (device, what) so a standing disagreement does not flood the log;
events are named after the device's kind (``charger_...``, ``inverter_...``):

* a ``meter_id`` in the config wins over the chain.  The config is the house's own statement
  of its wiring, made where the device and the meter are installed; a chain link that
  disagrees is a council record made from an earlier declaration, and following it would let a
  stale or mistaken record move a house's device onto another meter's schedule.  The
  disagreement is logged as a warning (``..._link_disagrees``) so one of them gets fixed;
* a link is followed only to a meter of the kind's type (EV for a charger, Battery for an
  inverter) and of the device's own ``owner`` (a charge point id is chosen by its vendor and an
  inverter's name by its house, so the chain's namespace may hold another house's device of the
  same id): otherwise a warning (``..._link_ignored``) and the device behaves as if unlinked;
* an unlinked device without ``meter_id`` follows the sum of its owner's rates of its meter
  type, as before links existed;
* a node that does not answer the lookup changes nothing: the last known link stays (the
  controller's fail-safe already covers a silent node); logged when it starts failing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError
from gridchain.meterbridge.config import ChargerConfig, InverterConfig
from gridchain.protocol.governance import DEVICE_ID_PATTERN

log = structlog.get_logger("meterbridge.device_meters")


@dataclass(frozen=True, slots=True)
class FollowedMeter:
    """The meter a device follows now (None: the sum of its owner's rates) and why."""

    meter_id: str | None
    source: str  # "config", "chain" or "owner"


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A kind of device: the name its log events and fields carry, the meter type it follows."""

    name: str  # "charger" or "inverter"
    meter_type: str  # the ``meter_type`` of ``/v1/devices/{id}``: "EV" or "Battery"


CHARGER = DeviceKind("charger", "EV")
INVERTER = DeviceKind("inverter", "Battery")


@dataclass(frozen=True, slots=True)
class Device:
    """What the links need of a configured device."""

    device_id: str
    owner: str
    meter_id: str | None


class DeviceMeters:
    """The chain's links of the configured devices of one kind, and the meter each follows."""

    def __init__(self, kind: DeviceKind, devices: Iterable[Device]) -> None:
        self.kind = kind
        self.devices = {d.device_id: d for d in devices}
        #: device id -> the chain's link (None: linked to none); absent: never answered.
        self.links: dict[str, m.DeviceLink | None] = {}
        self._reported: set[tuple[str, str, str]] = set()
        self._followed: dict[str, FollowedMeter] = {}
        #: Devices whose last lookup failed (logged when it starts failing, not at every poll).
        self._failing: set[str] = set()
        #: Devices the chain can hold a link of (the others are never looked up).
        self.looked_up = [d for d in self.devices if DEVICE_ID_PATTERN.fullmatch(d) is not None]
        for device_id in self.devices.keys() - set(self.looked_up):
            log.warning(
                f"{kind.name}_link_not_looked_up",
                **{kind.name: device_id},
                detail="not a chain device id (1-48 of A-Z a-z 0-9 . _ : -); follows its config",
            )

    @classmethod
    def of_chargers(cls, chargers: Iterable[ChargerConfig]) -> DeviceMeters:
        """Chargers, by charge point id, following EV meters."""
        return cls(CHARGER, (Device(c.charge_point_id, c.owner, c.meter_id) for c in chargers))

    @classmethod
    def of_inverters(cls, inverters: Iterable[InverterConfig]) -> DeviceMeters:
        """Inverters, by config name, following Battery meters."""
        return cls(INVERTER, (Device(i.name, i.owner, i.meter_id) for i in inverters))

    async def refresh(self, node: NodeClient, timeout_s: float) -> None:
        """Ask the node for every device's link; keep the last one when it does not answer."""
        kind = self.kind.name
        for device_id in self.looked_up:
            try:
                link = await node.device_link(device_id, timeout_s=timeout_s, retries=0)
            except NodeError as exc:
                if device_id not in self._failing:
                    self._failing.add(device_id)
                    log.warning(f"{kind}_link_unavailable", **{kind: device_id}, error=exc.message)
                continue
            if device_id in self._failing:
                self._failing.discard(device_id)
                log.info(f"{kind}_link_available", **{kind: device_id})
            self.links[device_id] = link

    def follow(self, device_id: str) -> FollowedMeter:
        """The meter ``device_id`` follows now (logs a change of it, and problems once)."""
        device = self.devices[device_id]
        link = self.links.get(device_id)
        if device.meter_id is not None:
            if link is not None and link.meter_id != device.meter_id:
                self._warn_once(
                    "link_disagrees",
                    device_id,
                    link.meter_id,
                    config_meter=device.meter_id,
                    chain_meter=link.meter_id,
                    detail="the config's meter_id wins (ADR 0048)",
                )
            followed = FollowedMeter(device.meter_id, "config")
        elif link is not None and self._usable(device, link):
            followed = FollowedMeter(link.meter_id, "chain")
        else:
            followed = FollowedMeter(None, "owner")
        if self._followed.get(device_id) != followed:
            self._followed[device_id] = followed
            log.info(
                f"{self.kind.name}_follows_meter",
                **{self.kind.name: device_id},
                meter=followed.meter_id,
                source=followed.source,
            )
        return followed

    def _usable(self, device: Device, link: m.DeviceLink) -> bool:
        if link.meter_type != self.kind.meter_type:
            self._warn_once(
                "link_ignored",
                device.device_id,
                link.meter_id,
                chain_meter=link.meter_id,
                detail=f"the linked meter's type is {link.meter_type}, not {self.kind.meter_type}",
            )
            return False
        if link.owner != device.owner:
            self._warn_once(
                "link_ignored",
                device.device_id,
                link.meter_id,
                chain_meter=link.meter_id,
                detail=f"the linked meter belongs to {link.owner}, not to {device.owner}",
            )
            return False
        return True

    def _warn_once(self, what: str, device_id: str, meter_id: str, **fields: str) -> None:
        key = (what, device_id, meter_id)
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning(f"{self.kind.name}_{what}", **{self.kind.name: device_id}, **fields)
