"""The result record as the Spark job reads it: a mirror of ``netobs.result.ProbeResult`` as plain data.

The job must not import the agent (other dependencies, other image), so the record's shape is declared
here a second time; ``tests/contract/test_spark_schema.py`` compares it field by field with the agent's
dataclasses and fails on any drift. This module imports nothing from pyspark: the schema is rendered
as a Spark DDL string, which ``DataFrameReader.schema`` accepts.

Type mapping: ``str`` -> STRING, ``int`` -> BIGINT, ``float`` -> DOUBLE, ``bool`` -> BOOLEAN,
``list[X]`` -> ARRAY<X>, ``dict[str, X]`` -> MAP<STRING, X>, a dataclass -> STRUCT; every field is nullable
(a reader must accept older minor versions with fields missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScalarName = Literal["string", "long", "double", "boolean"]

_DDL_SCALARS: dict[str, str] = {"string": "STRING", "long": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}

CORRUPT_RECORD_COLUMN = "_corrupt_record"


@dataclass(frozen=True, slots=True)
class Scalar:
    name: ScalarName


@dataclass(frozen=True, slots=True)
class ArrayOf:
    element: FieldType


@dataclass(frozen=True, slots=True)
class MapOf:
    value: FieldType  # keys are always strings in the record


@dataclass(frozen=True, slots=True)
class Struct:
    fields: tuple[Column, ...]

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.fields)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: FieldType


FieldType = Scalar | ArrayOf | MapOf | Struct

STRING = Scalar("string")
LONG = Scalar("long")
DOUBLE = Scalar("double")
BOOLEAN = Scalar("boolean")


def _struct(*columns: tuple[str, FieldType]) -> Struct:
    return Struct(tuple(Column(name, t) for name, t in columns))


TLS_INFO = _struct(
    ("version", STRING),
    ("cipher", STRING),
    ("cert_subject", STRING),
    ("cert_issuer", STRING),
    ("cert_not_after_ms", LONG),
    ("cert_expiry_days", DOUBLE),
    ("chain_verified", BOOLEAN),
)

ICMP_RESULT = _struct(
    ("sent", LONG),
    ("received", LONG),
    ("loss_ratio", DOUBLE),
    ("rtt_min_ms", DOUBLE),
    ("rtt_avg_ms", DOUBLE),
    ("rtt_max_ms", DOUBLE),
    ("rtt_stddev_ms", DOUBLE),
    ("jitter_ms", DOUBLE),
    ("rtts_ms", ArrayOf(DOUBLE)),
    ("ip_version", LONG),
    ("socket_kind", STRING),
    ("timestamp_source", STRING),
    ("packet_size_bytes", LONG),
    ("ttl", LONG),
)

DNS_RECORD = _struct(("name", STRING), ("type", STRING), ("ttl", LONG), ("data", STRING))

DNS_RESULT = _struct(
    ("server", STRING),
    ("transport", STRING),
    ("question_name", STRING),
    ("question_type", STRING),
    ("rcode", STRING),
    ("answers", ArrayOf(DNS_RECORD)),
    ("authority", ArrayOf(DNS_RECORD)),
    ("authenticated_data", BOOLEAN),
    ("dnssec_status", STRING),
    ("response_size_bytes", LONG),
    ("flags", ArrayOf(STRING)),
    ("truncated", BOOLEAN),
    ("extended_error_code", LONG),
    ("extended_error_text", STRING),
    ("tls", TLS_INFO),
)

TRACEROUTE_HOP = _struct(
    ("ttl", LONG),
    ("address", STRING),
    ("rtt_ms", DOUBLE),
    ("loss", DOUBLE),
    ("rtts_ms", ArrayOf(DOUBLE)),
    ("hostname", STRING),
    ("asn", LONG),
    ("prefix", STRING),
    ("icmp_type", LONG),
    ("icmp_code", LONG),
    ("addresses", ArrayOf(STRING)),
)

TRACEROUTE_PATH = _struct(
    ("flow_id", LONG),
    ("path_hash", STRING),
    ("reached", BOOLEAN),
    ("hops", ArrayOf(TRACEROUTE_HOP)),
)

TRACEROUTE_RESULT = _struct(
    ("method", STRING),
    ("reached", BOOLEAN),
    ("hop_count", LONG),
    ("path_hash", STRING),
    ("hops", ArrayOf(TRACEROUTE_HOP)),
    ("paths", ArrayOf(TRACEROUTE_PATH)),
    ("distinct_paths", LONG),
)

HTTP_HOP = _struct(("url", STRING), ("status_code", LONG), ("phases_ms", MapOf(DOUBLE)))

HTTP_RESULT = _struct(
    ("method", STRING),
    ("url", STRING),
    ("status_code", LONG),
    ("http_version", STRING),
    ("body_bytes", LONG),
    ("redirects", ArrayOf(HTTP_HOP)),
    ("final_url", STRING),
    ("tls", TLS_INFO),
    ("traceparent", STRING),
    ("path", TRACEROUTE_RESULT),
)

TCP_RESULT = _struct(("port", LONG), ("tls", TLS_INFO), ("path", TRACEROUTE_RESULT))

RESULT_RECORD = _struct(
    ("result_id", STRING),
    ("started_at_ms", LONG),
    ("duration_ms", DOUBLE),
    ("agent_id", STRING),
    ("pop", STRING),
    ("check_name", STRING),
    ("check_type", STRING),
    ("target", STRING),
    ("success", BOOLEAN),
    ("resolved_ip", STRING),
    ("error_type", STRING),
    ("error_message", STRING),
    ("phases_ms", MapOf(DOUBLE)),
    ("trace_id", STRING),
    ("span_id", STRING),
    ("labels", MapOf(STRING)),
    ("icmp", ICMP_RESULT),
    ("dns", DNS_RESULT),
    ("http", HTTP_RESULT),
    ("tcp", TCP_RESULT),
    ("traceroute", TRACEROUTE_RESULT),
    ("schema_version", LONG),
)
"""The record, field for field in the agent's declaration order."""

SCHEMA_VERSION = 1
"""The contract version this job reads; records of a newer major version are still read field by field."""

REQUIRED_FIELDS = ("result_id", "started_at_ms", "pop", "check_name", "check_type", "target", "success")
"""A record without one of these cannot be rolled up; it is counted as corrupt and skipped."""


def type_ddl(t: FieldType) -> str:
    """Spark DDL of one type, e.g. ``ARRAY<STRUCT<`ttl`: BIGINT>>``."""
    if isinstance(t, Scalar):
        return _DDL_SCALARS[t.name]
    if isinstance(t, ArrayOf):
        return f"ARRAY<{type_ddl(t.element)}>"
    if isinstance(t, MapOf):
        return f"MAP<STRING, {type_ddl(t.value)}>"
    inner = ", ".join(f"`{c.name}`: {type_ddl(c.type)}" for c in t.fields)
    return f"STRUCT<{inner}>"


def record_ddl(*, with_corrupt_column: bool = False) -> str:
    """The top-level schema as a DDL column list (``DataFrameReader.schema`` accepts it)."""
    columns = [f"`{c.name}` {type_ddl(c.type)}" for c in RESULT_RECORD.fields]
    if with_corrupt_column:
        columns.append(f"`{CORRUPT_RECORD_COLUMN}` STRING")
    return ", ".join(columns)
