"""The validator set as chain state: who signs for each height, and how governance changes it.

Why chain state: a community's peer devices come and go (a house joins, a device dies), and a
set fixed in genesis.json could only change by stopping every validator.  Following CometBFT's
validator updates, a governance :class:`~protocol.tx.UpdateValidators` committed at height H
is in force from height H + 2 (:data:`ACTIVATION_DELAY`): when block H + 1 is proposed, every
validator already knows the set that must certify it (it is fixed by the state after H), and
the set of H + 2 is known one block before anyone votes on it, so a joining validator can link
and catch up before its first vote counts.  The engines are handed the set of each height by
the chain driver (node/driver.py); they never read this module.

The schedule is stored only once the set first changes: until then the set is genesis's, so a
chain that never changes its set keeps the genesis state (and state root) it always had.  Every
epoch is kept (a few a year), so the set of any past height can be told from the state.

Refused, each with a typed error and no write: an empty change, a key named twice or added
while in the set, a key removed that is not in it, a key that has another role (a gateway or
the governance key), a resulting set smaller than the engine's least fault-tolerant set, and a
change of more than a third of the set in force just before the new one (two consecutive sets
then share more than two thirds of the smaller one; ADR 0035).  Solo (one validator by
definition) takes no change, and a chain that seals transactions adds none (its seal set is
the genesis validators' encryption keys; an added validator could not open them).  PoB takes
changes with the same refusals; the set of a pending height is read from the state its own
branch leaves (:func:`validators_after`, ADR 0044).  On PoB a change is not in force at H + 2
but pending until a run of blocks of consecutive rounds after it is final as seen from the
branch, one change at a time (:func:`advance_pending`, ADR 0049).  PoB also refuses a
change after which a quorum of the set before and one of the set after need not share an
honest validator (:func:`honest_overlap`, ADR 0049): its votes for two neighbouring heights are
counted against those heights' sets, and Streamlet's safety argument needs such quorums to
meet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from gridchain.genesis.schema import Genesis
from gridchain.market.errors import ApplicationError
from gridchain.market.keys import require_registrable_key
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import U64, Bytes32, Record, Size, decode, register
from gridchain.protocol.tx import UpdateValidators

#: Blocks between the block that commits a change and the first height it applies to.
ACTIVATION_DELAY = 2
VALIDATOR_SCHEDULE_KEY = b"meta:validators"
#: PoB's change that is committed but not in force yet (ADR 0049)
PENDING_CHANGE_KEY = b"meta:validators:pending"
#: PoB: consecutive-round blocks from the change's own block on that bring it into force
#: (Streamlet's final run; a chain whose ``finality_depth`` is larger asks for that many)
MIN_ACTIVATION_RUN = 3
#: The most validators a set may hold (a certificate carries at most 1024 signatures).
MAX_VALIDATORS = 1024


class ValidatorChangeError(ApplicationError):
    """An UpdateValidators that the chain refuses (each case has its own subclass)."""

    code = "validator_change"


class EmptyValidatorChangeError(ValidatorChangeError):
    code = "empty_validator_change"


class DuplicateValidatorError(ValidatorChangeError):
    """A key named twice in one change, or added while it is already a validator."""

    code = "duplicate_validator"


class UnknownValidatorError(ValidatorChangeError):
    """A key removed that is not in the validator set."""

    code = "unknown_validator"


class ValidatorRoleConflictError(ValidatorChangeError):
    """A key added that already has another role (a gateway, the governance key)."""

    code = "validator_role_conflict"


class ValidatorSetTooSmallError(ValidatorChangeError):
    """The resulting set could not tolerate a single faulty validator under the engine's rule."""

    code = "validator_set_too_small"


class ValidatorChangeTooLargeError(ValidatorChangeError):
    """More than a third of the set would change at once."""

    code = "validator_change_too_large"


class ValidatorQuorumOverlapError(ValidatorChangeError):
    """A PoB change after which a quorum of the set before it and a quorum of the set after it
    need not share an honest validator (:func:`honest_overlap`, ADR 0049)."""

    code = "validator_quorum_overlap"


class ValidatorChangePendingError(ValidatorChangeError):
    """PoB: another change is committed and not in force yet; one at a time (ADR 0049)."""

    code = "validator_change_pending"


