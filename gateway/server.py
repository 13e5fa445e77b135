"""Serve a gateway's client API over HTTPS for a followed chain until told to stop.

The relay and the event feed connect to the validators' private APIs, the forwarders start,
then the API listens.  Until the chain is followed (a live link), submissions are refused with
``gateway_not_ready`` (503) and /health answers 503, so a load balancer sends nobody here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from gridchain.gateway.admission import Admission
from gridchain.gateway.app import GatewayState, build_gateway_app
from gridchain.gateway.fair_queue import FairQueue
from gridchain.gateway.filters import DedupCache, NonceWindow, TokenBuckets
from gridchain.gateway.forwarder import FollowedChain, start_forwarders
from gridchain.gateway.metrics import GatewayMetrics
from gridchain.gateway.relay import EventFeed, ReadRelay
from gridchain.gateway.settings import GatewaySettings
from gridchain.gateway.tls import server_context
from gridchain.node.config import ConfigError
from gridchain.node.http_guard import ConnectionGuard, GuardedSite, connection_budget
from gridchain.protocol.sealed import SealContext

log = structlog.get_logger("gridchain.gateway")


def build_state(
    config: GatewaySettings,
    chain: FollowedChain,
    chain_id: bytes,
    metrics: GatewayMetrics,
    *,
    clock: Callable[[], float] = time.monotonic,
    encryption_keys: tuple[bytes, ...] = (),
) -> GatewayState:
    """The filters, relay and feed of one gateway (a test passes its own chain and clock)."""
    f = config.filters
    admission = Admission(
        chain_id=chain_id,
        senders=chain,
        max_tx_bytes=f.max_tx_bytes,
        window=NonceWindow(f.nonce_window),
        dedup=DedupCache(capacity=f.dedup_entries, ttl_s=f.dedup_ttl_s, clock=clock),
        buckets=TokenBuckets(
            rate=f.sender_rate, burst=f.sender_burst, clock=clock, max_senders=f.max_senders
        ),
        queue=FairQueue(max_total=f.queue_max, max_per_sender=f.queue_per_sender),
        metrics=metrics,
        ready=lambda: chain.head_height() is not None,
        seal=SealContext(chain_id, encryption_keys) if encryption_keys else None,
    )
    return GatewayState(
        admission=admission,
        relay=ReadRelay(config.relay.api_urls, timeout_s=config.relay.timeout_s),
        feed=EventFeed(config.relay.api_urls, max_events=config.api.ws_queue_events),
        metrics=metrics,
        body_timeout_s=config.api.body_timeout_s,
        forward_timeout_s=config.api.forward_timeout_s,
        ws_heartbeat_s=config.api.ws_heartbeat_s,
        head_height=chain.head_height,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve_gateway(
    config: GatewaySettings,
    chain: FollowedChain,
    chain_id: bytes,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    encryption_keys: tuple[bytes, ...] = (),
) -> None:
    """Serve the API for ``chain`` until ``stop`` (or a signal, when none is given).

    ``chain`` is the follower in production; a test passes any FollowedChain (and a clock)."""
    api = config.api
    ssl_context = None
    if api.tls_cert is not None and api.tls_key is not None:
        ssl_context = server_context(api.tls_cert, api.tls_key)
    elif not _is_loopback(api.host):
        raise ConfigError(
            f"api.host {api.host} is not a loopback address: a public gateway needs "
            "api.tls_cert and api.tls_key (HTTPS)"
        )
    metrics = GatewayMetrics()
    state = build_state(
        config, chain, chain_id, metrics, clock=clock, encryption_keys=encryption_keys
    )
    guard = ConnectionGuard(
        max_connections=connection_budget(api.max_connections),
        header_timeout_s=api.header_timeout_s,
        max_per_source=api.max_per_ip,
        on_refused=lambda reason: metrics.refused.labels(filter="connections", code=reason).inc(),
    )
    metrics.http_connections.set_function(lambda: guard.open)
    metrics.height.set_function(lambda: chain.head_height() or 0)
    app = build_gateway_app(state, guard, max_body_bytes=api.max_body_bytes)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=api.keepalive_timeout_s
    )
    own_stop = stop is None
    stop = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()
    if own_stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    f = config.filters
    forwarders = start_forwarders(
        f.forwarders, state.admission.queue, chain, metrics, state.admission.dedup
    )
    try:
        await state.relay.start()
        state.feed.start()
        await runner.setup()
        site = GuardedSite(runner, api.host, api.port, guard, ssl_context=ssl_context)
        await site.start()
        log.info(
            "gateway listening",
            url=site.name,
            max_connections=guard.max_connections,
            max_per_ip=api.max_per_ip,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stop signal received")
    finally:
        for task in forwarders:
            task.cancel()
        await asyncio.gather(*forwarders, return_exceptions=True)
        await runner.cleanup()
        await state.feed.stop()
        await state.relay.stop()
        if own_stop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
