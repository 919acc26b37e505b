"""The golden metric catalogue: instrument -> unit -> attribute keys per check type.

Built by recording one complete result of every type through the real instruments (in-memory reader);
any drift in names, units or attribute keys (cardinality!) fails. Update deliberately with
``NETOBS_UPDATE_GOLDENS=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from netobs.config import AgentConfig
from netobs.result import CHECK_TYPES
from netobs.telemetry import Telemetry, TelemetryParts, build_resource, metric_points, metric_units
from tests.contract.exemplars import result_of_type
from tests.exporters import CountingExporter

GOLDEN = Path(__file__).parent / "golden" / "metric_catalogue.json"


def export_pipeline_metrics() -> tuple[dict[str, list[tuple[dict[str, Any], Any]]], dict[str, str]]:
    """(points, units) of the export threads' own counters (``export_metrics``): the in-memory telemetry
    has no export threads, so these come from the production ``Telemetry`` with exporters in memory whose
    first request fails (every attribute key shows)."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        build_resource(AgentConfig(agent_id="test-agent", pop="test-pop")),
        TelemetryParts(
            metric_readers=[reader],
            direct_span_exporters=[CountingExporter(fail=1)],
            result_log_exporters=[CountingExporter(fail=1)],
            direct_metric_exporters=[CountingExporter(fail=1)],
        ),
    )
    try:
        for _ in range(2):
            with telemetry.tracer.start_span("span"):
                pass
            telemetry.record(result_of_type("tcp"))
            telemetry.flush()
        points = {k: v for k, v in metric_points(reader).items() if k.startswith("otel.sdk.")}
        return points, metric_units(reader)
    finally:
        telemetry.shutdown()


def produced_catalogue() -> dict[str, Any]:
    telemetry = Telemetry.in_memory()
    for check_type in CHECK_TYPES:
        telemetry.record(result_of_type(check_type))
        failed = result_of_type(check_type)
        failed.success = False
        telemetry.record(failed)
    telemetry.record_lateness(0.002, "icmp")
    telemetry.count_skipped("http", "overload")
    telemetry.set_checks(5)
    telemetry.count_reload("applied")
    export_points, export_units = export_pipeline_metrics()
    units = telemetry.metric_units() | export_units
    catalogue: dict[str, Any] = {}
    for name, points in sorted((telemetry.metric_points() | export_points).items()):
        by_type: dict[str, set[str]] = {}
        for attrs, _ in points:
            by_type.setdefault(str(attrs.get("netobs.check.type", "*")), set()).update(attrs)
        catalogue[name] = {
            "unit": units[name],
            "attributes": {t: sorted(keys) for t, keys in sorted(by_type.items())},
        }
    return catalogue


def test_metric_catalogue_matches_golden() -> None:
    produced = produced_catalogue()
    if os.environ.get("NETOBS_UPDATE_GOLDENS") == "1":
        GOLDEN.write_text(json.dumps(produced, indent=2) + "\n")
    assert produced == json.loads(GOLDEN.read_text())


def test_units_are_ucum_and_not_in_names() -> None:
    for name, entry in produced_catalogue().items():
        assert entry["unit"], name
        assert not name.endswith(("_seconds", "_ms", ".ms", ".seconds")), name
        if entry["unit"] == "s":
            kinds = ("duration", "rtt", "lateness", "jitter", "expiry", "cpu.time")
            assert any(kind in name for kind in kinds), name
