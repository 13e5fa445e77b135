"""The genesis document: everything consensus-critical that every validator must agree on.

It is JSON for people and validated here with pydantic in strict mode, so a float where an
integer belongs, a missing field or an unknown one stops the node with a message naming the
field.  Its hash, taken over a canonical JSON form, is the chain id: two nodes with different
genesis documents are on different chains and every signature says which.

Everything here is pure (no file or clock access), so market/ and consensus/ may import it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.crypto import check_public_key, sha256
from gridchain.protocol.errors import BadKeyError, GridchainError
from gridchain.protocol.hpke import check_x25519_public_key
from gridchain.protocol.json_document import JsonDocumentError, document_text, load_object

GENESIS_DOMAIN = b"gridchain/genesis\x00"
Engine = Literal["solo", "pbft", "pob", "epob"]
DeviceKind = Literal["PV", "Battery", "EV", "Load"]
#: How resting orders are ranked: strict price-time priority, or the source's AdBEV function
#: f = a*Rank(price) + b*Rank(time) (docs/markets.md).
MatchingRule = Literal["price_time", "adbev"]
#: The schedulers a proposer may run on chain (DESIGN section 6).
ChainScheduler = Literal["uncontrolled", "online", "epob"]
#: What happens when an iceberg's displayed clip is filled (docs/markets.md): "standard" puts a
#: new clip at the tail of its price level, still available to the same incoming order;
#: "aggressive" re-shows the clip in place (the iceberg keeps its time priority); "passive"
#: re-shows it at the tail only after the incoming order is done; "adaptive" is aggressive when
#: the book's open demand exceeds its open supply and passive otherwise (the source's Table 4-B).
IcebergExecution = Literal["standard", "aggressive", "passive", "adaptive"]
DAY_MS = 86_400_000
#: The source's meter types (seed 000's meter type table; protocol.meter.MeterType).
MeterTypeName = Literal["PV", "ExternalGenerator", "EV", "Battery", "Loadmeter", "Netmeter"]
METER_TYPE_NAMES: tuple[str, ...] = (
    "PV",
    "ExternalGenerator",
    "EV",
    "Battery",
    "Loadmeter",
    "Netmeter",
)

PositiveMs = Annotated[int, Field(gt=0, le=2**63 - 1)]
NonNegative = Annotated[int, Field(ge=0, le=2**63 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class GenesisError(GridchainError):
    code = "invalid_genesis"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _check_public_key(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("a public key is 64 hex digits") from None
    if len(raw) != 32 or value != value.lower():
        raise ValueError("a public key is 64 lower-case hex digits")
    # Non-canonical, off-curve and small-order keys (ADR 0021).  pydantic names the field only
    # for a ValueError, so the BadKeyError's code goes into the message.
    try:
        check_public_key(raw, what="public key")
    except BadKeyError as exc:
        raise ValueError(f"{exc.message} ({exc.code})") from None
    return value


class KeyedEntity(_Strict):
    """A validator or participant: a name, its public key and the address derived from it."""

    name: Name
    public_key: str
    address: str

    @field_validator("public_key")
    @classmethod
    def _pk(cls, v: str) -> str:
        return _check_public_key(v)

    @model_validator(mode="after")
    def _address_matches_key(self) -> KeyedEntity:
        try:
            parse_address(self.address)
        except GridchainError as exc:
            raise ValueError(exc.message) from None
        expected = format_address(address_of(bytes.fromhex(self.public_key)))
        if self.address != expected:
            raise ValueError(f"address {self.address} is not derived from public_key")
        return self

    @property
    def public_key_bytes(self) -> bytes:
        return bytes.fromhex(self.public_key)

    @property
    def address_bytes(self) -> bytes:
        return parse_address(self.address)


def _check_encryption_key(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("an encryption key is 64 hex digits") from None
    if len(raw) != 32 or value != value.lower():
        raise ValueError("an encryption key is 64 lower-case hex digits")
    try:
        check_x25519_public_key(raw)
    except BadKeyError as exc:
        raise ValueError(f"{exc.message} ({exc.code})") from None
    return value


class Validator(KeyedEntity):
    power: Annotated[int, Field(ge=1, le=1)] = 1
    #: The X25519 public key sealed transactions are wrapped to (docs/sealed.md); a chain has
    #: one for every validator or for none.
    encryption_key: str | None = None

    @field_validator("encryption_key")
    @classmethod
    def _ek(cls, v: str | None) -> str | None:
        return None if v is None else _check_encryption_key(v)


class Gateway(_Strict):
    """A gateway (issue 13, ADR 0024): the public edge between clients and the validators.

    Only its name and key are consensus-critical: the key is what a validator admits on a peer
    link (a gateway follows certified blocks and forwards transactions, it never votes and is
    never counted in a quorum); it needs no address because it holds no account.
    """

    name: Name
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _pk(cls, v: str) -> str:
        return _check_public_key(v)

    @property
    def public_key_bytes(self) -> bytes:
        return bytes.fromhex(self.public_key)


class Participant(KeyedEntity):
    devices: tuple[DeviceKind, ...] = ()


class Balance(_Strict):
    address: str
    amount_mc: NonNegative

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        try:
            parse_address(v)
        except GridchainError as exc:
            raise ValueError(exc.message) from None
        return v


class GenesisMeter(_Strict):
    """A meter registered from the start, as a RegisterMeter transaction would register it."""

    meter_id: Annotated[str, Field(min_length=1, max_length=64)]
    owner: str
    meter_type: MeterTypeName
    bridge_public_key: str
    profile: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        try:
            parse_address(v)
        except GridchainError as exc:
            raise ValueError(exc.message) from None
        return v

    @field_validator("bridge_public_key")
    @classmethod
    def _bridge(cls, v: str) -> str:
        return _check_public_key(v)

    @field_validator("meter_id", "profile")
    @classmethod
    def _utf8_size(cls, v: str) -> str:
        # The wire limit is 64 bytes of UTF-8, not 64 characters.
        if len(v.encode("utf-8")) > 64:
            raise ValueError("at most 64 bytes of UTF-8")
        return v

    @property
    def meter_type_code(self) -> int:
        """The wire value (protocol.meter.MeterType), 1-based in the source table's order."""
        return METER_TYPE_NAMES.index(self.meter_type) + 1


