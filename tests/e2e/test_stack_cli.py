"""`netobs stack` as a user runs it, against the session's stack; and the stack's own wiring."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netobs.stack.components import COMPONENT_NAMES
from netobs.stack.stack import Stack
from tests.e2e.backends import http_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def _netobs(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netobs", "stack", *args, "--state-dir", str(stack.layout.state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_status_json_reports_every_component(stack: Stack) -> None:
    # No --port-offset: status finds the running stack's ports in its state dir.
    proc = _netobs(stack, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["component"]: row for row in json.loads(proc.stdout)}
    assert set(rows) == set(COMPONENT_NAMES)
    ports = stack.layout.ports
    expected_ports = {
        "kafka": ports.kafka,
        "prometheus": ports.prometheus,
        "alertmanager": ports.alertmanager,
        "jaeger": ports.jaeger_query_http,
        "otelcol": ports.otelcol_otlp_grpc,
    }
    for name, port in expected_ports.items():
        assert rows[name]["state"] == "up", rows[name]
        assert rows[name]["port"] == port
        assert isinstance(rows[name]["pid"], int)
        assert Path(rows[name]["log_file"]).is_file()
    assert rows["agent"]["state"] == "down"


def test_up_again_is_idempotent_and_prints_the_urls(stack: Stack) -> None:
    before = {r.component: r.pid for r in stack.status()}
    start = time.monotonic()
    proc = _netobs(stack, "up")
    elapsed_s = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("already running") == 5
    assert f"http://127.0.0.1:{stack.layout.ports.jaeger_query_http}/api/services" in proc.stdout
    assert f"127.0.0.1:{stack.layout.ports.otelcol_otlp_grpc}" in proc.stdout
    assert {r.component: r.pid for r in stack.status()} == before
    assert elapsed_s < 30


def test_prometheus_loaded_the_rules_and_found_alertmanager(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.layout.ports.prometheus}"
    groups = http_json(f"{base}/api/v1/rules")["data"]["groups"]
    rules = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"NetobsTargetFailing", "NetobsPopDown", "netobs:probe_failure_ratio:rate5m"} <= rules
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])
    active = wait_for(
        "alertmanager discovered",
        lambda: http_json(f"{base}/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
        timeout_s=30,
    )
    assert active[0]["url"].startswith(f"http://127.0.0.1:{stack.layout.ports.alertmanager}/")
