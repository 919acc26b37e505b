"""Faults: a Kafka outage while agents keep sending, a kill -9 of the collector, a broken component.

Delivery is at-least-once: the tests count distinct result ids (duplicates are allowed, loss is not).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netobs.stack.ports import HOST
from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS
from tests.e2e.backends import TopicReader, promql, result_ids, wait_for
from tests.e2e.emitter import Emitter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KAFKA_OUTAGE_S = 60.0


@pytest.fixture
def emitter(otlp_endpoint: str) -> Iterator[Emitter]:
    em = Emitter(otlp_endpoint)
    yield em
    em.shutdown()


def _wait_all_delivered(stack: Stack, wanted: set[str], timeout_s: float) -> list[str]:
    reader = TopicReader(stack.layout.ports, RESULTS.name)
    try:
        values = reader.wait_for(lambda vs: wanted <= set(result_ids(vs)), timeout_s=timeout_s)
    finally:
        reader.close()
    return [rid for rid in result_ids(values) if rid in wanted]


def test_kafka_down_for_a_minute_loses_nothing(stack: Stack, emitter: Emitter) -> None:
    sent: set[str] = set()
    for i in range(20):
        sent.add(emitter.emit_result("before", f"https://b{i}.test/").result_id)
    emitter.flush()

    assert stack.stop("kafka")
    try:
        outage_end = time.monotonic() + KAFKA_OUTAGE_S
        i = 0
        while time.monotonic() < outage_end:
            sent.add(emitter.emit_result("during", f"https://d{i}.test/").result_id)
            i += 1
            time.sleep(0.25)
        emitter.flush()
    finally:
        failures = stack.up(["kafka"])
    assert not failures, failures
    for i in range(20):
        sent.add(emitter.emit_result("after", f"https://a{i}.test/").result_id)
    emitter.flush()

    delivered = _wait_all_delivered(stack, sent, timeout_s=180)
    assert set(delivered) == sent
    assert len(sent) > 200  # really sent during the outage, not just before/after


def test_collector_kill_9_keeps_its_queue(stack: Stack, emitter: Emitter) -> None:
    # Kafka down first, so everything the collector accepts waits in its file-backed queue.
    assert stack.stop("kafka")
    sent: set[str] = set()
    try:
        for i in range(100):
            sent.add(emitter.emit_result("queued", f"https://q{i}.test/").result_id)
        emitter.flush()  # the collector acknowledged every record
        time.sleep(2.0)  # past the batch processor's timeout: in the persistent queue now
        stack.kill("otelcol")
        assert stack.pid_record("otelcol") is None
    finally:
        failures = stack.up(["kafka", "otelcol"])
    assert not failures, failures

    delivered = _wait_all_delivered(stack, sent, timeout_s=180)
    assert set(delivered) == sent


def test_prometheus_down_metrics_are_retried_until_it_is_back(stack: Stack, emitter: Emitter) -> None:
    selector = f'netobs_probe_duration_seconds_count{{agent="{emitter.agent_id}"}}'
    for _ in range(3):
        emitter.record_duration("web", "https://p.test/", 0.01)
    emitter.flush()
    wait_for("first samples", lambda: promql(stack.layout.ports, selector), timeout_s=60)

    assert stack.stop("prometheus")
    try:
        for _ in range(4):
            emitter.record_duration("web", "https://p.test/", 0.01)
        emitter.flush()  # accepted by the collector, which cannot deliver it now
        time.sleep(20.0)
    finally:
        failures = stack.up(["prometheus"])
    assert not failures, failures
    # Nothing is exported after the restart: the count of 7 can only come from the collector's retries.
    final = wait_for(
        "the retried sample",
        lambda: [s for s in promql(stack.layout.ports, selector) if float(s["value"][1]) == 7],
        timeout_s=90,
    )
    assert len(final) == 1


def test_stack_up_reports_a_component_that_cannot_start(tmp_path: Path, e2e_offset: int) -> None:
    # A second stack on other ports whose Prometheus port is already taken.
    offset = e2e_offset + 1000
    env_repo = Path(__file__).resolve().parents[2]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    from netobs.stack.ports import stack_ports

    port = stack_ports(offset).prometheus
    squatter.bind((HOST, port))
    squatter.listen()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "netobs",
                "stack",
                "up",
                "prometheus",
                "alertmanager",
                "--state-dir",
                str(tmp_path),
                "--port-offset",
                str(offset),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=env_repo,
            check=False,
        )
        status = subprocess.run(
            [sys.executable, "-m", "netobs", "stack", "status", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=env_repo,
            check=False,
        )
    finally:
        squatter.close()
        subprocess.run(
            [sys.executable, "-m", "netobs", "stack", "down", "--state-dir", str(tmp_path)],
            capture_output=True,
            timeout=120,
            cwd=env_repo,
            check=False,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    log_file = tmp_path / "logs" / "prometheus.log"
    assert "prometheus: exited with code" in proc.stderr
    assert "address already in use" in proc.stderr
    assert f"log: {log_file}" in proc.stderr
    assert "address already in use" in log_file.read_text()
    # The healthy one still came up and is reported so.
    assert "alertmanager: ready" in proc.stdout
    lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:]}
    assert lines["prometheus"] == "down"
    assert lines["alertmanager"] == "up"
