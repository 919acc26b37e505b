"""The hand-written protobuf pieces agree with the protobuf library's own encoding."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from netobs._protowire import any_value, key_value, varint


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16_383, 16_384, 2**21 - 1, 2**21, 2**35 + 7, 2**63, 2**64 - 1])
def test_varint_is_protobufs(n: int) -> None:
    message = KeyValue(value=AnyValue(int_value=n - 2**64 if n >= 2**63 else n))
    assert message.SerializeToString().endswith(varint(n))
    assert AnyValue.FromString(b"\x18" + varint(n)).int_value == (n - 2**64 if n >= 2**63 else n)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ascii",
        "Zürich 東京",
        True,
        False,
        0,
        -1,
        2**40,
        -(2**63),
        0.5,
        -1e-9,
        b"\x00\xff",
        ("a", "b"),
        [1, 2.5, True],
    ],
)
def test_any_value_and_key_value_parse_back_to_the_value(value: Any) -> None:
    parsed = KeyValue.FromString(key_value("k", value))
    assert parsed.key == "k"
    kind = parsed.value.WhichOneof("value")
    if kind == "array_value":
        got: Any = [getattr(v, v.WhichOneof("value")) for v in parsed.value.array_value.values]
        assert got == list(value)
    else:
        assert getattr(parsed.value, kind) == value and type(getattr(parsed.value, kind)) is type(value)
    assert AnyValue.FromString(any_value(value)) == parsed.value


def test_unsupported_values_raise_type_error() -> None:
    with pytest.raises(TypeError, match="unsupported attribute value"):
        any_value({"k": 1})
