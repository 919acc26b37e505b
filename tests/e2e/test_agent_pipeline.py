"""The real agent through the real stack: agent -> collector -> Prometheus, Kafka, Jaeger.

The agent runs as the stack's ``agent`` component (what ``netobs stack up --with-agent`` does)
and probes the instrumented example service, which sends its own spans to the same collector:
the HTTP check's trace in Jaeger must hold both the agent's spans and the service's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netobs.stack.layout import StackLayout
from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS
from tests.e2e.backends import TopicReader, jaeger_trace, promql, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "instrumented_service.py"),
            "--port",
            str(port),
            "--otlp",
            f"127.0.0.1:{stack.layout.ports.otelcol_otlp_grpc}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()
    yield port
    proc.terminate()
    proc.wait(timeout=30)
    proc.stdout.close()


@pytest.fixture(scope="module")
def agent(stack: Stack, service: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    agent_id = f"e2e-agent-{uuid.uuid4().hex[:8]}"
    config = {
        "agent_id": agent_id,
        "pop": "e2e-pop-1",
        "exporter": {
            "endpoint": f"127.0.0.1:{stack.layout.ports.otelcol_otlp_grpc}",
            "protocol": "grpc",
            "insecure": True,
            "export_interval_s": 1,
        },
        "checks": [
            {
                "name": "shop-http",
                "type": "http",
                "targets": [f"http://127.0.0.1:{service}/"],
                "interval_s": 2,
                "timeout_s": 1.5,
            },
            {"name": "shop-tcp", "type": "tcp", "targets": [f"127.0.0.1:{service}"], "interval_s": 2, "timeout_s": 1.5},
        ],
    }
    path = tmp_path_factory.mktemp("agent") / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    layout: StackLayout = stack.layout
    with_agent = Stack(layout, agent_config=path, say=stack.say)
    failures = with_agent.up(["agent"])
    assert not failures, failures
    yield agent_id
    with_agent.stop("agent")


@pytest.fixture(scope="module")
def agent_results(stack: Stack, agent: str) -> list[dict[str, Any]]:
    """The agent's result records as read back from Kafka (at least 3 HTTP ones)."""
    reader = TopicReader(stack.layout.ports, RESULTS.name)

    def mine(values: list[bytes]) -> list[dict[str, Any]]:
        out = []
        for v in values:
            body = json.loads(v)
            if body.get("agent_id") == agent:
                out.append(body)
        return out

    try:
        values = reader.wait_for(
            lambda vs: sum(1 for r in mine(vs) if r["check_name"] == "shop-http") >= 3, timeout_s=90
        )
    finally:
        reader.close()
    return mine(values)


def test_agent_results_in_kafka(agent_results: list[dict[str, Any]], agent: str) -> None:
    http = [r for r in agent_results if r["check_name"] == "shop-http"]
    tcp = [r for r in agent_results if r["check_name"] == "shop-tcp"]
    assert http and tcp
    for r in http:
        assert r["pop"] == "e2e-pop-1"
        assert r["check_type"] == "http"
        assert r["success"] is True, r
        assert r["http"]["status_code"] == 200
        assert len(r["trace_id"]) == 32
    assert len({r["result_id"] for r in agent_results}) == len(agent_results)


def test_agent_metrics_in_prometheus(
    stack: Stack, agent: str, service: int, agent_results: list[dict[str, Any]]
) -> None:
    sel = f'agent="{agent}",pop="e2e-pop-1"'
    counts = wait_for(
        "agent histogram counts",
        lambda: promql(stack.layout.ports, f"netobs_probe_duration_seconds_count{{{sel}}} > 0"),
        timeout_s=60,
    )
    checks = {(s["metric"]["check"], s["metric"]["check_type"], s["metric"]["target"]) for s in counts}
    http_target = next(r["target"] for r in agent_results if r["check_name"] == "shop-http")
    assert http_target == f"http://127.0.0.1:{service}/"
    assert ("shop-http", "http", http_target) in checks
    assert ("shop-tcp", "tcp", f"127.0.0.1:{service}") in checks
    buckets = promql(stack.layout.ports, f'netobs_probe_duration_seconds_bucket{{{sel},check="shop-http"}}')
    assert len({s["metric"]["le"] for s in buckets}) > 5


def test_http_check_trace_joins_the_service_trace(stack: Stack, agent_results: list[dict[str, Any]]) -> None:
    http = [r for r in agent_results if r["check_name"] == "shop-http"]
    trace_id = http[0]["trace_id"]

    def joined() -> dict[str, Any] | None:
        found = jaeger_trace(stack.layout.ports, trace_id)
        if not found:
            return None
        services = {p["serviceName"] for p in found["processes"].values()}
        return found if {"netobs-agent", "demo-shop"} <= services else None

    found = wait_for("agent + service spans in one trace", joined, timeout_s=60)
    spans = found["spans"]
    service_of = {s["spanID"]: found["processes"][s["processID"]]["serviceName"] for s in spans}
    server = [s for s in spans if service_of[s["spanID"]] == "demo-shop" and s["operationName"] == "GET /"]
    assert len(server) == 1
    parents = [ref["spanID"] for ref in server[0].get("references", []) if ref["refType"] == "CHILD_OF"]
    assert parents and all(service_of.get(p) == "netobs-agent" for p in parents), server[0]


def test_agent_export_counters_in_prometheus(stack: Stack, agent: str, agent_results: list[dict[str, Any]]) -> None:
    """The agent's own export pipeline (``export_metrics``) reaches Prometheus: what each batch processor
    handed on and each OTLP exporter sent, and the drop counter (queue full) at zero."""
    sel = f'agent="{agent}",pop="e2e-pop-1"'
    ports = stack.layout.ports

    def counter(name: str, extra: str = 'error_type=""') -> dict[str, dict[str, Any]]:
        series = promql(ports, f"{name}{{{sel},{extra}}}")
        return {s["metric"]["otel_component_name"]: s for s in series if float(s["value"][1]) > 0}

    def both_handed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        spans = counter("otel_sdk_processor_span_processed_total")
        logs = counter("otel_sdk_processor_log_processed_total")
        return (spans, logs) if spans and logs else None

    spans, logs = wait_for("spans and result logs handed to the exporters", both_handed, timeout_s=60)
    assert (set(spans), set(logs)) == ({"netobs-spans"}, {"netobs-result-logs"})
    assert spans["netobs-spans"]["metric"]["otel_component_type"] == "batching_span_processor"

    def all_exported() -> dict[str, dict[str, Any]] | None:
        names = ("span_exported", "log_exported", "metric_data_point_exported")
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            found |= counter(f"otel_sdk_exporter_{name}_total")
        return found if len(found) == len(names) else None

    exported = wait_for("spans, result logs and metric points exported", all_exported, timeout_s=60)
    assert {name: s["metric"]["otel_component_type"] for name, s in exported.items()} == {
        "netobs-spans": "otlp_grpc_span_exporter",
        "netobs-result-logs": "otlp_grpc_log_exporter",
        "netobs-metrics": "otlp_grpc_metric_exporter",
    }
    for name in ("otel_sdk_processor_span_processed_total", "otel_sdk_processor_log_processed_total"):
        dropped = promql(ports, f'{name}{{{sel},error_type="queue_full"}}')
        assert [float(s["value"][1]) for s in dropped] == [0.0], dropped
