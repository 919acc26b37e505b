"""Every dashboard query returns data from a real pipeline: a real agent probing real local targets (ICMP,
HTTPS on nginx with a test CA, a closed TCP port, traceroute) sends OTLP to the real collector, which
remote-writes into the real Prometheus of the local stack (netobs.stack, on ports of its own).

The collector path is the production one, so the label names are the dashboards' (agent, pop, check, ...).
The Kafka panels read the collector's kafka_metrics receiver: the fixture writes one alert event to
netobs.alerts (the Flink job's topic) and commits offsets of a consumer group on netobs.results, so both
the alerts-raised and the consumer-lag panels have a source.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from netobs_grafana.__main__ import main as grafana_cli
from netobs_grafana.check import PanelQuery, QueryResult, panel_queries, run_query
from netobs_grafana.dashboards import RENDERED_DIR

from netobs.stack.layout import StackLayout
from netobs.stack.ports import stack_ports
from netobs.stack.stack import Stack
from netobs.stack.topics import ALERTS, RESULTS
from tests.deploy.test_grafana import traces_to_metrics_queries
from tests.real.httpbed import Bed, free_port, running_bed

pytestmark = [pytest.mark.real, pytest.mark.e2e, pytest.mark.timeout(600)]

# Offsets for this module's stack: every port below the ephemeral range (32768+) and apart from the
# default stack (0) and the e2e one (20000). The first whose ports are all free is used.
OFFSET_CANDIDATES = (1500, 2500, 3500, 11500)
DATA_TIMEOUT_S = 240.0

# The consumer group whose lag the fixture creates (offset 0 committed on every partition of netobs.results).
LAG_GROUP = f"nobs-deploy-lag-{os.getpid()}"


def _queries() -> list[PanelQuery]:
    out: list[PanelQuery] = []
    for path in sorted(RENDERED_DIR.glob("*.json")):
        out.extend(panel_queries(json.loads(path.read_text())))
    return out


QUERIES = _queries()


def _ports_free(offset: int) -> bool:
    for port in stack_ports(offset).as_dict().values():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _agent_config(bed: Bed, otlp_port: int, closed_port: int) -> dict[str, object]:
    return {
        "agent_id": "deploy-agent-1",
        "pop": "deploy-pop",
        "exporter": {
            "endpoint": f"127.0.0.1:{otlp_port}",
            "protocol": "grpc",
            "insecure": True,
            "export_interval_s": 1,
        },
        "checks": [
            {"name": "loop-ping", "type": "icmp", "targets": ["127.0.0.1"], "interval_s": 2, "timeout_s": 1.5,
             "count": 3, "packet_interval_ms": 20},
            {"name": "web", "type": "http", "targets": [bed.url("valid", "/"), bed.url("valid", "/delay")],
             "interval_s": 2, "timeout_s": 1.5, "ca_file": str(bed.pki.ca_file)},
            {"name": "closed-port", "type": "tcp", "targets": [f"127.0.0.1:{closed_port}"], "interval_s": 2,
             "timeout_s": 1},
            {"name": "loop-path", "type": "traceroute", "targets": ["127.0.0.1"], "interval_s": 3, "timeout_s": 2.5,
             "max_hops": 4, "hop_timeout_s": 0.5},
        ],
    }  # fmt: skip


def _wait_for_log(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, f"agent exited: {path.read_text(errors='replace')[-2000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout_s:g} s"
        time.sleep(0.2)


class Fed:
    """The running pipeline and the last answer to every query."""

    def __init__(self, prometheus_url: str) -> None:
        self.prometheus_url = prometheus_url
        self.results: dict[str, QueryResult] = {}
        self.waited_s = 0.0

    def poll(self) -> list[str]:
        """Run every query; return the names that still lack data."""
        self.results = {pq.name: run_query(self.prometheus_url, pq, window_s=300.0) for pq in QUERIES}
        return [name for name, res in self.results.items() if res.error is not None or res.series == 0]


def _kafka_activity(bootstrap: str) -> None:
    """One alert event on netobs.alerts (what the Flink job writes), and a consumer group on netobs.results
    that committed offset 0 everywhere: its lag is every result the collector has written."""
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "nobs-deploy-test"})
    producer.produce(ALERTS.name, key=b"deploy-agent-1", value=json.dumps({"status": "firing"}).encode())
    assert producer.flush(30) == 0, "the alert event was not delivered"
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "group.id": LAG_GROUP, "enable.auto.commit": False}
    consumer = Consumer(conf)
    offsets = [TopicPartition(RESULTS.name, p, 0) for p in range(RESULTS.partitions)]
    deadline = time.monotonic() + 60.0
    try:
        while True:  # the first commit of a fresh broker waits for __consumer_offsets (NOT_COORDINATOR)
            try:
                committed = consumer.commit(offsets=offsets, asynchronous=False)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        assert committed is not None and all(tp.error is None for tp in committed), committed
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    offset = next((o for o in OFFSET_CANDIDATES if _ports_free(o)), None)
    assert offset is not None, f"no free port set among offsets {OFFSET_CANDIDATES}"
    state = tmp_path_factory.mktemp("nobs-deploy-stack")
    layout = StackLayout.create(state_dir=state, port_offset=offset)
    stack = Stack(layout, say=lambda line: print(f"[stack] {line}", flush=True))
    agent: subprocess.Popen[bytes] | None = None
    try:
        failures = stack.up()
        assert not failures, "stack did not come up:\n" + "\n".join(map(str, failures))
        _kafka_activity(f"127.0.0.1:{layout.ports.kafka}")
        with running_bed() as bed:
            config = state / "agent.yaml"
            config.write_text(yaml.safe_dump(_agent_config(bed, layout.ports.otelcol_otlp_grpc, free_port())))
            with (state / "agent.log").open("wb") as log:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "netobs", "agent", "run", "--config", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            # One config reload, for the agent-health reload panel; the handler is in place once the agent
            # has logged its schedule.
            _wait_for_log(state / "agent.log", "jobs scheduled", agent, timeout_s=60.0)
            agent.send_signal(signal.SIGHUP)
            fed = Fed(f"http://127.0.0.1:{layout.ports.prometheus}")
            start = time.monotonic()
            missing = fed.poll()
            while missing and time.monotonic() - start < DATA_TIMEOUT_S:
                assert agent.poll() is None, f"agent exited: {(state / 'agent.log').read_text()[-2000:]}"
                time.sleep(5)
                missing = fed.poll()
                print(f"[deploy] {time.monotonic() - start:.0f} s: {len(missing)} queries without data", flush=True)
            fed.waited_s = time.monotonic() - start
            print(f"[deploy] all dashboard queries had data after {fed.waited_s:.0f} s (missing: {missing})")
            yield fed
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        stack.down()


@pytest.mark.parametrize("name", [pq.name for pq in QUERIES])
def test_panel_query_returns_data(fed: Fed, name: str) -> None:
    res = fed.results[name]
    assert res.error is None, f"{name}: {res.error}\n{res.expanded}"
    assert res.series > 0, f"{name}: no data after {fed.waited_s:.0f} s\n{res.expanded}"


def test_kafka_panels_show_the_test_activity(fed: Fed) -> None:
    """The lag series are the fixture's group's, one per partition, and behind by the results written; the
    alerts topic's offset counts the one alert event."""
    exprs = {
        f'kafka_consumer_group_lag{{group="{LAG_GROUP}",topic="{RESULTS.name}"}}': RESULTS.partitions,
        f'sum(kafka_consumer_group_lag_sum{{group="{LAG_GROUP}"}}) > 0': 1,
        f'sum(kafka_partition_current_offset{{topic="{ALERTS.name}"}}) == 1': 1,
    }
    deadline = time.monotonic() + 60
    got = {expr: _instant(fed, expr).series for expr in exprs}
    while got != exprs and time.monotonic() < deadline:
        time.sleep(3)
        got = {expr: _instant(fed, expr).series for expr in exprs}
    assert got == exprs


