"""What ``testnet up`` checks before and while it starts processes, so it tells the truth.

A port another process holds is found before anything starts (a stranger's meter simulator on
the simulator's port would otherwise answer our bridges), and flags that describe a different
testnet than the directory holds are refused instead of silently ignored: the genesis in the
directory decides validators, engine, gateways, participants and meters once, at creation.
"""

from __future__ import annotations

import json
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridchain.node.testnet_gateways import gateway_endpoints
from gridchain.protocol.errors import GridchainError


class TestnetError(GridchainError):
    code = "testnet_error"


@dataclass(frozen=True, slots=True)
class Listener:
    """A port a process of the testnet will listen on."""

    process: str
    host: str
    port: int


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def validator_listeners(directory: Path, names: list[str]) -> list[Listener]:
    out = []
    for name in names:
        doc = _toml(directory / "nodes" / name / "config.toml")
        for table in ("api", "p2p"):
            section = doc.get(table, {})
            if section.get("port"):
                host = section.get("host", "127.0.0.1")
                out.append(Listener(f"validator {name} ({table})", host, int(section["port"])))
    return out


def gateway_listeners(directory: Path) -> list[Listener]:
    out = []
    for endpoint in gateway_endpoints(directory):
        api = _toml(endpoint.config).get("api", {})
        out.append(
            Listener(f"gateway {endpoint.name}", api.get("host", "127.0.0.1"), int(api["port"]))
        )
    return out


def meter_listeners(sim_port: int, bridge_configs: list[Path]) -> list[Listener]:
    out = [Listener("meter-simulator", "127.0.0.1", sim_port)]
    for config in bridge_configs:
        doc = _toml(config)
        agent = doc.get("agent_api", {})
        if agent.get("port"):
            host = agent.get("host", "127.0.0.1")
            out.append(Listener(f"bridge-{doc['name']} (agent API)", host, int(agent["port"])))
    return out


def port_is_free(host: str, port: int) -> bool:
    """Whether a listening socket can be bound there now (SO_REUSEADDR as asyncio's servers
    set it, so a connection of our own last run in TIME_WAIT does not count as busy)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def refuse_busy_ports(listeners: list[Listener]) -> None:
    """Raise naming each process whose port another process already holds."""
    busy = [lst for lst in listeners if not port_is_free(lst.host, lst.port)]
    if busy:
        what = "; ".join(f"{b.process} port {b.host}:{b.port}" for b in busy)
        raise TestnetError(f"port already in use by another process: {what}; nothing started")


@dataclass(frozen=True, slots=True)
class Asked:
    """The creation flags a command line gave explicitly (None: not given)."""

    validators: int | None = None
    consensus: str | None = None
    participants: int | None = None
    gateways: int | None = None
    with_meters: bool | None = None


def refuse_conflicting_flags(directory: Path, asked: Asked) -> None:
    """Raise if ``asked`` describes another testnet than the genesis in ``directory``.

    ``--no-meters`` on a directory with meters is not a conflict: it starts the validators
    only.  Asking for meters a directory was created without is."""
    genesis = json.loads((directory / "genesis.json").read_text(encoding="utf-8"))
    has = {
        "validators": len(genesis["validators"]),
        "consensus": genesis["consensus"]["engine"],
        "participants": len(genesis["participants"]),
        "gateways": len(genesis.get("gateways", [])),
        "with_meters": bool(genesis.get("meters")),
    }
    conflicts = []
    for flag, value in (
        ("validators", asked.validators),
        ("consensus", asked.consensus),
        ("participants", asked.participants),
        ("gateways", asked.gateways),
    ):
        if value is not None and value != has[flag]:
            conflicts.append(f"--{flag} {value} (it has {has[flag]})")
    if asked.with_meters and not has["with_meters"]:
        conflicts.append("--with-meters (it was created without meters)")
    if conflicts:
        raise TestnetError(
            f"{directory} holds a different testnet: {', '.join(conflicts)}; "
            "leave the flags out, or use a new --dir (or --fresh with run)"
        )
