"""bench/bench_spark.py on a tiny generated lake, so that the benchmark cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_spark_runs_both_engines_on_a_lake_with_replays(tmp_path: Path) -> None:
    env = {**os.environ, "NETOBS_CACHE": str(tmp_path)}
    command = [sys.executable, str(ROOT / "bench" / "bench_spark.py"), "--series", "40", "--minutes", "1440"]
    command += ["--duplicates-pct", "10", "--driver-memory", "1g", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["records"], result["duplicates_pct"]) == (57_600, 10.0)
    assert result["spark_job_s"] > 0 and result["duckdb_wall_s"] > 0
    assert result["ratio_spark_to_duckdb"] > 0 and isinstance(result["goal_met"], bool)
    lake = tmp_path / "bench" / "spark-lake-v2-40x1440-dup10"
    replays = list(lake.rglob("replay_*.parquet"))
    assert replays, "the replayed records have files of their own"