class ValidatorChangeUnsupportedError(ValidatorChangeError):
    """The chain's engine takes no validator-set change (solo), or the chain seals
    transactions and the change adds a validator."""

    code = "validator_change_unsupported"


@register(0x4E)
@dataclass(frozen=True, slots=True)
class ValidatorEpoch(Record):
    """The set in force from ``from_height`` until the next epoch, in its order (which decides
    PBFT's primaries and ePoB's leaders)."""

    from_height: U64
    keys: Annotated[tuple[Bytes32, ...], Size(1, MAX_VALIDATORS)]


@register(0x4F)
@dataclass(frozen=True, slots=True)
class ValidatorSchedule(Record):
    """Every epoch of the chain, by increasing ``from_height`` (the first one from 0)."""

    epochs: Annotated[tuple[ValidatorEpoch, ...], Size(1, 65535)]


@register(0x4D)
@dataclass(frozen=True, slots=True)
class PendingValidatorChange(Record):
    """PoB: a change committed at ``carried_at`` and not in force yet, with the set it leaves
    (``keys``) and the run of blocks of consecutive rounds that ends at the branch's newest
    block (``run`` blocks, the newest of round ``last_round``), counted from the change's own
    block on.  When the run reaches the finality run, the blocks it holds are final as soon as
    a block above them is notarized, and the set changes two heights later (ADR 0049)."""

    carried_at: U64
    keys: Annotated[tuple[Bytes32, ...], Size(1, MAX_VALIDATORS)]
    last_round: U64
    run: U64


def validator_schedule(state: StateReader, genesis: Genesis) -> tuple[ValidatorEpoch, ...]:
    raw = state.get(VALIDATOR_SCHEDULE_KEY)
    if raw is None:
        return (ValidatorEpoch(0, genesis.validator_keys()),)
    return decode(raw, ValidatorSchedule).epochs


def validators_at(state: StateReader, genesis: Genesis, height: int) -> tuple[bytes, ...]:
    """The set that certifies ``height``: known from the state after ``height - 2``."""
    return set_at(validator_schedule(state, genesis), height)


def validators_after(
    state: StateReader,
    genesis: Genesis,
    writes: Sequence[Mapping[bytes, bytes | None]],
    height: int,
) -> tuple[bytes, ...]:
    """The set of ``height`` in the state that ``writes`` (pending blocks' writes, newest
    first) leave on top of the committed ``state``: PoB's pending branches each follow the
    changes of their own blocks (ADR 0044)."""
    for block_writes in writes:
        raw = block_writes.get(VALIDATOR_SCHEDULE_KEY)
        if raw is not None:
            return set_at(decode(raw, ValidatorSchedule).epochs, height)
    return validators_at(state, genesis, height)


def min_validators(genesis: Genesis) -> int | None:
    """The smallest set the engine tolerates one faulty validator with (None: no change).

    PBFT, PoB and ePoB's BFT quorum need n >= 3f + 1 with f >= 1, so 4; ePoB's majority
    quorum (crashes only) needs n // 2 + 1 <= n - 1, so 3.
    """
    consensus = genesis.consensus
    if consensus.engine in ("pbft", "pob"):
        return 4
    if consensus.engine == "epob":
        return 4 if consensus.epob_quorum == "bft" else 3
    return None


def tolerated_faults(n: int) -> int:
    """f of a set of ``n`` under the BFT quorum q = n - f, f = (n - 1) // 3: the rule of
    ``consensus.kernel.validators.quorum_size(n, "bft")``, which the layers keep out of reach
    of market/ (a unit test checks that the two agree for every size)."""
    return (n - 1) // 3


def honest_overlap(before: Sequence[bytes], after: Sequence[bytes]) -> int:
    """The fewest honest validators that a BFT quorum of ``before`` and one of ``after``
    always share, with at most f Byzantine validators in each set (ADR 0049).

    Both quorums lie in their own set, so they can only meet among the k kept keys: a quorum
    of ``before`` leaves out at most f_b of them and one of ``after`` at most f_a, so they
    share at least k - f_b - f_a kept validators, and exactly that many when each leaves out
    different kept ones.  Up to min(f_b, f_a) of those may be Byzantine (they are in both
    sets).  So at least k - f_b - f_a - min(f_b, f_a) honest ones, and no more in the worst
    case: the bound is exact.  PoB needs it to be at least one (:func:`schedule_change`).
    """
    kept = len(set(before) & set(after))
    f_before = tolerated_faults(len(before))
    f_after = tolerated_faults(len(after))
    return max(0, kept - f_before - f_after - min(f_before, f_after))


