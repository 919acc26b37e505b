"""The Flink job's mirror of the result record against the contract's golden records (fails on drift)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from netobs_flink.record import (
    PHASES,
    READ_FIELDS,
    REQUIRED,
    extract,
    fields_spec,
    is_valid,
    required_spec,
    typed,
    value_at,
)

from netobs import result

GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "golden"
CHECK_TYPES = ("icmp", "dns", "http", "tcp", "traceroute")


def golden(check_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"result_{check_type}.json").read_text())
    return data


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_golden_records_fit_what_the_job_reads(check_type: str) -> None:
    record = golden(check_type)
    for name, (path, sql_type) in READ_FIELDS.items():
        for alternative in path.split("|"):
            top = alternative.split(".")[0].removesuffix("[-1]")
            assert top in record, f"{name}: the job reads {top!r}; the {check_type} golden record has no such field"
            value = value_at(record, alternative)
            assert value is None or typed(value, sql_type) is not None, f"{name}: {value!r} is not {sql_type}"
    assert is_valid(record)


def test_every_field_reads_a_value_from_some_golden_record() -> None:
    """A path renamed deep in the record reads NULL everywhere: that fails here. The phases are keys of a
    map (the golden record holds two of them): those are checked against the agent's list instead."""
    records = [golden(t) for t in CHECK_TYPES]
    for name, (path, sql_type) in READ_FIELDS.items():
        if path.startswith("phases_ms."):
            assert any(isinstance(r["phases_ms"], dict) and r["phases_ms"] for r in records)
            continue
        assert any(extract(r, path, sql_type) is not None for r in records), f"{name} ({path}) reads nothing"


def test_the_phases_are_the_agents() -> None:
    assert PHASES == result.PHASES
    assert {f"phases_ms.{p}" for p in PHASES} <= {path for path, _ in READ_FIELDS.values()}


@pytest.mark.parametrize(
    ("record", "path", "sql_type", "expected"),
    [
        ({"a": {"b": 2}}, "a.b", "DOUBLE", 2.0),
        ({"a": {"b": True}}, "a.b", "DOUBLE", None),  # a bool is no number
        ({"a": {"b": "2"}}, "a.b", "DOUBLE", None),
        ({"a": 5}, "a.b", "DOUBLE", None),
        ({"a": None, "c": {"b": "x"}}, "a.b|c.b", "STRING", "x"),  # the first path with a value
        ({"a": {"b": "y"}, "c": {"b": "x"}}, "a.b|c.b", "STRING", "y"),
        ({"h": [{"r": 1.5}, {"r": 2.5}]}, "h[-1].r", "DOUBLE", 2.5),
        ({"h": [{"r": 1.5}, {}]}, "h[-1].r", "DOUBLE", None),  # the last element's, even when missing
        ({"h": []}, "h[-1].r", "DOUBLE", None),
        ({"n": 3}, "n", "BIGINT", 3),
        ({"n": 3.5}, "n", "BIGINT", None),
    ],
)
def test_extract(record: dict[str, Any], path: str, sql_type: str, expected: Any) -> None:
    assert extract(record, path, sql_type) == expected


@pytest.mark.parametrize(
    ("mutate", "valid"),
    [
        (lambda r: r, True),
        (lambda r: {**r, "error_type": None, "labels": {"x": "y"}, "extra_future_field": 1}, True),
        (lambda r: {k: v for k, v in r.items() if k != "result_id"}, False),
        (lambda r: {**r, "started_at_ms": "yesterday"}, False),
        (lambda r: {**r, "started_at_ms": True}, False),
        (lambda r: {**r, "success": "true"}, False),
        (lambda r: [r], False),
    ],
)
def test_validity_rule(mutate: Any, valid: bool) -> None:
    assert is_valid(mutate(golden("tcp"))) is valid


def test_specs_are_generated_from_the_one_table() -> None:
    fields = {}
    for part in fields_spec().split(","):
        name, _, rest = part.partition("=")
        path, _, sql_type = rest.rpartition(":")
        fields[name] = (path, sql_type)
    assert fields == READ_FIELDS  # what the job's Java parser (ResultParser) reads
    spec = dict(part.split(":") for part in required_spec().split(","))
    assert spec == REQUIRED  # what it requires
