"""The result record contract: golden JSON per check type; any drift in keys or types fails.

To accept a deliberate, additive change: ``NETOBS_UPDATE_GOLDENS=1 pytest tests/contract`` and commit
the goldens (the Flink and Spark mirrors are checked against the same files).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from netobs.result import CHECK_TYPES, SCHEMA_VERSION, ErrorType, result_from_dict
from tests.contract.exemplars import result_of_type

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NETOBS_UPDATE_GOLDENS") == "1"


def shape(value: Any, path: str = "$") -> dict[str, str]:
    """Key path -> JSON type, for every value in a JSON document (lists by their first item)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        out[path] = "object"
        for key, item in value.items():
            out.update(shape(item, f"{path}.{key}"))
    elif isinstance(value, list):
        out[path] = "array"
        if value:
            out.update(shape(value[0], f"{path}[]"))
    elif isinstance(value, bool):
        out[path] = "boolean"
    elif isinstance(value, int | float):
        out[path] = "number"
    elif isinstance(value, str):
        out[path] = "string"
    else:
        out[path] = "null"
    return out


def _golden(check_type: str) -> Any:
    return json.loads((GOLDEN / f"result_{check_type}.json").read_text())


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_record_shape_matches_golden(check_type: str) -> None:
    produced = json.loads(result_of_type(check_type).to_json())
    path = GOLDEN / f"result_{check_type}.json"
    if UPDATE:
        path.write_text(json.dumps(produced, indent=2) + "\n")
    golden = _golden(check_type)
    assert shape(produced) == shape(golden), f"result record drifted from {path.name}"


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_golden_round_trips_through_the_code(check_type: str) -> None:
    golden = _golden(check_type)
    rebuilt = json.loads(result_from_dict(golden).to_json())
    assert rebuilt == golden


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_only_the_runs_type_has_a_sub_record(check_type: str) -> None:
    golden = _golden(check_type)
    assert golden["check_type"] == check_type
    assert golden["schema_version"] == SCHEMA_VERSION
    for other in CHECK_TYPES:
        assert (golden[other] is None) == (other != check_type)


def test_error_types_are_a_closed_low_cardinality_set() -> None:
    values = [e.value for e in ErrorType]
    assert len(values) == len(set(values)) <= 20
    path = GOLDEN / "error_types.json"
    if UPDATE:
        path.write_text(json.dumps(values, indent=2) + "\n")
    assert json.loads(path.read_text()) == values


def test_unknown_keys_from_a_newer_minor_version_are_ignored() -> None:
    golden = _golden("tcp")
    golden["a_field_from_the_future"] = 1
    assert result_from_dict(golden).target == golden["target"]
