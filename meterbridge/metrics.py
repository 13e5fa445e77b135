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

        # --- the device controller (ADR 0028) ---
        self.ocpp_messages = Counter(
            "meterbridge_ocpp_messages",
            "OCPP calls received from chargers, by charge point and action",
            ["charger", "action"],
            registry=self.registry,
        )
        self.ocpp_profiles = Counter(
            "meterbridge_ocpp_profiles",
            "Charging profiles sent, by charger and outcome (accepted, rejected, error, timeout)",
            ["charger", "outcome"],
            registry=self.registry,
        )
        self.ocpp_connections = Counter(
            "meterbridge_ocpp_connections",
            "Charger websocket connections, by charge point (unknown ids are refused)",
            ["charger", "outcome"],
            registry=self.registry,
        )
        self.setpoint_writes = Counter(
            "meterbridge_setpoint_writes",
            "Inverter setpoint writes, by inverter and outcome (ok, error)",
            ["inverter", "outcome"],
            registry=self.registry,
        )
        self.discharge_not_expressible = Counter(
            "meterbridge_discharge_not_expressible",
            "Intervals with a discharge rate for a charger, which OCPP 1.6 cannot express",
            ["charger"],
            registry=self.registry,
        )
        self.failsafe = Gauge(
            "meterbridge_failsafe",
            "1 while the devices are held at their safe values (chain unreachable or silent)",
            registry=self.registry,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when never set), for health output and tests."""
        got = self.registry.get_sample_value(name, labels or {})
        return 0.0 if got is None else got
