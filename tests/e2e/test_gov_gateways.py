"""ADR 0043: the council admits and removes a gateway on a running PBFT community.

Four PBFT validators (``gridchain node run``, real processes) whose genesis names one gateway
and a council of three approving by two.  A gateway with a key genesis does not name (its
``[gateway]`` config is gateway-1's with another key) follows in this process: every validator
refuses its links; the council admits its key (``gridchain gov propose gateways --add``), every
validator then links with it as a gateway and it receives the certified blocks; the council
removes it again, and every validator drops its link and refuses it when it redials.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.node.follower import Follower
from gridchain.node.follower_config import load_gateway_section
from gridchain.protocol.crypto import SigningKey
from tests.e2e.test_gov_household import propose_and_approve
from tests.procs import Chain, NodeProcess, http_get, make_chain, running_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("gov_e2e")]


@pytest.fixture
def community(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    chain = make_chain(
        tmp_path / "chain",
        validators=4,
        engine="pbft",
        block_interval_ms=200,
        empty_blocks=True,
        council=3,
        threshold=2,
        gateways=1,
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def new_gateway(chain: Chain, key: SigningKey) -> Follower:
    """gateway-1's config with another key: what an operator writes for a new gateway."""
    text = chain.gateway_config_path(0).read_text(encoding="utf-8")
    text = re.sub(r'private_key = "[0-9a-f]{64}"', f'private_key = "{key.seed.hex()}"', text)
    text = text.replace('name = "gateway-1"', 'name = "gateway-new"', 1)
    path = chain.gateway_config_path(0).parent.parent / "gateway-new" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return Follower.from_config(load_gateway_section(path))


def gateway_link(node: NodeProcess, key: bytes) -> dict[str, Any] | None:
    code, status = http_get(node.api_url + "/v1/status")
    assert code == 200
    return next((p for p in status["peers"] if p["public_key"] == key.hex()), None)


async def eventually(
    predicate: Callable[[], object], timeout_s: float, what: str, *, http: bool = False
) -> None:
    """Poll ``predicate``; one that does HTTP runs in a thread so the follower keeps running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate) if http else predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def refused(follower: Follower) -> bool:
    info = follower.network.peer_info()
    return bool(info) and all(e["last_error"] == "refused:unknown_peer" for e in info)


async def test_the_council_admits_a_gateway_and_removes_it(
    community: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = community
    key = SigningKey.generate()
    follower = new_gateway(chain, key)
    await follower.start()
    try:
        await eventually(lambda: refused(follower), 30, "every validator refuses the stranger")
        assert follower.head.height == 0
        add = ("gateways", "--add", key.public_key.hex())
        added = await asyncio.to_thread(propose_and_approve, chain, nodes[0].api_url, *add)
        assert added["kind"] == "UpdateGateways"

        def linked_everywhere() -> bool:
            links = [gateway_link(n, key.public_key) for n in nodes]
            return all(x is not None and x["role"] == "gateway" and x["connected"] for x in links)

        await eventually(
            linked_everywhere, 60, "every validator links with the admitted gateway", http=True
        )
        height = added["closed_height"]
        await eventually(lambda: follower.head.height > height, 30, "it follows certified blocks")
        remove = ("gateways", "--remove", key.public_key.hex())
        removed = await asyncio.to_thread(propose_and_approve, chain, nodes[1].api_url, *remove)
        assert removed["kind"] == "UpdateGateways"

        def dropped_everywhere() -> bool:
            links = [gateway_link(n, key.public_key) for n in nodes]
            return all(x is None or not x["connected"] for x in links)

        await eventually(
            dropped_everywhere, 60, "every validator drops the removed gateway", http=True
        )
        await eventually(lambda: refused(follower), 60, "and refuses it when it redials")
    finally:
        await follower.stop()
