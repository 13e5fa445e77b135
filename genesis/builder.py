"""Build a genesis document and the keys that go with it (pure: keys and time are passed in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.schema import DeviceKind, Genesis, parse_genesis
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.hpke import public_bytes

#: The source's three-peer testbed: Peer A (PV + battery), Peer B (EV), Peer C (consumer).
PEER_DEVICES: tuple[tuple[DeviceKind, ...], ...] = (
    ("PV", "Battery", "Load"),
    ("EV", "Load"),
    ("Load",),
)
DEFAULT_BALANCE_MC = 1_000_000  # 1,000 credits each
#: A testnet household's meters, in the order of their Modbus slave ids (4i+1..4i+4 for
#: participant i), as ``gridchain meterbridge simulate`` serves them: (meter id suffix, meter
#: type, profile, the device that must be present for the meter to be registered).
HOUSEHOLD_METERS: tuple[tuple[str, str, str, DeviceKind | None], ...] = (
    ("net", "Netmeter", "eastron-sdm630", None),
    ("pv", "PV", "eastron-sdm120", "PV"),
    ("ev", "EV", "generic", "EV"),
    ("battery", "Battery", "eastron-sdm120", "Battery"),
)
SLAVES_PER_HOUSEHOLD = len(HOUSEHOLD_METERS)


@dataclass(frozen=True, slots=True)
class NamedKey:
    name: str
    key: SigningKey

    @property
    def address(self) -> str:
        return format_address(address_of(self.key.public_key))


@dataclass(frozen=True, slots=True)
class GenesisBundle:
    genesis: Genesis
    validators: tuple[NamedKey, ...]
    participants: tuple[NamedKey, ...]
    governance: NamedKey
    #: One meter-bridge key per participant (same order), when built ``with_meters``.
    bridges: tuple[NamedKey, ...] = ()
    #: Each validator's X25519 encryption key (same order), when built with encryption keys.
    encryption: tuple[X25519PrivateKey, ...] = ()
    #: The gateways named in genesis (``gateway-1`` ...), with their link keys.
    gateways: tuple[NamedKey, ...] = ()
    #: The governance council (``council-1`` ...), when built with ``council`` > 0; empty,
    #: the council is the governance key alone (k = n = 1).
    council: tuple[NamedKey, ...] = ()


def household_meter_ids(participant: str, devices: tuple[str, ...]) -> list[tuple[int, str]]:
    """(slot in the household 0..3, meter id) of the meters a participant's household has."""
    return [
        (slot, f"{participant}-{suffix}")
        for slot, (suffix, _, _, device) in enumerate(HOUSEHOLD_METERS)
        if device is None or device in devices
    ]


def participant_name(i: int) -> str:
    return f"peer-{chr(ord('a') + i)}" if i < 26 else f"peer-{i + 1}"


def build_genesis(
    *,
    chain_name: str,
    genesis_time_ms: int,
    validators: int,
    participants: int,
    engine: str,
    new_key: Callable[[], SigningKey],
    slot_length_ms: int | None = None,
    block_interval_ms: int | None = None,
    balance_mc: int = DEFAULT_BALANCE_MC,
    extra_params: dict[str, Any] | None = None,
    with_meters: bool = False,
    consensus_params: dict[str, Any] | None = None,
    new_encryption_key: Callable[[], X25519PrivateKey] | None = None,
    gateways: int = 0,
    council: int = 0,
    threshold: int = 0,
) -> GenesisBundle:
    """Generate keys and a validated genesis; a wrong value raises GenesisError naming it.

    ``with_meters`` also makes one bridge key per participant and registers the meters of
    its household (a net meter, and PV, EV, battery meters for the devices it has) in
    ``genesis.meters``, so a testnet's bridges can send readings from the first block.
    ``new_encryption_key`` gives every validator an X25519 key for sealed transactions
    (docs/sealed.md); without it the chain has no encryption keys and seals nothing.
    ``gateways`` names that many gateways with fresh keys in ``genesis.gateways``.
    ``council`` > 0 names a council of that many fresh keys approving by ``threshold`` (k of
    n); the governance key then signs nothing directly (docs/governance.md).  Its keys are
    drawn after every other key, so a bundle built without one keeps its keys.
    """
    vals = tuple(NamedKey(f"node-{i + 1}", new_key()) for i in range(validators))
    encryption: tuple[X25519PrivateKey, ...] = ()
    if new_encryption_key is not None:
        encryption = tuple(new_encryption_key() for _ in vals)
    peers = tuple(NamedKey(participant_name(i), new_key()) for i in range(participants))
    governance = NamedKey("governance", new_key())
    params: dict[str, Any] = dict(extra_params or {})
    if slot_length_ms is not None:
        params["slot_length_ms"] = slot_length_ms
    if block_interval_ms is not None:
        params["block_interval_ms"] = block_interval_ms
    doc: dict[str, Any] = {
        "chain_name": chain_name,
        "genesis_time_ms": genesis_time_ms,
        "governance_public_key": governance.key.public_key.hex(),
        "consensus": {"engine": engine, **(consensus_params or {})},
        "params": params,
        "validators": [
            {"name": v.name, "public_key": v.key.public_key.hex(), "address": v.address}
            | ({"encryption_key": public_bytes(encryption[i]).hex()} if encryption else {})
            for i, v in enumerate(vals)
        ],
        "participants": [
            {
                "name": p.name,
                "public_key": p.key.public_key.hex(),
                "address": p.address,
                "devices": list(PEER_DEVICES[i % len(PEER_DEVICES)]),
            }
            for i, p in enumerate(peers)
        ],
        "balances": [{"address": p.address, "amount_mc": balance_mc} for p in peers],
    }
    gates = tuple(NamedKey(f"gateway-{i + 1}", new_key()) for i in range(gateways))
    if gates:
        doc["gateways"] = [{"name": g.name, "public_key": g.key.public_key.hex()} for g in gates]
    bridges: tuple[NamedKey, ...] = ()
    if with_meters:
        bridges = tuple(NamedKey(f"{p.name}-bridge", new_key()) for p in peers)
        meters = []
        for i, (p, bridge) in enumerate(zip(peers, bridges, strict=True)):
            devices = PEER_DEVICES[i % len(PEER_DEVICES)]
            for slot, meter_id in household_meter_ids(p.name, devices):
                _, meter_type, profile, _ = HOUSEHOLD_METERS[slot]
                meters.append(
                    {
                        "meter_id": meter_id,
                        "owner": p.address,
                        "meter_type": meter_type,
                        "bridge_public_key": bridge.key.public_key.hex(),
                        "profile": profile,
                    }
                )
        doc["meters"] = meters
    members = tuple(NamedKey(f"council-{i + 1}", new_key()) for i in range(council))
    if members:
        doc["council"] = [
            {"name": c.name, "public_key": c.key.public_key.hex(), "address": c.address}
            for c in members
        ]
        doc["council_threshold"] = threshold
    return GenesisBundle(
        parse_genesis(doc),
        vals,
        peers,
        governance,
        bridges,
        encryption,
        gateways=gates,
        council=members,
    )
