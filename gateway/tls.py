"""The gateway's HTTPS: a TLS 1.3 server context from the configured certificate and key."""

from __future__ import annotations

import ssl
from pathlib import Path

from gridchain.node.config import ConfigError


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.3 only (no downgrade to 1.2's weaker suites), no client certificates: the
    clients prove who they are by the signatures on their transactions, not by TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the API certificate {cert} and key {key}: {exc}") from None
    return context
