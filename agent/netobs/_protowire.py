"""Protobuf wire-format pieces for the agent's hand-written OTLP encoders (``_lightspans``, ``_resultlogs``).

Field numbers are those of opentelemetry-proto (common.proto, trace.proto, logs.proto); each encoder's test
compares its output with the OpenTelemetry SDK's encoder for the same data.

The encoders write their records with ``NATIVE`` (``netobs._wire``, the same writers in C, built by
``pip install -e .``) when it is there, and with the Python writers otherwise or when the C writer declines
a batch (values only Python handles); the tests hold the two to the same bytes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Generic, TypeVar

from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger(__name__)


def _load_native() -> ModuleType | None:
    try:
        from netobs import _wire
    except ImportError:
        return None
    return _wire


NATIVE = _load_native()

T = TypeVar("T")
_U64 = 0xFFFF_FFFF_FFFF_FFFF
PACK_FIXED64 = struct.Struct("<Q").pack
PACK_FIXED32 = struct.Struct("<I").pack
_PACK_DOUBLE = struct.Struct("<d").pack
ONE_BYTE = [bytes((i,)) for i in range(128)]


def varint(n: int) -> bytes:
    """An unsigned varint (n >= 0)."""
    if n < 0x80:
        return ONE_BYTE[n]
    if n < 0x4000:  # lengths of most fields: two bytes, without the general loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x20_0000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + varint(len(payload)) + payload


def any_value(value: Any) -> bytes:
    """An AnyValue message; TypeError for what an attribute cannot hold."""
    if isinstance(value, str):
        return field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & _U64)
    if isinstance(value, float):
        return b"\x21" + _PACK_DOUBLE(value)
    if isinstance(value, bytes):
        return field(b"\x3a", value)
    if isinstance(value, Sequence):
        return field(b"\x2a", b"".join(field(b"\x0a", any_value(v)) for v in value))
    raise TypeError(f"unsupported attribute value {value!r}")


def key_value(key: str, value: Any) -> bytes:
    """A KeyValue message (without its field tag)."""
    return field(b"\x0a", key.encode()) + field(b"\x12", any_value(value))


_KEY_VALUES: dict[tuple[bytes, str, type, Any], bytes] = {}
_KEY_VALUES_MAX = 65_536


def attributes(tag: bytes, attrs: Mapping[str, Any], what: str = "attribute") -> bytes:
    """The repeated KeyValue field ``tag``; (key, scalar value) pairs seen before are encoded once. A value
    an attribute cannot hold is dropped with a warning naming ``what`` and the key."""
    out = []
    for key, value in attrs.items():
        cacheable = type(value) in (str, int, bool)
        entry = _KEY_VALUES.get((tag, key, type(value), value)) if cacheable else None
        if entry is None:
            try:
                entry = field(tag, key_value(key, value))
            except TypeError:
                log.warning("%s %s dropped: unsupported value %r", what, key, value)
                continue
            if cacheable:
                if len(_KEY_VALUES) >= _KEY_VALUES_MAX:
                    _KEY_VALUES.clear()
                _KEY_VALUES[(tag, key, type(value), value)] = entry
        out.append(entry)
    return b"".join(out)


class RequestEncoder(Generic[T]):
    """Serialised OTLP export requests for the records of one resource and scope.

    Traces and logs share the layout: the request's field 1 holds one ResourceSpans / ResourceLogs
    (resource 1, scope records 2, schema URL 3), which holds one ScopeSpans / ScopeLogs (scope 1, records 2,
    schema URL 3). A subclass writes the records, each with its field 2 tag, twice over: in C
    (``encode_native``) and in Python (``encode_python``, the reference); ``encode_slice`` picks. Resource
    and scope are encoded once, by the SDK's own encoders."""

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        self._resource_field = field(b"\x0a", _encode_resource(resource).SerializeToString())
        self._resource_schema_field = field(b"\x1a", resource.schema_url.encode()) if resource.schema_url else b""
        self._scope_field = field(b"\x0a", _encode_instrumentation_scope(scope).SerializeToString())
        self._scope_schema_field = field(b"\x1a", scope.schema_url.encode()) if scope.schema_url else b""

    def encode_slice(self, items: Sequence[T]) -> bytes:
        """The records' fields (each with its field 2 tag): by the C writer when built and it takes them,
        else by the Python writer."""
        if NATIVE is not None:
            encoded = self.encode_native(items)
            if encoded is not None:
                return encoded
        return self.encode_python(items)

    def encode_native(self, items: Sequence[T]) -> bytes | None:
        """What ``encode_python`` writes, by ``NATIVE`` (called only when it is built); None when the C
        writer declines (a value only the Python writer handles)."""
        raise NotImplementedError

    def encode_python(self, items: Sequence[T]) -> bytes:
        raise NotImplementedError

    def encode(self, items: Sequence[T]) -> bytes:
        """The serialised request holding ``items`` (the exporters send it as it is)."""
        return self.request([self.encode_slice(items)])

    def request(self, slices: Sequence[bytes]) -> bytes:
        """The serialised request holding the records of ``slices`` (from ``encode_slice``), in order."""
        scope_records = self._scope_field + b"".join(slices) + self._scope_schema_field
        resource_records = self._resource_field + field(b"\x12", scope_records) + self._resource_schema_field
        return field(b"\x0a", resource_records)
