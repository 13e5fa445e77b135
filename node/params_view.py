"""GET /v1/params: the chain parameters in force and the council's changes (ADR 0043).

Read from the committed state through market/chain_params.py, the one place every module
asks, so the API shows exactly what the blocks apply.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridchain.api import models as m
from gridchain.genesis.schema import ChainParams, Genesis, Tariff
from gridchain.market.chain_params import CHANGEABLE, params_at, params_schedule
from gridchain.market.state import StateReader
from gridchain.protocol.governance import TariffBand


def chain_parameters(state: StateReader, genesis: Genesis, head: int) -> m.ChainParameters:
    schedule = params_schedule(state)
    changes = [
        m.ParamChange(
            name=c.name,
            effective_height=c.effective_height,
            value=c.value,
            in_force=c.effective_height <= head,
        )
        for c in schedule.parameters
    ] + [
        m.ParamChange(
            name="tariffs",
            effective_height=c.effective_height,
            tariffs=_bands(c.tariffs),
            in_force=c.effective_height <= head,
        )
        for c in schedule.tariffs
    ]
    changes.sort(key=lambda c: c.effective_height)
    return m.ChainParameters(
        height=head,
        in_force=param_values(params_at(state, genesis, head)),
        next_block=param_values(params_at(state, genesis, head + 1)),
        changeable=[*CHANGEABLE, "tariffs"],
        changes=changes,
    )


def param_values(params: ChainParams) -> m.ParamValues:
    return m.ParamValues(
        slot_length_ms=params.slot_length_ms,
        gate_closure_ms=params.gate_closure_ms,
        day_ahead_gate_closure_ms=params.day_ahead_gate_closure_ms,
        penalty_mc_per_kwh=params.penalty_mc_per_kwh,
        settlement_grace_ms=params.settlement_grace_ms,
        cd_tolerance_permille=params.cd_tolerance_permille,
        cd_tolerance_wh=params.cd_tolerance_wh,
        tariffs=_bands(params.tariffs),
    )


def _bands(bands: Iterable[Tariff | TariffBand]) -> list[m.TariffBand]:
    return [
        m.TariffBand(
            start_hour=b.start_hour,
            end_hour=b.end_hour,
            retail_mc_per_kwh=b.retail_mc_per_kwh,
            feed_in_mc_per_kwh=b.feed_in_mc_per_kwh,
        )
        for b in bands
    ]
