"""Validators follow the chain's gateway set on their peer port (ADR 0043).

Why: the council adds and removes gateways on chain (market/gateways.py); after each commit the
runtime hands the set to its peer network.  On the wire that must mean: a key the chain
admitted links as a gateway (it gets blocks), a key removed loses its link and is refused when
it dials again.
"""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.node.p2p import PeerNetwork
from tests.helpers import GENESIS_TIME_MS, key_factory
from tests.integration.test_p2p import FAST, wait_until
from tests.integration.test_p2p_gateway import BlockRecorder, validator

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def bundle() -> GenesisBundle:
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=2,
        engine="pbft",
        new_key=key_factory("gateway-set"),
        gateways=1,
    )


async def test_an_added_gateway_links_and_a_removed_one_is_dropped_and_refused(
    bundle: GenesisBundle,
) -> None:
    a = validator(bundle, 0)
    added = key_factory("gateway-set/added")()
    recorder = BlockRecorder()
    # What a gateway the council admitted runs: its own key among the gateways (node/follower.py)
    gate = PeerNetwork(
        key=added,
        chain_id=bundle.genesis.chain_id,
        validators=bundle.genesis.validator_keys(),
        gateways=[*bundle.genesis.gateway_keys(), added.public_key],
        listen_host=None,
        listen_port=0,
        peers=[a.address()],
        follower=recorder,
        tuning=FAST,
    )
    await a.net.start()
    await gate.start()
    try:
        await wait_until(
            lambda: any(e["last_error"] == "refused:unknown_peer" for e in gate.peer_info()),
            "refused before the chain admits it",
        )
        a.net.set_gateways([*bundle.genesis.gateway_keys(), added.public_key])
        await wait_until(
            lambda: a.net.connected_gateways() == [added.public_key], "linked once admitted"
        )
        a.net.announce_block(b"\x01block")
        await wait_until(lambda: bool(recorder.blocks), "the added gateway gets blocks")
        a.net.set_gateways(bundle.genesis.gateway_keys())
        await wait_until(lambda: a.net.connected_gateways() == [], "dropped once removed")
        await wait_until(
            lambda: (
                any(e["last_error"] == "refused:unknown_peer" for e in gate.peer_info())
                and gate.connected_peers() == []
            ),
            "refused again when it redials",
        )
    finally:
        await gate.stop()
        await a.net.stop()
