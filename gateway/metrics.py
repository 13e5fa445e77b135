"""Prometheus metrics of one gateway (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Refusals are counted, never logged one by one: a flood costs no disk and still shows
        # on a dashboard, by the filter that stopped it and the code the client was given.
        self.refused = Counter(
            "gridchain_gateway_refused",
            "Transactions or connections refused at the gateway, by filter and code",
            ["filter", "code"],
            registry=r,
        )
        self.admitted = Counter(
            "gridchain_gateway_admitted", "Transactions that passed every filter", registry=r
        )
        self.forwarded = Counter(
            "gridchain_gateway_forwarded", "Transactions forwarded to the validators", registry=r
        )
        self.forward_failed = Counter(
            "gridchain_gateway_forward_failed",
            "Transactions that could not be handed to any validator",
            registry=r,
        )
        self.queued = Gauge(
            "gridchain_gateway_queued", "Transactions waiting to be forwarded", registry=r
        )
        self.height = Gauge(
            "gridchain_gateway_height", "Height of the last certified block followed", registry=r
        )
        self.http_connections = Gauge(
            "gridchain_gateway_http_connections", "Open client connections", registry=r
        )
        self.relayed = Counter(
            "gridchain_gateway_reads_relayed", "Read requests relayed to a validator", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
