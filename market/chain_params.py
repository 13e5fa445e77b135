"""The chain parameters in force at a height: genesis ``params`` changed by the council.

Why one place: tariffs, the imbalance penalty, gate closure and the C&D tolerances were read
from ``genesis.params`` by each module that needs them, so changing one meant a new genesis.
Now a council :class:`~gridchain.protocol.governance.SetParameter` or
:class:`~gridchain.protocol.governance.SetTariffs` schedules a value from a future height, and
every reader asks :func:`params_at` (or :class:`ParamsView`) for the parameters of the block it
executes: every validator applies the new value from the same block (ADR 0043).

The rule: the parameters of block ``h`` are genesis's with every scheduled change of
``effective_height <= h`` applied, in effective-height order (and, at one height, in the order
they were committed).  What a block computes (a slot it settles, an order it admits, a C&D
interval it prices) uses its own height's parameters: a slot whose settlement block comes after
the change is paid at the new tariff.  The effective height must be at least
:data:`MIN_CHANGE_DELAY` blocks after the block that applies the record, so a change is
committed before any block it governs is proposed (and the mempool's pending state, built on
the head, never straddles it).

The schedule is stored only once a change is applied (``meta:params``, under the state root):
a chain that never changes a parameter keeps the genesis state and state root it always had.

Not changeable: ``slot_length_ms`` (:class:`SlotLengthUnchangeableError`): a slot is
``time // slot_length_ms`` in every order, contract, reading window, settlement cursor and
pruning bound already in the state, so a new length would renumber the slots those records
name.  Every other parameter outside :data:`CHANGEABLE` is refused too (its readers, such as
the matching rule or the base-load model, build state whose meaning would change mid-way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import ValidationError

from gridchain.genesis.schema import ChainParams, Genesis, Tariff
from gridchain.market.errors import ApplicationError
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import Record, Size, decode, register
from gridchain.protocol.governance import SetParameter, SetTariffs, TariffBand

PARAMS_SCHEDULE_KEY = b"meta:params"
#: A height past every change (the parameters once everything scheduled is in force).
LATEST = 2**64 - 1
#: The fewest blocks between the block that applies a change and its effective height.
MIN_CHANGE_DELAY = 2
#: The furthest ahead a change may be scheduled (a council proposal lives as long at most).
MAX_CHANGE_DELAY = 1_000_000
#: The most changes a chain keeps (every one is kept: the parameters of any past height can be
#: told from the state).
MAX_CHANGES = 4096
#: The integer parameters the council may change with SetParameter (tariffs: SetTariffs).
CHANGEABLE: tuple[str, ...] = (
    "penalty_mc_per_kwh",
    "gate_closure_ms",
    "day_ahead_gate_closure_ms",
    "cd_tolerance_permille",
    "cd_tolerance_wh",
)


class ParameterChangeError(ApplicationError):
    """A parameter change the chain refuses (each case has its own subclass)."""

    code = "parameter_change"


class ParameterNotChangeableError(ParameterChangeError):
    """A name that is not a parameter, or one the council may not change."""

    code = "parameter_not_changeable"


class SlotLengthUnchangeableError(ParameterNotChangeableError):
    """slot_length_ms: every slot number in the state is time // slot_length_ms."""

    code = "slot_length_unchangeable"


class InvalidParameterValueError(ParameterChangeError):
    """A value outside the parameter's range, or one that breaks a rule between parameters."""

    code = "invalid_parameter_value"


class ParameterHeightError(ParameterChangeError):
    """An effective height that is not far enough in the future, or too far."""

    code = "invalid_effective_height"


@register(0x89)
@dataclass(frozen=True, slots=True)
class ParamSchedule(Record):
    """Every change applied, in the order the blocks applied them."""

    parameters: Annotated[tuple[SetParameter, ...], Size(0, MAX_CHANGES)] = ()
    tariffs: Annotated[tuple[SetTariffs, ...], Size(0, MAX_CHANGES)] = ()


