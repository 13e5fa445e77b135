"""``meterbridge simulate``'s device flags: a bad one is a usage error naming it, before anything
is served."""

from __future__ import annotations

import pytest

from gridchain.cli import main

SIM = ["meterbridge", "simulate", "--tcp", "127.0.0.1:1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--charger", "cp:3"], "--charger needs --csms URL"),
        (["--csms", "ws://x", "--charger", "cp"], "--charger 'cp': expected 2..3 fields"),
        (["--csms", "ws://x", "--charger", "cp:x"], "expected a new ID and a slave id"),
        (["--csms", "ws://x", "--charger", "cp:3", "--ev", "other:60:0.5:7"], "no --charger"),
        (["--csms", "ws://x", "--charger", "cp:3", "--ev", "cp:60:1.5:7"], "SOC in 0..1"),
        (["--csms", "ws://x", "--charger", "cp:3", "--ev", "cp:60:abc:7"], "not a number"),
        (["--inverter", "9:10:0.5:eastron-sdm120"], "need a setpoint profile"),
        (["--inverter", "9:10:0.5", "--meter", "9:generic:load"], "slave ids must be unique"),
    ],
)
def test_bad_device_flags_are_usage_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SIM, *extra]) == 1
    assert message in capsys.readouterr().err
