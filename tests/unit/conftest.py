"""Fixtures for the unit tier: one small deterministic chain, its application and state."""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.market.state import MerkleState
from tests.helpers import small_bundle


@pytest.fixture(scope="session")
def bundle() -> GenesisBundle:
    """One solo validator, three participants with 1,000,000 mc each, a governance key."""
    return small_bundle()


@pytest.fixture(scope="session")
def chain_id(bundle: GenesisBundle) -> bytes:
    return bundle.genesis.chain_id


@pytest.fixture
def app(bundle: GenesisBundle) -> Application:
    return Application(bundle.genesis)


@pytest.fixture
def state(app: Application) -> MerkleState:
    """A fresh genesis state for each test (MerkleState is mutable)."""
    return app.genesis_state()
