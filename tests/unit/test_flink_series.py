"""Per-series detection on window summaries (the logic the job's keyed function runs) and the
Alertmanager client with a fake transport."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest
from netobs_flink.alertmanager import AlertmanagerClient, AlertmanagerError
from netobs_flink.detect.alert import AlertEvent
from netobs_flink.detect.availability import Change, Heartbeat
from netobs_flink.detect.latency import LatencyConfig
from netobs_flink.series import (
    FIELD_SEP,
    LINE_FIELDS,
    LINE_SEP,
    DetectorConfigs,
    LiveBudget,
    SeriesDetectors,
    SeriesState,
    WindowSummary,
    WriteBehindSeries,
    configs_from_dict,
    configs_to_dict,
    parse_batch,
    parse_line,
    process_window,
)

T0 = 1_700_000_000_000
CONFIGS = replace(DetectorConfigs(), latency=replace(LatencyConfig(), warmup_s=60, season_s=0))


def window(i: int, **overrides: object) -> WindowSummary:
    fields: dict[str, object] = {
        "agent_id": "agent-fra",
        "pop": "fra",
        "check_name": "web",
        "check_type": "http",
        "target": "t.test",
        "first_ms": T0 + i * 1000,
        "last_ms": T0 + i * 1000,
        "count": 1,
        "failures": 0,
        "last_success": True,
        "total_ms": 20.0 + (i % 3) * 0.5,
        "phases_ms": {"connect": 6.0 + (i % 2) * 0.2},
        "trace_id": f"tr{i}",
    }
    fields.update(overrides)
    return WindowSummary(**fields)  # type: ignore[arg-type]


def run(windows: list[WindowSummary]) -> tuple[list[tuple[int, AlertEvent]], list[tuple[int, object]]]:
    state = SeriesState()
    alerts, outputs = [], []
    for i, w in enumerate(windows):
        state = pickle.loads(pickle.dumps(state))  # as Flink's keyed state does between windows
        a, o = process_window(state, w, CONFIGS)
        alerts += [(i, e) for e in a]
        outputs += [(i, x) for x in o]
    return alerts, outputs


def test_latency_shift_fires_on_total_and_the_phase_that_moved() -> None:
    windows = [window(i) for i in range(100)] + [window(i, total_ms=120.0) for i in range(100, 104)]
    alerts, _ = run(windows)
    fired = {(e.kind, e.labels["phase"]) for _, e in alerts if e.status == "firing"}
    assert fired == {("latency_increase", "total")}, "connect did not move"
    first = alerts[0][1]
    assert first.labels["pop"] == "fra" and first.annotations["trace_id"] == "tr100"


@pytest.mark.parametrize(
    ("failing", "changes"),
    [
        ([], []),
        ([50], [(50, "suspect"), (52, "up")]),  # one failed window is not down, only suspect
        ([50, 51, 52], [(50, "suspect"), (51, "down"), (54, "up")]),  # down after 2, up after 2 good windows
    ],
)
def test_availability_changes(failing: list[int], changes: list[tuple[int, str]]) -> None:
    windows = [
        window(i, failures=1, last_success=False, total_ms=None, error_type="timeout") if i in failing else window(i)
        for i in range(60)
    ]
    _, outputs = run(windows)
    got = [(i, "suspect" if o.suspect else "down" if o.down else "up") for i, o in outputs if isinstance(o, Change)]
    assert got == changes


def test_a_window_of_failures_is_suspect_then_down() -> None:
    """Several failed results in one window: both changes, suspect first (the correlator needs the order)."""
    failed = window(5, count=3, failures=3, last_success=False, total_ms=None)
    _, outputs = run([*(window(i) for i in range(5)), failed])
    assert [(o.down, o.suspect) for _, o in outputs if isinstance(o, Change)] == [(True, True), (True, False)]


def test_heartbeats_tell_the_correlator_which_pops_report() -> None:
    _, outputs = run([window(i) for i in range(130)])
    beats = [i for i, o in outputs if isinstance(o, Heartbeat)]
    assert beats == [0, 60, 120]  # every heartbeat_s (60 s) of event time


def test_tls_and_path_windows() -> None:
    windows = [window(i, cert_expiry_days=30.0 - i, cert_subject="CN=t.test") for i in range(20)]
    alerts, _ = run(windows)
    assert [(i, e.kind, e.severity) for i, e in alerts] == [
        (17, "tls_cert_expiry", "warning"),
    ]
    tr = [window(i, check_type="traceroute", path_hash="A" if i < 20 else "B", path_rtt_ms=10.0) for i in range(24)]
    alerts, _ = run(tr)
    assert [(i, e.kind) for i, e in alerts] == [(21, "path_change")], "traceroute: no latency alerts"


def test_cached_detectors_decide_as_fresh_ones_and_follow_a_label_change() -> None:
    windows = [window(i, total_ms=20.0 + (i % 3) * 0.5 + (40.0 if 80 <= i < 90 else 0.0)) for i in range(120)]
    fresh, _ = run(windows)  # detectors built for every window, on a state unpickled for every window
    state, detectors, cached = SeriesState(), None, []
    for i, w in enumerate(windows):
        if detectors is None:
            detectors = SeriesDetectors(state, w, CONFIGS)
        a, _ = process_window(state, w, CONFIGS, detectors)
        cached += [(i, e) for e in a]
    assert [(i, e.to_json()) for i, e in cached] == [(i, e.to_json()) for i, e in fresh]
    assert [e.labels["phase"] for _, e in fresh] == ["total", "total"], "the 40 ms shift fires and resolves"

    assert detectors is not None and detectors.fits(state, windows[0])
    moved = window(120, pop="ams")  # the agent moved (its config changed): labels must follow
    assert not detectors.fits(state, moved) and not detectors.fits(SeriesState(), windows[0])
    live = WriteBehindSeries(_Store(), CONFIGS)
    live.process(windows[0])
    live.process(moved)
    rebuilt = live.live[moved.key].detectors
    assert rebuilt is not None and rebuilt.pop == "ams"


class _Store:
    def __init__(self) -> None:
        self.saved: dict[str, SeriesState] = {}

    def get(self, key: str) -> SeriesState | None:
        return self.saved.get(key)

    def put(self, key: str, state: SeriesState) -> None:
        self.saved[key] = state


def test_configs_round_trip_as_plain_data() -> None:
    data = configs_to_dict(CONFIGS)
    assert json.loads(json.dumps(data)) == data
    assert configs_from_dict(data) == CONFIGS


@pytest.mark.parametrize(
    ("status", "raises"),
    [(200, False), (400, True)],
)
def test_alertmanager_client_posts_v2_alerts(status: int, raises: bool) -> None:
    calls: list[tuple[str, object]] = []

    def post(url: str, body: bytes, timeout_s: float) -> int:
        calls.append((url, json.loads(body)))
        return status

    client = AlertmanagerClient("http://am:9093/", resend_ttl_s=60, post=post)
    event = AlertEvent("target_outage", "firing", "critical", T0, T0, {"check": "web", "target": "t"}, {})
    if raises:
        with pytest.raises(AlertmanagerError, match="HTTP 400"):
            client.send([event], now_ms=T0)
    else:
        client.send([event], now_ms=T0)
    url, body = calls[0]
    assert url == "http://am:9093/api/v2/alerts"
    assert body == [
        {
            "labels": {"alertname": "NetobsTargetOutage", "severity": "critical", "check": "web", "target": "t"},
            "annotations": {},
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:14:20.000Z",
        }
    ]


def test_alertmanager_client_transport_failure() -> None:
    def post(url: str, body: bytes, timeout_s: float) -> int:
        raise ConnectionRefusedError("refused")

    event = AlertEvent("target_outage", "resolved", "critical", T0, T0, {"target": "t"}, {})
    with pytest.raises(AlertmanagerError, match="refused"):
        AlertmanagerClient("http://127.0.0.1:1", post=post).send([event], now_ms=T0)


def _line(**overrides: str) -> str:
    fields = {name: "" for name in LINE_FIELDS}
    fields.update(
        agent_id="agent-fra",
        pop="fra",
        check_name="web",
        check_type="http",
        target="t.test",
        first_ms=str(T0),
        last_ms=str(T0 + 400),
        n="2",
        failures="1",
        last_success="FALSE",
        total_ms="20.5",
        connect_ms="6.0",
        ttfb_ms="1.45E1",
        trace_id="tr",
        failed_trace_id="tf",
    )
    fields.update(overrides)
    return FIELD_SEP.join(fields[name] for name in LINE_FIELDS)


def test_a_window_line_parses_to_its_summary() -> None:
    w = parse_line(_line())
    assert w == WindowSummary(
        agent_id="agent-fra",
        pop="fra",
        check_name="web",
        check_type="http",
        target="t.test",
        first_ms=T0,
        last_ms=T0 + 400,
        count=2,
        failures=1,
        last_success=False,
        total_ms=20.5,
        phases_ms={"connect": 6.0, "ttfb": 14.5},
        trace_id="tr",
        failed_trace_id="tf",
    )
    icmp = parse_line(_line(check_type="icmp", loss_ratio="0.25", last_success="TRUE", total_ms="", connect_ms=""))
    assert (icmp.loss_ratio, icmp.last_success, icmp.total_ms, icmp.phases_ms) == (0.25, True, None, {"ttfb": 14.5})


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (_line() + FIELD_SEP + "extra", "has 25 fields, expected 24"),
        ("", "has 1 fields"),
        (_line(target=""), "without agent_id, check_name or target"),
        (_line(n="two"), "bad number"),
        (_line(total_ms="fast"), "bad number"),
    ],
)
def test_a_malformed_window_line_is_a_clear_error(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_line(line)


def test_a_batch_skips_its_malformed_lines_and_keeps_the_rest() -> None:
    errors: list[ValueError] = []
    batch = [_line(target="a.test"), "garbage", None, _line(target="b.test"), _line() + LINE_SEP + _line()]
    assert [w.target for w in parse_batch(batch, errors.append)] == ["a.test", "b.test"]
    assert [str(e)[:40] for e in errors] == [
        "window line has 1 fields, expected 24: '",
        "window line is NULL",
        "window line has 47 fields, expected 24: ",
    ]


class PickledStore:
    """What Flink MapState does with a PICKLED_BYTE_ARRAY value: bytes in, a new object out."""

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.puts = 0

    def get(self, key: str) -> SeriesState | None:
        raw = self.data.get(key)
        return None if raw is None else pickle.loads(raw)

    def put(self, key: str, state: SeriesState) -> None:
        self.puts += 1
        self.data[key] = pickle.dumps(state)


def test_write_behind_writes_with_every_output_and_every_n_windows() -> None:
    store = PickledStore()
    cache = WriteBehindSeries(store, CONFIGS, persist_every=10)
    failing = {30, 31}
    written = []
    for i in range(60):
        w = window(i, failures=1, last_success=False, total_ms=None) if i in failing else window(i)
        before = store.puts
        cache.process(w)
        if store.puts > before:
            written.append(i)
    # heartbeat at 0, suspect at 30, down at 31, up at 33; 10 windows after the last write otherwise
    assert written == [0, 10, 20, 30, 31, 33, 43, 53]
    assert pickle.loads(store.data["agent-fra|web|t.test"]).availability.down is False


def _alerts_through_restart(windows: list[WindowSummary], crash_after: int | None) -> list[str]:
    """Alert event ids sent when the job checkpoints after ``crash_after`` windows, dies a few windows
    later (what it sent after the checkpoint is rolled back, like the transactional Kafka sink), and a
    new job restores the checkpoint and gets the windows after it again."""
    store = PickledStore()
    cache = WriteBehindSeries(store, CONFIGS, persist_every=8)
    sent: list[str] = []
    for i, w in enumerate(windows):
        if i == crash_after:
            checkpoint, committed = dict(store.data), list(sent)
            for extra in windows[i : i + 5]:  # processed, then lost with the crash
                cache.process(extra)
            store, sent = PickledStore(checkpoint), committed
            cache = WriteBehindSeries(store, CONFIGS, persist_every=8)
        alerts, _ = cache.process(w)
        sent += [a.event_id for a in alerts]
    return sent


def test_a_restart_neither_loses_nor_repeats_alerts() -> None:
    windows = [window(i) for i in range(100)]
    windows += [window(i, total_ms=130.0) for i in range(100, 110)]
    windows += [window(i) for i in range(110, 140)]
    whole = _alerts_through_restart(windows, None)
    assert len(whole) == 2  # the latency shift fires and resolves
    for crash_after in (95, 101, 104, 108, 112, 120):
        got = _alerts_through_restart(windows, crash_after)
        assert len(got) == len(set(got)), f"repeated after a crash at {crash_after}"
        assert [e.split(":")[1] for e in got] == ["firing", "resolved"], f"crash at {crash_after}"
        assert got[0] == whole[0] or crash_after < 102, "a firing sent before the checkpoint is kept"


def test_write_behind_evicts_the_oldest_series_after_saving_it() -> None:
    store = PickledStore()
    budget = LiveBudget(max_series=3)
    shard_a = WriteBehindSeries(store, CONFIGS, persist_every=100, budget=budget)
    shard_b = WriteBehindSeries(store, CONFIGS, persist_every=100, budget=budget)
    for cache, target in ((shard_a, "a"), (shard_a, "b"), (shard_b, "c"), (shard_b, "d"), (shard_b, "e")):
        for i in range(3):
            cache.process(window(i, target=target))
    # The shared budget holds 3: the shard that loaded past it dropped its own oldest (c, then d).
    assert (list(shard_a.live), list(shard_b.live), budget.count) == (
        ["agent-fra|web|a", "agent-fra|web|b"],
        ["agent-fra|web|e"],
        3,
    )
    assert pickle.loads(store.data["agent-fra|web|c"]).availability.last_ms == T0 + 2000
    assert shard_b.process(window(3, target="c")) == ([], [])  # reloaded where it was
    assert shard_b.live["agent-fra|web|c"].state.availability is not None
    assert shard_b.live["agent-fra|web|c"].state.availability.last_ms == T0 + 3000
