"""Alert events: stable fingerprints, Alertmanager v2 bodies, Kafka JSON round trip."""

from __future__ import annotations

import json

import pytest
from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent, event_from_dict, iso_utc, to_alertmanager

LABELS = {"pop": "fra", "check": "web", "target": "example.test"}


def event(status: str = FIRING, **overrides: object) -> AlertEvent:
    fields: dict[str, object] = {
        "kind": "latency_increase",
        "status": status,
        "severity": "warning",
        "at_ms": 1_700_000_060_000,
        "started_at_ms": 1_700_000_000_000,
        "labels": LABELS,
        "annotations": {"summary": "latency increased", "trace_id": "ab" * 16},
    }
    fields.update(overrides)
    return AlertEvent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (event(RESOLVED, at_ms=1_700_000_999_000), True),  # the resolution of the same alert
        (event(annotations={"summary": "other words"}), True),  # annotations are not identity
        (event(labels={**LABELS, "pop": "sin"}), False),
        (event(kind="latency_decrease"), False),
        (event(severity="critical"), False),
    ],
)
def test_fingerprint_is_the_label_set(other: AlertEvent, same: bool) -> None:
    assert (other.fingerprint == event().fingerprint) is same


@pytest.mark.parametrize(
    ("status", "ends_at"),
    [
        (FIRING, "2023-11-14T22:15:20.000Z"),  # now (22:13:20) + 120 s resend TTL
        (RESOLVED, "2023-11-14T22:14:20.000Z"),  # the resolution time
    ],
)
def test_alertmanager_body(status: str, ends_at: str) -> None:
    body = to_alertmanager(event(status), now_ms=1_700_000_000_000, resend_ttl_s=120, generator_url="http://x/")
    assert body["labels"] == {"alertname": "NetobsLatencyIncrease", "severity": "warning", **LABELS}
    assert body["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert body["endsAt"] == ends_at
    assert body["annotations"]["trace_id"] == "ab" * 16
    assert body["generatorURL"] == "http://x/"


def test_kafka_json_round_trip() -> None:
    original = event(RESOLVED)
    data = json.loads(original.to_json())
    assert data["event_id"] == f"{original.fingerprint}:resolved:1700000000000"
    assert event_from_dict(data) == original


@pytest.mark.parametrize(
    "overrides", [{"kind": "made_up"}, {"status": "pending"}, {"severity": "page"}], ids=["kind", "status", "severity"]
)
def test_invalid_events_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        event(**overrides)


def test_iso_utc_keeps_milliseconds() -> None:
    assert iso_utc(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
