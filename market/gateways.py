"""The gateway set as chain state: which keys validators accept gateway links from (ADR 0043).

Why: gateways (ADR 0025) were named in genesis.json, read by the peer network at start; a
community that adds a second gateway for its households, or retires one whose device was lost,
needed a new chain.  A council :class:`~gridchain.protocol.governance.UpdateGateways` now
changes the set in the block that applies it; after every commit each validator hands the
set to its peer network (node/runtime.py), which accepts links from an added key and closes
and refuses a removed one's.  A gateway needs no state for this: it dials, and the link works
once the chain admits its key.

The set is stored only once it changes (``meta:gateways``, under the state root), so a chain
that never changes it keeps the genesis state and state root it always had.

Refused, each with a typed error and no write: an empty change; a key named twice, or added
while a gateway; a key removed that is not one; a key with another role (a validator of any
height the chain has scheduled, the governance key, a council member in office); a key
gridchain never registers; more than :data:`MAX_GATEWAYS` gateways; and any change on a solo
chain that named no gateway in genesis (its validator runs no peer network at all, so it
could never accept the link: node/server.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gridchain.genesis.schema import Genesis
from gridchain.market.errors import ApplicationError
from gridchain.market.keys import require_registrable_key
from gridchain.market.state import Overlay, StateReader
from gridchain.market.validators import validator_schedule
from gridchain.protocol.encoding import Bytes32, Record, Size, decode, register
from gridchain.protocol.governance import UpdateGateways

GATEWAYS_KEY = b"meta:gateways"
#: The most gateways a chain admits at once.
MAX_GATEWAYS = 256


class GatewayChangeError(ApplicationError):
    """An UpdateGateways the chain refuses (each case has its own subclass)."""

    code = "gateway_change"


class EmptyGatewayChangeError(GatewayChangeError):
    code = "empty_gateway_change"


class DuplicateGatewayError(GatewayChangeError):
    """A key named twice in one change, or added while it is already a gateway."""

    code = "duplicate_gateway"


class UnknownGatewayError(GatewayChangeError):
    code = "unknown_gateway"


class GatewayRoleConflictError(GatewayChangeError):
    """A key that is a validator, the governance key or a council member."""

    code = "gateway_role_conflict"


class TooManyGatewaysError(GatewayChangeError):
    code = "too_many_gateways"


class GatewayChangeUnsupportedError(GatewayChangeError):
    code = "gateway_change_unsupported"


@register(0x8B)
@dataclass(frozen=True, slots=True)
class GatewaySet(Record):
    """The gateways in force, genesis's first then the added ones in the order admitted."""

    keys: Annotated[tuple[Bytes32, ...], Size(0, MAX_GATEWAYS)]


def gateways_in_force(state: StateReader, genesis: Genesis) -> tuple[bytes, ...]:
    raw = state.get(GATEWAYS_KEY)
    if raw is None:
        return genesis.gateway_keys()
    return decode(raw, GatewaySet).keys


def apply_gateway_update(
    view: Overlay,
    genesis: Genesis,
    body: UpdateGateways,
    council_keys: frozenset[bytes],
) -> tuple[bytes, ...]:
    """Apply ``body``; return the new set, or raise a GatewayChangeError and write nothing."""
    if genesis.consensus.engine == "solo" and not genesis.gateway_keys():
        raise GatewayChangeUnsupportedError(
            "a solo chain without genesis gateways runs no peer network to link them"
        )
    if not body.add and not body.remove:
        raise EmptyGatewayChangeError("an UpdateGateways adds or removes at least one key")
    named = [*body.add, *body.remove]
    if len(set(named)) != len(named):
        raise DuplicateGatewayError("a key is named twice in one change")
    current = gateways_in_force(view, genesis)
    for key in body.add:
        require_registrable_key(key, what="UpdateGateways.add")
        if key in current:
            raise DuplicateGatewayError(f"{key.hex()} is already a gateway")
    for key in body.remove:
        if key not in current:
            raise UnknownGatewayError(f"{key.hex()} is not a gateway")
    validators = {k for epoch in validator_schedule(view, genesis) for k in epoch.keys}
    taken = validators | council_keys | {bytes.fromhex(genesis.governance_public_key)}
    if any(key in taken for key in body.add):
        raise GatewayRoleConflictError(
            "a validator, the governance key or a council member cannot be a gateway"
        )
    removed = set(body.remove)
    result = tuple(k for k in current if k not in removed) + tuple(body.add)
    if len(result) > MAX_GATEWAYS:
        raise TooManyGatewaysError(f"at most {MAX_GATEWAYS} gateways")
    view.put(GATEWAYS_KEY, GatewaySet(result).encode())
    return result
