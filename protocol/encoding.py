"""The canonical encoding: the single way gridchain turns ledger objects into bytes.

Each record type is a frozen dataclass registered under a numeric type tag.  It is encoded as a
msgpack array ``[tag, version, field_1, ..., field_n]`` in declared field order; nested records
are encoded the same way.  Maps, floats, extension types and ``None`` outside an explicitly
optional field never appear.

Decoding is strict because every validator must agree on what a byte string means: an unknown
tag, a wrong version, a missing or extra field, a value of the wrong type or out of range,
oversize input, or bytes that are not exactly what re-encoding the decoded value produces (the
*canonical* form: msgpack allows several encodings of the same integer or string) are refused
with a typed :class:`~protocol.errors.DecodeError`.  Hashes and signatures are therefore taken
over bytes that have exactly one meaning.

Field types are read from the dataclass annotations: ``int`` fields carry an :class:`IntRange`
(``U64`` by default), ``bytes`` and ``str`` fields a :class:`Size`, sequences are ``tuple[T, ...]``
with a :class:`Size` on the tuple, a field may be a record class, a union of record classes
(decoded by tag) or ``T | None``.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Final, TypeVar, cast

import msgpack

from gridchain.protocol.errors import (
    DecodeError,
    FieldCountError,
    FieldTypeError,
    FieldValueError,
    MalformedError,
    NonCanonicalError,
    OversizeError,
    UnknownTypeError,
    UnsupportedVersionError,
)

#: Upper bound for any single decoded object unless the caller passes a smaller one.
MAX_ENCODED_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class IntRange:
    """Inclusive bounds of an integer field."""

    lo: int
    hi: int


@dataclasses.dataclass(frozen=True, slots=True)
class Size:
    """Inclusive length bounds of a bytes, str or tuple field."""

    lo: int
    hi: int


U8 = Annotated[int, IntRange(0, 2**8 - 1)]
U32 = Annotated[int, IntRange(0, 2**32 - 1)]
U64 = Annotated[int, IntRange(0, 2**64 - 1)]
I64 = Annotated[int, IntRange(-(2**63), 2**63 - 1)]
Bytes20 = Annotated[bytes, Size(20, 20)]
Bytes32 = Annotated[bytes, Size(32, 32)]
Bytes64 = Annotated[bytes, Size(64, 64)]


class LabelledEnum(enum.IntEnum):
    """An integer on the wire with a lower-case name for people and the JSON API."""

    @property
    def label(self) -> str:
        return self.name.lower()


class Record:
    """Base of every encodable ledger object.  Subclasses are frozen dataclasses."""

    TYPE_TAG: ClassVar[int]
    VERSION: ClassVar[int] = 1
    #: Whether decoded instances are remembered by their canonical bytes wherever they are
    #: decoded, nested or not (see :func:`_record_from_wire`): set for transactions, which a
    #: validator meets alone (admission, gossip) and again inside proposals and blocks.
    #: Such a class must not use ``__slots__`` (the wire form is kept on the instance).
    DECODE_ONCE: ClassVar[bool] = False

    def encode(self) -> bytes:
        return encode(self)


R = TypeVar("R", bound=Record)

_REGISTRY: dict[int, type[Record]] = {}


def register(tag: int, version: int = 1) -> Callable[[type[R]], type[R]]:
    """Class decorator: give a record class its tag and version and make it decodable."""

    def apply(cls: type[R]) -> type[R]:
        if not dataclasses.is_dataclass(cast(Any, cls)):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        if "__post_init__" in vars(cls):
            # decoding checks the canonical form on the wire values (_decode_any): a record
            # that changed its values on construction would encode other bytes than it came in
            raise TypeError(f"{cls.__name__}: a record must not have __post_init__")
        if tag in _REGISTRY:
            other = _REGISTRY[tag].__name__
            raise TypeError(f"type tag {tag:#x} used by {other} and {cls.__name__}")
        cls.TYPE_TAG = tag
        cls.VERSION = version
        _REGISTRY[tag] = cls
        return cls

    return apply


def record_type(tag: int) -> type[Record]:
    try:
        return _REGISTRY[tag]
    except KeyError:
        raise UnknownTypeError(f"unknown type tag {tag:#x}") from None


# --- field codecs ----------------------------------------------------------------------------
# Each annotation is compiled once into a small codec object: ``to_wire`` maps a Python value
# to msgpack-native values, ``from_wire`` checks and maps back.  ``path`` names the field in
# error messages ("Transaction.body.amount_mc").


class _Codec:
    def to_wire(self, value: Any) -> Any:
        raise NotImplementedError

    def from_wire(self, value: Any, path: str) -> Any:
        raise NotImplementedError


class _IntCodec(_Codec):
    def __init__(self, rng: IntRange) -> None:
        self.rng = rng

    def to_wire(self, value: Any) -> Any:
        if type(value) is not int or not self.rng.lo <= value <= self.rng.hi:
            raise FieldValueError(
                f"integer in [{self.rng.lo}, {self.rng.hi}] expected, got {value!r}"
            )
        return value

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not int:
            raise FieldTypeError(f"{path}: integer expected, got {type(value).__name__}")
        if not self.rng.lo <= value <= self.rng.hi:
            raise FieldValueError(f"{path}: {value} outside [{self.rng.lo}, {self.rng.hi}]")
        return value


class _BoolCodec(_Codec):
    def to_wire(self, value: Any) -> Any:
        if type(value) is not bool:
            raise FieldValueError(f"bool expected, got {value!r}")
        return value

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not bool:
            raise FieldTypeError(f"{path}: bool expected, got {type(value).__name__}")
        return value


class _BytesCodec(_Codec):
    def __init__(self, size: Size) -> None:
        self.size = size

    def to_wire(self, value: Any) -> Any:
        if type(value) is not bytes or not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(f"bytes of length [{self.size.lo}, {self.size.hi}] expected")
        return value

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not bytes:
            raise FieldTypeError(f"{path}: bytes expected, got {type(value).__name__}")
        if not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(
                f"{path}: length {len(value)} outside [{self.size.lo}, {self.size.hi}]"
            )
        return value


class _StrCodec(_Codec):
    def __init__(self, size: Size) -> None:
        self.size = size

    def to_wire(self, value: Any) -> Any:
        if type(value) is not str or not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(f"str of length [{self.size.lo}, {self.size.hi}] expected")
        # A lone surrogate (which json.loads accepts from "\ud800") has no UTF-8 form; without
        # this check msgpack raised a bare UnicodeEncodeError instead of a typed refusal.
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise FieldValueError("str is not encodable as UTF-8") from None
        return value

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not str:
            raise FieldTypeError(f"{path}: str expected, got {type(value).__name__}")
        if not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(
                f"{path}: length {len(value)} outside [{self.size.lo}, {self.size.hi}]"
            )
        return value


class _TupleCodec(_Codec):
    def __init__(self, item: _Codec, size: Size) -> None:
        self.item = item
        self.size = size

    def to_wire(self, value: Any) -> Any:
        if type(value) is not tuple or not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(f"tuple of length [{self.size.lo}, {self.size.hi}] expected")
        return [self.item.to_wire(v) for v in value]

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not list:
            raise FieldTypeError(f"{path}: array expected, got {type(value).__name__}")
        if not self.size.lo <= len(value) <= self.size.hi:
            raise FieldValueError(
                f"{path}: {len(value)} items outside [{self.size.lo}, {self.size.hi}]"
            )
        item = self.item
        try:  # paths are formatted only for the error message (see _build)
            return tuple([item.from_wire(v, path) for v in value])
        except DecodeError:
            return tuple(item.from_wire(v, f"{path}[{i}]") for i, v in enumerate(value))


class _OptionalCodec(_Codec):
    def __init__(self, inner: _Codec) -> None:
        self.inner = inner

    def to_wire(self, value: Any) -> Any:
        return None if value is None else self.inner.to_wire(value)

    def from_wire(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.from_wire(value, path)


class _RecordCodec(_Codec):
    """A record field: one class, or a union of classes told apart by their tag."""

    def __init__(self, classes: Sequence[type[Record]]) -> None:
        self.classes = tuple(classes)
        self._by_tag: dict[int, type[Record]] | None = None

    def _allowed(self) -> dict[int, type[Record]]:
        # Tags are assigned by @register after the annotations are compiled, so look them up
        # on first use (every class is registered by then) and keep them.
        if self._by_tag is None:
            self._by_tag = {c.TYPE_TAG: c for c in self.classes}
        return self._by_tag

    def to_wire(self, value: Any) -> Any:
        if type(value) not in self.classes:
            names = ", ".join(c.__name__ for c in self.classes)
            raise FieldValueError(f"one of {names} expected, got {type(value).__name__}")
        return _record_to_wire(value)

    def from_wire(self, value: Any, path: str) -> Any:
        return _record_from_wire(value, path, self._allowed())


def _compile(annotation: Any, owner: str) -> _Codec:
    meta: tuple[Any, ...] = ()
    if typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        meta = tuple(extra)
    rng = next((m for m in meta if isinstance(m, IntRange)), None)
    size = next((m for m in meta if isinstance(m, Size)), None)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return _BoolCodec()
    if annotation is int:
        return _IntCodec(rng or IntRange(0, 2**64 - 1))
    if annotation is bytes:
        return _BytesCodec(size or Size(0, MAX_ENCODED_BYTES))
    if annotation is str:
        return _StrCodec(size or Size(0, 1024))
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{owner}: only tuple[T, ...] is supported")
        return _TupleCodec(_compile(args[0], owner), size or Size(0, 65535))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) < len(args):
            inner = non_none[0] if len(non_none) == 1 else typing.Union[tuple(non_none)]  # noqa: UP007
            return _OptionalCodec(_compile(inner, owner))
        if all(isinstance(a, type) and issubclass(a, Record) for a in args):
            return _RecordCodec(args)
        raise TypeError(f"{owner}: unions must be of record classes")
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return _RecordCodec([annotation])
    raise TypeError(f"{owner}: unsupported field annotation {annotation!r}")


_FIELD_CACHE: dict[type[Record], tuple[tuple[str, _Codec], ...]] = {}


def _fields(cls: type[Record]) -> tuple[tuple[str, _Codec], ...]:
    cached = _FIELD_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        cached = tuple(
            (f.name, _compile(hints[f.name], f"{cls.__name__}.{f.name}"))
            for f in dataclasses.fields(cast(Any, cls))
        )
        _FIELD_CACHE[cls] = cached
    return cached


_WIRE_CACHE_ATTR = "_wire"


def _record_to_wire(value: Record) -> list[Any]:
    # Records without __slots__ (Transaction) keep their wire form: a transaction is encoded
    # inside every block, proposal, stored block and canonical check that carries it.
    memo: dict[str, Any] | None = getattr(value, "__dict__", None)
    if memo is not None:
        cached: list[Any] | None = memo.get(_WIRE_CACHE_ATTR)
        if cached is not None:
            return cached
    cls = type(value)
    out: list[Any] = [cls.TYPE_TAG, cls.VERSION]
    for name, codec in _FIELD_CACHE.get(cls) or _fields(cls):
        try:
            out.append(codec.to_wire(getattr(value, name)))
        except FieldValueError as exc:
            raise FieldValueError(f"{cls.__name__}.{name}: {exc.message}") from None
    if memo is not None:
        memo[_WIRE_CACHE_ATTR] = out
    return out


def _record_from_wire(value: Any, path: str, allowed: dict[int, type[Record]] | None) -> Record:
    if type(value) is not list:
        raise FieldTypeError(f"{path}: record array expected, got {type(value).__name__}")
    if len(value) < 2 or type(value[0]) is not int or type(value[1]) is not int:
        raise MalformedError(f"{path}: a record starts with its type tag and version")
    tag, version = value[0], value[1]
    cls = record_type(tag)
    if allowed is not None and tag not in allowed:
        names = ", ".join(c.__name__ for c in allowed.values())
        raise UnknownTypeError(f"{path}: {cls.__name__} where {names} is expected")
    if version != cls.VERSION:
        raise UnsupportedVersionError(
            f"{path}: {cls.__name__} version {version} (supported: {cls.VERSION})"
        )
    if cls.DECODE_ONCE:
        return _decode_once(value, path, cls)
    return _build(value, path, cls)


def _build(value: list[Any], path: str, cls: type[Record]) -> Record:
    fields = _FIELD_CACHE.get(cls) or _fields(cls)
    if len(value) - 2 != len(fields):
        raise FieldCountError(
            f"{path}: {cls.__name__} has {len(fields)} fields, got {len(value) - 2}"
        )
    try:
        # The path is only for an error message: the first pass does not format one per field.
        args = [
            codec.from_wire(raw, path) for (_, codec), raw in zip(fields, value[2:], strict=True)
        ]
    except DecodeError:
        # Again with each field's path, which raises the same error naming where it is.
        args = [
            codec.from_wire(raw, f"{path}.{name}")
            for (name, codec), raw in zip(fields, value[2:], strict=True)
        ]
    return cls(*args)


#: Decoded :attr:`Record.DECODE_ONCE` records by class and canonical bytes: a transaction
#: decoded at admission or from gossip is the very object a proposal or block decoded later
#: carries (with its hash, encoding and signature check already done), instead of a second
#: decode.  Records are immutable and decoding is a pure function of the bytes, so a hit is
#: what decoding would return; a miss decodes again (the signature memory, keyed by hash, still
#: answers).  Bounded by count and by the encoded bytes it keeps (ADR 0046, ADR 0054), plus
#: the mempool's pending transactions (:func:`reserve_decoded_once`, ADR 0058).  It forgets
#: in the order it learnt, not the order it was last used: a block decoded after admission
#: hits its transactions, which are then committed and never wanted again, while the pending
#: ones behind them have not been used since admission.  Moving hits to the end made the
#: pending transactions the first forgotten.
_DECODED_ONCE: OrderedDict[tuple[type[Record], bytes], Record] = OrderedDict()
_DECODED_ONCE_ENTRIES = 16384
#: Why 512 KiB (ADR 0054): a decoded transaction with its wire arrays and key holds about 7-8
#: times its encoding, and the memory is full in any validator that has run a while (every
#: admitted, gossiped or read transaction enters it), so the budget is resident for good:
#: 2 MiB was about 16 MiB of a device's RSS (10 MiB more than this budget, measured).  512 KiB
#: still holds 4,000 plain transfers of 131 bytes (the throughput bench's 3,000 in flight) or
#: 1,700 meter readings and orders of 300 bytes: the transactions between their admission and
#: their block, which is what the memory is for.
_DECODED_ONCE_BUDGET_BYTES = 512 * 1024
_DECODED_ONCE_MAX_BYTES = 4096
_decoded_once_bytes = 0
#: The bounds in force: the ones above plus the mempool's pending transactions
#: (:func:`reserve_decoded_once`).
_once_entries_limit = _DECODED_ONCE_ENTRIES
_once_bytes_limit = _DECODED_ONCE_BUDGET_BYTES


def reserve_decoded_once(pending_txs: int, pending_bytes: int) -> None:
    """Make room in the decode-once memory for a mempool's pending transactions, on top of
    its own bounds (the mempool calls this as it grows and shrinks).

    Why (ADR 0058): the memory forgets the oldest first, and a validator's oldest pending
    transactions are exactly the next block's.  With a backlog larger than the memory (about
    4,000 plain transfers in 512 KiB) every block's transactions were decoded a second time,
    about 9 us each on every validator.  The pending transactions are held by the pool anyway,
    so keeping them remembered costs only their keys, and only while they are pending: when
    the pool drains, the bounds return to their own and the next decode evicts the rest.
    """
    global _once_entries_limit, _once_bytes_limit  # noqa: PLW0603 - the memory's bounds
    _once_entries_limit = _DECODED_ONCE_ENTRIES + pending_txs
    _once_bytes_limit = _DECODED_ONCE_BUDGET_BYTES + pending_bytes


def _decode_once(value: list[Any], path: str, cls: type[Record]) -> Record:
    """Decode a DECODE_ONCE record from its wire array, or return the one already decoded.

    The key is the canonical encoding of ``value`` (``packb`` of the array), so a hit is
    exactly the record ``value`` means, whatever bytes around it carried it: the enclosing
    decode's canonical check still compares the whole input with its re-encoding.
    """
    data = cast(bytes, msgpack.packb(value, use_bin_type=True))
    key = (cls, data)
    hit = _DECODED_ONCE.get(key)
    if hit is not None:  # first in, first out: not moved (see _DECODED_ONCE)
        return hit
    obj = _build(value, path, cls)
    # to_wire(from_wire(v)) == v for every codec, so ``value`` is obj's wire form.
    vars(obj)[_WIRE_CACHE_ATTR] = value
    if len(data) <= _DECODED_ONCE_MAX_BYTES:
        global _decoded_once_bytes  # noqa: PLW0603 - the memory's size, kept with it
        _DECODED_ONCE[key] = obj
        _decoded_once_bytes += len(data)
        while _DECODED_ONCE and (
            len(_DECODED_ONCE) > _once_entries_limit or _decoded_once_bytes > _once_bytes_limit
        ):
            (_, old), _ = _DECODED_ONCE.popitem(last=False)
            _decoded_once_bytes -= len(old)
    return obj


# --- public API -----------------------------------------------------------------------------


def encode(value: Record) -> bytes:
    """Canonical bytes of a record (raises FieldValueError for an out-of-range field)."""
    return cast(bytes, msgpack.packb(_record_to_wire(value), use_bin_type=True))


#: Decoded small records by the types asked for and the exact bytes.  Records are immutable
#: and decoding is a pure function of the bytes, so a hit returns what decoding would; it saves
#: the repeated work of reading the same account several times per block, and of the same
#: gossip frame arriving from several peers.  Bounded by count and by the bytes it keeps, as
#: the decode-once memory above (ADR 0046, ADR 0054).
_DECODE_CACHE: OrderedDict[tuple[tuple[type[Record], ...], bytes], Record] = OrderedDict()
#: Why 4,096 and 512 KiB (ADR 0054): every distinct small record a validator reads enters it,
#: so it fills slowly with the chain's age (2,835 entries, 325 KB after one played day of the
#: 200-household community) up to its bound, which is then resident for good; at 16,384
#: entries and 2 MiB that bound was far above what one block reads twice.
_DECODE_CACHE_ENTRIES = 4096
_DECODE_CACHE_BUDGET_BYTES = 512 * 1024
_DECODE_CACHE_MAX_BYTES = 2048
_decode_cache_bytes = 0


def decode(data: bytes, expected: type[R], *, max_bytes: int = MAX_ENCODED_BYTES) -> R:
    """Decode canonical bytes into an instance of ``expected`` or raise a DecodeError."""
    if expected.DECODE_ONCE and type(data) is bytes:
        known = _DECODED_ONCE.get((expected, data))  # keys are canonical encodings
        if known is not None:
            return cast(R, known)
        # remembered by _decode_once, not twice
        return cast(R, _decode_any(data, (expected,), max_bytes=max_bytes))
    return cast(R, _decode_cached(data, (expected,), max_bytes))


def decode_one_of(
    data: bytes, expected: Sequence[type[Record]], *, max_bytes: int = MAX_ENCODED_BYTES
) -> Record:
    """Decode bytes that may be any of several record types (told apart by tag)."""
    return _decode_cached(data, tuple(expected), max_bytes)


def forget_decoded() -> None:
    """Empty both memories of decoded records (a test that plays a second process)."""
    global _decoded_once_bytes, _decode_cache_bytes  # noqa: PLW0603
    _DECODED_ONCE.clear()
    _DECODE_CACHE.clear()
    _decoded_once_bytes = _decode_cache_bytes = 0


def _decode_cached(data: bytes, expected: tuple[type[Record], ...], max_bytes: int) -> Record:
    if type(data) is not bytes or len(data) > min(max_bytes, _DECODE_CACHE_MAX_BYTES):
        return _decode_any(data, expected, max_bytes=max_bytes)
    key = (expected, data)
    hit = _DECODE_CACHE.get(key)
    if hit is not None:
        _DECODE_CACHE.move_to_end(key)
        return hit
    obj = _decode_any(data, expected, max_bytes=max_bytes)
    _remember_decoded(key, obj)
    return obj


def _remember_decoded(key: tuple[tuple[type[Record], ...], bytes], obj: Record) -> None:
    global _decode_cache_bytes  # noqa: PLW0603 - the memory's size, kept with it
    if key in _DECODE_CACHE:
        _DECODE_CACHE.move_to_end(key)
        return
    _DECODE_CACHE[key] = obj
    _decode_cache_bytes += len(key[1])
    while _DECODE_CACHE and (
        len(_DECODE_CACHE) > _DECODE_CACHE_ENTRIES
        or _decode_cache_bytes > _DECODE_CACHE_BUDGET_BYTES
    ):
        (_, old), _ = _DECODE_CACHE.popitem(last=False)
        _decode_cache_bytes -= len(old)


#: Codecs for which decoding gives back the very value encoded: each ``to_wire`` accepts only
#: its exact type (``type(v) is int`` and so on) and returns it unchanged, and ``from_wire``
#: returns the wire value unchanged.  (A tuple comes back as a new tuple, a nested record as a
#: new record: equal, not the same, so records with such fields are not remembered.)
_IDENTITY_CODECS: Final = (_IntCodec, _BoolCodec, _BytesCodec, _StrCodec)
_REMEMBERABLE: dict[type[Record], bool] = {}


def encode_remembered(value: Record) -> bytes:
    """The canonical bytes of ``value`` (as :func:`encode`), remembered as what they decode to.

    Why: a state value written by one transaction is read back by the next one that touches
    the key (the sender's next nonce, the next credit to a shop or the pool), and without
    this that read decoded bytes nobody had decoded before: about 4.5 us of a plain
    transfer's 33 us of admission, twice per transfer, and once more per credit when a block
    is executed (ADR 0058).  Writers of small state records (accounts) call this instead of
    ``encode``; :func:`decode` of the bytes then returns ``value`` itself.

    That is exactly what decoding would return only for records whose every field has an
    identity codec (:data:`_IDENTITY_CODECS`): encoding succeeded, so each field holds a
    value of exactly its declared type, and decoding those bytes builds a record of the same
    class from the same field values.  Other records are encoded and not remembered, as are
    :attr:`Record.DECODE_ONCE` records (their own memory) and encodings above the memory's
    per-entry limit.
    """
    data = encode(value)
    cls = type(value)
    remember = _REMEMBERABLE.get(cls)
    if remember is None:
        remember = not cls.DECODE_ONCE and all(
            isinstance(codec, _IDENTITY_CODECS) for _, codec in _fields(cls)
        )
        _REMEMBERABLE[cls] = remember
    if remember and len(data) <= _DECODE_CACHE_MAX_BYTES:
        _remember_decoded(((cls,), data), value)
    return data


def _decode_any(data: bytes, expected: tuple[type[Record], ...], *, max_bytes: int) -> Record:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FieldTypeError(f"bytes expected, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise OversizeError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except msgpack.ExtraData:
        raise NonCanonicalError("trailing bytes after the encoded value") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedError(f"not valid msgpack: {exc}") from None
    if type(raw) is not list:
        raise MalformedError(f"a record array expected, got {type(raw).__name__}")
    allowed = {cls.TYPE_TAG: cls for cls in expected}
    root = expected[0].__name__ if len(expected) == 1 else "record"
    value = _record_from_wire(raw, root, allowed)
    # Every codec maps wire values back exactly (to_wire(from_wire(v)) == v, types included)
    # and a record changes nothing on construction (register refuses __post_init__), so
    # re-packing the decoded wire values *is* the canonical encoding of ``value``, at C speed.
    if msgpack.packb(raw, use_bin_type=True) != data:
        raise NonCanonicalError(f"{type(value).__name__}: bytes are not the canonical encoding")
    return value


def to_jsonable(value: Any, address_text: Callable[[bytes], str] | None = None) -> Any:
    """A JSON view of a record for people and the HTTP API (bytes as hex, records as objects).

    Fields declared as 20-byte values are addresses; with ``address_text`` they are shown in
    the form people type.  It is a *view*: JSON is never hashed or signed.
    """
    if isinstance(value, Record):
        out: dict[str, Any] = {"type": type(value).__name__}
        for name, codec in _fields(type(value)):
            field = getattr(value, name)
            is_address = isinstance(codec, _BytesCodec) and codec.size.lo == codec.size.hi == 20
            if is_address and address_text is not None and isinstance(field, bytes):
                out[name] = address_text(field)
            else:
                out[name] = to_jsonable(field, address_text)
        return out
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [to_jsonable(v, address_text) for v in value]
    return value
