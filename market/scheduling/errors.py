"""Typed errors of the scheduling library.

Two families matter to callers.  A :class:`ScheduleViolationError` is what a validator raises when a
proposed schedule breaks a rule; its subclasses name the rule, so the consensus engine can reject
the block (and a test can assert the reason) without parsing a message.  A :class:`SolverError`
is what the proposer gets when the convex solver cannot produce an optimum; it is never turned
into a schedule silently, because a wrong schedule in a block is worse than no proposal.
"""

from __future__ import annotations

from gridchain.protocol.errors import GridchainError


class SchedulingError(GridchainError):
    """Base of everything the scheduling library refuses."""

    code = "scheduling_error"
    http_status = 422


class ScenarioError(SchedulingError):
    """Scenario parameters or requests that describe no possible day (bad ranges, sizes)."""

    code = "scenario_invalid"


# --- verification (integer, consensus-critical) ---------------------------------------------


class ScheduleViolationError(SchedulingError):
    """A schedule that a validator must refuse.  ``request_id`` names the offending request."""

    code = "schedule_invalid"

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ScheduleShapeError(ScheduleViolationError):
    """The schedule does not cover the requests or intervals it claims to."""

    code = "schedule_shape"


class NegativeRateError(ScheduleViolationError):
    """A rate below zero: direction is given by the request kind, never by the sign."""

    code = "schedule_negative_rate"


class RateOutsideWindowError(ScheduleViolationError):
    """Power scheduled for an interval in which the vehicle is not connected."""

    code = "schedule_outside_window"


class RateAboveMaxError(ScheduleViolationError):
    """Power above the request's maximum (charger or discharge) rate."""

    code = "schedule_above_max_rate"


class EnergyExceededError(ScheduleViolationError):
    """More energy charged than requested, or more discharged than the owner offered."""

    code = "schedule_energy_exceeded"


class DeadlineUnreachableError(ScheduleViolationError):
    """A charge request that cannot be completed by its departure even at its maximum rate."""

    code = "schedule_deadline_unreachable"


# --- solving ---------------------------------------------------------------------------------


class SolverError(SchedulingError):
    """The convex solver did not return an optimum; ``status`` is the solver's own word."""

    code = "solver_failed"
    http_status = 500

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class InfeasibleProblemError(SolverError):
    """The solver proved (or reported) that no schedule satisfies the constraints."""

    code = "solver_infeasible"
