"""The agent's refusals: typed, with a stable ``code`` and the HTTP status its API answers."""

from __future__ import annotations

from gridchain.protocol.errors import GridchainError


class AgentConfigError(GridchainError):
    """The agent's configuration file is missing, malformed or inconsistent."""

    code = "bad_agent_config"


class HistoryError(GridchainError):
    """Not enough (or inconsistent) history to forecast from."""

    code = "insufficient_history"
    http_status = 409


class AgentInputError(GridchainError):
    """A request to the agent's API that is malformed (wrong types, unknown fields)."""

    code = "bad_request"


class LimitExceededError(GridchainError):
    """A request beyond a limit the user set in the agent's configuration."""

    code = "over_user_limit"
    http_status = 422


class SlotClosedError(GridchainError):
    """An order for a slot whose gate has closed (or that lies beyond the order horizon)."""

    code = "slot_closed"
    http_status = 409


class PlanNotFoundError(GridchainError):
    code = "not_found"
    http_status = 404
