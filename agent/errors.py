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


class OfferGoneError(GridchainError):
    """The offer to take is no longer in the book (matched, cancelled or never there)."""

    code = "offer_gone"
    http_status = 409


class OwnOfferError(GridchainError):
    """The offer is the household's own order: taking it would be a self-trade."""

    code = "own_offer"
    http_status = 409


class OfferNotFirstError(GridchainError):
    """An order at the offer's price would meet other offers first (the message names them)."""

    code = "offer_not_first"
    http_status = 409


class NoDeviceMeterError(GridchainError):
    """A C&D request for a device the configuration names no meter for."""

    code = "no_device_meter"
    http_status = 409


class DeadlinePassedError(GridchainError):
    """A C&D request whose departure time has already passed."""

    code = "deadline_passed"
    http_status = 409
