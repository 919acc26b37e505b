"""SLO file validation: every rule has a case, every error names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from netobs_spark.slo import LatencyObjective, SloConfig, SloError, load_slo_config, parse_slo_config, slo_for

VALID = """
slos:
  - check: web
    availability_percent: 99.9
    latency: {threshold_ms: 300, percent: 99}
  - check: web
    targets: [https://b.example/]
    availability_percent: 99
maintenance:
  - start: 2026-11-20T02:00:00Z
    end: "2026-11-20T03:30:00+01:00"
    checks: [web]
    reason: upgrade
"""


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(VALID)
    config = load_slo_config(path)
    assert len(config.slos) == 2
    assert config.slos[0].latency == LatencyObjective(300.0, 99.0)
    assert config.slos[1].targets == ("https://b.example/",)
    window = config.maintenance[0]
    assert window.start_ms == 1_795_140_000_000  # 2026-11-20T02:00:00Z (calendar.timegm)
    assert window.end_ms == window.start_ms + 30 * 60 * 1000  # 03:30+01:00 is 02:30Z
    assert window.checks == ("web",)
    assert window.pops is None


def test_target_specific_slo_wins_over_the_check_wide_one() -> None:
    config = parse_slo_config(
        {
            "slos": [
                {"check": "web", "availability_percent": 99.9},
                {"check": "web", "targets": ["b"], "availability_percent": 95},
            ]
        }
    )
    a, b = slo_for(config, "web", "a"), slo_for(config, "web", "b")
    assert a is not None and a.availability_percent == 99.9
    assert b is not None and b.availability_percent == 95.0
    assert slo_for(config, "dns", "a") is None


def test_an_empty_file_means_no_slos() -> None:
    assert parse_slo_config(None) == SloConfig()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1], ": must be a mapping"),
        ({"slo": []}, "slo: unknown key; allowed: ['maintenance', 'slos']"),
        ({"slos": {"check": "x"}}, "slos: must be a list"),
        ({"slos": [{"availability_percent": 99}]}, "slos[0].check: is required"),
        ({"slos": [{"check": "", "availability_percent": 99}]}, "slos[0].check: must be a non-empty string"),
        ({"slos": [{"check": "a"}]}, "slos[0]: declares no objective"),
        ({"slos": [{"check": "a", "availability_percent": 100}]}, "slos[0].availability_percent: must be a number"),
        ({"slos": [{"check": "a", "availability_percent": "99"}]}, "slos[0].availability_percent: must be a number"),
        ({"slos": [{"check": "a", "availability_percent": True}]}, "slos[0].availability_percent: must be a number"),
        ({"slos": [{"check": "a", "latency": {"threshold_ms": 0, "percent": 99}}]}, "slos[0].latency.threshold_ms"),
        ({"slos": [{"check": "a", "latency": {"threshold_ms": 10}}]}, "slos[0].latency.percent: is required"),
        (
            {"slos": [{"check": "a", "latency": {"threshold_ms": 1, "percent": 9, "p": 1}}]},
            "slos[0].latency.p: unknown",
        ),
        ({"slos": [{"check": "a", "targets": [], "availability_percent": 99}]}, "slos[0].targets: must be a non-empty"),
        ({"slos": [{"check": "a", "colour": "red", "availability_percent": 9}]}, "slos[0].colour: unknown key"),
        (
            {"slos": [{"check": "a", "availability_percent": 9}, {"check": "a", "availability_percent": 8}]},
            "slos[1]: check 'a' (every target) already has an SLO at slos[0]",
        ),
        ({"maintenance": [{"start": "2026-11-20T02:00:00Z"}]}, "maintenance[0].end: is required"),
        ({"maintenance": [{"start": "2026-11-20T02:00:00", "end": 5}]}, "maintenance[0].start: must be an ISO 8601"),
        ({"maintenance": [{"start": "tomorrow", "end": 5}]}, "maintenance[0].start: must be an ISO 8601"),
        ({"maintenance": [{"start": 10, "end": 5}]}, "maintenance[0].end: must be after start"),
        ({"maintenance": [{"start": 1, "end": 5, "pops": "fra1"}]}, "maintenance[0].pops: must be a non-empty list"),
        ({"maintenance": [{"start": 1, "end": 5, "reason": 3}]}, "maintenance[0].reason: must be a string"),
    ],
)
def test_invalid_files_name_the_field(data: Any, expected: str) -> None:
    with pytest.raises(SloError) as caught:
        parse_slo_config(data, "slo.yaml")
    assert any(p.startswith(expected) or expected in p for p in caught.value.problems), caught.value.problems
    assert str(caught.value).startswith("slo.yaml: ")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SloError) as caught:
        parse_slo_config({"slos": [{"check": "a", "availability_percent": 0}, {"availability_percent": 1}]})
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("slos: [", "slo.yaml: line 1"), ("slos:\n  - check: a\n    availability_percent: 200\n", "slo.yaml: slos[0]")],
)
def test_file_errors_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(text)
    with pytest.raises(SloError) as caught:
        load_slo_config(path)
    assert str(caught.value).startswith(str(tmp_path / expected))


def test_a_missing_file_is_an_slo_error(tmp_path: Path) -> None:
    with pytest.raises(SloError, match="cannot read"):
        load_slo_config(tmp_path / "absent.yaml")
