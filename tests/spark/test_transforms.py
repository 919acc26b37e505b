"""The rollup maths on small in-memory tables; every expected value is worked out by hand here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from netobs_spark import transforms
from netobs_spark.slo import MaintenanceWindow
from pyspark.sql import DataFrame, SparkSession

from tests.spark.conftest import frame
from tests.spark.lakegen import epoch_ms, icmp_sub, record, traceroute_sub

DAY = "2026-11-20"


def clean_of(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    return transforms.deduplicate(transforms.normalize(frame(spark, records)), 2)


def parts_of(spark: SparkSession, records: list[dict[str, Any]], windows: list[MaintenanceWindow] = ()) -> DataFrame:
    return transforms.partials(clean_of(spark, records), windows)


def by(rows: list[Any], *keys: str) -> dict[Any, dict[str, Any]]:
    out = {}
    for row in rows:
        d = row.asDict()
        out[tuple(d[k] for k in keys) if len(keys) > 1 else d[keys[0]]] = d
    return out


def test_only_the_groups_with_duplicates_are_deduplicated(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 3)
    recs = [record(started_at_ms=t + i * 60_000, result_id=f"a{i}", duration_ms=10.0 + i) for i in range(5)]
    recs += [record(started_at_ms=t + i * 60_000, pop="nyc1", result_id=f"b{i}", duration_ms=20.0) for i in range(4)]
    recs += [dict(recs[0]), dict(recs[4])]  # at-least-once delivery: a0 and a4 twice (fra1, hour 3)
    # a different record with a0's id (another hour): not a copy, kept (as deduplicate keeps a different POP)
    recs += [record(started_at_ms=epoch_ms(DAY, 5), result_id="a0", duration_ms=10.0)]
    normalized = transforms.normalize(frame(spark, recs))
    checked = transforms.partials(normalized.where("valid").drop("valid"), [], flag_duplicates=True)
    doubtful = transforms.doubtful_groups(checked)
    assert [(r["pop"], r["hour"]) for r in doubtful.collect()] == [("fra1", 3)]

    redone = transforms.redo_partials(normalized, doubtful, [], 2)
    parts = transforms.unique_groups(checked).unionByName(redone)
    rows = by(transforms.rollup(parts, transforms.ROLLUPS["series_hourly"]).collect(), "pop", "hour")
    assert {k: r["runs"] for k, r in rows.items()} == {("fra1", 3): 5, ("nyc1", 3): 4, ("fra1", 5): 1}
    assert rows[("fra1", 3)]["latency_avg_ms"] == 12.0  # 10..14 once each
    assert rows[("fra1", 3)]["latency_p99_ms"] == 14.0
    # the same as deduplicating every record of hour 3
    everything = transforms.partials(transforms.deduplicate(normalized.where("hour = 3"), 2))
    assert sorted(transforms.rollup(parts.where("hour = 3"), transforms.ROLLUPS["series_daily"]).collect()) == sorted(
        transforms.rollup(everything, transforms.ROLLUPS["series_daily"]).collect()
    )
    # the groups without duplicates as they are
    untouched = transforms.unique_groups(checked)
    assert sorted((r["pop"], r["hour"]) for r in untouched.collect()) == [("fra1", 5), ("nyc1", 3)]


@pytest.mark.parametrize(
    ("ms", "date", "hour"),
    [
        (epoch_ms(DAY), dt.date(2026, 11, 20), 0),
        (epoch_ms(DAY, 23, 59, 59) + 999, dt.date(2026, 11, 20), 23),
        (epoch_ms(DAY, 13, 30), dt.date(2026, 11, 20), 13),
        (epoch_ms("1970-01-01"), dt.date(1970, 1, 1), 0),
    ],
)
def test_event_day_and_hour_are_utc(spark: SparkSession, ms: int, date: dt.date, hour: int) -> None:
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")  # must not matter
    try:
        row = transforms.normalize(frame(spark, [record(started_at_ms=ms)])).collect()[0]
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert (row["date"], row["hour"]) == (date, hour)


def test_normalize_latency_errors_and_validity(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 1)
    records = [
        record(started_at_ms=t, result_id="ok-http", duration_ms=120.0, phases_ms={"ttfb": 80.0}),
        record(
            started_at_ms=t, result_id="ok-icmp", check_type="icmp", duration_ms=3000.0, icmp=icmp_sub(5, 5, 12.5, 0.4)
        ),
        record(started_at_ms=t, result_id="failed", success=False, duration_ms=5000.0, error_type="timeout"),
        {**record(started_at_ms=t, result_id="no-type", success=False), "error_type": None},
        {**record(started_at_ms=t, result_id="no-pop"), "pop": None},
        {**record(started_at_ms=t, result_id="bad-type"), "success": "maybe"},
    ]
    rows = by(transforms.normalize(frame(spark, records)).collect(), "result_id")
    assert rows["ok-http"]["latency_ms"] == 120.0
    assert rows["ok-http"]["phase_ttfb_ms"] == 80.0
    assert rows["ok-http"]["phase_dns_ms"] is None
    assert rows["ok-icmp"]["latency_ms"] == 12.5  # ICMP latency is the RTT, not the run's duration
    assert (rows["ok-icmp"]["icmp_sent"], rows["ok-icmp"]["icmp_jitter_ms"]) == (5, 0.4)
    assert rows["failed"]["latency_ms"] is None
    assert rows["failed"]["error_type"] == "timeout"
    assert rows["no-type"]["error_type"] == "unknown"
    assert rows["ok-http"]["error_type"] is None
    assert [rows[k]["valid"] for k in ("ok-http", "failed", "no-pop", "bad-type")] == [True, True, False, False]


def test_deduplicate_keeps_one_row_per_result_id(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 2)
    records = [record(started_at_ms=t + i, result_id=f"r{i % 3}") for i in range(7)]
    records.append({**record(started_at_ms=t, result_id="r9"), "check_name": None})  # invalid: dropped
    assert clean_of(spark, records).count() == 3


def test_rollup_percentiles_availability_and_icmp(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 5)
    # web@fra1: ten successes of 10..100 ms (given out of order) and two failures
    latencies = [70.0, 10.0, 100.0, 40.0, 20.0, 90.0, 30.0, 60.0, 80.0, 50.0]
    recs = [record(started_at_ms=t + i, duration_ms=v) for i, v in enumerate(latencies)]
    recs += [record(started_at_ms=t + 20, success=False, error_type="timeout", duration_ms=9999.0)]
    recs += [record(started_at_ms=t + 21, success=False, error_type="connection_refused", duration_ms=1.0)]
    # web@nyc1 (same target): four successes 5, 1, 3, 2 ms, in hour 6
    recs += [
        record(started_at_ms=epoch_ms(DAY, 6) + i, pop="nyc1", duration_ms=v)
        for i, v in enumerate([5.0, 1.0, 3.0, 2.0])
    ]
    # ping@fra1: 5/4 and 5/5 packets, jitter 1 and 3 ms
    recs += [
        record(started_at_ms=t, check_name="ping", check_type="icmp", target="10.0.0.1", icmp=icmp_sub(5, 4, 8.0, 1.0)),
        record(
            started_at_ms=t + 1, check_name="ping", check_type="icmp", target="10.0.0.1", icmp=icmp_sub(5, 5, 10.0, 3.0)
        ),
    ]
    parts = parts_of(spark, recs)

    series = by(transforms.rollup(parts, transforms.ROLLUPS["series_daily"]).collect(), "check_name", "pop")
    fra = series[("web", "fra1")]
    assert (fra["runs"], fra["successes"]) == (12, 10)
    assert fra["availability_pct"] == pytest.approx(100 * 10 / 12)
    # nearest rank: p50 = 5th of 10 values, p90 = 9th, p95 = p99 = 10th
    assert [fra[f"latency_{p}_ms"] for p in ("p50", "p90", "p95", "p99")] == [50.0, 90.0, 100.0, 100.0]
    assert fra["latency_avg_ms"] == pytest.approx(55.0)
    assert fra["latency_max_ms"] == 100.0
    nyc = series[("web", "nyc1")]
    # sorted 1, 2, 3, 5: p50 = 2nd value, p90 = ceil(3.6) = 4th
    assert [nyc[f"latency_{p}_ms"] for p in ("p50", "p90", "p95", "p99")] == [2.0, 5.0, 5.0, 5.0]
    assert nyc["availability_pct"] == 100.0
    ping = series[("ping", "fra1")]
    assert (ping["icmp_packets_sent"], ping["icmp_packets_received"]) == (10, 9)
    assert ping["icmp_loss_ratio"] == pytest.approx(0.1)
    assert (ping["icmp_jitter_avg_ms"], ping["icmp_jitter_max_ms"]) == (2.0, 3.0)
    assert ping["latency_p50_ms"] == 8.0  # RTTs 8 and 10: the 1st of 2
    assert fra["icmp_loss_ratio"] is None

    targets = by(transforms.rollup(parts, transforms.ROLLUPS["target_daily"]).collect(), "check_name")
    web = targets["web"]
    assert (web["runs"], web["successes"], web["pops"]) == (16, 14, 2)
    assert web["availability_pct"] == pytest.approx(100 * 14 / 16)
    # 14 values 1,2,3,5,10..100: p50 = 7th = 30, p90 = ceil(12.6) = 13th = 90
    assert (web["latency_p50_ms"], web["latency_p90_ms"]) == (30.0, 90.0)

    hourly = by(transforms.rollup(parts, transforms.ROLLUPS["target_hourly"]).collect(), "check_name", "hour")
    assert hourly[("web", 5)]["runs"] == 12
    assert hourly[("web", 6)]["runs"] == 4


def test_phase_percentiles(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 3)
    recs = [
        record(started_at_ms=t + i, phases_ms={"dns": float(i + 1), "connect": 10.0 * (i + 1), "ttfb": 7.0})
        for i in range(4)
    ]
    row = transforms.rollup(parts_of(spark, recs), transforms.ROLLUPS["target_daily"]).collect()[0]
    assert (row["dns_p50_ms"], row["dns_p99_ms"]) == (2.0, 4.0)
    assert (row["connect_p50_ms"], row["connect_p90_ms"]) == (20.0, 40.0)
    assert row["ttfb_p95_ms"] == 7.0
    assert row["tls_p50_ms"] is None


def test_error_breakdown(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 4)
    errors = ["timeout", "timeout", "connection_refused", None, None]
    recs = [record(started_at_ms=t + i, success=e is None, error_type=e) for i, e in enumerate(errors)]
    recs.append(record(started_at_ms=t, pop="nyc1", success=False, error_type="timeout"))
    parts = parts_of(spark, recs)
    series_daily = transforms.rollup(parts, transforms.ROLLUPS["series_daily"])
    rows = by(transforms.error_breakdown(parts, series_daily).collect(), "pop", "error_type")
    assert set(rows) == {("fra1", "timeout"), ("fra1", "connection_refused"), ("nyc1", "timeout")}
    assert rows[("fra1", "timeout")]["failures"] == 2
    assert rows[("fra1", "timeout")]["share_of_runs_pct"] == pytest.approx(40.0)
    assert rows[("nyc1", "timeout")]["share_of_runs_pct"] == 100.0


def test_path_changes_follow_event_time(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 7)
    hashes = ["a", "a", "b", "a", "a"]  # changes at the 3rd and 4th run
    recs = [
        record(
            started_at_ms=t + 60_000 * i,
            check_name="tr",
            check_type="traceroute",
            target="10.0.0.9",
            traceroute=traceroute_sub(h, distinct_paths=2 if i == 1 else 1),
        )
        for i, h in enumerate(hashes)
    ]
    recs.reverse()  # input order must not matter
    recs.append(
        record(
            started_at_ms=t,
            check_name="tr",
            check_type="traceroute",
            target="10.0.0.9",
            pop="nyc1",
            traceroute=traceroute_sub("c"),
        )
    )
    rows = by(transforms.path_changes(parts_of(spark, recs)).collect(), "pop")
    assert (rows["fra1"]["traceroute_runs"], rows["fra1"]["path_changes"], rows["fra1"]["distinct_paths"]) == (5, 2, 2)
    assert rows["fra1"]["ecmp_paths_max"] == 2
    assert (rows["nyc1"]["path_changes"], rows["nyc1"]["distinct_paths"]) == (0, 1)


def objectives(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    ddl = (
        "check_name STRING, target STRING, availability_target_pct DOUBLE, latency_threshold_ms DOUBLE, "
        "latency_target_pct DOUBLE"
    )
    return spark.createDataFrame(rows, schema=ddl)


def test_slo_compliance_and_error_budget(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 10)
    recs = []
    # 20 runs outside maintenance: 18 successes (16 at 40 ms, 2 at 400 ms), 2 failures
    for i in range(20):
        ok = i >= 2
        recs.append(record(started_at_ms=t + 1000 * i, success=ok, duration_ms=400.0 if i in (2, 3) else 40.0))
    # 5 failed runs inside the maintenance window (hour 2), and 1 failed run at nyc1 in a POP-only window
    recs += [record(started_at_ms=epoch_ms(DAY, 2, 10 + i), success=False) for i in range(5)]
    recs.append(record(started_at_ms=epoch_ms(DAY, 3), success=False, pop="nyc1"))
    # a target without an SLO is left out
    recs.append(record(started_at_ms=t, target="https://no-slo.example/"))
    windows = [
        MaintenanceWindow(epoch_ms(DAY, 2), epoch_ms(DAY, 3), ("web",), None, None, "upgrade"),
        MaintenanceWindow(epoch_ms(DAY, 3), epoch_ms(DAY, 3, 1), None, None, ("nyc1",), "pop move"),
    ]
    slo = objectives(spark, [("web", "https://a.example/", 95.0, 100.0, 90.0)])
    rows = transforms.slo_compliance(parts_of(spark, recs, windows), slo).collect()
    assert len(rows) == 1
    r = rows[0].asDict()
    assert (r["runs_total"], r["runs_in_maintenance"], r["runs"], r["successes"], r["fast_runs"]) == (26, 6, 20, 18, 16)
    assert r["availability_pct"] == pytest.approx(90.0)
    # allowed failures = 20 * 5% = 1; 2 failures -> 100 * (1 - 2/1) = -100 %
    assert r["availability_budget_remaining_pct"] == pytest.approx(-100.0)
    assert r["availability_met"] is False
    # latency: 16 of 18 fast = 88.89 %; allowed slow = 18 * 10% = 1.8; 2 slow -> 100 * (1 - 2/1.8) = -11.11 %
    assert r["latency_good_pct"] == pytest.approx(100 * 16 / 18)
    assert r["latency_budget_remaining_pct"] == pytest.approx(100 * (1 - 2 / 1.8))
    assert r["latency_met"] is False


def test_slo_within_budget(spark: SparkSession) -> None:
    t = epoch_ms(DAY, 10)
    recs = [record(started_at_ms=t + i, success=i != 0, duration_ms=10.0) for i in range(200)]
    slo = objectives(spark, [("web", "https://a.example/", 99.0, None, None)])
    r = transforms.slo_compliance(parts_of(spark, recs), slo).collect()[0].asDict()
    # allowed failures = 200 * 1% = 2; 1 failure -> 50 % of the budget left
    assert r["availability_budget_remaining_pct"] == pytest.approx(50.0)
    assert r["availability_met"] is True
    assert r["latency_good_pct"] is None
    assert r["latency_met"] is None
