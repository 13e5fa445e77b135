"""Decoding each profile from register words as the meter makers document them.

The words below are written out by hand from the documents, not produced by the simulator's
encoder, so a decoder and encoder that agree on a wrong word order would still fail here:
Eastron sends an IEEE 754 float32 as two input registers, high word first (230.1 V is
0x4366 0x199A); the source's generic meter sends one signed INT16 register per value with a
number of decimals (234.0 V read as 2340 with one decimal; -666.8 kWh as 0xE5F4 = -6668).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridchain.meterbridge.profiles import (
    DecodeError,
    ProfileError,
    ReadBlock,
    RegisterSpec,
    RegisterType,
    builtin_profile_names,
    decode,
    decode_quantity,
    load_profile,
    parse_profile,
    plan_reads,
)


def test_builtin_profiles_are_the_four_documented() -> None:
    assert builtin_profile_names() == [
        "eastron-sdm120",
        "eastron-sdm630",
        "generic",
        "generic-battery-inverter",
    ]
    setpoints = [n for n in builtin_profile_names() if load_profile(n).setpoint is not None]
    assert setpoints == ["generic-battery-inverter"]


@pytest.mark.parametrize("name", ["eastron-sdm120", "eastron-sdm630"])
def test_eastron_float32_high_word_first(name: str) -> None:
    profile = load_profile(name)
    assert profile.function_code == 4
    registers = {
        0x0000: 0x4366,  # voltage 230.1 V
        0x0001: 0x199A,
        0x000C: 0xC4BB,  # power -1500.5 W (exporting)
        0x000D: 0x9000,
        0x0048: 0x4640,  # import 12345.67 kWh
        0x0049: 0xE6AE,
        0x004A: 0x4050,  # export 3.25 kWh
        0x004B: 0x0000,
    }
    m = decode(profile, registers)
    assert m.voltage_dv == 2301
    assert m.power_w == -1500  # -1500.5 rounds half to even
    assert m.import_wh == 12_345_670
    assert m.export_wh == 3_250


def test_eastron_word_order_matters() -> None:
    """Swapping the two words gives a different number: the order is really checked."""
    spec = load_profile("eastron-sdm120").registers["voltage"]
    assert decode_quantity(spec, [0x4366, 0x199A]) == 2301
    assert decode_quantity(spec, [0x199A, 0x4366], "low_first") == 2301
    assert decode_quantity(spec, [0x199A, 0x4366]) != 2301


def test_eastron_reads_are_planned_per_contiguous_run() -> None:
    plan = plan_reads(load_profile("eastron-sdm630"))
    assert plan == [ReadBlock(4, 0x0000, 2), ReadBlock(4, 0x000C, 2), ReadBlock(4, 0x0048, 4)]


def test_generic_signed_int16_with_decimals() -> None:
    profile = load_profile("generic")
    assert profile.function_code == 3
    assert plan_reads(profile) == [ReadBlock(3, 0, 4)]
    m = decode(profile, {0: 0x08FD, 1: 0xFB2E, 2: 0x0A96, 3: 0x0001})
    assert m.voltage_dv == 2301  # 2301 with 1 decimal = 230.1 V
    assert m.power_w == -1234  # 0xFB2E = -1234 with 3 decimals = -1.234 kW
    assert m.import_wh == 271_000  # 0x0A96 = 2710 with 1 decimal = 271.0 kWh
    assert m.export_wh == 100


def test_generic_negative_register_as_in_the_source() -> None:
    """The source's net meter reads -666.8 kWh: signed decoding sees it, the record refuses it."""
    spec = load_profile("generic").registers["import_energy"]
    assert decode_quantity(spec, [0xE5F4]) == -666_800
    with pytest.raises(DecodeError, match="negative"):
        decode(load_profile("generic"), {0: 2301, 1: 0, 2: 0xE5F4, 3: 0})


def test_unsigned_and_32_bit_integers() -> None:
    assert (
        decode_quantity(RegisterSpec(address=0, type=RegisterType.UINT16, unit="W"), [0xFB2E])
        == 64302
    )
    spec32 = RegisterSpec(address=0, type=RegisterType.INT32, decimals=2, unit="kWh")
    assert decode_quantity(spec32, [0xFFFF, 0xFF9C]) == -1000  # -100 -> -1.00 kWh


