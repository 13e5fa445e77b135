"""Linking a device to its meter on chain: the council's LinkDevice (market/device_links.py).

Why: a charger's meter was known only to its bridge's config; the council now records which
device (a charger's OCPP charge point id, an inverter's id) a registered meter measures, so the
bridge follows the chain (ADR 0048).  These tests pin that a link and an unlink apply through a
proposal and count in the state root, that every wrong case is refused with its own code and
writes nothing, that a meter's link survives a bridge replacement, and that a chain that never
links keeps the state root it had before LinkDevice existed.
"""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application, BlockContext
from gridchain.market.device_links import (
    DEVICE_LINK_PREFIX,
    METER_LINK_PREFIX,
    DeviceAlreadyLinkedError,
    DeviceLink,
    InvalidDeviceIdError,
    MeterAlreadyLinkedError,
    MeterNotLinkableError,
    MeterNotLinkedError,
    apply_link,
    iter_links,
    link_of_device,
    link_of_meter,
)
from gridchain.market.errors import ApplicationError, NotCouncilMemberError, UnregisteredMeterError
from gridchain.market.governance import ProposalStatus
from gridchain.market.state import Overlay
from gridchain.protocol.encoding import decode
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.governance import (
    GOVERNANCE_KINDS,
    LinkDevice,
    RemoveParticipant,
    ReplaceBridgeKey,
    decode_proposed,
)
from gridchain.protocol.tx import Device, Mint, Propose, RegisterParticipant, sign_tx
from tests.helpers import addr, cd_meter_id, det_key, small_bundle, with_cd_meters
from tests.unit.market.test_governance import Chain, council_bundle

EV_A = cd_meter_id(0, Device.EV)
EV_B = cd_meter_id(1, Device.EV)
BATTERY_A = cd_meter_id(0, Device.BATTERY)
PV_A = "pv-a"  # council_bundle(meters=True): a PV meter of participant 0
CHARGER = "CP-7.garage:1"


def linked_chain() -> Chain:
    return Chain(with_cd_meters(council_bundle(meters=True)))


def passed(chain: Chain, record: LinkDevice | ReplaceBridgeKey) -> tuple[int, str]:
    """Propose as member 1, approve as member 2: the proposal's status and error code."""
    a, b, _ = chain.bundle.council
    proposal = chain.approve(b, chain.propose(a, record))
    return proposal.status, proposal.error


def link_keys(view: Overlay) -> dict[bytes, bytes | None]:
    return {
        k: v
        for k, v in view.writes.items()
        if k.startswith(DEVICE_LINK_PREFIX) or k.startswith(METER_LINK_PREFIX)
    }


def test_the_record_takes_the_last_governance_tag_and_is_proposable() -> None:
    record = LinkDevice(EV_A, CHARGER)
    assert LinkDevice.TYPE_TAG == 0x87
    assert LinkDevice in GOVERNANCE_KINDS
    assert decode_proposed(record.encode()) == record


def test_the_council_links_a_charger_and_unlinks_it() -> None:
    chain = linked_chain()
    chain.height = 7
    assert passed(chain, LinkDevice(EV_A, CHARGER)) == (ProposalStatus.APPLIED, "")
    link = DeviceLink(EV_A, CHARGER, 7)
    assert link_of_device(chain.view, CHARGER) == link
    assert link_of_meter(chain.view, EV_A) == link
    assert list(iter_links(chain.view)) == [link]
    chain.height = 9
    assert passed(chain, LinkDevice(EV_A, "")) == (ProposalStatus.APPLIED, "")
    assert link_of_device(chain.view, CHARGER) is None
    assert link_of_meter(chain.view, EV_A) is None
    assert set(link_keys(chain.view).values()) == {None}  # both keys deleted again


