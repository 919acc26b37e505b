"""The Flink job's mirror of the result record against the contract's golden records (fails on drift)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from netobs_flink.record import READ_FIELDS, REQUIRED, is_valid, required_spec, source_columns_sql, valid_sql

GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "golden"
CHECK_TYPES = ("icmp", "dns", "http", "tcp", "traceroute")
SQL_TO_JSON: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "BIGINT": (int,),
    "DOUBLE": (int, float),
    "BOOLEAN": (bool,),
}


def golden(check_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"result_{check_type}.json").read_text())
    return data


def _check(sql_type: str, value: Any, path: str) -> None:
    """Assert that a JSON value fits the Flink SQL type the job declares for it."""
    if value is None:
        return
    if sql_type in SQL_TO_JSON:
        assert isinstance(value, SQL_TO_JSON[sql_type]), f"{path}: {value!r} is not {sql_type}"
        return
    if sql_type.startswith("MAP<STRING, DOUBLE>"):
        assert isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values()), path
        return
    match = re.fullmatch(r"ROW<(.*)>", sql_type)
    assert match, f"unhandled type {sql_type}"
    assert isinstance(value, dict), f"{path}: not an object"
    for name, inner in _row_fields(match.group(1)):
        assert name in value, f"{path}.{name}: the job reads it, the record has no such field"
        if inner.startswith("ARRAY<"):
            element = inner[len("ARRAY<") : -1]
            assert isinstance(value[name], list), f"{path}.{name}: not a list"
            for i, item in enumerate(value[name]):
                _check(element, item, f"{path}.{name}[{i}]")
        else:
            _check(inner, value[name], f"{path}.{name}")


def _row_fields(body: str) -> list[tuple[str, str]]:
    """Split ``\\`a\\` T1, \\`b\\` ROW<...>`` at top-level commas."""
    fields, depth, current = [], 0, ""
    for ch in body + ",":
        if ch == "," and depth == 0:
            name, _, sql_type = current.strip().partition(" ")
            fields.append((name.strip("`"), sql_type.strip()))
            current = ""
            continue
        depth += ch == "<"
        depth -= ch == ">"
        current += ch
    return fields


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_golden_records_fit_what_the_job_reads(check_type: str) -> None:
    record = golden(check_type)
    for name, sql_type in READ_FIELDS.items():
        assert name in record, f"the job reads {name!r}; the {check_type} golden record has no such field"
        _check(sql_type, record[name], name)
    assert is_valid(record)


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


def test_sql_is_generated_from_the_one_table() -> None:
    columns = source_columns_sql()
    assert all(f"`{name}`" in columns for name in READ_FIELDS)
    predicate = valid_sql()
    assert all(f"'$.{name}'" in predicate for name in REQUIRED)
    assert "TRY_CAST(JSON_VALUE(`raw`, '$.started_at_ms') AS BIGINT) IS NOT NULL" in predicate
    spec = dict(part.split(":") for part in required_spec().split(","))
    assert spec == REQUIRED  # what the job's Java check (ResultId) enforces
