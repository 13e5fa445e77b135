"""Fault tests of real-process testnets, driven by TOML manifests (docs/faults.md, ADR 0022).

``gridchain testnet faults --manifest FILE`` runs one from the command line;
tests/integration/test_faults.py runs the short manifests of tests/faults/ in CI.
"""
