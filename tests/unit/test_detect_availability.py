"""Availability: per-series up/down and the cross-POP correlation (outage, POP issue, local failure)."""

from __future__ import annotations

import pickle

import pytest
from netobs_flink.detect.availability import (
    AvailabilityConfig,
    Change,
    Correlator,
    CorrelatorState,
    SeriesAvailability,
    join_state,
    split_state,
)

T0 = 1_700_000_000_000
CFG = AvailabilityConfig()


def _kind(change: Change) -> str:
    return "suspect" if change.suspect else "down" if change.down else "up"


@pytest.mark.parametrize(
    ("results", "changes"),
    [
        ([True] * 5, []),
        # single failures never make it down; it stays suspect until 2 successes in a row (no flapping)
        ([True, False, True, False, True], [(1, "suspect")]),
        ([True, False, True, True, True], [(1, "suspect"), (3, "up")]),
        ([True, False, False, False, True, True], [(1, "suspect"), (2, "down"), (5, "up")]),
        ([True, False, False, True, False, True, True], [(1, "suspect"), (2, "down"), (6, "up")]),
        ([False, True, True, False, False], [(0, "suspect"), (2, "up"), (3, "suspect"), (4, "down")]),
    ],
)
def test_series_up_down(results: list[bool], changes: list[tuple[int, str]]) -> None:
    series = SeriesAvailability("fra", "web", "t")
    got = []
    for i, ok in enumerate(results):
        change = series.observe(T0 + i * 1000, ok, CFG)
        if change is not None:
            got.append((i, _kind(change)))
    assert got == changes


def test_series_with_down_after_one_is_never_suspect() -> None:
    series = SeriesAvailability("fra", "web", "t")
    config = AvailabilityConfig(down_after=1)
    changes = [series.observe(T0 + i * 1000, ok, config) for i, ok in enumerate([True, False, True, True])]
    assert [(i, _kind(c)) for i, c in enumerate(changes) if c is not None] == [(1, "down"), (3, "up")]


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


def suspect(pop: str, target: str, at_s: int = 5) -> Change:
    """The first failed result of a series (not yet ``down_after`` failures)."""
    return Change(pop, "web", target, True, T0 + at_s * 1000, "timeout", "trace-" + pop, suspect=True)


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
        ("one failure from one POP never pages", [suspect("fra", "a.test")], set()),
        (
            "single failures from every POP, none confirmed: nothing",
            [suspect(p, "a.test") for p in POPS],
            set(),
        ),
        (
            "one POP down + one suspect of 4: outage",
            [suspect("sin", "a.test", 7), down("fra", "a.test")],
            {("NetobsTargetOutage", "", "a.test")},
        ),
        (
            "the suspect may come after the confirmed POP",
            [down("fra", "a.test"), suspect("sin", "a.test", 11)],
            {("NetobsTargetOutage", "", "a.test")},
        ),
        (
            "a POP suspect then down counts once",
            [suspect("fra", "a.test", 5), down("fra", "a.test")],
            {("NetobsLocalFailure", "fra", "a.test")},
        ),
        (
            "the suspect recovers: back to local",
            [suspect("sin", "a.test", 7), down("fra", "a.test"), down("sin", "a.test", 20, up=True)],
            {("NetobsLocalFailure", "fra", "a.test")},
        ),
        (
            "a suspect on another target corroborates nothing",
            [suspect("sin", "b.test", 7), down("fra", "a.test")],
            {("NetobsLocalFailure", "fra", "a.test")},
        ),
        (
            "suspects do not make a POP issue",
            [down("fra", "a.test"), suspect("fra", "b.test"), suspect("fra", "c.test")],
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


@pytest.mark.parametrize(
    ("suspects", "outage"),
    [(1, False), (2, True)],  # 6 POPs: an outage needs 3 failing, one of them confirmed
)
def test_suspects_count_towards_the_ratio(suspects: int, outage: bool) -> None:
    pops = ["p1", "p2", "p3", "p4", "p5", "p6"]
    corr = Correlator()
    for pop in pops:
        corr.seen(pop, "web", "a.test", T0)
    for pop in pops[1 : 1 + suspects]:
        corr.apply(suspect(pop, "a.test", 6))
    events = corr.apply(down("p1", "a.test"))
    assert [e.alertname for e in events] == ["NetobsTargetOutage" if outage else "NetobsLocalFailure"]


def test_outage_from_corroboration_starts_at_the_first_failure() -> None:
    corr = correlator_with_members()
    assert corr.apply(suspect("fra", "a.test", 5)) == []
    assert corr.apply(suspect("sin", "a.test", 7)) == []
    events = corr.apply(down("fra", "a.test", 10))
    assert [(e.alertname, e.status) for e in events] == [("NetobsTargetOutage", "firing")]
    outage = events[0]
    assert outage.at_ms == T0 + 10_000  # fires when the first POP is confirmed, one interval in
    assert outage.started_at_ms == T0 + 5_000  # the first failed result
    assert outage.annotations["pops_failing"] == "fra,sin"
    assert outage.annotations["pops_confirmed"] == "fra"
    assert corr.apply(down("sin", "a.test", 12)) == [], "sin confirmed: the same outage, no new event"


def test_a_suspect_that_stopped_reporting_expires() -> None:
    corr = correlator_with_members()
    corr.apply(suspect("sin", "a.test", 5))
    late_s = 10 + int(CFG.member_ttl_s)
    for pop in ["fra", "iad", "gru"]:
        corr.seen(pop, "web", "a.test", T0 + late_s * 1000)
    events = corr.apply(down("fra", "a.test", late_s))
    assert [e.alertname for e in events] == ["NetobsLocalFailure"]
    assert corr.state.suspect == {}


def test_correlator_state_of_an_older_job_restores() -> None:
    old = CorrelatorState()
    data = dict(old.__dict__)
    del data["suspect"]  # pickled before suspects existed
    restored = CorrelatorState.__new__(CorrelatorState)
    restored.__setstate__(data)
    assert restored.suspect == {}
    assert pickle.loads(pickle.dumps(old)) == old


def test_state_stored_in_two_parts_comes_back_whole() -> None:
    corr = correlator_with_members()
    corr.apply(suspect("sin", "a.test", 7))
    corr.apply(down("fra", "a.test"))
    core, members = split_state(corr.state)
    assert core.seen == {} and members == corr.state.seen
    assert len(pickle.dumps(core)) < len(pickle.dumps(corr.state))
    restored = join_state(pickle.loads(pickle.dumps(core)), pickle.loads(pickle.dumps(members)))
    assert restored == corr.state
    whole = pickle.loads(pickle.dumps(corr.state))  # stored whole by an older job: no members part
    assert join_state(whole, None) == corr.state


def test_the_correlator_counts_the_members_it_adds() -> None:
    corr = correlator_with_members()
    assert corr.members_added == len(POPS) * len(TARGETS)
    corr.seen("fra", "web", "a.test", T0 + 60_000)  # a refresh, not a new member
    corr.apply(down("new", "a.test"))
    assert corr.members_added == len(POPS) * len(TARGETS) + 1