class Tariff(_Strict):
    """Grid prices for the hours [start_hour, end_hour) of every day (UTC)."""

    start_hour: Annotated[int, Field(ge=0, le=23)]
    end_hour: Annotated[int, Field(ge=1, le=24)]
    retail_mc_per_kwh: Annotated[int, Field(ge=0, le=10**9)]
    feed_in_mc_per_kwh: Annotated[int, Field(ge=0, le=10**9)]

    @model_validator(mode="after")
    def _ordered(self) -> Tariff:
        if self.end_hour <= self.start_hour:
            raise ValueError("end_hour must be after start_hour")
        if self.feed_in_mc_per_kwh > self.retail_mc_per_kwh:
            raise ValueError("feed_in_mc_per_kwh must not exceed retail_mc_per_kwh")
        return self


def _default_tariffs() -> tuple[Tariff, ...]:
    # A time-of-use retail price with an evening peak and a flat feed-in tariff (mc/kWh).
    return (
        Tariff(start_hour=0, end_hour=7, retail_mc_per_kwh=180_000, feed_in_mc_per_kwh=60_000),
        Tariff(start_hour=7, end_hour=17, retail_mc_per_kwh=250_000, feed_in_mc_per_kwh=60_000),
        Tariff(start_hour=17, end_hour=21, retail_mc_per_kwh=350_000, feed_in_mc_per_kwh=60_000),
        Tariff(start_hour=21, end_hour=24, retail_mc_per_kwh=250_000, feed_in_mc_per_kwh=60_000),
    )


