"""Traceroute path change: against the dominant path, severity from the RTT change."""

from __future__ import annotations

import pytest
from netobs_flink.detect.path import PathChangeDetector, PathConfig

T0 = 1_700_000_000_000


def feed(paths: list[tuple[str, float]], config: PathConfig | None = None) -> list[tuple[int, str, str, str]]:
    det = PathChangeDetector(config, labels={"pop": "fra", "check": "tr", "target": "t"})
    return [
        (i, e.status, e.severity, e.annotations.get("summary", ""))
        for i, (h, rtt) in enumerate(paths)
        for e in det.observe(T0 + i * 60_000, h, rtt)
    ]


STABLE = [("A", 10.0)] * 10


@pytest.mark.parametrize(
    ("name", "paths", "expected"),
    [
        ("stable", STABLE * 3, []),
        ("one-off detour is not a change", [*STABLE, ("B", 30.0), *STABLE], []),
        ("ECMP alternation never settles on one path", [("A", 10.0), ("B", 10.0)] * 20, []),
        (
            "detour with the same latency",
            [*STABLE, *[("B", 10.5)] * 3, *STABLE],
            [(11, "firing", "info", "traceroute path changed"), (14, "resolved", "info", "back on the dominant path")],
        ),
        (
            "detour that adds 40 ms",
            [*STABLE, *[("B", 50.0)] * 3, *STABLE],
            [
                (11, "firing", "warning", "traceroute path changed with a latency change"),
                (14, "resolved", "warning", "back on the dominant path"),
            ],
        ),
    ],
)
def test_path_table(name: str, paths: list[tuple[str, float]], expected: list[tuple[int, str, str, str]]) -> None:
    assert feed(paths) == expected


def test_permanent_change_becomes_the_new_dominant_path() -> None:
    events = feed([*STABLE, *[("B", 10.0)] * 40], PathConfig(half_life_s=600))
    assert [(s, summary) for _, s, _, summary in events] == [
        ("firing", "traceroute path changed"),
        ("resolved", "the new path became the dominant one"),
    ]
