"""This validator's opener of sealed transactions, from its config and genesis (docs/sealed.md).

The private X25519 key lives in the node's config file beside its Ed25519 seed (the same
mode-0600 checks apply); its public half must be the one genesis registers for this validator,
or the node would execute sealed transactions differently from its peers, so a mismatch stops
the node at start.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.schema import Genesis
from gridchain.node.config import ConfigError
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.sealed import ValidatorOpener


def validator_opener(
    genesis: Genesis, validator_key: bytes, encryption_key: X25519PrivateKey | None
) -> ValidatorOpener | None:
    """The opener of the validator with public key ``validator_key``; None on a chain (or for
    a node) that seals nothing.  Raises ConfigError when the key is missing or not genesis's."""
    index = next(
        (i for i, v in enumerate(genesis.validators) if v.public_key_bytes == validator_key), None
    )
    registered = genesis.encryption_keys()
    if index is None or not registered:
        if encryption_key is not None and not registered:
            raise ConfigError("node.encryption_key: genesis registers no encryption keys")
        return None
    if encryption_key is None:
        raise ConfigError(
            "node.encryption_key: genesis registers an encryption key for this validator; "
            "its private key must be in the config"
        )
    if public_bytes(encryption_key) != registered[index]:
        raise ConfigError("node.encryption_key: not the key genesis registers for this validator")
    return ValidatorOpener(encryption_key, index)
