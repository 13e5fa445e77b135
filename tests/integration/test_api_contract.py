"""The node's HTTP contract against a real ``gridchain node run`` process.

Why: /openapi.json is generated from the models the node answers with, so the document can
only be trusted if the answers really match it.  Schemathesis generates requests from the
document (valid and invalid, fixed seed, bounded examples) against a node whose chain holds
blocks, a trade, meter readings and a C&D request, and fails on any 5xx and any answer the
document does not allow.  The list routes added with the contract (blocks, block by hash,
meters, participants, validators) are checked here too, through the typed client.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeRefusedError
from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import CDRequest, MeterReadings, PlaceOrder, Transaction, sign_tx
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    node_for,
    pv_and_load_meters,
    submit,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api_contract")]

SLOT_MS = 3000
BRIDGE = SigningKey(sha256(b"contract-bridge"))
PRICE = 120_000
#: Schemathesis's seed and its bound on generated cases per operation (a run of under 60 s).
SEED = 20261205
MAX_EXAMPLES = 60
#: Every check schemathesis has runs, but these, each for a reason: positive_data_acceptance
#: judges whether every value the document allows is accepted, where the node is
#: deliberately stricter than JSON schema can say (a quote needs both supply_wh and
#: demand_wh; ?interval and ?limit exclude each other; a valid hash of an unknown object is
#: a 404; a meter id is 64 bytes of UTF-8, which maxLength counts in characters).  The
#: document declares the constraints (patterns, ranges, lengths, the body bound) so that the
#: generated values reach the edges, and negative_data_rejection holds the node to them.
EXCLUDED_CHECKS = ("positive_data_acceptance",)
#: negative_data_rejection's accepted refusals: schemathesis's defaults and 413, the node's
#: answer to a body beyond api.max_body_bytes (a batch with more items than maxItems is
#: usually that too, and a body too large is refused before it is read).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
"""


@dataclass
class LiveChain:
    chain: Chain
    node: NodeProcess
    url: str
    order_ids: list[str]
    tx_hashes: list[str]


def _commit(url: str, tx: Transaction) -> str:
    status, body = submit(url, tx)
    assert status == 202, body
    wait_committed(url, tx.hash().hex())
    return tx.hash().hex()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveChain]:
    """A solo node with a trade, two meters with readings and a C&D request."""
    chain = make_chain(
        tmp_path_factory.mktemp("contract") / "chain",
        block_interval_ms=50,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=60_000,
        schedule_interval_ms=1000,
        schedule_interval_minutes=10,
        genesis_changes=_meters,
    )
    node = node_for(chain).start()
    try:
        url = node.api_url
        _, markets = http_get(url + "/v1/markets")
        slot = int(markets["first_open_slot"]["intraday"]) + 1
        start = slot * SLOT_MS
        sell = sign_tx(chain.peer(0), chain.chain_id, 0, PlaceOrder(1, slot, 1, 2, PRICE, 1000))
        buy = sign_tx(chain.peer(1), chain.chain_id, 0, PlaceOrder(1, slot, 0, 3, PRICE, 1000))
        hashes = [_commit(url, sell), _commit(url, buy)]
        readings = []
        for meter_id, regs in (("pv-a", (0, 5000)), ("load-b", (700, 0))):
            record = ReadingRecord(
                meter_id, start - 2000, start - 1000, *regs, 0, 2301, 0, 0, GENESIS_READING_HASH
            )
            readings.append(sign_reading(BRIDGE, chain.chain_id, record))
        hashes.append(
            _commit(url, sign_tx(BRIDGE, chain.chain_id, 0, MeterReadings(tuple(readings))))
        )
        now = time.time_ns() // 1_000_000
        request = CDRequest(1, 0, now, now + 60_000, 1000, 3000, 2**64 - 1, "ev-c")
        hashes.append(_commit(url, sign_tx(chain.peer(2), chain.chain_id, 0, request)))
        hashes.append(_commit(url, chain.transfer(0, 2, 1, 5)))
        yield LiveChain(chain, node, url, [sell.hash().hex(), buy.hash().hex()], hashes)
    finally:
        node.terminate()


