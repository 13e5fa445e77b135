"""Peers trade through a gateway on a 4-validator testnet whose validators refuse clients.

Real processes all the way: ``testnet up --gateways 1`` (through the launcher's functions)
starts four PBFT validators with ``api.client_txs = "gateways"`` and one ``gateway run`` with
an HTTPS certificate signed by the testnet's community CA.  The wallet, each call its own
process, goes through the gateway with the CA pinned (``--gateway URL --ca FILE``): a sell and
a buy match, and every validator holds the same trade.  The same wallet pointed straight at a
validator is refused with ``gateways_only``; pointed at the gateway without the CA, it refuses
the certificate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridchain.node.testnet import ValidatorProcess, down, ensure_genesis, load_gateway_state, up
from gridchain.node.testnet_gateways import ca_file
from tests.procs import REPO, free_port_block, http_get

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pbft_cluster")]

SLOT_S = 5
GRACE_S = 2
PASSWORD = "e2e-gateway"


@dataclass
class Net:
    directory: Path
    validators: list[ValidatorProcess]
    gateway: ValidatorProcess

    @property
    def ca(self) -> Path:
        return ca_file(self.directory)

    def address(self, peer: str) -> str:
        genesis = json.loads((self.directory / "genesis.json").read_text())
        return str(next(p["address"] for p in genesis["participants"] if p["name"] == peer))


def new_testnet(directory: Path, *, validators: int, participants: int, consensus: str) -> None:
    """A testnet directory with one gateway, its ports free and its slots short."""
    ensure_genesis(
        directory,
        validators=validators,
        participants=participants,
        consensus=consensus,
        block_interval_ms=200,
        slot_seconds=SLOT_S,
        gate_closure_s=SLOT_S,
        settlement_grace_s=GRACE_S,
        base_api_port=free_port_block(validators),
        base_p2p_port=free_port_block(validators),
        gateways=1,
        base_gateway_port=free_port_block(1),
    )


@pytest.fixture
def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Net]:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    directory = tmp_path / "testnet"
    new_testnet(directory, validators=4, participants=3, consensus="pbft")
    try:
        up(directory)
        gateways = load_gateway_state(directory)
        validators = [p for p in json_state(directory) if p.name.startswith("node-")]
        yield Net(directory, validators, gateways[0])
    finally:
        down(directory)


def json_state(directory: Path) -> list[ValidatorProcess]:
    doc = json.loads((directory / "testnet.json").read_text())
    return [ValidatorProcess(**e) for e in doc["validators"]]


def wallet(net: Net, peer: str, *argv: str, via: str | None = None, pin: bool = True) -> Any:
    """``gridchain wallet ARGV --json`` as its own process, through the gateway by default."""
    cmd = [sys.executable, "-m", "gridchain", "wallet", *argv, "--json"]
    cmd += ["--wallet", str(net.directory / "wallets" / f"{peer}.json")]
    cmd += ["--gateway", via or net.gateway.api_url]
    if pin and via is None:
        cmd += ["--ca", str(net.ca)]
    done = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD},
        timeout=90,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


def test_peers_trade_through_the_gateway_and_validators_refuse_direct_clients(net: Net) -> None:
    # straight to a validator: refused, nothing admitted
    code, answer = wallet(
        net, "peer-a", "transfer", "--to", net.address("peer-b"), "--amount", "1",
        via=net.validators[0].api_url,
    )  # fmt: skip
    assert code != 0
    assert answer["error"]["code"] == "gateways_only", answer
    # to the gateway without pinning its CA: the certificate is refused
    code, answer = wallet(net, "peer-a", "balance", pin=False)
    assert code != 0
    assert answer["error"]["code"] == "bad_node_certificate", answer

    code, markets = wallet(net, "peer-a", "book", "--slot", "0")
    assert code == 0, markets
    _, status = http_get(net.validators[0].api_url + "/v1/markets")
    slot = status["first_open_slot"]["day_ahead"] + 6  # gate closure ~30 s away

    code, sell = wallet(net, "peer-a", "order", "sell", "--slot", str(slot), "--price", "120",
                        "--quantity", "1", "--device", "PV")  # fmt: skip
    assert code == 0, sell
    assert sell["order"]["status"] == "open"
    code, buy = wallet(net, "peer-b", "order", "buy", "--slot", str(slot), "--price", "130",
                       "--quantity", "1", "--device", "EV")  # fmt: skip
    assert code == 0, buy
    assert (buy["order"]["status"], buy["order"]["filled_wh"]) == ("filled", 1000)
    code, trades = wallet(net, "peer-b", "trades")
    assert code == 0, trades
    assert [(t["price_mc_per_kwh"], t["quantity_wh"]) for t in trades["trades"]] == [
        (120_000, 1000)
    ]

    # every validator holds the same trade (their private APIs, read by the operator)
    _, head = http_get(net.validators[0].api_url + "/v1/status")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        heights = [http_get(v.api_url + "/v1/status")[1]["height"] for v in net.validators]
        if min(heights) >= head["height"]:
            break
        time.sleep(0.2)
    views = [http_get(v.api_url + f"/v1/trades?slot={slot}")[1]["trades"] for v in net.validators]
    assert all(v == views[0] for v in views)
    assert len(views[0]) == 1
    # the gateway forwarded exactly the two orders (and refused nothing of them)
    metrics = _gateway_metrics(net)
    assert metrics.get("gridchain_gateway_forwarded_total") == 2.0, metrics


def test_a_sealed_trade_through_the_gateway_settles_and_the_gateway_never_reads_it(
    net: Net,
) -> None:
    """Orders sealed to the validators (HPKE, docs/sealed.md) pass the gateway's filters on
    their envelopes alone; they match and settle the same on every validator, and nothing the
    gateway logged or forwarded carries the price or the quantity."""
    _, markets = http_get(net.validators[0].api_url + "/v1/markets")
    slot = markets["first_open_slot"]["day_ahead"] + 2  # gate closure 5-10 s away
    code, sell = wallet(
        net, "peer-a", "order", "sell", "--sealed", "--slot", str(slot),
        "--price", "123.457", "--quantity", "0.75", "--device", "Battery",
    )  # fmt: skip
    assert code == 0, sell
    assert sell["sealed"] is True
    assert sell["order"]["status"] == "open"
    code, buy = wallet(
        net, "peer-b", "order", "buy", "--sealed", "--slot", str(slot),
        "--price", "130", "--quantity", "0.75", "--device", "EV",
    )  # fmt: skip
    assert code == 0, buy
    assert (buy["order"]["status"], buy["order"]["filled_wh"]) == ("filled", 750)

    # What the gateway forwarded is what every validator stores: the envelope, never the order.
    for validator in net.validators:
        for tx_hash in (sell["hash"], buy["hash"]):
            _, record = http_get(f"{validator.api_url}/v1/txs/{tx_hash}")
            assert record["tx"]["kind"] == "SealedTx"
            assert "123457" not in json.dumps(record)
            assert "price_mc_per_kwh" not in json.dumps(record)
    gateway_log = Path(net.gateway.log).read_text(errors="replace")
    assert gateway_log.strip(), "the gateway wrote no log: the check below would mean nothing"
    for secret in ("123457", "123.457", "price_mc_per_kwh", "quantity_wh"):
        assert secret not in gateway_log, f"the gateway's log shows {secret!r}"

    # After the slot and its grace period the next block settles the contract; the seller
    # reads its receipt sealed, relayed by the gateway as ciphertext.
    settle_at = (slot + 1) * SLOT_S * 1000 + GRACE_S * 1000
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, now = http_get(net.validators[0].api_url + "/v1/markets")
        if int(now["now_ms"]) > settle_at:
            break
        time.sleep(0.2)
    code, nudge = wallet(net, "peer-c", "transfer", "--to", net.address("peer-a"), "--amount", "1")
    assert code == 0, nudge
    code, receipts = wallet(net, "peer-a", "receipts", "--sealed")
    assert code == 0, receipts
    assert [(r["quantity_wh"], r["price_mc_per_kwh"]) for r in receipts["receipts"]] == [
        (750, 123_457)
    ]


def _gateway_metrics(net: Net) -> dict[str, float]:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(net.ca))
    with urllib.request.urlopen(net.gateway.api_url + "/metrics", context=context) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            out[name] = float(value)
    return out


def test_a_solo_testnet_with_a_gateway_takes_transfers_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A solo validator behind a gateway: ``up`` waits for the gateway to be healthy (before,
    the solo node opened no peer links, so its gateway never linked and ``up`` failed), and a
    transfer through the gateway commits."""
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    directory = tmp_path / "solo"
    new_testnet(directory, validators=1, participants=2, consensus="solo")
    try:
        up(directory)
        (gateway,) = load_gateway_state(directory)
        (validator,) = json_state(directory)
        net = Net(directory, [validator], gateway)
        account_url = validator.api_url + f"/v1/accounts/{net.address('peer-b')}"
        _, before = http_get(account_url)
        code, sent = wallet(net, "peer-a", "transfer", "--to", net.address("peer-b"),
                            "--amount", "7")  # fmt: skip
        assert code == 0, sent
        _, after = http_get(account_url)
        assert after["balance_mc"] - before["balance_mc"] == 7_000
    finally:
        down(directory)
