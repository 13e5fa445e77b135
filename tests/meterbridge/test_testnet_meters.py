"""``genesis init --with-meters`` / ``testnet up --with-meters``: genesis meters and bridge configs.

The bridge configs written for a testnet must load as valid bridge configs, carry the bridge
key genesis registered for exactly the meters they read, and address the slave ids the
simulator serves for that participant's household.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from gridchain.genesis.builder import SLAVES_PER_HOUSEHOLD, build_genesis
from gridchain.genesis.cli import write_bundle
from gridchain.meterbridge.config import load_config
from gridchain.meterbridge.simulator import household_meters, household_with
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N


def test_bridge_configs_match_genesis_meters_and_simulator(tmp_path: Path) -> None:
    counter = itertools.count(1)
    bundle = build_genesis(
        chain_name="t",
        genesis_time_ms=0,
        validators=1,
        participants=3,
        engine="solo",
        new_key=lambda: SigningKey(next(counter).to_bytes(32, "big")),
        with_meters=True,
    )
    write_bundle(bundle, tmp_path, password="x", scrypt_n=TESTNET_SCRYPT_N, meter_sim_port=15020)
    genesis_meters = {m.meter_id: m for m in bundle.genesis.meters}
    # peer-a: PV + battery + load, peer-b: EV + load, peer-c: load only (the source's testbed)
    assert sorted(genesis_meters) == sorted(
        ["peer-a-net", "peer-a-pv", "peer-a-battery", "peer-b-net", "peer-b-ev", "peer-c-net"]
    )
    seen: set[str] = set()
    for i, participant in enumerate(bundle.participants):
        config = load_config(tmp_path / "bridges" / participant.name / "config.toml")
        key = config.signing_key()
        assert key.public_key == bundle.bridges[i].key.public_key
        devices = bundle.genesis.participants[i].devices
        sim = {m.slave_id: m for m in household_meters(SLAVES_PER_HOUSEHOLD * i + 1)}
        for meter in config.meters:
            registered = genesis_meters[meter.meter_id]
            assert registered.owner == participant.address
            assert registered.bridge_public_key == key.public_key.hex()
            assert registered.profile == meter.profile == sim[meter.slave_id].profile.name
            seen.add(meter.meter_id)
        assert (household_with(list(devices)).pv_peak_kw > 0) == ("PV" in devices)
    assert seen == set(genesis_meters)


def test_a_genesis_without_meters_is_unchanged() -> None:
    counter = itertools.count(1)
    bundle = build_genesis(
        chain_name="t",
        genesis_time_ms=0,
        validators=1,
        participants=2,
        engine="solo",
        new_key=lambda: SigningKey(next(counter).to_bytes(32, "big")),
    )
    assert bundle.genesis.meters == ()
    assert bundle.bridges == ()