def pending_change(state: StateReader) -> PendingValidatorChange | None:
    raw = state.get(PENDING_CHANGE_KEY)
    return None if raw is None else decode(raw, PendingValidatorChange)


def apply_validator_update(
    view: Overlay, genesis: Genesis, body: UpdateValidators, height: int, round_: int = 0
) -> tuple[bytes, ...]:
    """Schedule ``body`` (committed at ``height``, in ``round_`` on PoB) for ``height +
    ACTIVATION_DELAY``, or on PoB hold it pending until a final run brings it in (ADR 0049).

    Returns the set it leaves; raises a ValidatorChangeError (or the key check's refusal) and
    writes nothing when the change is refused.
    """
    epochs = validator_schedule(view, genesis)
    if genesis.consensus.engine == "pob":
        pending = pob_pending_change(
            epochs, pending_change(view), genesis, body, height=height, round_=round_
        )
        view.put(PENDING_CHANGE_KEY, pending.encode())
        return pending.keys
    epochs = schedule_change(epochs, genesis, body, height)
    view.put(VALIDATOR_SCHEDULE_KEY, ValidatorSchedule(epochs).encode())
    return epochs[-1].keys


def pob_pending_change(
    epochs: Sequence[ValidatorEpoch],
    pending: PendingValidatorChange | None,
    genesis: Genesis,
    body: UpdateValidators,
    *,
    height: int,
    round_: int,
) -> PendingValidatorChange:
    """PoB's change ``body`` committed at ``height`` in ``round_``, pending (a pure function
    the state path and a follower share).  Refused while another change is pending: two
    changes that are not final could add up on one branch while a conflicting branch has
    neither.  It is measured against the newest set of the schedule, which is in force
    before it (it comes into force four heights after its block at the earliest)."""
    if pending is not None:
        raise ValidatorChangePendingError(
            f"the change committed at height {pending.carried_at} is not in force yet; "
            "one PoB change at a time"
        )
    target = max(height + ACTIVATION_DELAY, epochs[-1].from_height + 1)
    keys = schedule_change(epochs, genesis, body, target - ACTIVATION_DELAY)[-1].keys
    return PendingValidatorChange(height, keys, round_, 1)


def activation_run(genesis: Genesis) -> int:
    """How many consecutive-round blocks bring a pending PoB change into force: the engine's
    finality run (consensus/pob/tree.py, ``max(finality_depth, 3)``)."""
    return max(MIN_ACTIVATION_RUN, genesis.consensus.finality_depth)


def advance_pending(
    epochs: tuple[ValidatorEpoch, ...],
    pending: PendingValidatorChange,
    genesis: Genesis,
    height: int,
    round_: int,
) -> tuple[tuple[ValidatorEpoch, ...], PendingValidatorChange | None]:
    """Count block ``height`` of ``round_`` (above the change's block) into the pending
    change's run: the next schedule and what stays pending (None once in force).

    A block whose round follows the newest one's extends the run, any other starts a new one
    at itself.  When the run is ``activation_run`` long, its blocks are Streamlet's final run
    as soon as anything above them is notarized, and the change's block is at or below them:
    the change comes into force at ``height + ACTIVATION_DELAY`` (the set of ``height + 1``
    is fixed already).  Every voter set above it is then one that a notarized block proves
    final, the same on every branch that can be notarized (ADR 0049).
    """
    run = pending.run + 1 if round_ == pending.last_round + 1 else 1
    if run < activation_run(genesis):
        return epochs, PendingValidatorChange(pending.carried_at, pending.keys, round_, run)
    first = height + ACTIVATION_DELAY
    kept = tuple(e for e in epochs if e.from_height < first)
    return (*kept, ValidatorEpoch(first, pending.keys)), None


