"""Node configuration: a TOML file, overridable from the environment, validated by pydantic.

Configuration is local to one machine (paths, listen addresses, peers, log level); everything
every validator must agree on is in the genesis document instead.  Environment variables
override the file with the ``GRIDCHAIN_`` prefix and ``__`` between levels, e.g.
``GRIDCHAIN_API__PORT=8801``.  A bad value stops the node at start with a message naming it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from gridchain.genesis.schema import describe_validation_error
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import BadKeyError, GridchainError

Port = Annotated[int, Field(ge=0, le=65535)]


class ConfigError(GridchainError):
    code = "invalid_config"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeSection(_Section):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    data_dir: Path
    genesis_file: Path
    #: The validator's Ed25519 seed as 64 hex digits.  Keep the file private (mode 0600).
    private_key: str

    @field_validator("private_key")
    @classmethod
    def _key(cls, v: str) -> str:
        # pydantic turns only ValueError into a ValidationError that names the field; a
        # BadKeyError escaping here would bypass ConfigError and name no field.
        try:
            SigningKey.from_hex(v)
        except BadKeyError as exc:
            raise ValueError(exc.message) from None
        return v


class ApiSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 8700
    #: Bounds a request; a batch of 1000 transfers is about 350 KiB of JSON.
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 512 * 1024


class PeerEntry(_Section):
    name: str
    public_key: str
    host: str
    port: Port


class P2PSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 9700
    peers: list[PeerEntry] = []


class MempoolSection(_Section):
    max_txs: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    max_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = 32 * 1024 * 1024


class LogSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


#: The word a chain's name must contain for the node to accept fault-injection settings.
TESTNET_WORD = "testnet"


class FaultsSection(_Section):
    """Fault injection for testnets (docs/faults.md, ADR 0022); refused on any other chain.

    ``clock_offset_ms`` is added to every wall-clock reading of the node (block timestamps,
    round and view timers, interval boundaries): a validator whose clock runs ahead or behind,
    as a peer device's does without NTP.  The node does not start with an offset unless the
    genesis chain name contains the word ``testnet`` (see :func:`check_faults_allowed`).
    """

    clock_offset_ms: Annotated[int, Field(ge=-3_600_000, le=3_600_000)] = 0


def is_testnet_name(chain_name: str) -> bool:
    """Whether a chain name marks a testnet: ``testnet`` is one of its ``-``/``_``/space
    separated words (``gridchain-testnet``, ``faults-testnet-3``), case-insensitively."""
    words = chain_name.lower().replace("_", "-").replace(" ", "-").split("-")
    return TESTNET_WORD in words


def check_faults_allowed(config: NodeConfig, chain_name: str) -> None:
    """Refuse fault-injection settings on a chain that is not a testnet (ConfigError)."""
    offset = config.faults.clock_offset_ms
    if offset != 0 and not is_testnet_name(chain_name):
        raise ConfigError(
            f"faults.clock_offset_ms = {offset} is for fault testing only and is refused on "
            f"chain {chain_name!r}: its name does not contain the word {TESTNET_WORD!r}"
        )


class NodeConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDCHAIN_", env_nested_delimiter="__", extra="forbid"
    )

    node: NodeSection
    api: ApiSection = ApiSection()
    p2p: P2PSection = P2PSection()
    mempool: MempoolSection = MempoolSection()
    log: LogSection = LogSection()
    faults: FaultsSection = FaultsSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file's values (passed as init settings).
        return env_settings, init_settings

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey.from_hex(self.node.private_key)


def load_config(path: Path) -> NodeConfig:
    """Read and validate a node config; relative paths are taken from the file's folder."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        config = NodeConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path}: {describe_validation_error(exc)}") from None
    except SettingsError as exc:  # an environment override that is not valid JSON
        raise ConfigError(f"invalid config {path}: {exc}") from None
    base = path.parent
    node = config.node
    node.data_dir = node.data_dir if node.data_dir.is_absolute() else base / node.data_dir
    if not node.genesis_file.is_absolute():
        node.genesis_file = base / node.genesis_file
    return config
