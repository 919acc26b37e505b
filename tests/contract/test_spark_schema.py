"""The Spark job's mirror of the result record (netobs_spark.schema) matches netobs.result field for field."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest
from netobs_spark import schema

from netobs import result


def _expected(annotation: Any) -> schema.FieldType:
    """The Spark type a Python annotation of the agent's record maps to (None-ability is dropped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(args) == 1, f"unsupported union {annotation}"
        return _expected(args[0])
    if origin is list:
        return schema.ArrayOf(_expected(typing.get_args(annotation)[0]))
    if origin is dict:
        key, value = typing.get_args(annotation)
        assert key is str, f"map keys must be strings: {annotation}"
        return schema.MapOf(_expected(value))
    if dataclasses.is_dataclass(annotation):
        assert isinstance(annotation, type)
        hints = typing.get_type_hints(annotation)
        return schema.Struct(
            tuple(schema.Column(f.name, _expected(hints[f.name])) for f in dataclasses.fields(annotation))
        )
    scalars: dict[Any, schema.FieldType] = {
        str: schema.STRING,
        int: schema.LONG,
        float: schema.DOUBLE,
        bool: schema.BOOLEAN,
    }
    assert annotation in scalars, f"no Spark mapping for {annotation}"
    return scalars[annotation]


def _diff(path: str, want: schema.FieldType, got: schema.FieldType) -> list[str]:
    if isinstance(want, schema.Struct) and isinstance(got, schema.Struct):
        problems = []
        if want.names() != got.names():
            problems.append(f"{path}: fields {got.names()} != agent's {want.names()}")
        got_by_name = {c.name: c.type for c in got.fields}
        for c in want.fields:
            if c.name in got_by_name:
                problems += _diff(f"{path}.{c.name}", c.type, got_by_name[c.name])
        return problems
    if isinstance(want, schema.ArrayOf) and isinstance(got, schema.ArrayOf):
        return _diff(f"{path}[]", want.element, got.element)
    if isinstance(want, schema.MapOf) and isinstance(got, schema.MapOf):
        return _diff(f"{path}{{}}", want.value, got.value)
    return [] if want == got else [f"{path}: {got} != agent's {want}"]


def test_spark_schema_matches_the_agent_record() -> None:
    assert _diff("ProbeResult", _expected(result.ProbeResult), schema.RESULT_RECORD) == []


def test_schema_version_matches() -> None:
    assert schema.SCHEMA_VERSION == result.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("mutated", "fragment"),
    [
        (schema.Struct(schema.RESULT_RECORD.fields[:-1]), "fields"),
        (
            schema.Struct(
                (schema.Column("result_id", schema.LONG), *schema.RESULT_RECORD.fields[1:]),
            ),
            "ProbeResult.result_id",
        ),
    ],
)
def test_the_comparison_detects_drift(mutated: schema.Struct, fragment: str) -> None:
    problems = _diff("ProbeResult", _expected(result.ProbeResult), mutated)
    assert problems
    assert fragment in problems[0]


def test_ddl_names_every_top_level_field() -> None:
    ddl = schema.record_ddl(with_corrupt_column=True)
    for name in [f.name for f in dataclasses.fields(result.ProbeResult)] + ["_corrupt_record"]:
        assert f"`{name}` " in ddl
    assert "`icmp` STRUCT<`sent`: BIGINT, `received`: BIGINT, `loss_ratio`: DOUBLE" in ddl


def test_the_spark_package_does_not_import_pyspark_here() -> None:
    import sys

    assert "pyspark" not in sys.modules
