"""``testnet status``: every process ``up`` started, and whether the validators make a quorum.

The validators' rows come from their APIs (height, view, peers, head); gateways answer /health
over HTTPS with the community CA; the simulator and the bridges are reported by whether the
process ``up`` started still runs (and, for a bridge, whether its agent API answers).  The
quorum is the engine's own arithmetic (consensus.kernel.validators.quorum_size) over the
validators that answer: fewer than that and the chain cannot commit a block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gridchain.consensus.kernel.validators import Quorum, quorum_size
from gridchain.node.testnet import (
    agent_up,
    healthy,
    is_ours,
    load_gateway_state,
    load_meter_state,
    status,
)
from gridchain.node.testnet_gateways import ca_file


def quorum_needed(engine: str, n: int, epob_quorum: Quorum = "bft") -> int:
    """How many of ``n`` validators must be up for ``engine`` to commit blocks."""
    if engine == "solo":
        return n
    return quorum_size(n, epob_quorum if engine == "epob" else "bft")


def overview(directory: Path) -> dict[str, Any]:
    """Validators, gateways, simulator and bridges, and the quorum, as ``status --json``."""
    validators = status(directory)
    gateways = [
        {
            "name": g.name,
            "url": g.api_url,
            "pid": g.pid,
            "running": is_ours(g),
            "healthy": is_ours(g) and healthy(g.api_url, ca_file(directory)),
        }
        for g in load_gateway_state(directory)
    ]
    meters = []
    for m in load_meter_state(directory):
        row: dict[str, Any] = {"name": m.name, "url": m.api_url, "pid": m.pid}
        row["running"] = is_ours(m)
        if m.name.startswith("bridge-"):
            row["agent_api"] = row["running"] and agent_up(m.api_url)
        meters.append(row)
    doc: dict[str, Any] = {"validators": validators, "gateways": gateways, "meters": meters}
    genesis_path = directory / "genesis.json"
    if genesis_path.exists():
        genesis = json.loads(genesis_path.read_text(encoding="utf-8"))
        engine = genesis["consensus"]["engine"]
        n = len(genesis["validators"])
        needed = quorum_needed(engine, n, genesis["consensus"].get("epob_quorum", "bft"))
        answering = sum(1 for v in validators if v["height"] is not None)
        doc["quorum"] = {
            "engine": engine,
            "validators": n,
            "up": answering,
            "needed": needed,
            "ok": answering >= needed,
        }
    return doc


def format_overview(doc: dict[str, Any], validator_table: str) -> str:
    """The human table: validators (as before), then gateways, meters and the quorum line."""
    lines = [validator_table]
    for g in doc["gateways"]:
        state = "healthy" if g["healthy"] else ("running" if g["running"] else "down")
        lines.append(f"{g['name']:<16} {g['url']:<26} {state:>7}  pid {g['pid']}")
    for m in doc["meters"]:
        state = "running" if m["running"] else "down"
        if m.get("agent_api") is False and m["running"]:
            state = "no agent API"
        lines.append(f"{m['name']:<16} {m['url']:<26} {state:>7}  pid {m['pid']}")
    q = doc.get("quorum")
    if q is not None:
        verdict = "a quorum" if q["ok"] else "NO quorum: the chain cannot commit"
        lines.append(
            f"quorum: {q['up']} of {q['validators']} validators up, {q['engine']} needs "
            f"{q['needed']}: {verdict}"
        )
    return "\n".join(lines)
