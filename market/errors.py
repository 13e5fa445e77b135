"""Typed refusals of the application: a transaction that breaks a ledger rule.

Each is raised before anything is written (execution runs on an overlay that is dropped), so
a refused transaction changes nothing.
"""

from __future__ import annotations

from gridchain.protocol.errors import (
    BadKeyError,
    GridchainError,
    KeyNotOnCurveError,
    NonCanonicalKeyError,
    SmallOrderKeyError,
)


class ApplicationError(GridchainError):
    code = "rejected"
    http_status = 422


class NotRegisteredError(ApplicationError):
    code = "unregistered_sender"
    http_status = 403


class NotGovernanceError(ApplicationError):
    code = "not_governance"
    http_status = 403


class ReplayedNonceError(ApplicationError):
    """The nonce was already used: a replay or a duplicate."""

    code = "nonce_replayed"
    http_status = 409


class NonceGapError(ApplicationError):
    code = "nonce_gap"


class InsufficientBalanceError(ApplicationError):
    code = "insufficient_balance"


class InvalidAmountError(ApplicationError):
    code = "invalid_amount"


class UnknownRecipientError(ApplicationError):
    code = "unknown_recipient"


class AlreadyRegisteredError(ApplicationError):
    code = "already_registered"
    http_status = 409


class SupplyOverflowError(ApplicationError):
    code = "supply_overflow"


class BlockRejectedError(ApplicationError):
    """A proposed block whose execution fails or whose state root differs."""

    code = "block_rejected"


# --- orders (market/orders.py) ---------------------------------------------------------------


class InvalidOrderError(ApplicationError):
    """An order field that no order may have; the subclasses name the field."""

    code = "invalid_order"


class UnknownMarketError(InvalidOrderError):
    code = "unknown_market"


class InvalidSideError(InvalidOrderError):
    code = "invalid_side"


class InvalidDeviceError(InvalidOrderError):
    """An unknown device kind, or one that cannot take that side (a PV array cannot buy)."""

    code = "invalid_device"


class InvalidPriceError(InvalidOrderError):
    code = "invalid_price"


class InvalidQuantityError(InvalidOrderError):
    code = "invalid_quantity"


class InvalidPeakError(InvalidOrderError):
    """An iceberg peak that hides nothing (not below the total) or shows nothing."""

    code = "invalid_peak"


class InvalidExpiryError(InvalidOrderError):
    code = "invalid_expiry"


class SlotOutOfRangeError(InvalidOrderError):
    """A delivery slot beyond the genesis order horizon."""

    code = "slot_out_of_range"


class GateClosedError(ApplicationError):
    """The slot's book is past its gate closure: no new orders, amendments or cancels."""

    code = "gate_closed"


class UnknownOrderError(ApplicationError):
    code = "unknown_order"
    http_status = 404


class NotOrderOwnerError(ApplicationError):
    code = "not_order_owner"
    http_status = 403


class OrderNotOpenError(ApplicationError):
    """The order was filled, cancelled or expired: nothing of it is open any more."""

    code = "order_not_open"
    http_status = 409


class NotAParticipantError(ApplicationError):
    """Only registered participants trade (the governance key is not one)."""

    code = "not_a_participant"
    http_status = 403


# --- meters and readings (market/meters.py) --------------------------------------------------


class MeterExistsError(ApplicationError):
    """A RegisterMeter for a meter id that is already registered (ids are never reused)."""

    code = "meter_exists"
    http_status = 409


class InvalidMeterTypeError(ApplicationError):
    code = "invalid_meter_type"


class InvalidMeterIdError(ApplicationError):
    """A meter id longer than 64 bytes of UTF-8 (the wire bounds code points, keys bytes)."""

    code = "invalid_meter_id"


class UnknownMeterOwnerError(ApplicationError):
    """A meter's owner must be a registered participant: settlement pays and fines the owner."""

    code = "unknown_meter_owner"


class UnregisteredMeterError(ApplicationError):
    code = "unregistered_meter"
    http_status = 404


class BridgeKeyMismatchError(ApplicationError):
    """The transaction's sender is not the bridge key registered for the reading's meter."""

    code = "bridge_key_mismatch"
    http_status = 403


class ReadingSignatureError(ApplicationError):
    """The record's signature is not the registered bridge key's over this chain's record."""

    code = "bad_reading_signature"
    http_status = 403


class ReadingSequenceError(ApplicationError):
    """The sequence is not exactly the next one: a replay, a duplicate or a gap."""

    code = "reading_sequence"
    http_status = 409


class ReadingChainError(ApplicationError):
    """prev_hash does not name the last accepted record of the meter."""

    code = "reading_hash_chain"
    http_status = 409


class DecreasingRegisterError(ApplicationError):
    """A cumulative import or export register went down: the meter or the bridge is wrong."""

    code = "decreasing_register"


class ReadingIntervalError(ApplicationError):
    """The interval ends before it starts, or starts before the previous record's end."""

    code = "reading_interval"


