"""The job's maths: pure functions from DataFrames to DataFrames (no reads, no writes, no session state).

Theory of operation
-------------------
``normalize`` projects the raw record (``schema.RESULT_RECORD`` plus the reader's corrupt-record column)
onto the flat columns every rollup needs and flags each row ``valid`` (parsed, required fields present).
``deduplicate`` keeps one row per ``result_id``; it clusters the rows by (check_name, target) first, so
every later aggregation, whose keys all start with (check_name, target), runs without another shuffle.

Definitions (units in the column names):
- ``latency_ms`` of a run: the ICMP average RTT for ``icmp`` checks, the run's ``duration_ms`` otherwise;
  only successful runs have one (a failed run's duration measures the failure, not the service).
- percentiles are exact and nearest-rank: the p-th percentile is the smallest value v with at least p% of
  the group's values <= v, i.e. the ceil(n * p)-th of the n sorted values. ``partials`` aggregates the
  records once per (date, hour, series), keeping each latency column's values as a sorted array; every
  rollup merges those rows (sums of the additive parts, concatenated and re-sorted values), so no rollup
  reads the records again and none approximates.
- availability_pct = 100 * successes / runs; ICMP loss_ratio = 1 - packets received / packets sent.
- a path change is a traceroute run whose path_hash differs from the previous run of the same series
  (check, target, POP) in the data read; the first run of a range has no predecessor.
- SLOs: maintenance-window runs are left out; availability error budget remaining (percent) =
  100 * (1 - failed runs / allowed failures) with allowed failures = runs * (1 - target / 100); the
  latency SLI is the share of successful runs with latency_ms <= threshold_ms, its budget likewise.
  A budget below 0 means the SLO is broken; "met" is budget remaining >= 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from netobs_spark.schema import CORRUPT_RECORD_COLUMN, REQUIRED_FIELDS
from netobs_spark.slo import MaintenanceWindow

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
PERCENTILE_NAMES = ("p50", "p90", "p95", "p99")
PHASES = ("dns", "connect", "tls", "ttfb", "transfer")
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000

SERIES_KEYS = ("check_name", "check_type", "target", "pop")
TARGET_KEYS = ("check_name", "check_type", "target")

# The rollup tables the job writes, with the keys of each (all partitioned by `date`).
ROLLUPS: dict[str, tuple[str, ...]] = {
    "series_hourly": ("date", "hour", *SERIES_KEYS),
    "series_daily": ("date", *SERIES_KEYS),
    "target_hourly": ("date", "hour", *TARGET_KEYS),
    "target_daily": ("date", *TARGET_KEYS),
}


def normalize(raw: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """The flat columns of the rollups, one row per input record, plus ``valid`` and the event day/hour.

    ``raw`` has the record's columns; a ``_corrupt_record`` column (JSON reader) is optional. ``date`` is
    the UTC day of ``started_at_ms`` (DateType, independent of the session time zone), ``hour`` 0..23.
    Columns named in ``keep`` are passed through unchanged.
    """
    valid: Column = F.lit(True)
    for name in REQUIRED_FIELDS:
        valid = valid & F.col(name).isNotNull()
    if CORRUPT_RECORD_COLUMN in raw.columns:
        valid = valid & F.col(CORRUPT_RECORD_COLUMN).isNull()
    started = F.col("started_at_ms")
    is_icmp = F.col("check_type") == F.lit("icmp")
    latency = F.when(is_icmp, F.col("icmp.rtt_avg_ms")).otherwise(F.col("duration_ms"))
    phases = [F.col("phases_ms").getItem(p).alias(f"phase_{p}_ms") for p in PHASES]
    return raw.select(
        F.coalesce(valid, F.lit(False)).alias("valid"),
        F.col("result_id"),
        started.alias("started_at_ms"),
        F.date_from_unix_date(F.floor(started / MS_PER_DAY).cast("int")).alias("date"),
        F.floor(F.pmod(started, F.lit(MS_PER_DAY)) / MS_PER_HOUR).cast("int").alias("hour"),
        *(F.col(k) for k in SERIES_KEYS),
        F.col("success"),
        F.when(~F.col("success"), F.coalesce(F.col("error_type"), F.lit("unknown"))).alias("error_type"),
        F.when(F.col("success"), latency).alias("latency_ms"),
        *phases,
        F.when(is_icmp, F.col("icmp.sent")).alias("icmp_sent"),
        F.when(is_icmp, F.col("icmp.received")).alias("icmp_received"),
        F.when(is_icmp, F.col("icmp.jitter_ms")).alias("icmp_jitter_ms"),
        F.col("traceroute.path_hash").alias("path_hash"),
        F.col("traceroute.distinct_paths").alias("ecmp_paths"),
        *keep,
    )


def in_range(first_day: Any, last_day: Any) -> Column:
    """Rows whose event day lies in [first_day, last_day] (``datetime.date`` values)."""
    return (F.col("date") >= F.lit(first_day)) & (F.col("date") <= F.lit(last_day))


def deduplicate(normalized: DataFrame, partitions: int) -> DataFrame:
    """Valid rows, one per result_id, clustered by (check_name, target) into ``partitions`` partitions.

    A replayed record repeats the original's check and target, so deduplicating within the clustering
    is the same as deduplicating by result_id alone, without a second shuffle. The string columns (the
    same in every copy of a record) are grouping keys rather than ``first()`` values: string buffers
    would push Spark from hash to sort aggregation, several times slower here.
    """
    valid = normalized.where(F.col("valid")).drop("valid")
    keys = ["check_name", "target", "result_id"]
    keys += [c for c in _STRING_COLUMNS if c in valid.columns and c not in keys]
    others = [c for c in valid.columns if c not in keys]
    return (
        valid.repartition(partitions, "check_name", "target")
        .groupBy(*keys)
        .agg(*(F.first(c).alias(c) for c in others))
        .drop("result_id")
    )


_STRING_COLUMNS = ("check_type", "pop", "error_type", "path_hash")


# The columns whose percentiles the rollups report; each is carried as a sorted array of its values.
VALUE_COLUMNS = ("latency_ms", *(f"phase_{p}_ms" for p in PHASES))
# Nearest rank in integers: rank = ceil(n * p) = (n * PERMYRIAD + 9999) // 10000 (no floating-point edge).
_PERMYRIAD = tuple(round(p * 10_000) for p in PERCENTILES)
BASE_KEYS = ROLLUPS["series_hourly"]
_SLO_VALUES = "_values_slo_latency_ms"  # latencies outside maintenance windows (only when there are windows)


def _values(column: str) -> str:
    return f"_values_{column}"


def partials(
    clean: DataFrame,
    windows: Sequence[MaintenanceWindow] = (),
    *,
    flag_duplicates: bool = False,
    source_column: str | None = None,
) -> DataFrame:
    """One row per (date, hour, series): the additive parts of every table and the sorted values.

    This is the only aggregation over the records; every table is computed from these rows: the rollups
    merge them (``merge``), which keeps the percentiles exact (a group's values are the concatenation of
    its parts' values); the error breakdown explodes the failed runs' error types (``_errors``), the path
    analysis the traceroute runs' (time, path_hash, ECMP paths) (``_paths``), and the SLOs count the runs
    inside the maintenance ``windows`` and use the latencies of the runs outside them.

    ``flag_duplicates`` adds ``_unique``: false where two of the group's records may share a result_id
    (equal 64-bit hashes: every real duplicate, and very rarely two different ids), and with
    ``source_column`` (the records' file) ``_files``, the files of the group's records, so that only
    those are read again to deduplicate it. See ``unique_groups``.
    """
    maintenance = maintenance_condition(windows)
    slo_values = (
        [F.sort_array(F.collect_list(F.when(~maintenance, F.col("latency_ms")))).alias(_SLO_VALUES)] if windows else []
    )
    traceroute = F.struct("started_at_ms", "path_hash", "ecmp_paths")
    flags: list[Column] = []
    if flag_duplicates:
        ids = F.collect_list(F.xxhash64("result_id"))
        flags.append((F.size(F.array_distinct(ids)) == F.count(F.lit(1))).alias("_unique"))
        if source_column is not None:
            flags.append(F.collect_set(source_column).alias("_files"))
    return clean.groupBy(*BASE_KEYS).agg(
        F.count(F.lit(1)).alias("runs"),
        F.sum(F.col("success").cast("long")).alias("successes"),
        F.sum("latency_ms").alias("_latency_sum_ms"),
        F.sum("icmp_sent").alias("icmp_packets_sent"),
        F.sum("icmp_received").alias("icmp_packets_received"),
        F.sum("icmp_jitter_ms").alias("_jitter_sum_ms"),
        F.count("icmp_jitter_ms").alias("_jitter_n"),
        F.max("icmp_jitter_ms").alias("icmp_jitter_max_ms"),
        # collect_list skips nulls: failed runs and absent phases add no value
        *(F.sort_array(F.collect_list(c)).alias(_values(c)) for c in VALUE_COLUMNS),
        F.count(F.when(maintenance, 1)).alias("_maintenance_runs"),
        F.count(F.when(maintenance & F.col("success"), 1)).alias("_maintenance_successes"),
        *slo_values,
        F.collect_list("error_type").alias("_errors"),  # set on failed runs only
        F.collect_list(F.when(F.col("path_hash").isNotNull(), traceroute)).alias("_paths"),
        *flags,
    )


def doubtful_groups(checked: DataFrame) -> DataFrame:
    """The (date, hour, series) keys of ``partials(..., flag_duplicates=True)`` rows that may hold duplicates."""
    return checked.where(~F.col("_unique")).select(*BASE_KEYS)


def files_of(checked: DataFrame) -> DataFrame:
    """The distinct files (``_file``) of the doubtful groups' records (``partials(..., source_column=...)``)."""
    return checked.where(~F.col("_unique")).select(F.explode("_files").alias("_file")).distinct()


def unique_groups(checked: DataFrame) -> DataFrame:
    """The ``partials`` rows of ``checked`` that hold no duplicate, exact as they are.

    ``checked`` is ``partials(valid records, windows, flag_duplicates=True)``. A duplicate is a copy of a
    record (at-least-once delivery, a replay): the same result_id, started_at_ms and series, so the copies
    fall in one (date, hour, series) group. The groups without two equal id hashes are kept as they are;
    the others (``doubtful_groups``) are aggregated again from their deduplicated records
    (``redo_partials``). Deduplicating every record instead (a shuffle of all of them) took 4/5 of the
    job's time with no duplicate at all. (Different records that share an id, in different groups, are
    all kept, as ``deduplicate`` keeps them when their POP or error differs.)
    """
    return checked.where(F.col("_unique")).drop("_unique", "_files")


def redo_partials(
    normalized: DataFrame, doubtful: DataFrame, windows: Sequence[MaintenanceWindow], partitions: int
) -> DataFrame:
    """``partials`` of the deduplicated records of the ``doubtful`` groups (see ``unique_groups``)."""
    # both sides come from the same records: aliases keep the join condition from being trivially true
    same_group = [F.col(f"_r.{k}").eqNullSafe(F.col(f"_d.{k}")) for k in BASE_KEYS]
    records = normalized.alias("_r").join(doubtful.alias("_d"), same_group, "left_semi")
    return partials(deduplicate(records, partitions), windows)


def merge(parts: DataFrame, keys: Sequence[str]) -> DataFrame:
    """``partials`` rows merged into groups of ``keys`` (a subset of ``BASE_KEYS``), still partial."""
    if tuple(keys) == BASE_KEYS:
        return parts.withColumn("pops", F.lit(1))
    return parts.groupBy(*keys).agg(
        *(F.sum(c).alias(c) for c in ("runs", "successes", "_latency_sum_ms")),
        *(F.sum(c).alias(c) for c in ("icmp_packets_sent", "icmp_packets_received", "_jitter_sum_ms", "_jitter_n")),
        F.max("icmp_jitter_max_ms").alias("icmp_jitter_max_ms"),
        (F.lit(1) if "pop" in keys else F.size(F.collect_set("pop"))).alias("pops"),
        *(F.sort_array(F.flatten(F.collect_list(_values(c)))).alias(_values(c)) for c in VALUE_COLUMNS),
    )


def _percentiles(values: Column, prefix: str) -> list[Column]:
    n = F.size(values).cast("long")  # n * 9,900 overflows an int from ~217,000 values on
    # get() is 0-based and null outside the array (an empty group has no percentiles)
    ranks = [F.floor((n * F.lit(k) + F.lit(9_999)) / F.lit(10_000)).cast("int") for k in _PERMYRIAD]
    names = [f"{prefix}_{name}_ms" for name in PERCENTILE_NAMES]
    return [F.get(values, rank - 1).alias(name) for rank, name in zip(ranks, names, strict=True)]


def finish(merged: DataFrame, keys: Sequence[str]) -> DataFrame:
    """The rollup table's columns from ``merge`` rows: ratios, averages and nearest-rank percentiles."""
    latencies = F.col(_values("latency_ms"))
    n_latency = F.size(latencies)
    phases = [c for p in PHASES for c in _percentiles(F.col(_values(f"phase_{p}_ms")), p)]
    loss = F.when(
        F.col("icmp_packets_sent") > 0,
        1.0 - F.col("icmp_packets_received") / F.col("icmp_packets_sent"),
    )
    return merged.select(
        *keys,
        "runs",
        "successes",
        (F.col("successes") * 100.0 / F.col("runs")).alias("availability_pct"),
        "pops",
        F.when(n_latency > 0, F.col("_latency_sum_ms") / n_latency).alias("latency_avg_ms"),
        *_percentiles(latencies, "latency"),
        F.get(latencies, n_latency - 1).alias("latency_max_ms"),
        "icmp_packets_sent",
        "icmp_packets_received",
        loss.alias("icmp_loss_ratio"),
        F.when(F.col("_jitter_n") > 0, F.col("_jitter_sum_ms") / F.col("_jitter_n")).alias("icmp_jitter_avg_ms"),
        "icmp_jitter_max_ms",
        *phases,
    )


def rollup(parts: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Runs, availability, latency and phase percentiles, ICMP loss and jitter per group of ``keys``.

    ``parts`` is ``partials`` of the deduplicated records.
    """
    return finish(merge(parts, keys), keys)


def error_breakdown(parts: DataFrame, series_daily: DataFrame) -> DataFrame:
    """Failed runs per (date, series, error_type), with the share of the series' runs that day.

    ``series_daily`` is ``rollup(parts, ROLLUPS["series_daily"])`` (its ``runs``).
    """
    keys = ["date", *SERIES_KEYS]
    runs = series_daily.select(*keys, "runs")
    failures = (
        parts.select(*keys, F.explode("_errors").alias("error_type"))
        .groupBy(*keys, "error_type")
        .agg(F.count(F.lit(1)).alias("failures"))
    )
    return failures.join(runs, keys).select(
        *keys,
        "error_type",
        "failures",
        (F.col("failures") * 100.0 / F.col("runs")).alias("share_of_runs_pct"),
    )


def traceroute_runs(parts: DataFrame) -> DataFrame:
    """One row per traceroute run with a path: date, series keys, started_at_ms, path_hash, ecmp_paths."""
    runs = parts.where(F.size("_paths") > 0).select("date", *SERIES_KEYS, F.explode("_paths").alias("_run"))
    return runs.select("date", *SERIES_KEYS, "_run.started_at_ms", "_run.path_hash", "_run.ecmp_paths")


def path_changes(parts: DataFrame) -> DataFrame:
    """Per (date, series) of traceroute checks: runs, path changes, distinct paths, reachability of ECMP."""
    series = Window.partitionBy("check_name", "target", "pop").orderBy("started_at_ms")
    traces = traceroute_runs(parts)
    previous = F.lag("path_hash").over(series)
    marked = traces.withColumn("_changed", (previous.isNotNull() & (previous != F.col("path_hash"))).cast("long"))
    return marked.groupBy("date", *SERIES_KEYS).agg(
        F.count(F.lit(1)).alias("traceroute_runs"),
        F.sum("_changed").alias("path_changes"),
        F.size(F.collect_set("path_hash")).alias("distinct_paths"),
        F.max("ecmp_paths").alias("ecmp_paths_max"),
    )


def maintenance_condition(windows: Sequence[MaintenanceWindow]) -> Column:
    """True for runs that started inside one of the maintenance windows (``[start, end)``)."""
    condition: Column = F.lit(False)
    for w in windows:
        inside = (F.col("started_at_ms") >= F.lit(w.start_ms)) & (F.col("started_at_ms") < F.lit(w.end_ms))
        for column, values in (("check_name", w.checks), ("target", w.targets), ("pop", w.pops)):
            if values is not None:
                inside = inside & F.col(column).isin(list(values))
        condition = condition | inside
    return condition


def slo_compliance(parts: DataFrame, objectives: DataFrame) -> DataFrame:
    """Per (date, check, target) over all POPs: SLIs against ``objectives`` and error budget remaining.

    ``objectives`` has one row per (check_name, target): availability_target_pct, latency_threshold_ms,
    latency_target_pct (each nullable). Series without an objective are left out. ``parts`` is
    ``partials`` made with the maintenance windows, whose runs the SLIs leave out.
    """
    keys = ["date", "check_name", "check_type", "target"]
    values = F.col(_SLO_VALUES if _SLO_VALUES in parts.columns else _values("latency_ms"))
    # runs outside the windows that succeeded and were fast enough (no threshold: none)
    fast = F.size(F.filter(values, lambda v: v <= F.col("latency_threshold_ms")))
    joined = parts.join(F.broadcast(objectives), ["check_name", "target"])
    sums = joined.groupBy(*keys).agg(
        F.sum("runs").alias("runs_total"),
        F.sum("_maintenance_runs").alias("runs_in_maintenance"),
        F.sum(F.col("runs") - F.col("_maintenance_runs")).alias("runs"),
        F.sum(F.col("successes") - F.col("_maintenance_successes")).alias("successes"),
        F.sum(fast.cast("long")).alias("fast_runs"),
        F.first("availability_target_pct").alias("availability_target_pct"),
        F.first("latency_threshold_ms").alias("latency_threshold_ms"),
        F.first("latency_target_pct").alias("latency_target_pct"),
    )
    return with_budgets(sums)


def with_budgets(sums: DataFrame) -> DataFrame:
    """SLIs and budgets from the additive counts (runs, successes, fast_runs), so ranges can be summed."""
    availability = F.col("successes") * 100.0 / F.col("runs")
    allowed_failures = F.col("runs") * (100.0 - F.col("availability_target_pct")) / 100.0
    availability_budget = 100.0 * (1.0 - (F.col("runs") - F.col("successes")) / allowed_failures)
    latency_sli = F.col("fast_runs") * 100.0 / F.col("successes")
    allowed_slow = F.col("successes") * (100.0 - F.col("latency_target_pct")) / 100.0
    latency_budget = 100.0 * (1.0 - (F.col("successes") - F.col("fast_runs")) / allowed_slow)
    has_availability = F.col("availability_target_pct").isNotNull() & (F.col("runs") > 0)
    has_latency = F.col("latency_target_pct").isNotNull() & (F.col("successes") > 0)
    return sums.select(
        *sums.columns,
        F.when(F.col("runs") > 0, availability).alias("availability_pct"),
        F.when(has_availability, availability_budget).alias("availability_budget_remaining_pct"),
        F.when(has_availability, availability >= F.col("availability_target_pct")).alias("availability_met"),
        F.when(has_latency, latency_sli).alias("latency_good_pct"),
        F.when(has_latency, latency_budget).alias("latency_budget_remaining_pct"),
        F.when(has_latency, latency_sli >= F.col("latency_target_pct")).alias("latency_met"),
    )