def advance_validator_change(view: Overlay, genesis: Genesis, height: int, round_: int) -> None:
    """Before a PoB block's transactions: count it into the pending change's run, and bring
    the change into force when the run is final (:func:`advance_pending`)."""
    if genesis.consensus.engine != "pob":
        return
    pending = pending_change(view)
    if pending is None or height <= pending.carried_at:
        return
    epochs, still = advance_pending(
        validator_schedule(view, genesis), pending, genesis, height, round_
    )
    if still is None:
        view.put(VALIDATOR_SCHEDULE_KEY, ValidatorSchedule(epochs).encode())
        view.delete(PENDING_CHANGE_KEY)
    else:
        view.put(PENDING_CHANGE_KEY, still.encode())


def schedule_change(
    epochs: Sequence[ValidatorEpoch], genesis: Genesis, body: UpdateValidators, height: int
) -> tuple[ValidatorEpoch, ...]:
    """The schedule after ``body``, committed at ``height``: a pure function, so a gateway
    that follows blocks without their state (node/follower.py) tracks the set the same way.

    Several changes in one block add up into one epoch, each checked against the set the
    ones before it left.
    """
    least = min_validators(genesis)
    if least is None:
        raise ValidatorChangeUnsupportedError(
            f"the {genesis.consensus.engine} engine takes no validator-set change"
        )
    if body.add and genesis.encryption_keys():
        # Sealed transactions are wrapped to the genesis validators' encryption keys: a
        # validator added later could not open them, so it could not execute the blocks.
        raise ValidatorChangeUnsupportedError(
            "a chain that seals transactions adds no validator (its seal set is genesis's)"
        )
    if not body.add and not body.remove:
        raise EmptyValidatorChangeError("an UpdateValidators adds or removes at least one key")
    named = [*body.add, *body.remove]
    if len(set(named)) != len(named):
        raise DuplicateValidatorError("a key is named twice in one change")
    for key in body.add:
        require_registrable_key(key, what="UpdateValidators.add")
    taken = {*genesis.gateway_keys(), bytes.fromhex(genesis.governance_public_key)}
    if any(key in taken for key in body.add):
        raise ValidatorRoleConflictError("a gateway or the governance key cannot be a validator")
    target = height + ACTIVATION_DELAY
    before = set_at(epochs, target - 1)  # in force just before the change
    current = set_at(epochs, target)  # with the changes scheduled for target so far
    for key in body.add:
        if key in current:
            raise DuplicateValidatorError(f"{key.hex()} is already a validator")
    for key in body.remove:
        if key not in current:
            raise UnknownValidatorError(f"{key.hex()} is not a validator")
    removed = set(body.remove)
    result = tuple(k for k in current if k not in removed) + tuple(body.add)
    if len(result) < least:
        raise ValidatorSetTooSmallError(
            f"{len(result)} validators left; the {genesis.consensus.engine} engine needs {least}"
        )
    if len(result) > MAX_VALIDATORS:
        raise ValidatorChangeTooLargeError(f"at most {MAX_VALIDATORS} validators")
    changed = len(set(before).symmetric_difference(result))
    if 3 * changed > len(before):
        raise ValidatorChangeTooLargeError(
            f"{changed} of {len(before)} validators would change at once; at most a third may"
        )
    if genesis.consensus.engine == "pob" and honest_overlap(before, result) < 1:
        # PoB counts the votes of two heights, on two branches, against the sets of those
        # heights (ADR 0044); Streamlet's argument needs their quorums to share an honest
        # validator, which a third of the set at once does not give (ADR 0049).
        raise ValidatorQuorumOverlapError(
            f"{len(before)} -> {len(result)} validators keeping "
            f"{len(set(before) & set(result))}: a quorum of each set need not share an honest "
            "validator; change fewer keys at once"
        )
    kept = tuple(e for e in epochs if e.from_height < target)
    return (*kept, ValidatorEpoch(target, result))


def set_at(epochs: Sequence[ValidatorEpoch], height: int) -> tuple[bytes, ...]:
    """The set of ``height`` in a schedule."""
    keys = epochs[0].keys
    for epoch in epochs:
        if epoch.from_height > height:
            break
        keys = epoch.keys
    return keys


def removed_from(epochs: Sequence[ValidatorEpoch], key: bytes) -> int | None:
    """The first height of the set that removed ``key`` for good (None: ``key`` is in the
    schedule's last set, or was never a validator, like a joiner not admitted yet)."""
    if key in epochs[-1].keys:
        return None
    for earlier, later in zip(reversed(epochs[:-1]), reversed(epochs), strict=False):
        if key in earlier.keys:
            return later.from_height
    return None