def test_unlink_then_link_moves_a_meter_to_another_device() -> None:
    chain = linked_chain()
    passed(chain, LinkDevice(EV_A, CHARGER))
    passed(chain, LinkDevice(EV_A, ""))
    assert passed(chain, LinkDevice(EV_A, "CP-8")) == (ProposalStatus.APPLIED, "")
    assert passed(chain, LinkDevice(EV_B, CHARGER)) == (ProposalStatus.APPLIED, "")
    assert link_of_meter(chain.view, EV_A) == DeviceLink(EV_A, "CP-8", 1)
    assert link_of_device(chain.view, CHARGER) == DeviceLink(EV_B, CHARGER, 1)


def test_a_battery_meter_links_to_its_inverter() -> None:
    chain = linked_chain()
    assert passed(chain, LinkDevice(BATTERY_A, "inverter-1")) == (ProposalStatus.APPLIED, "")
    assert link_of_meter(chain.view, BATTERY_A) == DeviceLink(BATTERY_A, "inverter-1", 1)


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (LinkDevice("no-such-meter", CHARGER), UnregisteredMeterError),
        (LinkDevice(PV_A, CHARGER), MeterNotLinkableError),
        (LinkDevice(EV_A, EV_A + " "), InvalidDeviceIdError),
        (LinkDevice(EV_A, "CP/7"), InvalidDeviceIdError),
        (LinkDevice(EV_A, "ladestation-ü"), InvalidDeviceIdError),
        (LinkDevice(EV_B, CHARGER), DeviceAlreadyLinkedError),
        (LinkDevice(EV_A, "CP-8"), MeterAlreadyLinkedError),
        (LinkDevice(EV_A, CHARGER), MeterAlreadyLinkedError),
        (LinkDevice(BATTERY_A, ""), MeterNotLinkedError),
        (LinkDevice("no-such-meter", ""), UnregisteredMeterError),
    ],
)
def test_a_wrong_link_is_refused_with_its_code_and_writes_nothing(
    record: LinkDevice, error: type[ApplicationError]
) -> None:
    chain = linked_chain()
    passed(chain, LinkDevice(EV_A, CHARGER))
    view = Overlay(chain.view)
    with pytest.raises(error):
        apply_link(view, record, 5)
    assert view.writes == {}
    # through a proposal: closed failed with the same code, the links as they were
    before = link_keys(chain.view)
    assert passed(chain, record) == (ProposalStatus.FAILED, error.code)
    assert link_keys(chain.view) == before


def test_a_device_id_too_long_for_the_wire_is_refused_by_the_application_too() -> None:
    chain = linked_chain()
    view = Overlay(chain.view)
    with pytest.raises(InvalidDeviceIdError):
        apply_link(view, LinkDevice(EV_A, "x" * 49), 5)
    assert view.writes == {}
    with pytest.raises(GridchainError):  # and no proposal can carry it
        LinkDevice(EV_A, "x" * 49).encode()


def test_the_error_codes_are_distinct() -> None:
    errors = [
        InvalidDeviceIdError,
        MeterNotLinkableError,
        MeterAlreadyLinkedError,
        DeviceAlreadyLinkedError,
        MeterNotLinkedError,
        UnregisteredMeterError,
    ]
    assert len({e.code for e in errors}) == len(errors)


def test_a_link_survives_a_bridge_replacement() -> None:
    """ReplaceBridgeKey is the meter-replacement record: the same meter id on the same device
    is read by a new bridge, so what it measures has not changed."""
    chain = linked_chain()
    passed(chain, LinkDevice(EV_A, CHARGER))
    new_bridge = det_key("device-links/new-bridge").public_key
    assert passed(chain, ReplaceBridgeKey(EV_A, new_bridge)) == (ProposalStatus.APPLIED, "")
    assert link_of_device(chain.view, CHARGER) == DeviceLink(EV_A, CHARGER, 1)


