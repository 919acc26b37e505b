"""Telemetry: each result becomes metrics, one log record (body = the record JSON) and, if traced, spans."""

from __future__ import annotations

import io
import json
import urllib.request

from netobs.config import parse_config
from netobs.telemetry import Telemetry
from tests.contract.exemplars import result_of_type


def test_log_record_body_is_the_result_json_with_resource_identity() -> None:
    cfg = parse_config("agent_id: ams-7\npop: ams")
    telemetry = Telemetry.in_memory(cfg)
    result = result_of_type("http")
    telemetry.record(result)
    (log_data,) = telemetry.log_exporter.get_finished_logs()
    record = log_data.log_record
    assert json.loads(str(record.body)) == json.loads(result.to_json())
    assert record.timestamp == result.started_at_ms * 1_000_000
    assert record.attributes is not None and record.attributes["netobs.result.id"] == result.result_id
    resource = dict(log_data.resource.attributes)
    assert resource["netobs.agent.id"] == "ams-7"
    assert resource["netobs.pop"] == "ams"
    assert resource["service.name"] == "netobs-agent"


def test_icmp_rtts_feed_the_histogram_one_sample_per_packet() -> None:
    telemetry = Telemetry.in_memory()
    result = result_of_type("icmp")
    assert result.icmp is not None
    result.icmp.rtts_ms = [0.4, None, 12.0, 250.0]
    result.icmp.sent, result.icmp.received = 4, 3
    telemetry.record(result)
    points = telemetry.metric_points()
    ((attrs, hist),) = points["netobs.icmp.rtt"]
    assert hist.count == 3
    assert abs(hist.sum - 0.2624) < 1e-9
    assert attrs == {"netobs.check.name": "web", "netobs.check.type": "icmp", "netobs.target": "example.net"}
    ((_, lost),) = points["netobs.icmp.packets.lost"]
    assert lost.value == 1
    # buckets fit network latency: sub-millisecond through tens of seconds
    assert hist.explicit_bounds[0] <= 0.0001 and hist.explicit_bounds[-1] >= 30


def test_failures_are_counted_by_error_type() -> None:
    telemetry = Telemetry.in_memory()
    ok = result_of_type("tcp")
    bad = result_of_type("tcp")
    bad.success, bad.error_type = False, "connection_refused"
    for r in (ok, bad, bad):
        telemetry.record(r)
    runs = {
        (a["netobs.probe.success"], a.get("error.type")): p.value
        for a, p in telemetry.metric_points()["netobs.probe.runs"]
    }
    assert runs == {(True, None): 1, (False, "connection_refused"): 2}


def test_path_changes_count_only_real_changes() -> None:
    telemetry = Telemetry.in_memory()
    for path_hash in ["aaaa0001", "aaaa0001", "bbbb0002", "aaaa0001"]:
        r = result_of_type("traceroute")
        assert r.traceroute is not None
        r.traceroute.path_hash = path_hash
        telemetry.record(r)
    ((_, changes),) = telemetry.metric_points()["netobs.traceroute.path.changes"]
    assert changes.value == 2


def test_embedded_default_prints_json_lines_and_serves_metrics() -> None:
    cfg = parse_config("agent_id: a\npop: p\noutputs: {prometheus_listen: '127.0.0.1:0'}")
    out = io.StringIO()
    telemetry = Telemetry.from_config(cfg, stdout=out)
    try:
        result = result_of_type("icmp")
        telemetry.record(result)
        assert telemetry.prometheus is not None
        with urllib.request.urlopen(telemetry.prometheus.url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        telemetry.shutdown()
    assert json.loads(out.getvalue().splitlines()[0])["result_id"] == result.result_id
    assert 'netobs_icmp_rtt_seconds_bucket{le="0.025",netobs_check_name="web"' in text
    assert "netobs_probe_runs_total" in text
