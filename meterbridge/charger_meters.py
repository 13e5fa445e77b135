"""Which meter each charger follows: its config's ``meter_id``, else the chain's link (ADR 0048).

Why: a charger's setpoints are the chain's rates for the C&D requests that name the meter
measuring it (meterbridge/setpoints.py).  The bridge config could name that meter; since
ADR 0048 the council records it on chain (LinkDevice, ``GET /v1/devices/{charge point id}``),
so a charger installed without ``meter_id`` follows the meter the chain links it to, and
follows a new link when the council changes it.  The controller asks at every poll
(``devices.poll_s``, 2 s by default), one request per charger.

Rules, each logged once per (charger, what) so a standing disagreement does not flood the log:

* a ``meter_id`` in the config wins over the chain.  The config is the house's own statement
  of its wiring, made where the charger and the meter are installed; a chain link that
  disagrees is a council record made from an earlier declaration, and following it would let a
  stale or mistaken record move a house's charger onto another meter's schedule.  The
  disagreement is logged as a warning (``charger_link_disagrees``) so one of them gets fixed;
* a link is followed only to an EV meter of the charger's own ``owner`` (a charge point id is
  chosen by its vendor, so the chain's namespace may hold another house's charger of the same
  id; a Battery meter measures an inverter, not a charger): otherwise a warning
  (``charger_link_ignored``) and the charger behaves as if unlinked;
* an unlinked charger without ``meter_id`` follows the sum of its owner's EV rates, as before;
* a node that does not answer the lookup changes nothing: the last known link stays (the
  controller's fail-safe already covers a silent node); logged when it starts failing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError
from gridchain.meterbridge.config import ChargerConfig

log = structlog.get_logger("meterbridge.charger_meters")


@dataclass(frozen=True, slots=True)
class FollowedMeter:
    """The meter a charger follows now (None: the sum of its owner's EV rates) and why."""

    meter_id: str | None
    source: str  # "config", "chain" or "owner"


class ChargerMeters:
    """The chain's links of the configured chargers, and the meter each one follows."""

    def __init__(self, chargers: Iterable[ChargerConfig]) -> None:
        self.chargers = {c.charge_point_id: c for c in chargers}
        #: charge point id -> the chain's link (None: linked to none); absent: never answered.
        self.links: dict[str, m.DeviceLink | None] = {}
        self._reported: set[tuple[str, str, str]] = set()
        self._followed: dict[str, FollowedMeter] = {}
        #: Chargers whose last lookup failed (logged when it starts failing, not at every poll).
        self._failing: set[str] = set()

    async def refresh(self, node: NodeClient, timeout_s: float) -> None:
        """Ask the node for every charger's link; keep the last one when it does not answer."""
        for charger_id in self.chargers:
            try:
                link = await node.device_link(charger_id, timeout_s=timeout_s, retries=0)
            except NodeError as exc:
                if charger_id not in self._failing:
                    self._failing.add(charger_id)
                    log.warning("charger_link_unavailable", charger=charger_id, error=exc.message)
                continue
            if charger_id in self._failing:
                self._failing.discard(charger_id)
                log.info("charger_link_available", charger=charger_id)
            self.links[charger_id] = link

    def follow(self, charger_id: str) -> FollowedMeter:
        """The meter ``charger_id`` follows now (logs a change of it, and problems once)."""
        charger = self.chargers[charger_id]
        link = self.links.get(charger_id)
        if charger.meter_id is not None:
            if link is not None and link.meter_id != charger.meter_id:
                self._warn_once(
                    "charger_link_disagrees",
                    charger_id,
                    link.meter_id,
                    config_meter=charger.meter_id,
                    chain_meter=link.meter_id,
                    detail="the config's meter_id wins (ADR 0048)",
                )
            followed = FollowedMeter(charger.meter_id, "config")
        elif link is not None and self._usable(charger, link):
            followed = FollowedMeter(link.meter_id, "chain")
        else:
            followed = FollowedMeter(None, "owner")
        if self._followed.get(charger_id) != followed:
            self._followed[charger_id] = followed
            log.info(
                "charger_follows_meter",
                charger=charger_id,
                meter=followed.meter_id,
                source=followed.source,
            )
        return followed

    def _usable(self, charger: ChargerConfig, link: m.DeviceLink) -> bool:
        if link.meter_type != "EV":
            self._warn_once(
                "charger_link_ignored",
                charger.charge_point_id,
                link.meter_id,
                chain_meter=link.meter_id,
                detail=f"the chain links it to a {link.meter_type} meter, not an EV meter",
            )
            return False
        if link.owner != charger.owner:
            self._warn_once(
                "charger_link_ignored",
                charger.charge_point_id,
                link.meter_id,
                chain_meter=link.meter_id,
                detail=f"the linked meter belongs to {link.owner}, not to {charger.owner}",
            )
            return False
        return True

    def _warn_once(self, event: str, charger_id: str, meter_id: str, **fields: str) -> None:
        key = (event, charger_id, meter_id)
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning(event, charger=charger_id, **fields)
