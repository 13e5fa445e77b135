"""Node configuration: a TOML file, overridable from the environment, validated by pydantic.

Configuration is local to one machine (paths, listen addresses, peers, log level); everything
every validator must agree on is in the genesis document instead.  Environment variables
override the file with the ``GRIDCHAIN_`` prefix and ``__`` between levels, e.g.
``GRIDCHAIN_API__PORT=8801``.  A bad value stops the node at start with a message naming it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from gridchain.api.routes import DEFAULT_MAX_BODY_BYTES
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

    #: The validator's X25519 private key (64 hex digits) that opens sealed transactions;
    #: required when genesis registers encryption keys (docs/sealed.md).
    encryption_key: str | None = None

    @field_validator("encryption_key")
    @classmethod
    def _encryption_key(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            raise ValueError("an encryption key is 64 hex digits") from None
        if len(raw) != 32:
            raise ValueError("an encryption key is 64 hex digits")
        return v


class ApiSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 8700
    #: Bounds a request; a batch of 1000 transfers is about 350 KiB of JSON.
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = DEFAULT_MAX_BODY_BYTES
    # Limits against clients that hold a connection without using it (ADR 0020).  The
    # defaults suit a Raspberry Pi with the usual open-files limit of 1024.
    #: Open connections at most (clamped below the open-files limit at start); more are
    #: refused at once, so the node always has descriptors for its ledger and its peers.
    max_connections: Annotated[int, Field(ge=1, le=65_536)] = 256
    #: A new connection must complete its request headers within this time.
    header_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: A request's announced body must arrive within this time (else 408).
    body_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: An idle connection between two requests is closed after this time: longer than the
    #: clients' own pool timeouts (aiohttp's client keeps 15 s), so that the client closes
    #: first and never sends a request on a connection the node is closing.
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 75.0
    #: Websocket ping interval; a client that does not answer within it is disconnected.
    ws_heartbeat_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: Committed blocks a websocket subscriber may fall behind before it is closed (1008).
    ws_queue_events: Annotated[int, Field(ge=1, le=65_536)] = 1024
    #: Bytes waiting to be sent to one websocket subscriber before it is closed as too slow.
    ws_send_buffer_bytes: Annotated[int, Field(ge=4096, le=64 * 1024 * 1024)] = 1024 * 1024
    #: Refuse the open routes of an account's private data (orders, trades, receipts, meter
    #: readings, the order and trade events) with 403: they are then read only through
    #: POST /v1/sealed-reads (docs/sealed.md).  Off by default: the open routes stay as they were.
    sealed_reads_only: bool = False
    #: Who may hand this validator client transactions (ADR 0024): "any" takes them on
    #: POST /v1/txs too; "gateways" refuses that route (403 gateways_only) and admits only what
    #: genesis gateways forward over their links and what validators gossip.
    client_txs: Literal["any", "gateways"] = "any"


class PeerEntry(_Section):
    name: str
    public_key: str
    host: str
    port: Port


class P2PSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 9700
    peers: list[PeerEntry] = []
    #: Handshakes in progress at most, in total and from one source address (ADR 0020).
    max_pending_handshakes: Annotated[int, Field(ge=4, le=4096)] = 64
    max_pending_per_source: Annotated[int, Field(ge=1, le=4096)] = 4
    #: A connection that has not completed the handshake within this time is closed.
    handshake_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0


class MempoolSection(_Section):
    max_txs: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    max_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = 32 * 1024 * 1024
    #: A transaction still pending this long is flooded to the peers again (then after twice
    #: as long, up to a minute): a peer that refused it while its pool was full gets it later.
    reannounce_after_ms: Annotated[int, Field(ge=100, le=600_000)] = 3_000
    #: Worker processes that check the signatures of a block with at least
    #: ``verify_batch_min`` transaction signatures (or meter-reading signatures) this node has
    #: not verified yet (node/verify_pool.py, ADR 0040, ADR 0056); 0 checks them in the node's
    #: own process.
    verify_workers: Annotated[int, Field(ge=0, le=64)] = 0
    verify_batch_min: Annotated[int, Field(ge=1, le=100_000)] = 128


class StateSyncSection(_Section):
    """State sync (ADR 0039): a validator whose peers are ``min_gap_blocks`` or more ahead at
    start installs a certified snapshot of the live state instead of replaying every block.
    It waits up to ``wait_for_peers_s`` for its peers to announce their heights."""

    enabled: bool = True
    min_gap_blocks: Annotated[int, Field(ge=1, le=10**9)] = 1_000
    wait_for_peers_s: Annotated[float, Field(ge=0, le=600)] = 5.0


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
    state_sync: StateSyncSection = StateSyncSection()
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

    @property
    def encryption_key(self) -> X25519PrivateKey | None:
        raw = self.node.encryption_key
        return None if raw is None else X25519PrivateKey.from_private_bytes(bytes.fromhex(raw))


def check_data_dir(data_dir: Path) -> None:
    """Refuse a data_dir the node could not use, naming the field (ADR 0021).

    Without this the node got as far as opening its ledger, and the OSError from creating the
    folder surfaced as "cannot listen".  It is either a writable directory, or a path whose
    nearest existing ancestor is a writable directory (the node creates the rest).  os.access
    answers for the real user; for root it says yes, and the Store's own error remains.
    """
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    what = "node.data_dir: " + (
        f"{data_dir}" if existing == data_dir else f"cannot create {data_dir}: {existing}"
    )
    if not existing.is_dir():
        raise ConfigError(f"{what} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} is not writable by this user")


def load_config(path: Path) -> NodeConfig:
    """Read and validate a node config; relative paths are taken from the file's folder.

    A UTF-8 byte order mark at the start of the file is accepted, as for JSON documents.
    """
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8-sig"))
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
    check_data_dir(node.data_dir)
    return config
