"""A played chain's progress, kept beside its ledger, so a long play goes on in a new process.

Why: a 200-household year (``gridchain bench state``) is hours of play and as long again of
replay, longer than a shared machine's session or an uninterrupted day of a peer device.  A
process that stops must not lose what it played: the ledger is durable already (every block is
one synced batch), and what a new process needs besides is written here after every played day:

* the generator's state at that day's end: every household's nonces, every meter's record
  chain and registers, and the random stream (``random.Random.getstate``), so the days after
  are the ones an uninterrupted run would have played;
* the figures measured so far (per day: blocks, mean wall and CPU ms, the load), and the play's
  and the replay's accumulated seconds.

The file is replaced atomically (write, fsync, rename, fsync of the directory), so it always
describes a day the ledger has reached.  A ledger that went further (stopped in mid-day) is
caught up by generating that day again and checking each block's transactions against the
stored block (bench/state.py ``play``): the generator is deterministic, so a mismatch is a bug,
reported, never papered over.  A file that does not parse, or that belongs to another
community, is a :class:`ProgressError` and nothing is played.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from gridchain.bench.state import Community

PROGRESS_FILE = "progress.json"
#: The version of this file's layout; another one is refused, not guessed at.
PROGRESS_FORMAT = 1


class ProgressError(ValueError):
    """The progress file cannot be used to go on with this play."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MeterState(_Strict):
    sequence: int = Field(ge=0)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    import_wh: int = Field(ge=0)
    export_wh: int = Field(ge=0)


class HouseholdState(_Strict):
    nonce: int = Field(ge=0)
    bridge_nonce: int = Field(ge=0)
    meters: tuple[MeterState, ...]


class GeneratorState(_Strict):
    #: ``random.Random.getstate()``: (version, the Mersenne Twister's 625 words, gauss_next).
    rng_version: int
    rng_words: tuple[int, ...] = Field(min_length=625, max_length=625)
    rng_gauss: float | None
    households: tuple[HouseholdState, ...]


class DayFigures(_Strict):
    """One played day: ``blocks`` is below a whole day's when a run stopped in it and the next
    one measured only the blocks it committed."""

    day: int = Field(ge=0)
    blocks: int = Field(ge=1)
    wall_ms: float
    cpu_ms: float
    load_1m: float
    #: which run of this play measured it (1 for the first process)
    run: int = Field(ge=1)
    #: measured while a fresh ledger played in turn with it (``--compare-fresh``): its wall and
    #: process CPU figures then include the other ledger's compactions
    compared: bool = False


class ReplayProgress(_Strict):
    height: int = Field(ge=0)
    #: blocks whose replay is in ``seconds`` (a run stopped between two saves replayed some
    #: that the next one does not replay again)
    timed_blocks: int = Field(ge=0)
    seconds: float = Field(ge=0)
    cpu_seconds: float = Field(ge=0)
    runs: int = Field(ge=0)
    #: runs that replayed beside the play (bench/state_beside.py): their seconds are each
    #: block's own time, not the time from the first block to the last
    beside_runs: int = Field(default=0, ge=0)


class Progress(_Strict):
    format: int
    households: int = Field(ge=1)
    genesis_time_ms: int
    #: gateways named in the community's genesis (``bench state --gateway``; absent in files
    #: written before it, which had none)
    gateways: int = Field(default=0, ge=0)
    #: whole days played, their generation captured in ``generator``
    played_days: int = Field(ge=0)
    generator: GeneratorState
    day_log: tuple[DayFigures, ...]
    play_seconds: float = Field(ge=0)
    play_cpu_seconds: float = Field(ge=0)
    runs: int = Field(ge=0)
    replay: ReplayProgress | None = None


def capture(people: Community) -> GeneratorState:
    """The generator's state now (between two days of ``play``)."""
    version, words, gauss = people.rng.getstate()
    return GeneratorState(
        rng_version=version,
        rng_words=tuple(words),
        rng_gauss=gauss,
        households=tuple(
            HouseholdState(
                nonce=h.nonce,
                bridge_nonce=h.bridge_nonce,
                meters=tuple(
                    MeterState(
                        sequence=m.sequence,
                        prev_hash=m.prev_hash.hex(),
                        import_wh=m.import_wh,
                        export_wh=m.export_wh,
                    )
                    for m in h.meters
                ),
            )
            for h in people.households
        ),
    )


def restore(people: Community, state: GeneratorState) -> None:
    """Put ``people`` (a fresh ``community`` of the same genesis) where ``state`` was."""
    if len(state.households) != len(people.households):
        raise ProgressError(
            f"the progress file has {len(state.households)} households, "
            f"the community {len(people.households)}"
        )
    for household, saved in zip(people.households, state.households, strict=True):
        if len(saved.meters) != len(household.meters):
            raise ProgressError("the progress file's meters are not the community's")
        household.nonce, household.bridge_nonce = saved.nonce, saved.bridge_nonce
        for meter, m in zip(household.meters, saved.meters, strict=True):
            meter.sequence, meter.prev_hash = m.sequence, bytes.fromhex(m.prev_hash)
            meter.import_wh, meter.export_wh = m.import_wh, m.export_wh
    rng = random.Random()
    try:
        rng.setstate((state.rng_version, state.rng_words, state.rng_gauss))
    except (TypeError, ValueError) as exc:
        raise ProgressError(f"the progress file's random state is not one: {exc}") from None
    people.rng = rng


def load(directory: Path) -> Progress | None:
    """The progress saved in ``directory``, or None if there is none."""
    path = directory / PROGRESS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        progress = Progress.model_validate_json(raw)
    except ValidationError as exc:
        raise ProgressError(f"{path} is not a bench state progress file: {exc}") from None
    if progress.format != PROGRESS_FORMAT:
        raise ProgressError(
            f"{path} has format {progress.format}; this bench reads format {PROGRESS_FORMAT}"
        )
    return progress


def save(directory: Path, progress: Progress) -> None:
    """Replace ``directory``'s progress file with ``progress``, atomically and durably."""
    path = directory / PROGRESS_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        # Fields at their defaults are left out: what this code writes for a play that uses
        # none of the later fields (gateways, compared days) is what the code before them
        # wrote, so a play goes on under either (a long play's checkout may be older).
        f.write(progress.model_dump_json(exclude_defaults=True).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