def test_traces_to_metrics_queries_return_data(fed: Fed) -> None:
    """The Jaeger datasource's span -> metrics queries, with the tags of a span of the 'web' check."""
    url = f"{fed.prometheus_url}/api/v1/label/target/values?" + urllib.parse.urlencode(
        {"match[]": 'netobs_probe_runs_total{check="web"}'}
    )
    with urllib.request.urlopen(url, timeout=10) as resp:
        targets = json.load(resp)["data"]
    assert len(targets) == 2
    for expr in traces_to_metrics_queries(f'check="web",target="{targets[0]}"'):
        res = run_query(fed.prometheus_url, PanelQuery("jaeger", "tracesToMetrics", "q", expr, True))
        assert res.error is None, (expr, res.error)
        # The web check never fails here: its failure query is valid and empty; the others have data.
        assert (res.series == 0) == ('netobs_probe_success="false"' in expr), expr


def test_check_command_reports_every_query(fed: Fed, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m netobs_grafana check` against the same Prometheus: every query has data."""
    assert grafana_cli(["check", "--prometheus", fed.prometheus_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(QUERIES)
    empty = {line.strip().split("  ", 1)[1] for line in lines if line.strip().startswith(("empty", "error"))}
    assert empty == set()


RULES_FILE = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "netobs.yml"
RECORDS = [r["record"] for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"] if "record" in r]


def _instant(fed: Fed, expr: str) -> QueryResult:
    return run_query(fed.prometheus_url, PanelQuery("rules", "rules", "r", expr, True))


def test_recording_rules_produce_series_with_the_collector_labels(fed: Fed) -> None:
    """The stack's Prometheus loads prometheus/rules/: every recording rule yields series from real data."""
    deadline = time.monotonic() + 90
    missing = RECORDS
    while missing and time.monotonic() < deadline:
        missing = [r for r in RECORDS if _instant(fed, r).series == 0]
        if missing:
            time.sleep(3)
    assert not missing, f"recording rules without series: {missing}"
    by_pop = _instant(fed, 'netobs:probe_success:ratio_rate5m{pop="deploy-pop",check="closed-port"}')
    assert by_pop.series == 1


@pytest.mark.parametrize("alertname", ["NetobsTargetFailing", "NetobsTargetDown"])
def test_alerts_for_the_failing_target_are_pending(fed: Fed, alertname: str) -> None:
    """The closed port fails every run: its alerts start (pending: their `for` is minutes)."""
    expr = f'ALERTS{{alertname="{alertname}",check="closed-port"}}'
    deadline = time.monotonic() + 90
    while _instant(fed, expr).series == 0 and time.monotonic() < deadline:
        time.sleep(3)
    assert _instant(fed, expr).series == 1
    healthy = _instant(fed, f'ALERTS{{alertname="{alertname}",check!="closed-port"}}')
    assert healthy.error is None and healthy.series == 0


def test_query_list_covers_every_dashboard() -> None:
    assert {pq.dashboard for pq in QUERIES} == {
        "netobs / Overview",
        "netobs / Check detail",
        "netobs / Path",
        "netobs / Agent health",
        "netobs / Pipeline health",
    }
    kafka_panels = {"Kafka consumer lag", "Alerts raised by the Flink job"}
    assert kafka_panels <= {pq.panel for pq in QUERIES if pq.dashboard == "netobs / Pipeline health"}
