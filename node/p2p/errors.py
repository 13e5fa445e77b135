"""Typed refusals of the peer network.

A dialer learns *why* a link was refused from the type (and ``code``) of the error, not from a
log line on another machine: the launcher, the tests and an operator reading ``peer_info()``
all branch on it.  Refusals that the remote side reports travel in a ``Refuse`` frame and come
back here as :class:`PeerRefusedError` carrying the remote's code.
"""

from __future__ import annotations

from gridchain.protocol.errors import GridchainError


class P2PError(GridchainError):
    """Base of every peer-network refusal."""

    code = "p2p_error"


class HandshakeError(P2PError):
    """The authenticated handshake did not complete; no link was made."""

    code = "handshake_failed"


class ChainMismatchError(HandshakeError):
    """The peer runs another genesis (its chain id differs)."""

    code = "chain_mismatch"


class ProtocolVersionError(HandshakeError):
    code = "protocol_version"


class UnknownPeerError(HandshakeError):
    """The peer's public key is not a genesis validator of this chain."""

    code = "unknown_peer"


class UnexpectedPeerError(HandshakeError):
    """A configured address answered with another validator's key than the one configured."""

    code = "unexpected_peer"


class SelfConnectionError(HandshakeError):
    """The peer presented this node's own key (a config listing itself, or a reflection)."""

    code = "self_connection"


class BannedPeerError(HandshakeError):
    """The peer is serving a ban for earlier misbehaviour."""

    code = "banned"


class BadHandshakeSignatureError(HandshakeError):
    """The peer could not prove it holds the private key of the public key it claimed."""

    code = "bad_handshake_signature"


class HandshakeTimeoutError(HandshakeError):
    code = "handshake_timeout"


class PeerRefusedError(HandshakeError):
    """The remote side refused us; ``reason`` is the code of the error it reported."""

    code = "refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"refused by peer ({reason}): {message}")
        self.reason = reason


class ProtocolViolationError(P2PError):
    """A well-formed frame that is not allowed at this point (e.g. a Hello on a live link)."""

    code = "protocol_violation"


class LinkClosedError(P2PError):
    """The link closed while a request on it was outstanding."""

    code = "link_closed"


class FrameTooLargeError(P2PError):
    """A local caller asked to send more than one frame may carry."""

    code = "frame_too_large"


class StateFetchError(P2PError):
    """A state snapshot chunk could not be fetched from a peer (not linked, no answer)."""

    code = "state_fetch_failed"


class TxRefusedError(P2PError):
    """A validator refused a transaction a gateway forwarded; ``reason`` is its error code
    (``replayed_nonce``, ``mempool_full``, ...), the one its HTTP API would have answered."""

    code = "tx_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"refused by the validator ({reason}): {message}")
        self.reason = reason
        self.detail = message


class NoValidatorLinkError(P2PError):
    """A gateway has no live link to any validator it could forward to."""

    code = "no_validator_link"
    http_status = 503


class HandshakeAuthError(HandshakeError):
    """The peer's first sealed handshake frame did not open: a Hello was changed on the way, a
    recorded handshake was replayed, or someone in the middle swapped the ephemeral keys."""

    code = "handshake_auth_failed"


class FrameAuthError(P2PError):
    """A sealed frame failed authentication (changed, replayed, reordered, or not for this
    link): the stream cannot be trusted past it and the link ends.  Not scored: anyone on the
    path can cause it, not only the peer."""

    code = "frame_auth_failed"
