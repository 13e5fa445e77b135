"""The gateway: the public edge in front of the validators (docs/gateway.md, ADR 0025)."""