class ReadingTimeError(ApplicationError):
    """The interval ends too far after the block time: a reading cannot come from the future."""

    code = "reading_time_out_of_bounds"


# --- C&D requests and schedules (market/cd_requests.py, market/cd_schedule.py) ---------------


class InvalidCDRequestError(ApplicationError):
    """A C&D request with an unknown kind or device, a zero field, or an empty window."""

    code = "invalid_cd_request"


class CDWindowError(ApplicationError):
    """The request's window holds no whole schedulable interval, or is longer than allowed."""

    code = "cd_window"


class CDInfeasibleError(ApplicationError):
    """A charge request that cannot get its energy by departure even at its maximum rate."""

    code = "cd_infeasible"


class CDCapacityError(ApplicationError):
    """As many C&D requests are open as genesis allows."""

    code = "cd_capacity"
    http_status = 503


class ScheduleRejectedError(BlockRejectedError):
    """A block's schedule section breaks a rule (who is scheduled, window, rate, deadline)."""

    code = "schedule_invalid"


class GridLimitError(ScheduleRejectedError):
    """A block's schedule puts base load + C&D rates over the transformer capacity although
    the requests allowed less, or (when nothing could keep under it) not at the least load
    they allow (ADR 0036)."""

    code = "grid_limit_exceeded"


class BenefitMismatchError(BlockRejectedError):
    """A block's header claims another benefit than the one recomputed from its schedule."""

    code = "benefit_mismatch"


class RefusedKeyError(ApplicationError, BadKeyError):
    """A RegisterParticipant or RegisterMeter naming a key gridchain never registers (ADR 0021).

    Both an ApplicationError (so block building and the mempool leave the transaction out) and
    a BadKeyError (so callers that handle keys see the same type wherever a key is refused);
    the subclasses keep protocol.errors' codes.
    """

    code = "bad_key"
    http_status = 422


class NonCanonicalKeyRefusedError(RefusedKeyError, NonCanonicalKeyError):
    code = "non_canonical_key"


class KeyNotOnCurveRefusedError(RefusedKeyError, KeyNotOnCurveError):
    code = "key_not_on_curve"


class SmallOrderKeyRefusedError(RefusedKeyError, SmallOrderKeyError):
    code = "small_order_key"


class CDMeterError(ApplicationError):
    """The meter a C&D request names is not the sender's meter of the request's device: it is
    owned by someone else, or it measures another kind of device (an EV request names an EV
    meter, a battery request a battery meter).  An unregistered meter is
    :class:`UnregisteredMeterError`."""

    code = "cd_meter"
    http_status = 403


class CDLimitPriceError(ApplicationError):
    """A charge request that cannot get its energy by departure in the intervals whose C&D
    price is within its limit (ADR 0030): the scheduler never plans charging above it."""

    code = "cd_limit_price"


# --- sealed transactions (docs/sealed.md) ----------------------------------------------------


class SealedDisabledError(ApplicationError):
    """A sealed transaction on a chain whose genesis registers no encryption keys."""

    code = "sealed_disabled"


class SealedKeySetError(ApplicationError):
    """Sealed to other keys than this chain's validators' (or to another number of them)."""

    code = "sealed_wrong_keys"


class SealedUnavailableError(ApplicationError):
    """This node holds no encryption key, so it cannot execute sealed transactions."""

    code = "sealed_unavailable"
    http_status = 503


# --- council governance (market/governance.py, docs/governance.md) ---------------------------


class NotCouncilMemberError(ApplicationError):
    """Only a key named in genesis ``council`` proposes or approves."""

    code = "not_council_member"
    http_status = 403


class UnknownProposalError(ApplicationError):
    code = "unknown_proposal"
    http_status = 404


class DoubleApprovalError(ApplicationError):
    """A council member approves a proposal it already approved (proposing is approving)."""

    code = "already_approved"
    http_status = 409


class ProposalExpiredError(ApplicationError):
    """The proposal's ``expires_at_height`` is behind this block: it can no longer apply."""

    code = "proposal_expired"
    http_status = 409


class ProposalClosedError(ApplicationError):
    """The proposal was already applied, or applying it failed: it is closed for good."""

    code = "proposal_closed"
    http_status = 409


class ProposalExpiryError(ApplicationError):
    """``expires_at_height`` is behind the block, or further ahead than a proposal may live."""

    code = "invalid_proposal_expiry"


class NotGovernanceKindError(ApplicationError):
    """The proposal carries a record that is not governance's to apply (an order, a transfer...)."""

    code = "not_governance_kind"


class BadProposedRecordError(ApplicationError):
    """The proposal's bytes are not one canonical record."""

    code = "bad_proposed_record"


class UnknownParticipantError(ApplicationError):
    code = "unknown_participant"
    http_status = 404


class ParticipantBusyError(ApplicationError):
    """A participant with money locked in open buy orders is not removed: cancel them first."""

    code = "participant_has_open_orders"
    http_status = 409


class SameBridgeKeyError(ApplicationError):
    """The meter is already read by that bridge key."""

    code = "same_bridge_key"
    http_status = 409
