"""The peer network: authenticated links between genesis validators (ADR 0008)."""

from gridchain.node.p2p.errors import (
    BadHandshakeSignatureError,
    BannedPeerError,
    ChainMismatchError,
    FrameTooLargeError,
    HandshakeError,
    HandshakeTimeoutError,
    LinkClosedError,
    P2PError,
    PeerRefusedError,
    ProtocolVersionError,
    ProtocolViolationError,
    SelfConnectionError,
    UnexpectedPeerError,
    UnknownPeerError,
)
from gridchain.node.p2p.network import (
    MISBEHAVIOUR_ERRORS,
    NetworkHandler,
    NetworkObserver,
    NetworkTuning,
    PeerAddress,
    PeerNetwork,
)

__all__ = [
    "MISBEHAVIOUR_ERRORS",
    "BadHandshakeSignatureError",
    "BannedPeerError",
    "ChainMismatchError",
    "FrameTooLargeError",
    "HandshakeError",
    "HandshakeTimeoutError",
    "LinkClosedError",
    "NetworkHandler",
    "NetworkObserver",
    "NetworkTuning",
    "P2PError",
    "PeerAddress",
    "PeerNetwork",
    "PeerRefusedError",
    "ProtocolVersionError",
    "ProtocolViolationError",
    "SelfConnectionError",
    "UnexpectedPeerError",
    "UnknownPeerError",
]
