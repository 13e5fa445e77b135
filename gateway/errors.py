"""The gateway's refusals: one typed error per filter, each with its ``code`` and HTTP status.

A refusal here means the transaction never left the gateway: no validator saw it.  The codes
are part of the API contract (listed in the gateway's /openapi.json under
``x-gateway-refusals``), so a client can tell "slow down" (429) from "this can never pass"
(4xx) without reading the message.  A duplicate keeps the mempool's ``duplicate_tx`` code on
purpose: the node client already treats a duplicate of its own retried POST as success.
"""

from __future__ import annotations

from gridchain.protocol.errors import GridchainError


class GatewayRefusalError(GridchainError):
    """Base of the gateway's own refusals (``retry_after_s`` set on the 429s)."""

    code = "gateway_refused"
    retry_after_s: float | None = None


class TxTooLargeError(GatewayRefusalError):
    code = "tx_too_large"
    http_status = 413


class UnregisteredSenderError(GatewayRefusalError):
    code = "unregistered_sender"
    http_status = 403


class NonceOutOfWindowError(GatewayRefusalError):
    code = "nonce_out_of_window"
    http_status = 409


class DuplicateTxError(GatewayRefusalError):
    code = "duplicate_tx"
    http_status = 409


class NoncePendingError(GatewayRefusalError):
    code = "nonce_pending"
    http_status = 409


class RateLimitedError(GatewayRefusalError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFullError(GatewayRefusalError):
    code = "queue_full"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFollowingError(GatewayRefusalError):
    """The gateway has no certified view of the chain yet: it cannot check senders."""

    code = "gateway_not_ready"
    http_status = 503


#: Every refusal code the gateway's filters can give, its status and what it means; the
#: decoding and signature refusals are the protocol's own codes (protocol/errors.py).
REFUSALS: dict[str, tuple[int, str]] = {
    "oversize": (413, "the request body or transaction is larger than the gateway accepts"),
    "tx_too_large": (413, "the transaction is larger than max_tx_bytes"),
    "decode": (
        400,
        "not a canonically encoded transaction: the protocol's decode codes"
        " (malformed, unknown_type, field_count, field_type, field_value, non_canonical,"
        " unsupported_version)",
    ),
    "invalid_request": (400, "the JSON body is not {tx} or {txs}"),
    "malformed_json": (400, "the body is not acceptable JSON"),
    "bad_signature": (400, "the signature does not verify for this chain"),
    "sealed_disabled": (422, "a sealed transaction on a chain with no validator encryption keys"),
    "sealed_wrong_keys": (422, "sealed to other keys than this chain's validators"),
    "unregistered_sender": (403, "the sender's key is not a registered participant"),
    "nonce_out_of_window": (409, "the nonce is below the next one or too far above it"),
    "duplicate_tx": (409, "the gateway forwarded this transaction already"),
    "nonce_pending": (409, "a transaction of this sender with this nonce is on its way already"),
    "rate_limited": (429, "the sender is over its quota; retry after Retry-After seconds"),
    "queue_full": (429, "the queue toward the validators is full; retry later"),
    "busy": (503, "too many connections in total"),
    "too_many_connections": (429, "too many connections from this address"),
    "gateway_not_ready": (503, "the gateway has not yet followed the chain"),
    "forward_timeout": (503, "the validators did not answer in time (safe to retry)"),
    "forward_failed": (503, "no validator could be reached (safe to retry)"),
}
