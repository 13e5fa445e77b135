"""Prometheus metrics of one bridge, in a registry of its own.

A registry per bridge (not the process-global one) lets tests run several bridges in one
process and read each one's counters, and lets the agent API export exactly this bridge's.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.modbus_requests = Counter(
            "meterbridge_modbus_requests",
            "Modbus requests by bus and outcome (ok, timeout, crc, exception, error)",
            ["bus", "outcome"],
            registry=self.registry,
        )
        self.modbus_retries = Counter(
            "meterbridge_modbus_retries",
            "Modbus requests repeated after a timeout, CRC or framing error",
            ["bus", "meter"],
            registry=self.registry,
        )
        self.readings = Counter(
            "meterbridge_readings",
            "Reading records written, by status (ok, unavailable) and skipped intervals",
            ["meter", "status"],
            registry=self.registry,
        )
        self.implausible = Counter(
            "meterbridge_implausible_readings",
            "Reads whose values lie beyond the record or the profile's rating (UNAVAILABLE)",
            ["meter"],
            registry=self.registry,
        )
        self.refused = Counter(
            "meterbridge_refused_readings",
            "Times the node refused a meter's reading, by the node's error code",
            ["meter", "code"],
            registry=self.registry,
        )
        self.txs_submitted = Counter(
            "meterbridge_txs_submitted", "MeterReadings transactions posted", registry=self.registry
        )
        self.txs_committed = Counter(
            "meterbridge_txs_committed",
            "MeterReadings transactions seen committed",
            registry=self.registry,
        )
        self.node_errors = Counter(
            "meterbridge_node_errors",
            "Failed exchanges with the node, by error code",
            ["code"],
            registry=self.registry,
        )
        self.unsent = Gauge(
            "meterbridge_unsent_readings",
            "Signed readings stored but not yet committed on chain",
            registry=self.registry,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when never set), for health output and tests."""
        got = self.registry.get_sample_value(name, labels or {})
        return 0.0 if got is None else got
