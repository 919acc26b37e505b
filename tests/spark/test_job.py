"""End to end: a lake in the contract format -> rollups, report and CSV; re-runs; bad data."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from netobs_spark import cli, job, slo
from pyspark.sql import SparkSession

from tests.spark.lakegen import epoch_ms, icmp_sub, record, traceroute_sub, write_lake, write_parquet

DAY1, DAY2 = "2026-11-20", "2026-11-21"
SLO_YAML = """
slos:
  - check: web
    availability_percent: 99
    latency: {threshold_ms: 150, percent: 90}
maintenance:
  - start: 2026-11-20T03:00:00Z
    end: 2026-11-20T04:00:00Z
    pops: [nyc1]
"""


def day_records(day: str, *, web_failures_nyc: int) -> list[dict[str, Any]]:
    """Hours 0..3, one run per 15 min per series: web (http) at fra1/nyc1, ping, trace at fra1."""
    recs = []
    for hour in range(4):
        for quarter in range(4):
            t = epoch_ms(day, hour, 15 * quarter)
            n = hour * 4 + quarter  # 0..15
            recs.append(record(started_at_ms=t, duration_ms=100.0 + n, phases_ms={"ttfb": 50.0 + n}))
            fail = n >= 16 - web_failures_nyc  # the last runs of the day fail (hour 3: in maintenance)
            recs.append(record(started_at_ms=t, pop="nyc1", success=not fail, duration_ms=200.0 + n))
            recs.append(
                record(
                    started_at_ms=t,
                    check_name="ping",
                    check_type="icmp",
                    target="10.0.0.1",
                    icmp=icmp_sub(10, 9 if n % 2 else 10, 5.0 + n, 0.5),
                )
            )
            recs.append(
                record(
                    started_at_ms=t,
                    check_name="trace",
                    check_type="traceroute",
                    target="10.0.0.2",
                    traceroute=traceroute_sub("p1" if n < 8 else "p2"),
                )
            )
    return recs


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows_of(spark: SparkSession, out: Path, table: str, day: str) -> list[dict[str, Any]]:
    df = spark.read.parquet(str(out / "rollups" / table / f"date={day}"))
    return sorted((r.asDict() for r in df.collect()), key=lambda d: sorted((k, str(v)) for k, v in d.items()))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    day1 = day_records(DAY1, web_failures_nyc=4)
    write_lake(str(root), day1, gz_every=2)
    # at-least-once delivery: three records arrive twice, in another file of the same hour
    write_lake(str(root), day1[:3], name="replay")
    # a valid record of DAY2 archived in a DAY1 partition: counted, not rolled up into DAY1
    late = record(started_at_ms=epoch_ms(DAY2, 0, 1))
    (root / f"date={DAY1}" / "hour=00" / "late.jsonl").write_text(__import__("json").dumps(late) + "\n")
    # bad data, all in DAY1
    bad = root / f"date={DAY1}" / "hour=01"
    missing = {**record(started_at_ms=epoch_ms(DAY1, 1)), "check_name": None}
    wrong_type = {**record(started_at_ms=epoch_ms(DAY1, 1)), "started_at_ms": "yesterday"}
    import json

    (bad / "garbage.jsonl").write_text(
        '{"result_id": "x", "started_at_ms": \n[1, 2]\n' + json.dumps(missing) + "\n" + json.dumps(wrong_type) + "\n"
    )
    (bad / "broken.jsonl.gz").write_bytes(b"this is not gzip data at all" * 10)
    (bad / "broken.parquet").write_bytes(b"PAR1 but not really parquet" * 10)
    (bad / "_SUCCESS").write_text("")
    (bad / "notes.txt").write_text("not data")
    # one hour of DAY1 in Parquet: two more ping runs (hour 05)
    write_parquet(
        str(root / f"date={DAY1}" / "hour=05" / "part-0.parquet"),
        [
            record(
                started_at_ms=epoch_ms(DAY1, 5, m),
                check_name="ping",
                check_type="icmp",
                target="10.0.0.1",
                icmp=icmp_sub(10, 5, 9.0, 2.0),
            )
            for m in (0, 30)
        ],
    )
    write_lake(str(root), day_records(DAY2, web_failures_nyc=0))
    return root


@pytest.fixture(scope="module")
def slo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slo") / "slo.yaml"
    path.write_text(SLO_YAML)
    return path


def run_day(spark: SparkSession, lake: Path, out: Path, day: str, slo_file: Path) -> job.JobSummary:
    d = dt.date.fromisoformat(day)
    options = job.JobOptions(str(lake), str(out), d, d, slo=slo.load_slo_config(slo_file), report_top=5)
    return job.run(spark, options)


@pytest.fixture(scope="module")
def first_run(
    spark: SparkSession, lake: Path, slo_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, job.JobSummary]:
    out = tmp_path_factory.mktemp("out")
    return out, run_day(spark, lake, out, DAY1, slo_file)


def test_bad_data_is_counted_and_skipped(first_run: tuple[Path, job.JobSummary]) -> None:
    _, summary = first_run
    s = summary.stats
    # 16 quarters x 4 series + 3 replays + 1 late + 4 garbage lines + 2 Parquet rows
    assert s.records_read == 64 + 3 + 1 + 4 + 2
    assert s.corrupt_records == 4
    assert s.out_of_range_records == 1
    assert s.duplicate_records == 3
    assert s.clean_records == 66
    assert sorted(os.path.basename(p) for p in s.corrupt_files) == ["broken.jsonl.gz", "broken.parquet"]
    assert [os.path.basename(p) for p in s.ignored_files] == ["notes.txt"]


def test_rollups_hold_the_hand_counted_values(spark: SparkSession, first_run: tuple[Path, job.JobSummary]) -> None:
    out, _ = first_run
    targets = {r["check_name"]: r for r in rows_of(spark, out, "target_daily", DAY1)}
    assert (targets["web"]["runs"], targets["web"]["successes"], targets["web"]["pops"]) == (32, 28, 2)
    assert targets["web"]["availability_pct"] == pytest.approx(87.5)
    assert targets["ping"]["runs"] == 18  # 16 from JSON lines + 2 from Parquet
    # packets: 8 runs x 10 + 8 x 9 received of 160, plus 2 x 5 of 20 from Parquet
    assert targets["ping"]["icmp_packets_sent"] == 180
    assert targets["ping"]["icmp_loss_ratio"] == pytest.approx(1 - 162 / 180)
    series = {(r["check_name"], r["pop"]): r for r in rows_of(spark, out, "series_daily", DAY1)}
    # fra1 web latencies 100..115: p50 = 8th = 107, p95 = ceil(15.2) = 16th = 115
    assert (series[("web", "fra1")]["latency_p50_ms"], series[("web", "fra1")]["latency_p95_ms"]) == (107.0, 115.0)
    assert series[("web", "fra1")]["ttfb_p50_ms"] == 57.0
    hourly = {(r["check_name"], r["pop"], r["hour"]): r for r in rows_of(spark, out, "series_hourly", DAY1)}
    assert hourly[("web", "nyc1", 3)]["availability_pct"] == 0.0
    assert hourly[("web", "nyc1", 2)]["availability_pct"] == 100.0
    paths = rows_of(spark, out, "paths_daily", DAY1)
    assert [(p["path_changes"], p["distinct_paths"]) for p in paths] == [(1, 2)]
    errors = rows_of(spark, out, "errors_daily", DAY1)
    assert [(e["pop"], e["error_type"], e["failures"]) for e in errors] == [("nyc1", "timeout", 4)]
    (slo_row,) = rows_of(spark, out, "slo_daily", DAY1)
    # nyc1's hour 3 (4 failed runs) is in maintenance: 28 of 28 counted runs succeed
    assert (slo_row["runs"], slo_row["runs_in_maintenance"], slo_row["successes"]) == (28, 4, 28)
    assert slo_row["availability_budget_remaining_pct"] == 100.0
    # fast (<= 150 ms): fra1's 16 and none of nyc1's 12 counted successes (200+ ms): 16/28
    assert slo_row["latency_good_pct"] == pytest.approx(100 * 16 / 28)
    assert slo_row["latency_met"] is False


def test_report_and_csv(first_run: tuple[Path, job.JobSummary]) -> None:
    out, summary = first_run
    report_dir = Path(summary.report_dir)
    assert report_dir == out / "report" / f"{DAY1}_{DAY1}"
    page = (report_dir / "report.html").read_text()
    assert "<svg" in page and 'table class="sortable"' in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://cdn" not in page
    assert "corrupt records (skipped)</th><td data-v>4</td>" in page
    assert "broken.parquet" in page
    targets_csv = (report_dir / "targets.csv").read_text().splitlines()
    assert targets_csv[0].startswith("check_name,check_type,target,runs,successes,availability_pct")
    assert targets_csv[1].startswith("web,http,https://a.example/,32,28,87.5")  # the worst target first
    assert "corrupt records (skipped),4" in (report_dir / "ingest.csv").read_text()


def test_rerun_replaces_its_date_only_and_is_idempotent(
    spark: SparkSession,
    lake: Path,
    slo_file: Path,
    first_run: tuple[Path, job.JobSummary],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, _ = first_run
    before_day1 = {t: rows_of(spark, out, t, DAY1) for t in job.TABLES}
    # DAY2 through the `netobs report` sub-command, i.e. a separate Spark job in a subprocess
    monkeypatch.setenv("NETOBS_SPARK_VENV", sys.prefix)
    args = argparse.Namespace(
        date=dt.date.fromisoformat(DAY2),
        first_day=None,
        last_day=None,
        lake=str(lake),
        out=str(out),
        slo=str(slo_file),
        master="local[1]",
        driver_memory="512m",
        top=5,
    )
    assert cli.cmd_report(args) == 0
    day2_files = tree_digest(out / "rollups")
    day2_files = {k: v for k, v in day2_files.items() if f"date={DAY2}" in k}
    assert len([k for k in day2_files if k.endswith(".parquet")]) == len(job.TABLES) - 1  # no errors on DAY2

    run_day(spark, lake, out, DAY1, slo_file)
    after = tree_digest(out / "rollups")
    assert {k: v for k, v in after.items() if f"date={DAY2}" in k} == day2_files
    assert {t: rows_of(spark, out, t, DAY1) for t in job.TABLES} == before_day1


def test_a_date_without_rows_loses_its_old_partition(spark: SparkSession, tmp_path: Path) -> None:
    table = tmp_path / "t"
    d1, d2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
    both = spark.createDataFrame([(d1, 1), (d2, 2)], "date DATE, v INT")
    assert job.write_table(spark, both, str(table), [d1, d2]) == 2
    only_d2 = spark.createDataFrame([(d2, 3)], "date DATE, v INT")
    assert job.write_table(spark, only_d2, str(table), [d1, d2]) == 1
    assert not (table / "date=2026-11-20").exists()
    assert [r["v"] for r in spark.read.parquet(str(table)).collect()] == [3]
    # a run of d1 alone leaves d2 alone
    assert job.write_table(spark, spark.createDataFrame([(d1, 4)], "date DATE, v INT"), str(table), [d1]) == 1
    assert sorted(r["v"] for r in spark.read.parquet(str(table)).collect()) == [3, 4]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (dt.date(2026, 11, 30), dt.date(2026, 11, 30))),
        (["--date", "2026-11-02"], (dt.date(2026, 11, 2), dt.date(2026, 11, 2))),
        (["--from", "2026-11-01", "--to", "2026-11-03"], (dt.date(2026, 11, 1), dt.date(2026, 11, 3))),
        (["--from", "2026-11-01"], (dt.date(2026, 11, 1), dt.date(2026, 11, 1))),
        (["--from", "2026-11-03", "--to", "2026-11-01"], "before --from"),
        (["--to", "2026-11-01"], "--to needs --from"),
        (["--date", "2026-11-01", "--to", "2026-11-02"], "not with --date"),
    ],
)
def test_cli_date_range(argv: list[str], expected: Any) -> None:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            cli.resolve_range(args, dt.date(2026, 12, 1))
    else:
        assert cli.resolve_range(args, dt.date(2026, 12, 1)) == expected


def test_cli_rejects_a_bad_slo_file_before_starting_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "slo.yaml"
    bad.write_text("slos:\n  - check: web\n    availability_percent: 120\n")
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--date", DAY1, "--slo", str(bad)])
    assert args.func(args) == cli.EXIT_USAGE
    assert f"{bad}: slos[0].availability_percent: must be a number" in capsys.readouterr().err


def test_gzip_lake_files_are_read(lake: Path) -> None:
    gz = sorted(lake.glob(f"date={DAY1}/hour=*/part-0.jsonl.gz"))
    assert gz  # the fixture writes some partitions compressed; their records are in the counts above
    assert gzip.decompress(gz[0].read_bytes()).count(b"\n") == 16


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("/data/reports", "/data/reports/report/d"),
        ("/data/reports/", "/data/reports/report/d"),
        ("file:///data/reports", "/data/reports/report/d"),
        ("relative/out", "relative/out/report/d"),
        ("hdfs://nn/netobs/reports", "report/d"),
    ],
)
def test_report_dir(out: str, expected: str) -> None:
    assert job.report_dir_for(out, "d") == expected


def test_a_range_of_two_days_sums_runs_and_follows_paths_across_midnight(
    spark: SparkSession, lake: Path, slo_file: Path, tmp_path: Path
) -> None:
    import csv

    d1, d2 = dt.date.fromisoformat(DAY1), dt.date.fromisoformat(DAY2)
    options = job.JobOptions(str(lake), str(tmp_path), d1, d2, slo=slo.load_slo_config(slo_file), report_top=5)
    summary = job.run(spark, options)
    # DAY1's 66 records, DAY2's 64 and the DAY2 record archived in a DAY1 partition (now in range)
    assert (summary.stats.clean_records, summary.stats.out_of_range_records) == (131, 0)
    assert summary.stats.duplicate_records == 3

    def table(name: str) -> dict[str, dict[str, str]]:
        with open(os.path.join(summary.report_dir, name), newline="") as f:
            return {row["check_name"]: row for row in csv.DictReader(f)}

    # web: DAY1 32 runs, 28 successes (4 failures at nyc1); DAY2 32 + the late record, all successful
    web = table("targets.csv")["web"]
    assert (int(web["runs"]), int(web["successes"])) == (65, 61)
    # trace@fra1 goes p1 -> p2 at 02:00 each day, so DAY2's first run (p1) follows DAY1's last (p2)
    trace = table("paths.csv")["trace"]
    assert (int(trace["traceroute_runs"]), int(trace["path_changes"]), int(trace["distinct_paths"])) == (32, 3, 2)
    paths_daily = spark.read.parquet(str(tmp_path / "rollups" / "paths_daily")).collect()
    per_day = {r["date"]: r["path_changes"] for r in paths_daily}
    assert per_day == {d1: 1, d2: 2}
