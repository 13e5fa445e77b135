"""The peer port against silent strangers: admission by source address (ADR 0020).

Why: issue 12 found that 64 silent connections from one stranger filled every pending
handshake slot, so a restarted validator's dial was dropped at once, again and again, and it
could not re-link with its peers.  These tests open real sockets from other loopback
addresses (127.0.1.x are strangers; the validators live on 127.0.0.1) against a real
:class:`PeerNetwork` and check that a stranger gets at most a few pending handshakes, that
strangers together never take the slots of a configured peer's address, and that every
refusal is counted through the observer (the node's Prometheus counter) instead of logged.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from gridchain.node.p2p import PeerAddress
from tests.integration.test_p2p import FAST, KEYS, make_node, running, wait_until
from tests.procs import free_test_port as free_port

pytestmark = pytest.mark.timeout(90)

#: Handshakes a stranger's silent connection may hold: longer than any wait below, so the
#: slots stay taken for the whole test, as a stranger that reconnects at once would keep them.
SLOW_HANDSHAKE = replace(FAST, handshake_timeout_s=60.0)


class CountingObserver:
    def __init__(self) -> None:
        self.refused: collections.Counter[str] = collections.Counter()

    def peers_changed(self, connected: int) -> None:
        pass

    def misbehaviour(self, peer: bytes, code: str) -> None:
        pass

    def connection_refused(self, reason: str) -> None:
        self.refused[reason] += 1


@contextmanager
def silent_connections(port: int, sources: list[str]) -> Iterator[list[socket.socket]]:
    """One connection per entry of ``sources`` (a loopback address), never sending a byte."""
    socks: list[socket.socket] = []
    try:
        for source in sources:
            socks.append(socket.create_connection(("127.0.0.1", port), 5, (source, 0)))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _aborted(sock: socket.socket) -> bool:
    """Whether the node closed this connection without a word (it sends its Hello first to
    a connection it admits, so an admitted one has bytes to read)."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


async def test_one_stranger_gets_a_few_pending_handshakes_and_the_rest_are_counted() -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), tuning=SLOW_HANDSHAKE, observer=observer)
    async with running(a):
        with silent_connections(a.port, ["127.0.1.1"] * 20) as socks:
            await wait_until(lambda: observer.refused["source_limit"] >= 16, "16 refusals")
            admitted = [s for s in socks if not _aborted(s)]
    assert len(admitted) == SLOW_HANDSHAKE.max_pending_per_source
    assert observer.refused["source_limit"] == 20 - SLOW_HANDSHAKE.max_pending_per_source


async def test_strangers_filling_the_pool_do_not_starve_a_restarted_validators_dial() -> None:
    """A restarted validator (b) dials a while 80 strangers from 80 addresses hold silent
    connections to a.  a's own dials to b go to a closed port, so the only way the two can
    link is b's dial being admitted by a: by the address a has configured for b."""
    observer = CountingObserver()
    port_a, port_b, wrong_port = free_port(), free_port(), free_port()
    a = make_node(
        KEYS[0],
        port_a,
        [PeerAddress("b", KEYS[1].public_key, "127.0.0.1", wrong_port)],
        tuning=SLOW_HANDSHAKE,
        observer=observer,
    )
    b = make_node(KEYS[1], port_b, [a.address("a")])
    strangers = [f"127.0.1.{i}" for i in range(1, 81)]
    async with running(a):
        with silent_connections(port_a, strangers):
            # a accepts in order: the strangers, all in its backlog already, come before b.
            async with running(b):
                await wait_until(lambda: b.connected_to(a) and a.connected_to(b), "b linked")
    pool = SLOW_HANDSHAKE.max_pending_handshakes
    assert observer.refused["pending_limit"] == len(strangers) - pool
