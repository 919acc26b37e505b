"""The per-result hot path the ICMP benchmark optimised keeps its behaviour: the record's dict/JSON form,
and counters summed before they reach the OpenTelemetry SDK."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from netobs.result import CHECK_TYPES, ErrorType, IcmpResult, ProbeResult, result_from_dict
from netobs.telemetry import Telemetry
from tests.contract.exemplars import result_of_type


def _icmp_result(**kw: Any) -> ProbeResult:
    base: dict[str, Any] = {
        "result_id": "r1",
        "started_at_ms": 1,
        "duration_ms": 0.5,
        "agent_id": "a",
        "pop": "p",
        "check_name": "ping",
        "check_type": "icmp",
        "target": "127.0.0.1",
        "success": True,
        "icmp": IcmpResult(sent=3, received=2, loss_ratio=1 / 3, rtts_ms=[0.1, None, 0.2]),
    }
    return ProbeResult(**(base | kw))


@pytest.mark.parametrize("check_type", CHECK_TYPES)
def test_to_dict_equals_dataclasses_asdict(check_type: str) -> None:
    result = result_of_type(check_type)
    assert result.to_dict() == dataclasses.asdict(result)
    assert json.loads(result.to_json()) == dataclasses.asdict(result)
    assert result_from_dict(json.loads(result.to_json())) == result


def test_to_dict_copies_containers_and_keeps_key_order() -> None:
    result = _icmp_result(labels={"b": "2", "a": "1"}, phases_ms={"dns": 1.0})
    plain = result.to_dict()
    assert list(plain) == [f.name for f in dataclasses.fields(ProbeResult)]
    assert list(plain["icmp"]) == [f.name for f in dataclasses.fields(IcmpResult)]
    plain["labels"]["c"] = "3"
    plain["icmp"]["rtts_ms"].append(9.9)
    assert result.labels == {"b": "2", "a": "1"}  # a copy, as with asdict
    assert result.icmp is not None and result.icmp.rtts_ms == [0.1, None, 0.2]
    assert result.to_json().startswith('{"result_id":"r1","started_at_ms":1,')


def test_to_json_writes_non_finite_numbers_as_null_and_keeps_the_record() -> None:
    text = _icmp_result(duration_ms=float("nan"), phases_ms={"dns": float("inf")}).to_json()
    plain = json.loads(text)
    assert plain["duration_ms"] is None
    assert plain["phases_ms"] == {"dns": None}
    assert plain["icmp"]["rtts_ms"] == [0.1, None, 0.2]


def test_to_json_keeps_non_ascii_text() -> None:
    result = _icmp_result(error_message="délai dépassé: 東京", labels={"site": "Zürich"})
    text = result.to_json()
    assert '"error_message":"délai dépassé: 東京"' in text
    assert json.loads(text)["labels"] == {"site": "Zürich"}


def _sum_points(telemetry: Any, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
    return {
        tuple(sorted(attrs.items())): point.value
        for attrs, point in telemetry.metric_points().get(name, [])
        if hasattr(point, "value")
    }


def test_summed_counters_report_cumulative_sums_per_attribute_set() -> None:
    telemetry = Telemetry.in_memory()
    telemetry.record(_icmp_result())
    telemetry.record(_icmp_result())
    telemetry.record(_icmp_result(success=False, error_type=str(ErrorType.PACKET_LOSS), target="127.0.0.2"))
    base = (("netobs.check.name", "ping"), ("netobs.check.type", "icmp"))
    runs = _sum_points(telemetry, "netobs.probe.runs")
    assert runs == {
        (*base, ("netobs.probe.success", True), ("netobs.target", "127.0.0.1")): 2,
        (
            ("error.type", "packet_loss"),
            *base,
            ("netobs.probe.success", False),
            ("netobs.target", "127.0.0.2"),
        ): 1,
    }
    sent = _sum_points(telemetry, "netobs.icmp.packets.sent")
    lost = _sum_points(telemetry, "netobs.icmp.packets.lost")
    assert sent[(*base, ("netobs.target", "127.0.0.1"))] == 6
    assert lost[(*base, ("netobs.target", "127.0.0.1"))] == 2
    assert lost[(*base, ("netobs.target", "127.0.0.2"))] == 1
    # Collected twice: still cumulative, not reset by the collection.
    telemetry.record(_icmp_result())
    assert _sum_points(telemetry, "netobs.icmp.packets.sent")[(*base, ("netobs.target", "127.0.0.1"))] == 9
    telemetry.shutdown()