class ChainParams(_Strict):
    block_interval_ms: Annotated[int, Field(ge=10, le=3_600_000)] = 1000
    empty_blocks: bool = False
    max_block_txs: Annotated[int, Field(ge=1, le=10_000)] = 2000
    slot_length_ms: Annotated[int, Field(ge=1000, le=86_400_000)] = 900_000
    gate_closure_ms: Annotated[int, Field(ge=0, le=7 * 86_400_000)] = 3_600_000
    settlement_grace_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 300_000
    penalty_mc_per_kwh: Annotated[int, Field(ge=0, le=10**9)] = 100_000
    tariffs: tuple[Tariff, ...] = Field(default_factory=_default_tariffs)
    # --- markets (docs/markets.md) ---
    #: Gate closure of the day-ahead book; None = the same as ``gate_closure_ms``.
    day_ahead_gate_closure_ms: Annotated[int, Field(ge=0, le=7 * DAY_MS)] | None = None
    #: How far ahead of the block time a slot may be traded (bounds the state of open books).
    order_horizon_ms: Annotated[int, Field(ge=1000, le=31 * DAY_MS)] = 7 * DAY_MS
    matching_rule: MatchingRule = "price_time"
    #: The AdBEV weights a (price) and b (time); the source sets a = 10b.
    adbev_price_weight: Annotated[int, Field(ge=1, le=1000)] = 10
    adbev_time_weight: Annotated[int, Field(ge=1, le=1000)] = 1
    iceberg_execution: IcebergExecution = "standard"
    #: The source's waiting limit WT_max: an iceberg order's open quantity expires this long
    #: after it was placed (0 = no limit; it expires at gate closure like every order).
    iceberg_waiting_limit_ms: Annotated[int, Field(ge=0, le=7 * DAY_MS)] = 0
    # --- C&D scheduling (docs/scheduling.md, "On chain") ---
    #: The scheduler a proposer runs for the next interval's EV rates.
    scheduler: ChainScheduler = "online"
    #: ePoB's speed-up factor c in thousandths (1000 = c = 1, the default the bench chose).
    epob_speedup_milli: Annotated[int, Field(ge=1000, le=10_000)] = 1000
    #: Block-time length of one scheduling interval (one decision).
    schedule_interval_ms: Annotated[int, Field(ge=100, le=DAY_MS)] = 600_000
    #: The minutes of energy and of the load profile one interval stands for: equal to
    #: schedule_interval_ms in real deployments, shorter in wall time on accelerated testnets.
    schedule_interval_minutes: Annotated[int, Field(ge=1, le=1440)] = 10
    #: The community base load without EVs: the embedded apartment profile scaled to this many
    #: households of this mean demand, for this month (weekday curve).
    base_load_households: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    base_load_household_mean_w: Annotated[int, Field(ge=1, le=100_000)] = 800
    base_load_month: Annotated[int, Field(ge=1, le=12)] = 7
    #: Bounds on C&D requests: how many may be open at once, how long a window may be.
    cd_max_open_requests: Annotated[int, Field(ge=1, le=10_000)] = 2000
    cd_max_window_intervals: Annotated[int, Field(ge=1, le=10_000)] = 288
    #: C&D settlement (ADR 0030): a request's metered energy in an interval may differ from its
    #: setpoint's by the larger of these two before ``penalty_mc_per_kwh`` applies to the rest.
    cd_tolerance_permille: Annotated[int, Field(ge=0, le=1000)] = 100
    cd_tolerance_wh: Annotated[int, Field(ge=0, le=10**9)] = 10
    #: Planning on metered load (ADR 0036): the base load of an interval is the median of the
    #: community's metered load (its Loadmeter meters) in the same interval of the previous
    #: ``base_load_history_days`` days, once at least ``base_load_min_days`` of them were
    #: measured; before that it is the genesis profile above.
    base_load_history_days: Annotated[int, Field(ge=1, le=28)] = 7
    base_load_min_days: Annotated[int, Field(ge=1, le=28)] = 3
    #: The community transformer's capacity in W (ADR 0036): base load + C&D rates stay at or
    #: under it where the requests allow, and a decision that cannot says so.  None: no limit.
    transformer_capacity_w: Annotated[int, Field(ge=1, le=10**12)] | None = None

    @model_validator(mode="after")
    def _base_load_days(self) -> ChainParams:
        if self.base_load_min_days > self.base_load_history_days:
            raise ValueError("base_load_min_days must not exceed base_load_history_days")
        return self

    @model_validator(mode="after")
    def _market_times(self) -> ChainParams:
        da = self.day_ahead_gate_closure_ms
        if da is not None and da < self.gate_closure_ms:
            raise ValueError(
                "day_ahead_gate_closure_ms must be at least gate_closure_ms "
                "(the day-ahead book closes no later than the intraday book)"
            )
        longest = max(self.gate_closure_ms, da or 0)
        if self.order_horizon_ms <= longest:
            raise ValueError("order_horizon_ms must be longer than the gate closure")
        return self

    def tariff_at_hour(self, hour: int) -> Tariff:
        """The tariff band of ``hour`` (UTC); validation makes the bands cover the day."""
        for t in self.tariffs:
            if t.start_hour <= hour < t.end_hour:
                return t
        raise GenesisError(f"no tariff for hour {hour}")

    def gate_closure_lead_ms(self, day_ahead: bool) -> int:
        """How long before a slot starts its book closes."""
        if day_ahead and self.day_ahead_gate_closure_ms is not None:
            return self.day_ahead_gate_closure_ms
        return self.gate_closure_ms

    @field_validator("tariffs")
    @classmethod
    def _cover_the_day(cls, v: tuple[Tariff, ...]) -> tuple[Tariff, ...]:
        hour = 0
        for t in v:
            if t.start_hour != hour:
                raise ValueError(
                    f"tariffs must cover 0-24 h in order without gaps (at hour {hour})"
                )
            hour = t.end_hour
        if hour != 24:
            raise ValueError("tariffs must cover 0-24 h in order without gaps (end before 24)")
        return v


