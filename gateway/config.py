"""Gateway configuration: a TOML file validated by pydantic (like a validator's, ADR 0021).

The gateway's identity is its Ed25519 key, registered in genesis under ``gateways``: the
validators admit its p2p link by that key and accept client transactions from it.  Its
clients see only the HTTPS certificate given here (a testnet's is signed by the community CA
that ``testnet up --gateways N`` writes).  The limits of ``[filters]`` are the flood filters of
ADR 0025; their defaults suit a household community of a few hundred peers.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gridchain.gateway.settings import (
    FiltersSection,
    GatewayApiSection,
    GatewaySettings,
    LogSection,
    RelaySection,
)
from gridchain.genesis.schema import describe_validation_error
from gridchain.node.config import ConfigError
from gridchain.node.follower_config import GatewayLinkSection, parse_gateway_section


class GatewayTables(BaseModel):
    """Every table of a gateway config but ``[gateway]`` (the link side, read by
    gridchain.node.follower_config)."""

    model_config = ConfigDict(extra="forbid")

    gateway: dict[str, Any]
    api: GatewayApiSection = GatewayApiSection()
    filters: FiltersSection = FiltersSection()
    relay: RelaySection
    log: LogSection = LogSection()


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    link: GatewayLinkSection
    settings: GatewaySettings
    log: LogSection

    @property
    def name(self) -> str:
        return self.link.name


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and validate a gateway config; relative paths are taken from the file's folder."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        tables = GatewayTables(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {describe_validation_error(exc)}") from None
    base = path.parent
    link = parse_gateway_section(raw, base, where=str(path))
    api = tables.api
    if (api.tls_cert is None) != (api.tls_key is None):
        raise ConfigError(f"invalid config {path}: api.tls_cert and api.tls_key go together")
    if api.tls_cert is not None and not api.tls_cert.is_absolute():
        api.tls_cert = base / api.tls_cert
    if api.tls_key is not None and not api.tls_key.is_absolute():
        api.tls_key = base / api.tls_key
    return GatewayConfig(link, GatewaySettings(api, tables.filters, tables.relay), tables.log)
