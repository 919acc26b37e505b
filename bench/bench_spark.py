"""Benchmark of the nightly Spark job against DuckDB on the same generated day of the lake.

    <spark venv>/bin/python bench/bench_spark.py [--series 10000] [--driver-memory 4g]

Generates one day of results, one per minute per series (10,000 series: 14.4 M records), as Parquet in
the lake layout (docs/lake.md) with DuckDB, cached under ``$NETOBS_CACHE/bench/spark-lake-<key>`` (key:
generator version, series, minutes). Then runs, each in its own process, sampling the process tree's
resident memory: the Spark job (``python -m netobs_spark``, local[*]) and the same rollups (dedup, four
percentile rollups, errors, path changes) in DuckDB, written as Parquet. Prints wall times, peak memory
and the ratio; the goal is Spark <= 3x DuckDB and under 5 minutes. Run it in the Spark virtualenv
(``bash scripts/setup.d/40-spark.sh`` prints its path); PYTHONPATH is set for the job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GENERATOR_VERSION = 2
DAY = "2026-11-20"
DAY_START_MS = 1_795_132_800_000  # 2026-11-20T00:00:00Z
POPS = 20
ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("NETOBS_CACHE", Path.home() / ".cache" / "netobs")) / "bench"


def generate(lake: Path, series: int, minutes: int, duplicates_pct: float = 0.0) -> None:
    """One run per minute per series; type mix 40% http, 30% icmp, 20% dns, 5% tcp, 5% traceroute.

    ``duplicates_pct``: that share of the records is written a second time, in files of their own in
    the same hour partitions: every series' records of a contiguous stretch of minutes from noon on, as
    a replayed batch (at-least-once delivery after a restart) lands in the archive.
    """
    import duckdb

    tmp = lake.with_name(lake.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lake.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(
        f"""
        CREATE TEMP VIEW runs AS
        WITH s AS (
            SELECT i AS sid, i % {POPS} AS pop_i, i // {POPS} AS target_i,
                   CASE WHEN i // {POPS} % 20 < 8 THEN 'http' WHEN i // {POPS} % 20 < 14 THEN 'icmp'
                        WHEN i // {POPS} % 20 < 18 THEN 'dns' WHEN i // {POPS} % 20 < 19 THEN 'tcp'
                        ELSE 'traceroute' END AS check_type
            FROM range({series}) t(i)
        ), m AS (SELECT j AS minute FROM range({minutes}) t(j)),
        r AS (
            SELECT s.*, m.minute, random() AS u, random() AS v,
                   {DAY_START_MS} + m.minute * 60000 + (s.sid * 7919) % 60000 AS started_at_ms
            FROM s CROSS JOIN m
        )
        SELECT
            uuid()::VARCHAR AS result_id,
            started_at_ms,
            (CASE check_type WHEN 'icmp' THEN 4000 ELSE 20 + 200 * v * v END)::DOUBLE AS duration_ms,
            'agent-' || pop_i AS agent_id,
            'pop' || lpad(pop_i::VARCHAR, 2, '0') AS pop,
            check_type || '-check' AS check_name,
            check_type,
            check_type || '-target-' || target_i AS target,
            u > 0.01 AS success,
            CASE WHEN u > 0.01 THEN NULL WHEN u > 0.005 THEN 'timeout' ELSE 'connection_refused' END
                AS error_type,
            CASE check_type
                WHEN 'http' THEN MAP {{'dns': 1 + 4 * v, 'connect': 5 + 10 * v, 'tls': 10 + 20 * v,
                                       'ttfb': 20 + 100 * v, 'transfer': 1 + v}}
                WHEN 'dns' THEN MAP {{'dns': 2 + 30 * v}}
                ELSE MAP {{}}::MAP(VARCHAR, DOUBLE) END AS phases_ms,
            CASE WHEN check_type = 'icmp' THEN
                {{'sent': 5::BIGINT, 'received': (CASE WHEN u > 0.05 THEN 5 ELSE 4 END)::BIGINT,
                  'rtt_avg_ms': 5 + 50 * v, 'jitter_ms': v * 3}}
                END AS icmp,
            CASE WHEN check_type = 'traceroute' THEN
                {{'reached': true, 'hop_count': 8::BIGINT,
                  'path_hash': CASE WHEN v < 0.9 THEN 'path-a' ELSE 'path-b' END, 'distinct_paths': 1::BIGINT}}
                END AS traceroute,
            1::BIGINT AS schema_version,
            '{DAY}' AS date,
            lpad((minute // 60)::VARCHAR, 2, '0') AS hour
        FROM r
        """
    )
    options = "FORMAT PARQUET, PARTITION_BY (date, hour), COMPRESSION zstd, ROW_GROUP_SIZE 122880"
    noon_ms = DAY_START_MS + 12 * 3_600_000
    replay_end_ms = noon_ms + round(minutes * duplicates_pct / 100) * 60_000
    if duplicates_pct > 0:  # the view draws new random values on every read: materialize it once
        con.execute("CREATE TEMP TABLE runs_once AS SELECT * FROM runs")
        con.execute(f"COPY runs_once TO '{tmp}' ({options})")
        con.execute(
            f"COPY (SELECT * FROM runs_once WHERE started_at_ms >= {noon_ms} AND started_at_ms < {replay_end_ms}) "
            f"TO '{tmp}' "
            f"({options}, OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'replay_{{i}}')"
        )
    else:
        con.execute(f"COPY runs TO '{tmp}' ({options})")
    con.close()
    shutil.rmtree(lake, ignore_errors=True)
    tmp.rename(lake)


DUCKDB_ROLLUPS = """
SET threads TO {threads};
CREATE TEMP TABLE clean AS
SELECT * EXCLUDE (rn) FROM (
    SELECT row_number() OVER (PARTITION BY result_id) AS rn,
           started_at_ms, make_date(2026, 11, 20) AS date, (started_at_ms % 86400000) // 3600000 AS hour,
           check_name, check_type, target, pop, success,
           CASE WHEN NOT success THEN coalesce(error_type, 'unknown') END AS error_type,
           CASE WHEN success THEN CASE WHEN check_type = 'icmp' THEN icmp.rtt_avg_ms ELSE duration_ms END END
               AS latency_ms,
           phases_ms['dns'] AS phase_dns_ms, phases_ms['connect'] AS phase_connect_ms,
           phases_ms['tls'] AS phase_tls_ms, phases_ms['ttfb'] AS phase_ttfb_ms,
           phases_ms['transfer'] AS phase_transfer_ms,
           icmp.sent AS icmp_sent, icmp.received AS icmp_received, icmp.jitter_ms AS icmp_jitter_ms,
           traceroute.path_hash AS path_hash
    FROM read_parquet('{lake}/*/*/*.parquet')
) WHERE rn = 1;
"""

DUCKDB_ROLLUP = """
COPY (
    SELECT {keys}, count(*) AS runs, sum(success::INT) AS successes, 100.0 * sum(success::INT) / count(*)
           AS availability_pct, avg(latency_ms) AS latency_avg_ms,
           quantile_disc(latency_ms, [0.5, 0.9, 0.95, 0.99]) AS latency_ms_q, max(latency_ms) AS latency_max_ms,
           {phases},
           sum(icmp_sent) AS icmp_packets_sent, sum(icmp_received) AS icmp_packets_received,
           avg(icmp_jitter_ms) AS icmp_jitter_avg_ms, max(icmp_jitter_ms) AS icmp_jitter_max_ms
    FROM clean GROUP BY {keys}
) TO '{out}/{name}.parquet' (FORMAT PARQUET);
"""

DUCKDB_OTHERS = """
COPY (SELECT date, check_name, check_type, target, pop, error_type, count(*) AS failures
      FROM clean WHERE NOT success GROUP BY ALL) TO '{out}/errors.parquet' (FORMAT PARQUET);
COPY (
    SELECT date, check_name, check_type, target, pop, count(*) AS traceroute_runs,
           sum(changed) AS path_changes, count(DISTINCT path_hash) AS distinct_paths
    FROM (SELECT *, (lag(path_hash) OVER (PARTITION BY check_name, target, pop ORDER BY started_at_ms)
                     <> path_hash)::INT AS changed FROM clean WHERE path_hash IS NOT NULL)
    GROUP BY ALL
) TO '{out}/paths.parquet' (FORMAT PARQUET);
"""


def duckdb_script(lake: Path, out: Path, threads: int) -> str:
    phases = ", ".join(
        f"quantile_disc(phase_{p}_ms, [0.5, 0.9, 0.95, 0.99]) AS {p}_q"
        for p in ("dns", "connect", "tls", "ttfb", "transfer")
    )
    sql = DUCKDB_ROLLUPS.format(lake=lake, threads=threads)
    series, target = "check_name, check_type, target, pop", "check_name, check_type, target"
    for name, keys in (
        ("series_hourly", f"date, hour, {series}"),
        ("series_daily", f"date, {series}"),
        ("target_hourly", f"date, hour, {target}"),
        ("target_daily", f"date, {target}"),
    ):
        sql += DUCKDB_ROLLUP.format(keys=keys, phases=phases, out=out, name=name)
    return sql + DUCKDB_OTHERS.format(out=out)


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command: list[str], env: dict[str, str], log_path: Path) -> tuple[float, int, int]:
    """(wall seconds, peak tree RSS bytes, exit code) of a command, sampling memory every 0.25 s."""
    peak = 0
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_bytes(proc.pid))
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    return time.monotonic() - started, peak, code


def job_seconds(log_path: Path) -> float | None:
    """The job's own duration from its last log line (excludes interpreter and JVM start)."""
    for line in reversed(log_path.read_text().splitlines()):
        if "finished in" in line:
            return float(line.rsplit("finished in", 1)[1].split()[0])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000, help="series (check, target, POP); default 10000")
    parser.add_argument("--minutes", type=int, default=1440, help="runs per series (one a minute); default 1440")
    parser.add_argument(
        "--duplicates-pct", type=float, default=0.0, help="share of records written twice (replays); default 0"
    )
    parser.add_argument("--driver-memory", default="4g", help="Spark driver memory (local mode)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.minutes > 1440:
        parser.error("--minutes: at most 1440 (one day)")

    dups = f"-dup{args.duplicates_pct:g}" if args.duplicates_pct > 0 else ""
    lake = cache_dir() / f"spark-lake-v{GENERATOR_VERSION}-{args.series}x{args.minutes}{dups}"
    if not lake.exists():
        t0 = time.monotonic()
        print(f"generating {args.series * args.minutes:,} records into {lake} ...", file=sys.stderr)
        generate(lake, args.series, args.minutes, args.duplicates_pct)
        print(f"generated in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    size_mb = sum(p.stat().st_size for p in lake.rglob("*.parquet")) / 1e6

    work = Path(tempfile.mkdtemp(prefix="nobs-bench-spark-"))
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "pipelines" / "spark"), env.get("PYTHONPATH", "")])
        spark_log = work / "spark.log"
        spark_cmd = [sys.executable, "-m", "netobs_spark", "--lake", str(lake), "--out", str(work / "spark")]
        spark_cmd += ["--from", DAY, "--to", DAY, "--driver-memory", args.driver_memory]
        spark_s, spark_rss, code = measure(spark_cmd, env, spark_log)
        if code != 0:
            print(spark_log.read_text()[-4000:], file=sys.stderr)
            return code
        (work / "duck").mkdir()
        script = work / "rollups.sql"
        script.write_text(duckdb_script(lake, work / "duck", args.threads))
        duck_cmd = [sys.executable, "-c", f"import duckdb; duckdb.connect().execute(open({str(script)!r}).read())"]
        duck_s, duck_rss, code = measure(duck_cmd, env, work / "duck.log")
        if code != 0:
            print((work / "duck.log").read_text()[-4000:], file=sys.stderr)
            return code
        result = {
            "records": args.series * args.minutes,
            "duplicates_pct": args.duplicates_pct,
            "series": args.series,
            "lake_mb": round(size_mb, 1),
            "cores": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "spark_wall_s": round(spark_s, 1),
            "spark_job_s": job_seconds(spark_log),
            "spark_peak_rss_mb": round(spark_rss / 1e6),
            "duckdb_wall_s": round(duck_s, 1),
            "duckdb_peak_rss_mb": round(duck_rss / 1e6),
            "ratio_spark_to_duckdb": round(spark_s / duck_s, 2),
            "goal_met": spark_s <= 3 * duck_s and spark_s < 300,
        }
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>24}: {value}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