#: Chain parameters added after chains were running (ADR 0036): left out of the chain id's
#: bytes at their default, so a document written before them keeps its chain id.
_LATER_PARAMS: dict[str, object] = {
    "base_load_history_days": 7,
    "base_load_min_days": 3,
    "transformer_capacity_w": None,
}

#: ePoB's vote threshold: 2f+1 of 3f+1 (safe against Byzantine validators) or the source's more
#: than half (floor(n/2)+1: safe against crashes only; docs/consensus.md says why).
EpobQuorum = Literal["bft", "majority"]


class ConsensusParams(_Strict):
    engine: Engine = "solo"
    #: PBFT: how long a replica waits for progress before it asks for a view change.
    view_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 4000
    #: PoB and ePoB: the source's ROUNDTIME, the length of one round.
    round_ms: Annotated[int, Field(ge=50, le=3_600_000)] = 2000
    #: PoB: a block is final as the second-to-last of this many notarized blocks of
    #: consecutive rounds (Streamlet's rule is 3, the least that is safe; docs/consensus.md).
    finality_depth: Annotated[int, Field(ge=3, le=1000)] = 3
    epob_quorum: EpobQuorum = "bft"


class CouncilMember(KeyedEntity):
    """A key that may propose and approve governance records (docs/governance.md)."""


#: The largest council: its approvals are listed in every proposal's state record.
MAX_COUNCIL = 64