def test_nan_is_not_a_value() -> None:
    spec = load_profile("eastron-sdm120").registers["power"]
    with pytest.raises(DecodeError):
        decode_quantity(spec, [0x7FC0, 0x0000])


def test_missing_register_is_an_error() -> None:
    with pytest.raises(DecodeError, match="not read"):
        decode(load_profile("generic"), {0: 1, 1: 2, 2: 3})


def test_a_new_meter_model_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "acme-x1.toml").write_text(
        'name = "acme-x1"\nfunction_code = 3\nword_order = "low_first"\n'
        '[registers.voltage]\naddress = 10\ntype = "uint16"\nunit = "dV"\n'
        '[registers.power]\naddress = 11\ntype = "int32"\nunit = "W"\n'
        '[registers.import_energy]\naddress = 13\ntype = "uint32"\nunit = "Wh"\n'
        '[registers.export_energy]\naddress = 20\ntype = "uint32"\nunit = "Wh"\n'
        "[rating]\nmax_voltage_v = 300\nmax_power_w = 13_500\n",
        encoding="utf-8",
    )
    profile = load_profile("acme-x1", [tmp_path])
    assert plan_reads(profile) == [ReadBlock(3, 10, 5), ReadBlock(3, 20, 2)]
    words = {10: 2301, 11: 0xFFFF, 12: 0xFFFF, 13: 0x0002, 14: 0x0001, 20: 7, 21: 0}
    m = decode(profile, words)
    assert (m.voltage_dv, m.power_w, m.import_wh, m.export_wh) == (2301, -1, 0x10002, 7)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('[registers.voltage]\naddress = 0\ntype = "int16"\nunit = "V"\n', "missing"),
        (
            "".join(
                f'[registers.{q}]\naddress = {a}\ntype = "float32"\nunit = "{u}"\n'
                for q, a, u in [
                    ("voltage", 0, "V"),
                    ("power", 1, "W"),
                    ("import_energy", 4, "kWh"),
                    ("export_energy", 6, "kWh"),
                ]
            ),
            "overlap",
        ),
        (
            "".join(
                f'[registers.{q}]\naddress = {a}\ntype = "int16"\nunit = "{u}"\n'
                for q, a, u in [
                    ("voltage", 0, "V"),
                    ("power", 1, "kWh"),
                    ("import_energy", 2, "kWh"),
                    ("export_energy", 3, "kWh"),
                ]
            ),
            "measures energy",
        ),
    ],
)
def test_bad_profiles_are_refused(body: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        parse_profile('name = "x"\nfunction_code = 3\n' + RATING + body, "x.toml")


RATING = "rating = { max_voltage_v = 300, max_power_w = 13_500 }\n"
GENERIC_REGISTERS = "".join(
    f'[registers.{q}]\naddress = {a}\ntype = "int16"\nunit = "{u}"\n'
    for q, a, u in [
        ("voltage", 0, "V"),
        ("power", 1, "W"),
        ("import_energy", 2, "kWh"),
        ("export_energy", 3, "kWh"),
    ]
)


def test_a_profile_states_its_rating() -> None:
    """The plausibility bounds are part of a meter model: a profile without them is refused."""
    with pytest.raises(ProfileError, match="rating"):
        parse_profile('name = "x"\nfunction_code = 3\n' + GENERIC_REGISTERS, "x.toml")
    bad = "rating = { max_voltage_v = 0, max_power_w = 13_500 }\n"
    with pytest.raises(ProfileError, match="max_voltage_v"):
        parse_profile('name = "x"\nfunction_code = 3\n' + bad + GENERIC_REGISTERS, "x.toml")
    profile = parse_profile('name = "x"\nfunction_code = 3\n' + RATING + GENERIC_REGISTERS, "x")
    assert profile.rating.energy_rate_w == 13_500
    for name in builtin_profile_names():
        assert load_profile(name).rating.max_voltage_v >= 276  # Eastron's operating range
