"""Run one validator until SIGTERM or SIGINT: start the node, serve the API, stop cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from gridchain.logs import configure_logging
from gridchain.node.api import GUARD_KEY, build_app
from gridchain.node.config import NodeConfig, load_config
from gridchain.node.gc_settle import settle_heap
from gridchain.node.http_guard import GuardedSite
from gridchain.node.p2p import NetworkTuning, PeerAddress, PeerNetwork
from gridchain.node.runtime import Node


class _MetricsObserver:
    """Maps the peer network's events onto the node's Prometheus metrics."""

    def __init__(self, node: Node) -> None:
        self._metrics = node.metrics

    def peers_changed(self, connected: int) -> None:
        self._metrics.peers.set(connected)

    def misbehaviour(self, peer: bytes, code: str) -> None:
        self._metrics.peer_misbehaviour.labels(code=code).inc()

    def connection_refused(self, reason: str) -> None:
        self._metrics.p2p_refused.labels(reason=reason).inc()


def attach_network(node: Node) -> None:
    """Give a node its encrypted, authenticated peer links (ADR 0024): every multi-validator
    node, and a solo validator whose genesis names gateways (they reach it over these links;
    without them a solo chain with gateways could never take a client transaction)."""
    if node.genesis.consensus.engine == "solo" and not node.genesis.gateway_keys():
        return
    config = node.config
    network = PeerNetwork(
        key=node.key,
        chain_id=node.chain_id,
        validators=node.genesis.validator_keys(),
        gateways=node.genesis.gateway_keys(),
        listen_host=config.p2p.host,
        listen_port=config.p2p.port,
        peers=[PeerAddress.from_config(p) for p in config.p2p.peers],
        handler=node,
        local_height=lambda: node.head.height,
        observer=_MetricsObserver(node),
        snapshots=node.snapshots,
        tuning=NetworkTuning(
            handshake_timeout_s=config.p2p.handshake_timeout_s,
            max_pending_handshakes=config.p2p.max_pending_handshakes,
            max_pending_per_source=config.p2p.max_pending_per_source,
        ),
    )
    node.attach_network(network, state_source=network)


async def serve(config: NodeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Start the node and its API; return after a stop signal, with the ledger closed."""
    node = Node(config)
    attach_network(node)
    app = build_app(node)
    # aiohttp's keep-alive timer bounds the idle time between two requests of a connection;
    # the guard bounds the first request's headers and the number of connections (ADR 0020).
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=config.api.keepalive_timeout_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log = structlog.get_logger("gridchain.server")
    try:
        await node.start()
        await runner.setup()
        guard = app[GUARD_KEY]
        site = GuardedSite(runner, config.api.host, config.api.port, guard)
        await site.start()
        log.info(
            "api listening",
            host=config.api.host,
            port=config.api.port,
            max_connections=guard.max_connections,
        )
        if guard.max_connections < config.api.max_connections:
            log.warning(
                "api.max_connections lowered to fit the open-files limit",
                configured=config.api.max_connections,
                used=guard.max_connections,
            )
        log.info("start-up heap frozen", objects=settle_heap())
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stop signal received")
    finally:
        await runner.cleanup()
        await node.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_node(config_path: Path) -> int:
    config = load_config(config_path)
    configure_logging(config.node.name, config.log.level)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(serve(config))
        except OSError as exc:  # a port in use or an address this host does not have
            structlog.get_logger("gridchain.server").error("cannot listen", reason=str(exc))
            print(f"error: cannot listen: {exc}", file=sys.stderr)
            return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster loop for the same code."""
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator, absent on some platforms
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