def test_a_link_survives_its_owners_removal() -> None:
    """RemoveParticipant keeps the owner's meters (the chain deletes no meter): their links
    stay with them, as the receipts and readings do."""
    chain = linked_chain()
    passed(chain, LinkDevice(EV_A, CHARGER))
    owner = addr(chain.bundle.participants[0])
    a, b, _ = chain.bundle.council
    assert chain.approve(b, chain.propose(a, RemoveParticipant(owner))).status == (
        ProposalStatus.APPLIED
    )
    assert link_of_device(chain.view, CHARGER) == DeviceLink(EV_A, CHARGER, 1)


def test_only_governance_applies_a_link() -> None:
    """Like every record of the 0x80 range it exists only inside a proposal; a council
    member's proposal alone is one approval of two."""
    chain = linked_chain()
    a, _, _ = chain.bundle.council
    chain.propose(a, LinkDevice(EV_A, CHARGER))
    assert link_of_device(chain.view, CHARGER) is None
    peer = chain.bundle.participants[0]
    chain.refused(peer, Propose(LinkDevice(EV_A, CHARGER).encode(), 100), ApplicationError)


def test_the_governance_key_alone_links_by_proposing() -> None:
    """A chain whose council is the governance key alone: its proposal applies at once."""
    bundle = with_cd_meters(small_bundle())
    chain = Chain(bundle)
    chain.propose(bundle.governance, LinkDevice(EV_A, CHARGER))
    assert link_of_device(chain.view, CHARGER) == DeviceLink(EV_A, CHARGER, 1)
    peer = bundle.participants[1]
    chain.refused(peer, Propose(LinkDevice(EV_B, "CP-9").encode(), 100), NotCouncilMemberError)


def test_a_link_is_counted_in_the_state_root() -> None:
    bundle = with_cd_meters(small_bundle())
    app = Application(bundle.genesis)
    state = app.genesis_state()
    gov = bundle.governance.key
    chain_id = bundle.genesis.chain_id
    ctx = BlockContext(1, bundle.genesis.genesis_time_ms + 1000, b"")
    link = sign_tx(gov, chain_id, 0, Propose(LinkDevice(EV_A, CHARGER).encode(), 100))
    mint = sign_tx(gov, chain_id, 0, Propose(Mint(addr(bundle.participants[0]), 1).encode(), 100))
    linked = app.execute_block(state, [link], ctx)
    other = app.execute_block(state, [mint], ctx)
    assert linked.state_root != other.state_root
    stored = linked.writes[DEVICE_LINK_PREFIX + CHARGER.encode()]
    assert stored is not None
    assert decode(stored, DeviceLink) == DeviceLink(EV_A, CHARGER, 1)


#: The state root of the block below, computed at commit e290bdb, before LinkDevice existed.
ROOT_BEFORE_LINKS = "b990e52f0b8913ef9b59978216602f63355b12e57fff635ce382b0f5d58635c2"


def test_a_chain_that_never_links_keeps_its_state_root() -> None:
    bundle = with_cd_meters(small_bundle())
    app = Application(bundle.genesis)
    gov = bundle.governance.key
    chain_id = bundle.genesis.chain_id
    ctx = BlockContext(1, bundle.genesis.genesis_time_ms + 1000, b"")
    txs = [
        sign_tx(gov, chain_id, 0, Mint(addr(bundle.participants[0]), 5)),
        sign_tx(gov, chain_id, 1, RegisterParticipant(det_key("links/x").public_key, "peer-x")),
    ]
    block = app.execute_block(app.genesis_state(), txs, ctx)
    assert not any(k.startswith((DEVICE_LINK_PREFIX, METER_LINK_PREFIX)) for k in block.writes)
    assert block.state_root.hex() == ROOT_BEFORE_LINKS


def test_with_cd_meters_is_what_the_tests_link() -> None:
    bundle: GenesisBundle = with_cd_meters(council_bundle(meters=True))
    types = {m.meter_id: m.meter_type for m in bundle.genesis.meters}
    assert (types[EV_A], types[BATTERY_A], types[PV_A]) == ("EV", "Battery", "PV")
