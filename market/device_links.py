"""Which device a meter measures, as chain state: the council's LinkDevice (ADR 0048).

Why: a charger's meter used to be known only to its house's meter bridge (the bridge's
``ChargerConfig.meter_id``), while C&D requests and their settlement name the meter.  The
chain could not answer "which meter measures charger CP-7", so a bridge set up without that
line followed the sum of its owner's EV rates, and nobody but the house could audit the
pairing.  A council :class:`~gridchain.protocol.governance.LinkDevice` now records it; the
bridge's central system follows the link (meterbridge/devices.py).

A link pairs one meter with one device, both ways: a meter measures one device and a device
is measured by one meter.  Only an EV meter (its device is a charger) or a battery meter (an
inverter) is linked: those are the meters C&D requests name (market/cd_requests.py), so they
are the only ones whose requests a device can follow; a PV, load or net meter has no
schedule for a device to take.  An empty ``device_id`` unlinks.  Re-linking is unlink, then
link: a proposal says one thing, and "the meter moved to another charger" is two facts the
council approves one by one.  A meter's link survives ReplaceBridgeKey (a new bridge reads
the same meter on the same device); the chain never deletes a meter.

State layout (values are :class:`DeviceLink`, tag 0x8c; only once a link exists, so a chain
that never links keeps its state root):

* ``dlink:`` + device id -> the link (the bridge's lookup by charge point id);
* ``mlink:`` + meter id -> the same link (the meter list shows it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from gridchain.market.errors import ApplicationError, UnregisteredMeterError
from gridchain.market.meters import METER_TYPE_LABELS, get_meter
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import U64, Record, Size, decode, register
from gridchain.protocol.governance import DEVICE_ID_PATTERN, MAX_DEVICE_ID_CHARS, LinkDevice
from gridchain.protocol.meter import MeterId, MeterType

DEVICE_LINK_PREFIX = b"dlink:"
METER_LINK_PREFIX = b"mlink:"
#: The meter types a device can be linked to, and the device each one measures.
LINKABLE_METER_TYPES: dict[MeterType, str] = {
    MeterType.EV: "charger",
    MeterType.BATTERY: "inverter",
}


class DeviceLinkError(ApplicationError):
    """A LinkDevice the chain refuses (each case has its own subclass)."""

    code = "device_link"


class InvalidDeviceIdError(DeviceLinkError):
    code = "invalid_device_id"


class MeterNotLinkableError(DeviceLinkError):
    """A meter of a type no controllable device is measured by (not EV, not Battery)."""

    code = "meter_not_linkable"


class MeterAlreadyLinkedError(DeviceLinkError):
    code = "meter_already_linked"
    http_status = 409


class DeviceAlreadyLinkedError(DeviceLinkError):
    code = "device_already_linked"
    http_status = 409


class MeterNotLinkedError(DeviceLinkError):
    """An unlink of a meter that has no link."""

    code = "meter_not_linked"
    http_status = 404


@register(0x8C)
@dataclass(frozen=True, slots=True)
class DeviceLink(Record):
    """Meter ``meter_id`` measures device ``device_id`` since block ``linked_height``."""

    meter_id: MeterId
    device_id: Annotated[str, Size(1, MAX_DEVICE_ID_CHARS)]
    linked_height: U64


def device_link_key(device_id: str) -> bytes:
    return DEVICE_LINK_PREFIX + device_id.encode("utf-8")


def meter_link_key(meter_id: str) -> bytes:
    return METER_LINK_PREFIX + meter_id.encode("utf-8")


def link_of_device(state: StateReader, device_id: str) -> DeviceLink | None:
    raw = state.get(device_link_key(device_id))
    return None if raw is None else decode(raw, DeviceLink)


def link_of_meter(state: StateReader, meter_id: str) -> DeviceLink | None:
    raw = state.get(meter_link_key(meter_id))
    return None if raw is None else decode(raw, DeviceLink)


def iter_links(state: StateReader) -> Iterator[DeviceLink]:
    """Every link, by device id."""
    for _, raw in state.scan(DEVICE_LINK_PREFIX):
        yield decode(raw, DeviceLink)


def apply_link(view: Overlay, body: LinkDevice, height: int) -> DeviceLink | None:
    """Link (or, with an empty device id, unlink) a meter; return the new link (None:
    unlinked), or raise a DeviceLinkError (or UnregisteredMeterError) and write nothing."""
    meter = get_meter(view, body.meter_id)
    if meter is None:
        raise UnregisteredMeterError(f"meter {body.meter_id!r} is not registered")
    current = link_of_meter(view, body.meter_id)
    if not body.device_id:
        if current is None:
            raise MeterNotLinkedError(f"meter {body.meter_id!r} is linked to no device")
        view.delete(meter_link_key(body.meter_id))
        view.delete(device_link_key(current.device_id))
        return None
    if DEVICE_ID_PATTERN.fullmatch(body.device_id) is None:
        raise InvalidDeviceIdError(
            f"a device id is 1-{MAX_DEVICE_ID_CHARS} characters of A-Z a-z 0-9 . _ : -, "
            f"got {body.device_id!r}"
        )
    meter_type = MeterType(meter.meter_type)
    if meter_type not in LINKABLE_METER_TYPES:
        raise MeterNotLinkableError(
            f"meter {body.meter_id!r} is a {METER_TYPE_LABELS[meter_type]} meter: only EV "
            "meters (chargers) and Battery meters (inverters) measure a device the chain "
            "schedules"
        )
    if current is not None:
        raise MeterAlreadyLinkedError(
            f"meter {body.meter_id!r} is linked to {current.device_id!r}: unlink it first"
        )
    taken = link_of_device(view, body.device_id)
    if taken is not None:
        raise DeviceAlreadyLinkedError(
            f"device {body.device_id!r} is measured by meter {taken.meter_id!r}"
        )
    link = DeviceLink(body.meter_id, body.device_id, height)
    view.put(meter_link_key(body.meter_id), link.encode())
    view.put(device_link_key(body.device_id), link.encode())
    return link
