"""Per-series detection on window summaries (the logic the job's keyed function runs) and the
Alertmanager client with a fake transport."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest
from netobs_flink.alertmanager import AlertmanagerClient, AlertmanagerError
from netobs_flink.detect.alert import AlertEvent
from netobs_flink.detect.availability import Change
from netobs_flink.detect.latency import LatencyConfig
from netobs_flink.series import (
    DetectorConfigs,
    Heartbeat,
    SeriesState,
    WindowSummary,
    configs_from_dict,
    configs_to_dict,
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
