"""Prometheus rules and the Alertmanager example, checked by the real tools (promtool, amtool).

The rule unit tests themselves are promtool's format (prometheus/tests/); here they run, and a table of
deliberate breakages of the rules shows that the unit tests catch each one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"
RULE_TESTS = ROOT / "prometheus" / "tests"
ALERTMANAGER_EXAMPLE = ROOT / "prometheus" / "alertmanager.example.yml"

pytestmark = pytest.mark.real


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def test_every_rule_file_passes_promtool_check() -> None:
    files = sorted(RULES.glob("*.yml"))
    assert files, "no rule files"
    proc = _run("promtool", "check", "rules", *map(str, files))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", proc.stdout)]
    assert len(counts) == len(files) and sum(counts) >= 15


def test_promtool_unit_tests_pass() -> None:
    proc = _run("promtool", "test", "rules", *map(str, sorted(RULE_TESTS.glob("*_test.yml"))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize(
    ("rule_text", "broken_text", "failing_alert"),
    [
        # Down from any single POP instead of min(2, POPs probing).
        ("netobs:target_pops:count, 2)", "netobs:target_pops:count, 1)", "NetobsTargetDown"),
        # A silent agent forgotten as soon as it stops.
        ("max_over_time(netobs_agent_scheduled[1h])", "max_over_time(netobs_agent_scheduled[1m])", "NetobsAgentSilent"),
        # Certificate page threshold moved from 3 to 10 days.
        (
            "(netobs_tls_cert_expiry_seconds) < 3 * 86400\n        for: 10m",
            "(netobs_tls_cert_expiry_seconds) < 11 * 86400\n        for: 10m",
            "NetobsCertificateExpiring",
        ),
        # A POP outage judged at half its runs failing.
        (
            "/ sum by (pop) (rate(netobs_probe_runs_total[5m])) > 0.9",
            "/ sum by (pop) (rate(netobs_probe_runs_total[5m])) > 0.4",
            "NetobsPopDown",
        ),
        # Queue alert on the wrong ratio.
        (
            "otelcol_exporter_queue_size / otelcol_exporter_queue_capacity) > 0.8",
            "otelcol_exporter_queue_size / otelcol_exporter_queue_capacity) > 0.95",
            "NetobsCollectorQueueFilling",
        ),
    ],
)
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, rule_text: str, broken_text: str, failing_alert: str) -> None:
    source = (RULES / "netobs.yml").read_text()
    assert source.count(rule_text) == 1, f"the rule text to break is not unique: {rule_text!r}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / "netobs.yml").write_text(source.replace(rule_text, broken_text))
    for test_file in RULE_TESTS.glob("*_test.yml"):
        shutil.copy(test_file, tmp_path / "tests" / test_file.name)
    proc = _run("promtool", "test", "rules", *map(str, sorted((tmp_path / "tests").glob("*_test.yml"))))
    assert proc.returncode != 0
    assert f"alertname: {failing_alert}," in proc.stdout + proc.stderr


def test_alertmanager_example_passes_amtool() -> None:
    proc = _run("amtool", "check-config", str(ALERTMANAGER_EXAMPLE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inhibit rules" in proc.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "NetobsTargetDown", "severity": "critical", "check": "web", "target": "t"}, "network-pager"),
        ({"alertname": "NetobsTargetFailing", "severity": "warning", "pop": "fra"}, "network-chat"),
        ({"alertname": "NetobsPathChange", "severity": "info"}, "blackhole"),
        ({"alertname": "NetobsCollectorExportFailing", "severity": "warning"}, "platform-chat"),
        ({"alertname": "NetobsAgentSilent", "severity": "critical", "agent": "a1"}, "platform-pager"),
        ({"alertname": "NetobsPopDown", "severity": "critical", "pop": "fra"}, "network-pager"),
        ({"alertname": "NetobsLatencyIncrease", "severity": "critical", "team": "payments"}, "payments-pager"),
        ({"alertname": "NetobsLatencyIncrease", "severity": "warning", "team": "payments"}, "payments-chat"),
        ({"alertname": "SomethingElse"}, "noc-email"),
    ],
)
def test_alertmanager_example_routes(labels: dict[str, str], receiver: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = _run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == receiver
