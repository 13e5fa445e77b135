"""The governance records that exist only inside council proposals (protocol/governance.py).

Each function checks everything first and writes only when the record applies, so a refusal
changes nothing; the application calls them through its one governance code path.
"""

from __future__ import annotations

from dataclasses import replace

from gridchain.market.accounts import get_account, get_participant, participant_key
from gridchain.market.errors import (
    ParticipantBusyError,
    SameBridgeKeyError,
    UnknownParticipantError,
    UnregisteredMeterError,
)
from gridchain.market.keys import require_registrable_key
from gridchain.market.meters import get_meter, meter_key
from gridchain.market.state import Overlay
from gridchain.protocol.address import format_address
from gridchain.protocol.governance import RemoveParticipant, ReplaceBridgeKey


def remove_participant(view: Overlay, body: RemoveParticipant) -> None:
    """Delete the participant record: the key's transactions are refused from now on.

    The account (its balance, its nonce) stays, so re-admitting the same key later continues
    where it stopped; open buy orders must be cancelled first, because their escrow is the
    only money the chain moves for an owner without the owner's signature.
    """
    if get_participant(view, body.address) is None:
        raise UnknownParticipantError(f"{format_address(body.address)} is not a participant")
    locked = get_account(view, body.address).locked_mc
    if locked:
        raise ParticipantBusyError(
            f"{format_address(body.address)} has {locked} mc locked in open buy orders"
        )
    view.delete(participant_key(body.address))


def replace_bridge_key(view: Overlay, body: ReplaceBridgeKey) -> None:
    """Let another bridge key sign the meter's readings.

    The meter's reading chain continues: the new bridge learns the head (sequence, hash,
    registers) from GET /v1/meters/{id} and extends it (meterbridge/bridge.py does), so the
    history stays one hash chain and settlement reads it unchanged.
    """
    meter = get_meter(view, body.meter_id)
    if meter is None:
        raise UnregisteredMeterError(f"meter {body.meter_id!r} is not registered")
    require_registrable_key(body.bridge_key, what="ReplaceBridgeKey.bridge_key")
    if meter.bridge_key == body.bridge_key:
        raise SameBridgeKeyError(f"meter {body.meter_id!r} is already read by that key")
    view.put(meter_key(body.meter_id), replace(meter, bridge_key=body.bridge_key).encode())
