"""Prometheus metrics of one node (a registry per node, so tests can run several in-process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge(
            "gridchain_block_height", "Height of the last committed block", registry=r
        )
        self.blocks = Counter("gridchain_blocks_committed", "Blocks committed", registry=r)
        self.txs = Counter("gridchain_txs_committed", "Transactions committed", registry=r)
        self.txs_received = Counter(
            "gridchain_txs_received", "Transactions submitted and admitted", registry=r
        )
        self.txs_reannounced = Counter(
            "gridchain_txs_reannounced",
            "Pending transactions flooded to the peers again (node/reannounce.py)",
            registry=r,
        )
        self.txs_rejected = Counter(
            "gridchain_txs_rejected", "Transactions refused, by reason", ["code"], registry=r
        )
        self.mempool_txs = Gauge("gridchain_mempool_txs", "Transactions pending", registry=r)
        self.mempool_bytes = Gauge("gridchain_mempool_bytes", "Bytes pending", registry=r)
        self.commit_seconds = Histogram(
            "gridchain_block_commit_seconds",
            "Time to validate, execute and durably write a block",
            registry=r,
        )
        self.consensus_round = Gauge(
            "gridchain_consensus_round", "Current consensus round or view", registry=r
        )
        self.evidence = Counter(
            "gridchain_misbehaviour_evidence",
            "Evidence of validator misbehaviour",
            ["kind"],
            registry=r,
        )
        self.peer_misbehaviour = Counter(
            "gridchain_peer_misbehaviour",
            "Peer frames or messages refused, by reason",
            ["code"],
            registry=r,
        )
        self.peers = Gauge("gridchain_peers_connected", "Authenticated peer links", registry=r)
        # Refusals of the API and peer ports (ADR 0020): counted, not logged per connection,
        # so a flood of them costs no disk and still shows on a dashboard.
        self.http_refused = Counter(
            "gridchain_http_connections_refused",
            "API connections refused or cut, by reason",
            ["reason"],
            registry=r,
        )
        self.http_connections = Gauge(
            "gridchain_http_connections", "Open API connections", registry=r
        )
        self.ws_closed = Counter(
            "gridchain_ws_subscribers_closed",
            "Websocket subscribers closed by the node, by reason",
            ["reason"],
            registry=r,
        )
        self.p2p_refused = Counter(
            "gridchain_p2p_connections_refused",
            "Inbound peer connections refused before or during the handshake, by reason",
            ["reason"],
            registry=r,
        )

        self.ledger_memory = Gauge(
            "gridchain_ledger_memory_bytes",
            "LevelDB's estimate of its memory: memtables and block cache",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