class Genesis(_Strict):
    chain_name: Name
    genesis_time_ms: NonNegative
    #: The chain's governance authority: council-approved records apply as if it signed them,
    #: and it holds the governance account.  It signs directly only when it is the whole
    #: council (no ``council`` in the document: the k = n = 1 case, ADR 0034).
    governance_public_key: str
    #: The governance council and how many of its members must approve a proposal.  Absent
    #: (empty, 0): the council is ``governance_public_key`` alone with threshold 1.
    council: Annotated[tuple[CouncilMember, ...], Field(max_length=MAX_COUNCIL)] = ()
    council_threshold: Annotated[int, Field(ge=0, le=MAX_COUNCIL)] = 0
    consensus: ConsensusParams = ConsensusParams()
    params: ChainParams = ChainParams()
    validators: tuple[Validator, ...]
    participants: tuple[Participant, ...] = ()
    balances: tuple[Balance, ...] = ()
    meters: tuple[GenesisMeter, ...] = ()
    gateways: tuple[Gateway, ...] = ()

    @field_validator("governance_public_key")
    @classmethod
    def _gov(cls, v: str) -> str:
        return _check_public_key(v)

    @model_validator(mode="after")
    def _consistent(self) -> Genesis:
        if not self.validators:
            raise ValueError("validators: at least one validator is required")
        if self.consensus.engine == "solo" and len(self.validators) != 1:
            raise ValueError("consensus.engine: solo runs exactly one validator")
        for group, items in (("validators", self.validators), ("participants", self.participants)):
            names = [x.name for x in items]
            if len(set(names)) != len(names):
                raise ValueError(f"{group}: names must be unique")
            keys = [x.public_key for x in items]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{group}: public keys must be unique")
        encryption = [v.encryption_key for v in self.validators]
        if any(k is not None for k in encryption):
            if any(k is None for k in encryption):
                raise ValueError("validators: every validator has an encryption_key, or none")
            if len(set(encryption)) != len(encryption):
                raise ValueError("validators: encryption keys must be unique")
        self._check_council()
        gateway_names = [g.name for g in self.gateways]
        if len(set(gateway_names)) != len(gateway_names):
            raise ValueError("gateways: names must be unique")
        gateway_keys = [g.public_key for g in self.gateways]
        if len(set(gateway_keys)) != len(gateway_keys):
            raise ValueError("gateways: public keys must be unique")
        # A key is one role on the peer network: a validator key listed as a gateway would
        # let its holder take the gateway's link in place of its own, or the other way round.
        both = set(gateway_keys) & {v.public_key for v in self.validators}
        if both:
            raise ValueError(f"gateways: key {sorted(both)[0]} is also a validator's key")
        known = {p.address for p in self.participants} | {self.governance_address}
        seen: set[str] = set()
        for i, b in enumerate(self.balances):
            if b.address not in known:
                raise ValueError(f"balances[{i}].address {b.address} is not a participant")
            if b.address in seen:
                raise ValueError(f"balances[{i}].address {b.address} appears twice")
            seen.add(b.address)
        owners = {p.address for p in self.participants}
        meter_ids: set[str] = set()
        for i, m in enumerate(self.meters):
            if m.owner not in owners:
                raise ValueError(f"meters[{i}].owner {m.owner} is not a participant")
            if m.meter_id in meter_ids:
                raise ValueError(f"meters[{i}].meter_id {m.meter_id!r} appears twice")
            meter_ids.add(m.meter_id)
        if sum(b.amount_mc for b in self.balances) >= 2**63:
            raise ValueError("balances: the total supply must stay below 2**63 mc")
        return self

    def _check_council(self) -> None:
        if not self.council:
            if self.council_threshold != 0:
                raise ValueError("council_threshold: set only together with a council")
            return
        if not 1 <= self.council_threshold <= len(self.council):
            raise ValueError(
                f"council_threshold: must be between 1 and the council's size {len(self.council)}"
            )
        names = [m.name for m in self.council]
        keys = [m.public_key for m in self.council]
        if len(set(names)) != len(names):
            raise ValueError("council: names must be unique")
        if len(set(keys)) != len(keys):
            raise ValueError("council: public keys must be unique")
        if self.governance_public_key in keys:
            raise ValueError(
                "council: the governance key is the authority council records apply under, "
                "not a member"
            )

    @property
    def governance_address(self) -> str:
        return format_address(address_of(bytes.fromhex(self.governance_public_key)))

    def council_keys(self) -> tuple[bytes, ...]:
        """The council's keys; an older genesis without a council has the governance key."""
        if not self.council:
            return (bytes.fromhex(self.governance_public_key),)
        return tuple(m.public_key_bytes for m in self.council)

    @property
    def threshold(self) -> int:
        """How many council approvals apply a proposal (1 without a council)."""
        return self.council_threshold if self.council else 1

    @property
    def governance_signs_directly(self) -> bool:
        """Whether a governance record signed by the governance key applies without a
        proposal: only when that key is the whole council (a genesis without ``council``)."""
        return not self.council

    def canonical_json(self) -> bytes:
        """Sorted keys, no spaces, UTF-8: the bytes the chain id is taken over.

        An empty ``meters``, ``gateways`` or ``council`` list, a zero ``council_threshold`` and
        a validator's absent ``encryption_key`` are left out, so documents written before those
        existed keep their chain id.
        """
        doc = self.model_dump(mode="json")
        for optional in ("meters", "gateways", "council", "council_threshold"):
            if not doc[optional]:
                del doc[optional]
        for validator in doc["validators"]:
            if validator["encryption_key"] is None:
                del validator["encryption_key"]
        for name, default in _LATER_PARAMS.items():
            if doc["params"][name] == default:
                del doc["params"][name]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    @property
    def chain_id(self) -> bytes:
        return sha256(GENESIS_DOMAIN + self.canonical_json())

    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(v.public_key_bytes for v in self.validators)

    def encryption_keys(self) -> tuple[bytes, ...]:
        """The validators' X25519 keys in genesis order; empty when the chain seals nothing."""
        return tuple(bytes.fromhex(v.encryption_key) for v in self.validators if v.encryption_key)

    def gateway_keys(self) -> tuple[bytes, ...]:
        """The keys a validator admits on a peer link as gateways (never in a quorum)."""
        return tuple(g.public_key_bytes for g in self.gateways)

    def tariff_at_hour(self, hour: int) -> Tariff:
        """The genesis tariff of ``hour``; the one in force at a height is
        market.chain_params.params_at(...).tariff_at_hour(hour)."""
        return self.params.tariff_at_hour(hour)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path ("params.block_interval_ms: ...")."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "genesis"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def parse_genesis(data: bytes | str | dict[str, Any]) -> Genesis:
    """Validate a genesis document, raising GenesisError that names every wrong field.

    Text is first read by protocol.json_document: a duplicate key is refused naming it, a UTF-8
    byte order mark is accepted (ADR 0021), and text that is not one JSON object is refused.
    """
    try:
        if isinstance(data, dict):
            text = json.dumps(data)
        else:
            load_object(data)
            text = document_text(data)
        # Always through JSON: strict mode then treats arrays as tuples and still refuses
        # floats for integers and strings for numbers, as a file on disk would be read.
        return Genesis.model_validate_json(text)
    except JsonDocumentError as exc:
        raise GenesisError(f"invalid genesis: {exc.message}") from None
    except ValidationError as exc:
        raise GenesisError(f"invalid genesis: {describe_validation_error(exc)}") from None
