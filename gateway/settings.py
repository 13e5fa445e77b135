"""The gateway's own settings: its HTTPS API, its flood filters and where reads are relayed.

These are the tables of a gateway config beside ``[gateway]`` (the link side, read by
gridchain.node.follower_config); gridchain.gateway.config reads the whole file.  The limits of
``[filters]`` are the flood filters of ADR 0025; their defaults suit a community of a few
hundred households.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridchain.api.routes import DEFAULT_MAX_BODY_BYTES
from gridchain.protocol.tx import MAX_TX_BYTES

Port = Annotated[int, Field(ge=0, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewayApiSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 8443
    #: The HTTPS certificate chain and its key (PEM).  Without both the API is plain HTTP,
    #: which ``gateway run`` accepts only on a loopback address.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = DEFAULT_MAX_BODY_BYTES
    #: Connections in total (clamped below the open-files limit) and from one IP address.
    max_connections: Annotated[int, Field(ge=1, le=65_536)] = 4096
    max_per_ip: Annotated[int, Field(ge=1, le=65_536)] = 64
    header_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 75.0
    ws_heartbeat_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    ws_queue_events: Annotated[int, Field(ge=1, le=65_536)] = 1024
    #: Seconds a submission may wait for its turn and the validators' verdict (then 503).
    forward_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class FiltersSection(_Section):
    max_tx_bytes: Annotated[int, Field(ge=64, le=MAX_TX_BYTES)] = MAX_TX_BYTES
    #: Nonces accepted: the sender's next one up to this many above it.
    nonce_window: Annotated[int, Field(ge=0, le=1_000_000)] = 64
    dedup_entries: Annotated[int, Field(ge=1, le=10_000_000)] = 200_000
    dedup_ttl_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    #: Each sender's token bucket: transactions a second and the largest burst.
    sender_rate: Annotated[float, Field(gt=0, le=100_000)] = 20.0
    sender_burst: Annotated[float, Field(ge=1, le=1_000_000)] = 100.0
    max_senders: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    #: The fair queue toward the validators: in total and per sender.
    queue_max: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000
    queue_per_sender: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    #: Transactions in flight toward the validators at once (never two of one sender).
    forwarders: Annotated[int, Field(ge=1, le=256)] = 8


class RelaySection(_Section):
    """The validators' private APIs the gateway relays reads to (the public never reaches
    them; a validator behind gateways listens on a private address)."""

    api_urls: Annotated[list[str], Field(min_length=1)]
    #: Seconds one relayed read may take at a validator before the next one is asked.
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class LogSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What the gateway's API, filters and relay need (everything but the link)."""

    api: GatewayApiSection
    filters: FiltersSection
    relay: RelaySection
