"""OCPP's dateTime: ISO 8601 in UTC with a Z, to and from ms since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso_ms(text: str) -> int:
    """Refuses (ValueError) what is not an ISO 8601 time."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
