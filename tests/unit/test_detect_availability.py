"""Availability: per-series up/down and the cross-POP correlation (outage, POP issue, local failure)."""

from __future__ import annotations

import pytest
from netobs_flink.detect.availability import AvailabilityConfig, Change, Correlator, SeriesAvailability

T0 = 1_700_000_000_000
CFG = AvailabilityConfig()


@pytest.mark.parametrize(
    ("results", "changes"),
    [
        ([True] * 5, []),
        ([True, False, True, False, True], []),  # single failures do not flip it
        ([True, False, False, False, True, True], [(2, True), (5, False)]),
    ],
)
def test_series_up_down(results: list[bool], changes: list[tuple[int, bool]]) -> None:
    series = SeriesAvailability("fra", "web", "t")
    got = []
    for i, ok in enumerate(results):
        change = series.observe(T0 + i * 1000, ok, CFG)
        if change is not None:
            got.append((i, change.down))
    assert got == changes


POPS = ["fra", "sin", "iad", "gru"]
TARGETS = ["a.test", "b.test", "c.test", "d.test"]


def correlator_with_members() -> Correlator:
    corr = Correlator()
    for pop in POPS:
        for target in TARGETS:
            corr.seen(pop, "web", target, T0)
    return corr


def down(pop: str, target: str, at_s: int = 10, up: bool = False) -> Change:
    return Change(pop, "web", target, not up, T0 + at_s * 1000, "timeout", "trace-" + pop)


@pytest.mark.parametrize(
    ("name", "changes", "active"),
    [
        ("one POP, one target: local", [down("fra", "a.test")], {("NetobsLocalFailure", "fra", "a.test")}),
        (
            "3 of 4 POPs, one target: outage",
            [down("fra", "a.test"), down("sin", "a.test"), down("iad", "a.test")],
            {("NetobsTargetOutage", "", "a.test")},
        ),
        (
            "2 of 4 POPs is already half: outage",
            [down("fra", "a.test"), down("sin", "a.test")],
            {("NetobsTargetOutage", "", "a.test")},
        ),
        (
            "one POP, three of four targets: POP issue",
            [down("fra", "a.test"), down("fra", "b.test"), down("fra", "c.test")],
            {("NetobsPopOrNetworkIssue", "fra", "")},
        ),
        (
            "outage recovers",
            [
                down("fra", "a.test"),
                down("sin", "a.test"),
                down("fra", "a.test", 20, up=True),
                down("sin", "a.test", 20, up=True),
            ],
            set(),
        ),
        (
            "outage shrinks to one POP: back to local",
            [down("fra", "a.test"), down("sin", "a.test"), down("sin", "a.test", 20, up=True)],
            {("NetobsLocalFailure", "fra", "a.test")},
        ),
    ],
)
def test_correlation_table(name: str, changes: list[Change], active: set[tuple[str, str, str]]) -> None:
    corr = correlator_with_members()
    firing: dict[str, tuple[str, str, str]] = {}
    for change in changes:
        for e in corr.apply(change):
            labels = e.all_labels()
            key = (e.alertname, labels.get("pop", ""), labels.get("target", ""))
            if e.status == "firing":
                assert e.fingerprint not in firing, "an alert fires once"
                firing[e.fingerprint] = key
            else:
                assert firing.pop(e.fingerprint) == key, "only a firing alert resolves"
    assert set(firing.values()) == active


def test_local_alert_is_superseded_by_the_outage_it_belonged_to() -> None:
    corr = correlator_with_members()
    corr.apply(down("fra", "a.test"))
    events = corr.apply(down("sin", "a.test", 15))
    assert [(e.alertname, e.status) for e in events] == [
        ("NetobsLocalFailure", "resolved"),
        ("NetobsTargetOutage", "firing"),
    ]
    resolved, outage = events
    assert resolved.annotations["superseded_by"] == "NetobsTargetOutage"
    assert outage.severity == "critical"
    assert outage.started_at_ms == T0 + 10_000  # when the first POP saw it
    assert outage.annotations["pops_failing"] == "fra,sin"
    assert outage.annotations["pops_total"] == "4"
    assert outage.annotations["trace_id"] == "trace-fra"


def test_a_second_episode_is_a_new_alert() -> None:
    """fra's local alert is superseded by the outage, then fires again when the outage shrinks back to fra:
    a new episode, with its own start, so no transition id repeats on the alerts topic."""
    corr = correlator_with_members()
    events = corr.apply(down("fra", "a.test", 10))
    events += corr.apply(down("sin", "a.test", 15))
    events += corr.apply(down("sin", "a.test", 30, up=True))
    local = [e for e in events if e.kind == "local_failure"]
    assert [(e.status, e.started_at_ms) for e in local] == [
        ("firing", T0 + 10_000),
        ("resolved", T0 + 10_000),
        ("firing", T0 + 15_000),  # when the first episode ended
    ]
    assert len({e.event_id for e in events}) == len(events)


def test_single_pop_target_is_never_an_outage() -> None:
    corr = Correlator()
    corr.seen("fra", "web", "only.test", T0)
    assert [e.alertname for e in corr.apply(down("fra", "only.test"))] == ["NetobsLocalFailure"]
