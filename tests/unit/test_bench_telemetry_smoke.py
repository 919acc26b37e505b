"""The telemetry micro-benchmark still runs and prints a figure per type (a second or two).

Not a performance test: it keeps ``bench/bench_telemetry.py`` from rotting. It runs the real runner and
telemetry with OTLP/gRPC exporters to the benchmark's discarding sink on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_telemetry.py"


def test_bench_telemetry_runs_and_prints_cpu_per_result() -> None:
    flags = "--results 300 --series 7 --collect-every 100 --repeat 2 --types icmp,tcp,http --json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *flags.split()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["type"]: row for row in (json.loads(line) for line in proc.stdout.splitlines())}
    assert set(rows) == {"icmp", "tcp", "http"}
    for kind, row in rows.items():
        assert len(row["rounds"]) == 2, (kind, row)
        assert 0 < row["cpu_us_per_result"] < 100_000, (kind, row)
    assert f"agent: {Path(__file__).resolve().parents[2] / 'agent' / 'netobs'}" in proc.stderr