def _with_live_examples(live: LiveChain) -> dict[str, Any]:
    """The node's own /openapi.json with an example value per parameter that names an object
    this chain holds, so the examples phase reaches the 200 answers (real blocks, orders,
    readings) and not only the 404s of random hashes; the other phases still generate freely."""
    status, document = http_get(live.url + "/openapi.json")
    assert status == 200
    _, block = http_get(live.url + "/v1/blocks/1")
    _, markets = http_get(live.url + "/v1/markets")
    address = format_address(live.chain.address(0))
    examples = {
        "hash": live.tx_hashes[-1],
        "height": "1",
        "address": address,
        "owner": address,
        "id": "pv-a",
        "market": "intraday",
        "slot": int(markets["first_open_slot"]["intraday"]) + 1,
    }
    by_path = {
        "/v1/blocks/by-hash/{hash}": {"hash": block["hash"]},
        "/v1/orders/{id}": {"id": live.order_ids[0]},
        "/v1/cd/{id}": {"id": live.tx_hashes[3]},
    }
    for path, item in document["paths"].items():
        for operation in item.values():
            for param in operation.get("parameters", []):
                value = by_path.get(path, {}).get(param["name"], examples.get(param["name"]))
                if value is not None:
                    param["example"] = value
    result: dict[str, Any] = document
    return result


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    live: LiveChain, tmp_path: Path
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is in the dev extra (pyproject.toml)"
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(_with_live_examples(live)))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [
            st,
            "--config-file",
            str(config),
            "run",
            str(schema),
            "--url",
            live.url,
            "--checks",
            "all",
            "--exclude-checks",
            ",".join(EXCLUDED_CHECKS),
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            # stateful needs links between operations, which the document does not declare
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,  # its report and example database stay out of the repository
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout or "passed" in done.stdout, report


async def test_block_list_pages_and_block_by_hash(live: LiveChain) -> None:
    async with NodeClient(live.url) as client:
        head = (await client.status()).height
        first = await client.blocks(1, 2)
        assert [b.height for b in first.blocks] == [1, 2]
        assert first.next == 3
        assert first.head >= head
        rest = await client.blocks(first.next, 100)
        assert rest.blocks[0].height == 3
        latest = await client.block("latest")
        assert latest.height >= head
        by_hash = await client.block_by_hash(first.blocks[1].hash)
        assert by_hash == first.blocks[1]
        beyond = await client.blocks(latest.height + 1000, 5)
        assert (beyond.blocks, beyond.next) == ([], None)
        with pytest.raises(NodeRefusedError) as missing:
            await client.block_by_hash("ab" * 32)
        assert (missing.value.status, missing.value.node_code) == (404, "not_found")
    # bounded limit and typed 400s on bad values
    for query in ("limit=0", "limit=101", "from=0", "from=x", "limit=-1"):
        status, body = http_get(f"{live.url}/v1/blocks?{query}")
        assert (status, body["error"]["code"]) == (400, "invalid_request"), query
    status, body = http_get(f"{live.url}/v1/blocks/by-hash/zz")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


def _meters(bundle: GenesisBundle) -> dict[str, Any]:
    """The PV and load meters, and participant 2's EV meter ``ev-c`` its C&D request names."""
    meters = pv_and_load_meters(BRIDGE)(bundle)["meters"]
    ev = {**meters[0], "meter_id": "ev-c", "owner": bundle.participants[2].address}
    return {"meters": [*meters, {**ev, "meter_type": "EV"}]}


async def test_meters_participants_and_validators_are_listed(live: LiveChain) -> None:
    chain = live.chain
    async with NodeClient(live.url) as client:
        meters = await client.meters()
        assert [x.meter_id for x in meters] == ["ev-c", "load-b", "pv-a"]
        # ev-c sent no reading: its sequence is null
        assert {x.meter_id: x.last_sequence for x in meters} == {
            "ev-c": None,
            "load-b": 0,
            "pv-a": 0,
        }
        owned = await client.meters(owner=format_address(chain.address(0)))
        assert [x.meter_id for x in owned] == ["pv-a"]
        assert [x.meter_id for x in await client.meters(limit=1)] == ["ev-c"]
        participants = (await client.participants()).participants
        assert {p.address for p in participants} == {p.address for p in chain.bundle.participants}
        assert {p.name for p in participants} == {p.name for p in chain.bundle.participants}
        (validator,) = (await client.validators()).validators
        assert validator.name == chain.bundle.validators[0].name
        assert validator.this_node is True
        assert validator.public_key == (await client.status()).validator
    status, body = http_get(f"{live.url}/v1/meters?owner=gc1nope")
    assert status == 400, body


async def test_the_client_parses_every_list_into_the_models(live: LiveChain) -> None:
    """The answers the other tests read as raw JSON parse into the contract's models."""
    async with NodeClient(live.url) as client:
        trades = await client.trades()
        assert [t.quantity_wh for t in trades] == [1000]
        order = await client.order(live.order_ids[0])
        assert (order.side, order.status) == ("sell", "filled")
        readings = await client.readings("pv-a")
        assert [r.export_wh for r in readings] == [5000]
        (request,) = await client.cd_requests(None)
        assert request.id == live.tx_hashes[3]
        tx = await client.tx(live.tx_hashes[-1])
        assert tx is not None
        assert (tx.status, tx.tx.kind) == ("committed", "Transfer")
        assert tx.block_hash is not None
        prices = await client.pool_prices(count=2)
        assert len(prices.intervals) == 2
        assert isinstance(await client.schedule(), m.Schedule)