def params_schedule(state: StateReader) -> ParamSchedule:
    raw = state.get(PARAMS_SCHEDULE_KEY)
    return ParamSchedule() if raw is None else decode(raw, ParamSchedule)


def params_at(state: StateReader, genesis: Genesis, height: int) -> ChainParams:
    """The parameters of block ``height`` (genesis's until a change takes effect)."""
    raw = state.get(PARAMS_SCHEDULE_KEY)
    if raw is None:
        return genesis.params
    return _fold(genesis.params, decode(raw, ParamSchedule), height)


def _fold(base: ChainParams, schedule: ParamSchedule, height: int) -> ChainParams:
    """``base`` with every change of ``effective_height <= height`` (sort is stable: at one
    height the later commit wins)."""
    update: dict[str, object] = {}
    for change in sorted(schedule.parameters, key=lambda c: c.effective_height):
        if change.effective_height <= height:
            update[change.name] = change.value
    for tariffs in sorted(schedule.tariffs, key=lambda c: c.effective_height):
        if tariffs.effective_height <= height:
            update["tariffs"] = tuple(_tariff(band) for band in tariffs.tariffs)
    return base.model_copy(update=update) if update else base


def _tariff(band: TariffBand) -> Tariff:
    return Tariff.model_construct(
        start_hour=band.start_hour,
        end_hour=band.end_hour,
        retail_mc_per_kwh=band.retail_mc_per_kwh,
        feed_in_mc_per_kwh=band.feed_in_mc_per_kwh,
    )


def apply_param_change(
    view: Overlay, genesis: Genesis, record: SetParameter | SetTariffs, height: int
) -> None:
    """Schedule ``record`` (applied in block ``height``); refuse it with a typed error and no
    write when the name, the value or the height is wrong."""
    low, high = height + MIN_CHANGE_DELAY, height + MAX_CHANGE_DELAY
    if not low <= record.effective_height <= high:
        raise ParameterHeightError(
            f"effective_height {record.effective_height} must be {low} to {high} "
            f"(at least {MIN_CHANGE_DELAY} blocks after this block, {height})"
        )
    schedule = params_schedule(view)
    if len(schedule.parameters) + len(schedule.tariffs) >= MAX_CHANGES:
        raise ParameterChangeError(f"the chain keeps at most {MAX_CHANGES} parameter changes")
    if isinstance(record, SetParameter):
        if record.name == "slot_length_ms":
            raise SlotLengthUnchangeableError(
                "slot_length_ms cannot change: every order, contract, reading window and "
                "settlement cursor names its slot as time // slot_length_ms"
            )
        if record.name not in CHANGEABLE:
            raise ParameterNotChangeableError(
                f"{record.name!r} is not a parameter the council may change "
                f"(changeable: {', '.join(CHANGEABLE)}, and the tariffs)"
            )
        after = ParamSchedule((*schedule.parameters, record), schedule.tariffs)
    else:
        after = ParamSchedule(schedule.parameters, (*schedule.tariffs, record))
    _check_from(genesis.params, after, record.effective_height)
    view.put(PARAMS_SCHEDULE_KEY, after.encode())


def _check_from(base: ChainParams, schedule: ParamSchedule, effective_height: int) -> None:
    """Validate the parameters of the new change's height and of every later scheduled
    change's height: a change may not break a rule between parameters (day-ahead gate closure
    before the intraday one, order horizon past both, tariffs covering the day, feed-in at
    most retail) now or together with what is already scheduled."""
    heights = {effective_height}
    heights.update(c.effective_height for c in schedule.parameters)
    heights.update(c.effective_height for c in schedule.tariffs)
    for h in sorted(x for x in heights if x >= effective_height):
        folded = _fold(base, schedule, h)
        try:
            ChainParams.model_validate(folded.model_dump())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidParameterValueError(
                f"the parameters from height {h} would be invalid: {problems}"[:400]
            ) from None
