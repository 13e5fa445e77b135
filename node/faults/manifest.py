"""The fault-test manifest: one TOML file naming the testnet, its load, its faults and checks.

Modelled on CometBFT's e2e manifests (a testnet described as data, perturbations per node at
chosen heights), reduced to what a gridchain testnet needs.  docs/faults.md documents every
field; :func:`load_manifest` refuses an unknown or out-of-range one with a message naming it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridchain.genesis.schema import describe_validation_error
from gridchain.protocol.errors import GridchainError

EngineName = Literal["pbft", "pob", "epob"]
Action = Literal["kill", "restart", "pause", "disconnect", "skew"]
#: What each action does; the runner's report and the docs use these words.
ACTIONS: dict[str, str] = {
    "kill": "kill -9, stay down for `for_s`, start again on the same ledger",
    "restart": "SIGTERM (a clean stop, exit code 0 expected), start again at once",
    "pause": "SIGSTOP for `for_s`, then SIGCONT",
    "disconnect": "take the node's link down for `for_s` (network namespaces; root)",
    "skew": "restart the node with its clock `skew_ms` off (faults.clock_offset_ms; 0 resets)",
}
Seconds = Annotated[float, Field(ge=0, le=3600)]


class ManifestError(GridchainError):
    code = "invalid_manifest"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSection(_Strict):
    """Genesis of the testnet (the engine comes from ``engines`` or ``--engine``)."""

    validators: Annotated[int, Field(ge=4, le=16)] = 4
    participants: Annotated[int, Field(ge=2, le=64)] = 4
    block_interval_ms: Annotated[int, Field(ge=20, le=60_000)] = 200
    #: PoB and ePoB round length (ROUNDTIME).
    round_ms: Annotated[int, Field(ge=50, le=60_000)] = 500
    #: PBFT: wait before a view change.
    view_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 2000


class LoadSection(_Strict):
    """Steady transfers between participants, submitted to validators that are up."""

    rate_tps: Annotated[float, Field(gt=0, le=1000)] = 10.0
    #: Participants that send (each keeps its own nonce sequence).
    senders: Annotated[int, Field(ge=1, le=64)] = 3
    #: A sender whose oldest transaction has not committed for this long re-reads its
    #: committed nonce and goes on from there (the transaction sat in a mempool that died).
    stall_s: Seconds = 6.0


class ChecksSection(_Strict):
    #: Liveness after healing: every validator commits this many blocks past the height the
    #: chain had when the last fault healed.
    heal_blocks: Annotated[int, Field(ge=1, le=10_000)] = 3
    #: How long any one wait may take (a height to reach, a node to come up) before the run
    #: fails and says what it was waiting for.
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: Blocks committed under load before the first fault.
    warmup_blocks: Annotated[int, Field(ge=1, le=10_000)] = 2


class Perturbation(_Strict):
    node: str
    action: Action
    #: Applied once the most advanced running validator has committed this height.
    at_height: Annotated[int, Field(ge=1)]
    for_s: Seconds = 2.0
    #: skew only: the node's clock offset from now on (0 puts its clock right again).
    skew_ms: Annotated[int, Field(ge=-3_600_000, le=3_600_000)] | None = None
    #: Engines this fault applies to (default: all the manifest runs).
    engines: tuple[EngineName, ...] | None = None

    @model_validator(mode="after")
    def _skew(self) -> Perturbation:
        if self.action == "skew" and self.skew_ms is None:
            raise ValueError("perturb.skew_ms: a skew perturbation needs skew_ms")
        if self.action != "skew" and self.skew_ms is not None:
            raise ValueError(
                f"perturb.skew_ms: only a skew perturbation takes it, not {self.action}"
            )
        return self

    def describe(self) -> str:
        what = f"{self.action} {self.node} at height {self.at_height}"
        if self.action in ("kill", "pause", "disconnect"):
            what += f" for {self.for_s:g} s"
        if self.skew_ms is not None:
            what += f" by {self.skew_ms:+d} ms"
        return what


class Manifest(_Strict):
    title: str = ""
    engines: tuple[EngineName, ...] = ("pbft", "pob", "epob")
    seed: int = 1
    chain: ChainSection = ChainSection()
    load: LoadSection = LoadSection()
    checks: ChecksSection = ChecksSection()
    perturb: tuple[Perturbation, ...] = ()

    @model_validator(mode="after")
    def _nodes(self) -> Manifest:
        names = set(node_names(self.chain.validators))
        for i, p in enumerate(self.perturb):
            if p.node not in names:
                raise ValueError(
                    f"perturb[{i}].node: {p.node!r} is not a validator "
                    f"(this testnet has {', '.join(sorted(names))})"
                )
        return self

    @property
    def needs_netns(self) -> bool:
        return any(p.action == "disconnect" for p in self.perturb)

    def perturbations(self, engine: str) -> list[Perturbation]:
        """The faults that apply to ``engine``, in the order they are applied (by height)."""
        chosen = [p for p in self.perturb if p.engines is None or engine in p.engines]
        return sorted(chosen, key=lambda p: p.at_height)


def node_names(validators: int) -> list[str]:
    """Validator names as genesis.builder writes them."""
    return [f"node-{i + 1}" for i in range(validators)]


def load_manifest(path: Path) -> Manifest:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"manifest {path} is not valid TOML: {exc}") from None
    try:
        return Manifest(**raw)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest {path}: {describe_validation_error(exc)}") from None
