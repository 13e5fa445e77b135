"""The agent's configuration file, its history sources and the horizon's EV window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridchain.agent.config import EVConfig, load_config
from gridchain.agent.errors import AgentConfigError, HistoryError
from gridchain.agent.history import (
    HouseholdMeters,
    Reading,
    interval_energy_wh,
    read_csv,
    whole_days,
    write_csv,
)
from gridchain.agent.horizon import ev_for, in_window, slot_prices

EXAMPLE = """
name = "peer-a"
node_url = "http://127.0.0.1:8700"
wallet = "wallets/peer-a.json"

[bridge]
url = "http://127.0.0.1:8800"
net = ["peer-a-net"]
pv = ["peer-a-pv"]

[history]
file = "history.csv"

[limits]
max_sell_wh_per_slot = 1000
min_sell_price_mc_per_kwh = 100000

[battery]

[ev]
goal_kwh = 3.0
by_hour = 7
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_loads_with_the_sources_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.wallet == tmp_path.resolve() / "wallets" / "peer-a.json"
    assert config.history.file == tmp_path.resolve() / "history.csv"
    assert (config.history.days, config.history.interval_minutes) == (30, 15)
    assert config.battery is not None
    assert config.battery.capacity_kwh == 7.5
    assert config.ev is not None
    assert config.ev.capacity_kwh == 4.096


@pytest.mark.parametrize(
    "text",
    [
        'name = "x"\nnode_url = "u"\nwallet = "w"\n',  # no history source
        EXAMPLE.replace("max_sell_wh_per_slot = 1000", 'max_sell_wh_per_slot = "lots"'),
        EXAMPLE.replace("max_sell_wh_per_slot = 1000", "max_sell_wh_per_slot = -1"),
        EXAMPLE.replace("[limits]", "[limits]\nmax_sell = 5"),  # unknown key
        EXAMPLE.replace("[battery]", "[battery]\nsoe_min_kwh = 9.0"),
        EXAMPLE.replace("by_hour = 7", "by_hour = 25"),
        EXAMPLE.replace("by_hour = 7", "by_hour = 7\nrequest_cd = true"),  # no meter
        EXAMPLE.replace("[history]", "[history]\ninterval_minutes = 7"),  # does not divide a day
        "name = ",  # not TOML
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(AgentConfigError):
        load_config(write(tmp_path, text))


def test_cumulative_registers_become_energy_per_interval() -> None:
    # 10 Wh over 20 minutes crossing a 15-minute boundary at 5 minutes in: 2.5 and 7.5 Wh
    readings = [Reading(600_000, 100, 0), Reading(1_800_000, 110, 0)]
    got = interval_energy_wh(readings, 900_000, exported=False)
    assert got == pytest.approx({0: 2.5, 1: 7.5})
    assert interval_energy_wh(readings, 900_000, exported=True) == pytest.approx({0: 0, 1: 0})


def test_load_is_derived_from_the_net_meter_and_the_devices() -> None:
    meters = HouseholdMeters(
        net_import={0: 100.0}, net_export={0: 0.0}, pv_export={0: 300.0},
        battery_import={0: 150.0}, battery_export={}, ev_import={0: 50.0}, ev_export={},
    )  # fmt: skip
    pv, load = meters.series_kw(900_000)
    # net 100 = load + battery 150 + EV 50 - PV 300 -> load 200 Wh in 15 min = 0.8 kW
    assert pv[0] == pytest.approx(1.2)
    assert load[0] == pytest.approx(0.8)


def test_history_files_and_whole_days(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    day = 20_000
    pv = {day * 96 + i: 1.0 for i in range(96)} | {(day + 1) * 96 + i: 2.0 for i in range(95)}
    write_csv(path, 900_000, pv, {k: 0.5 for k in pv})
    pv_read, _load_read = read_csv(path, 900_000)
    assert pv_read == pytest.approx(pv)
    days = whole_days(pv_read, 900_000, days=2, before_ms=(day + 2) * 86_400_000 + 5)
    assert days.first_day == day
    assert days.filled == 1  # the missing last interval took yesterday's value
    assert days.values[1, 95] == 1.0
    np.testing.assert_allclose(days.values[1, :95], 2.0)
    with pytest.raises(HistoryError, match="no history for day"):
        whole_days(pv_read, 900_000, days=3, before_ms=(day + 2) * 86_400_000)
    path.write_text("start_ms,pv_kw,load_kw\n0,-1,0\n", encoding="utf-8")
    with pytest.raises(HistoryError):
        read_csv(path, 900_000)
    path.write_text("start_ms,pv_kw\n0,x\n", encoding="utf-8")
    with pytest.raises(HistoryError):
        read_csv(path, 900_000)


def test_the_ev_window_and_its_deadline() -> None:
    assert in_window(23.0, 18, 7)
    assert in_window(3.0, 18, 7)
    assert not in_window(12.0, 18, 7)
    day = 20_000 * 86_400_000
    starts = [day + 20 * 3_600_000 + k * 900_000 for k in range(96)]  # 20:00 for a day
    ev, deadline = ev_for(EVConfig(goal_kwh=3.0, by_hour=7), starts, 900_000)
    assert deadline == day + 86_400_000 + 7 * 3_600_000
    assert ev.deadline_slot == 11 * 4  # 20:00 -> 07:00
    assert ev.available[0]
    assert not ev.available[11 * 4 + 1]
    assert ev.goal_kwh == 3.0
    # a deadline past the horizon is left to a later plan
    ev, _ = ev_for(EVConfig(goal_kwh=3.0, by_hour=7), starts[:8], 900_000)
    assert ev.goal_kwh == 0.0


def test_sell_prices_follow_the_market_within_the_tariffs() -> None:
    p = slot_prices([250_000, 350_000], [60_000, 60_000], [])
    assert list(p.sell) == [60_000, 60_000]
    p = slot_prices([250_000, 350_000], [60_000, 60_000], [100_000, 300_000, 320_000])
    assert list(p.sell) == [250_000, 300_000]
    assert list(p.buy) == [250_000, 350_000]
