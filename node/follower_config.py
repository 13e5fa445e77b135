"""The link side of a gateway's config: who it is and which validators it follows (ADR 0024).

A gateway's config file is TOML like a validator's.  This module reads only its ``[gateway]``
table (its name, genesis file, link key and the validators it dials); the gateway process adds
its own tables beside it (HTTPS, filters) and reads them itself, so this loader ignores every
other table::

    [gateway]
    name = "gateway-1"
    genesis_file = "../../genesis.json"
    private_key = "<64 hex digits: the Ed25519 seed of the key named in genesis.gateways>"

    [[gateway.validators]]
    name = "node-1"
    public_key = "<64 hex digits>"
    host = "127.0.0.1"
    port = 9700
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gridchain.genesis.schema import describe_validation_error
from gridchain.node.config import ConfigError, PeerEntry
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import BadKeyError


class GatewayLinkSection(BaseModel):
    """The ``[gateway]`` table: identity and the validators to follow."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    genesis_file: Path
    #: The gateway's Ed25519 seed as 64 hex digits (its public key is in genesis.gateways).
    private_key: str
    validators: Annotated[list[PeerEntry], Field(min_length=1)]
    handshake_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0

    @field_validator("private_key")
    @classmethod
    def _key(cls, v: str) -> str:
        try:
            SigningKey.from_hex(v)
        except BadKeyError as exc:
            raise ValueError(exc.message) from None
        return v

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey.from_hex(self.private_key)


def parse_gateway_section(raw: dict[str, Any], base: Path, *, where: str) -> GatewayLinkSection:
    """Validate a parsed config's ``[gateway]`` table; a relative genesis_file is taken from
    ``base`` (the config file's folder).  ConfigError names the field."""
    table = raw.get("gateway")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: a gateway config needs a [gateway] table")
    try:
        section = GatewayLinkSection(**table)
    except ValidationError as exc:
        detail = describe_validation_error(exc)
        raise ConfigError(f"invalid config {where}: gateway.{detail}") from None
    if not section.genesis_file.is_absolute():
        section.genesis_file = base / section.genesis_file
    return section


def load_gateway_section(path: Path) -> GatewayLinkSection:
    """Read the ``[gateway]`` table of a gateway config file (other tables are not read)."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_gateway_section(raw, path.parent, where=str(path))
