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

from netobs.result import CHECK_TYPES
from netobs.telemetry import Telemetry
from tests.contract.exemplars import result_of_type

GOLDEN = Path(__file__).parent / "golden" / "metric_catalogue.json"


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
    units = telemetry.metric_units()
    catalogue: dict[str, Any] = {}
    for name, points in sorted(telemetry.metric_points().items()):
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
