"""Fully populated result records, built from the dataclass definitions themselves.

Every field gets a value of its declared type (no None), so the JSON of an exemplar shows the complete
shape of the contract: each key path and its JSON type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from netobs import result as R

_STR_VALUES = {
    "result_id": "7d7a3a84-9a8b-4cf0-9b1e-3f1f7a0c2d11",
    "agent_id": "agent-fra1-01",
    "pop": "fra1",
    "check_name": "web",
    "target": "example.net",
    "resolved_ip": "192.0.2.10",
    "error_type": "timeout",
    "error_message": "no complete answer within timeout_s=5",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "span_id": "00f067aa0ba902b7",
    "path_hash": "9f86d081884c7d65",
    "address": "198.51.100.1",
}


def _value(name: str, tp: Any, owner: type) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _value(name, non_none[0], owner)
    if origin is list:
        return [_value(name, args[0], owner)]
    if origin is dict:
        return {"k": _value(name, args[1], owner)}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp)
    if tp is bool:
        return True
    if tp is int:
        return 3
    if tp is float:
        return 12.5
    if tp is str:
        return _STR_VALUES.get(name, name)
    raise TypeError(f"no exemplar for {owner.__name__}.{name}: {tp!r}")


def build(cls: type) -> Any:
    hints = typing.get_type_hints(cls, vars(R))
    return cls(**{f.name: _value(f.name, hints[f.name], cls) for f in dataclasses.fields(cls)})


SUB_RECORDS = {
    "icmp": R.IcmpResult,
    "dns": R.DnsResult,
    "http": R.HttpResult,
    "tcp": R.TcpResult,
    "traceroute": R.TracerouteResult,
}


def result_of_type(check_type: str) -> R.ProbeResult:
    """A complete record of ``check_type``: common fields set, only that type's sub-record present."""
    record: R.ProbeResult = build(R.ProbeResult)
    for key in SUB_RECORDS:
        setattr(record, key, None)
    record.check_type = check_type
    record.schema_version = R.SCHEMA_VERSION
    record.phases_ms = {"dns": 1.25, "connect": 2.5}
    setattr(record, check_type, build(SUB_RECORDS[check_type]))
    return record
