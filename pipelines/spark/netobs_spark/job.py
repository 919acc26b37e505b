"""The nightly job: read a range of the lake, roll up, write Parquet rollups and the report.

read (lake.py) -> normalize, deduplicate (transforms.py) -> rollups, errors, paths, SLOs -> write:
``<out>/rollups/<table>/date=YYYY-MM-DD/*.parquet`` (dynamic partition overwrite: a re-run replaces the
dates of its range and nothing else; a date of the range without rows loses its old partition) and
``<out>/report/<first>_<last>/`` (report.html and CSV files, see report.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from netobs_spark import lake, report, transforms
from netobs_spark.schema import record_ddl
from netobs_spark.slo import SloConfig, slo_for

log = logging.getLogger("netobs_spark")

TABLES = (*transforms.ROLLUPS, "errors_daily", "paths_daily", "slo_daily")


@dataclass(frozen=True)
class JobOptions:
    lake: str
    out: str
    first_day: dt.date
    last_day: dt.date
    slo: SloConfig = field(default_factory=SloConfig)
    shuffle_partitions: int = 0  # 0: twice the cores of a local session, else Spark's own setting
    report_top: int = 20  # worst targets shown with charts in the report


@dataclass
class IngestStats:
    """What the read found; every count is in the report and the log."""

    partitions: int = 0
    data_files: int = 0
    ignored_files: list[str] = field(default_factory=list)
    corrupt_files: list[str] = field(default_factory=list)  # non-empty files that produced no rows
    records_read: int = 0
    corrupt_records: int = 0  # unparsable lines, wrong types, required fields missing
    out_of_range_records: int = 0  # valid records whose event day is outside the range
    duplicate_records: int = 0
    clean_records: int = 0


@dataclass
class JobSummary:
    stats: IngestStats
    report_dir: str
    table_rows: dict[str, int]
    elapsed_s: float


def session_conf(*, local: bool, shuffle_partitions: int, driver_memory: str = "2g") -> dict[str, str]:
    """Spark settings of the job. Local sessions stay on loopback, without the UI."""
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.files.ignoreCorruptFiles": "true",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.execution.arrow.pyspark.enabled": "false",
        # collect_list is an object aggregate: keep more groups in its hash map before Spark falls back
        # to sorting (the hourly partials have tens of thousands of groups per partition)
        "spark.sql.objectHashAggregate.sortBased.fallbackThreshold": "65536",
    }
    if shuffle_partitions > 0:
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    if local:
        conf.update(
            {
                "spark.driver.memory": driver_memory,
                "spark.ui.enabled": "false",
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.adaptive.coalescePartitions.enabled": "true",
            }
        )
    return conf


def build_session(master: str | None, *, driver_memory: str = "2g", app_name: str = "netobs-report") -> SparkSession:
    """A session for the job: ``local[*]`` unless a master is given or spark-submit already set one."""
    from pyspark import SparkConf

    preset = SparkConf().get("spark.master")
    local_master = master or (None if preset else "local[*]")
    effective = local_master or preset or ""
    local = effective.startswith("local")
    cores = os.cpu_count() or 2
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # stay on loopback, no interface lookup
    builder = SparkSession.builder.appName(app_name)
    if local_master is not None:
        builder = builder.master(local_master)
    for key, value in session_conf(
        local=local, shuffle_partitions=2 * cores if local else 0, driver_memory=driver_memory
    ).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def _step(what: str) -> Iterator[None]:
    started = time.monotonic()
    log.info("%s ...", what)
    yield
    log.info("%s: done in %.1f s", what, time.monotonic() - started)


def _empty_raw(spark: SparkSession) -> DataFrame:
    df = spark.createDataFrame([], schema=record_ddl(with_corrupt_column=True))
    return df.withColumn(lake.SOURCE_FILE_COLUMN, F.lit(None).cast("string"))


def _rows(df: DataFrame) -> list[dict[str, Any]]:
    return [_plain(r.asDict()) for r in df.collect()]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}


def write_table(
    spark: SparkSession, df: DataFrame, path: str, days: list[dt.date], per_day: dict[dt.date, int] | None = None
) -> int:
    """Replace the ``days`` partitions of the table at ``path`` with ``df``; other dates are untouched.

    Returns the rows written. Dynamic partition overwrite replaces the dates present in ``df``; a day of
    the range absent from ``df`` has its old partition deleted, so a re-run never leaves stale rows.
    ``per_day`` (rows by date) saves a pass when the caller has it.
    """
    if per_day is None:
        per_day = {r["date"]: int(r["count"]) for r in df.groupBy("date").count().collect()}
    present = set(per_day)
    rows = sum(per_day.values())
    if present:
        df.repartition("date").write.mode("overwrite").partitionBy("date").parquet(path)
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    for day in days:
        if day in present:
            continue
        stale = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/date={day.isoformat()}")
        fs = stale.getFileSystem(hadoop_conf)
        if fs.exists(stale):
            fs.delete(stale, True)
            log.info("%s: removed the partition of %s (no rows this time)", path, day)
    return int(rows)


def report_dir_for(out: str, span: str) -> str:
    """Where the driver writes the HTML and CSV report: below ``out`` when it is local, else ``./report``."""
    parsed = urlparse(out)
    if parsed.scheme in ("", "file"):
        base = unquote(parsed.path) if parsed.scheme else out
        return f"{base.rstrip('/')}/report/{span}"
    log.info("output %s is not local: the report goes to ./report/%s", out, span)
    return f"report/{span}"


def objectives_frame(spark: SparkSession, pairs: list[tuple[str, str]], config: SloConfig) -> DataFrame:
    """One row per (check_name, target) that an SLO covers, with its targets (see transforms.slo_compliance)."""
    rows = []
    for check, target in pairs:
        slo = slo_for(config, check, target)
        if slo is None:
            continue
        rows.append(
            (
                check,
                target,
                slo.availability_percent,
                slo.latency.threshold_ms if slo.latency else None,
                slo.latency.percent if slo.latency else None,
            )
        )
    ddl = (
        "check_name STRING, target STRING, availability_target_pct DOUBLE, "
        "latency_threshold_ms DOUBLE, latency_target_pct DOUBLE"
    )
    return spark.createDataFrame(rows, schema=ddl)


def _files_subset(files: lake.LakeFiles, wanted: list[str]) -> lake.LakeFiles:
    """The files of ``files`` named in ``wanted`` (paths as the reader reports them)."""
    keep = {lake.canonical_path(p) for p in wanted}
    return lake.LakeFiles(
        json=[p for p in files.json if lake.canonical_path(p) in keep],
        parquet=[p for p in files.parquet if lake.canonical_path(p) in keep],
    )


def _ingest_stats(staged: DataFrame, files: lake.LakeFiles) -> IngestStats:
    per_file = staged.groupBy(lake.SOURCE_FILE_COLUMN).agg(
        F.count(F.lit(1)).alias("records"),
        F.count(F.when(~F.col("valid"), 1)).alias("corrupt"),
        F.count(F.when(F.col("valid") & ~F.col("_in_range"), 1)).alias("out_of_range"),
    )
    stats = IngestStats(partitions=files.partitions, data_files=len(files.data_files), ignored_files=files.ignored)
    seen = set()
    for row in per_file.collect():
        seen.add(lake.canonical_path(row[lake.SOURCE_FILE_COLUMN]))
        stats.records_read += row["records"]
        stats.corrupt_records += row["corrupt"]
        stats.out_of_range_records += row["out_of_range"]
    for path in files.data_files:
        canonical = lake.canonical_path(path)
        if canonical not in seen and files.size_bytes.get(canonical, 0) > 0:
            stats.corrupt_files.append(path)
    return stats


def run(spark: SparkSession, options: JobOptions) -> JobSummary:
    """Run the job for the options' range. Bad files and records are counted and skipped, never fatal."""
    started = time.monotonic()
    days = lake.days_in_range(options.first_day, options.last_day)
    span = f"{options.first_day.isoformat()}_{options.last_day.isoformat()}"
    log.info("netobs report %s: lake %s -> %s", span, options.lake, options.out)
    with _step("listing the lake"):
        files = lake.list_lake_files(spark, options.lake, days)
    log.info(
        "found %d hour partitions, %d JSON and %d Parquet files (%d other files ignored)",
        files.partitions,
        len(files.json),
        len(files.parquet),
        len(files.ignored),
    )
    raw = lake.read_lake(spark, files) or _empty_raw(spark)
    range_cond = transforms.in_range(options.first_day, options.last_day)
    # Two reads of the lake: a narrow one for the counts, then one aggregation (plus, when there are
    # duplicates, a read of the files that hold them).
    staged = transforms.normalize(raw, keep=(lake.SOURCE_FILE_COLUMN,)).withColumn("_in_range", range_cond)
    with _step("reading the lake: records, corrupt records, unreadable files"):
        stats = _ingest_stats(staged, files)
    for path in stats.corrupt_files:
        log.warning("unreadable file skipped: %s", path)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or "8")
    windows = options.slo.maintenance
    # The one aggregation over the records (per date, hour and series) that every table is computed from
    # (transforms.partials); only it is kept, never the records (caching them cost more than the rest of
    # the job). Duplicates are removed in the groups that have any (transforms.unique_groups).
    with _step("aggregating the records per hour and series"):
        valid = staged.where(F.col("_in_range") & F.col("valid")).drop("_in_range", "valid")
        checked = transforms.partials(valid, windows, flag_duplicates=True, source_column=lake.SOURCE_FILE_COLUMN)
        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
        doubtful = transforms.doubtful_groups(checked)
        if doubtful.isEmpty():
            log.info("no duplicate result_id in the range")
            parts = transforms.unique_groups(checked)  # all of them, read from the cache
            cached = [checked]
        else:
            doubtful = doubtful.persist(StorageLevel.MEMORY_AND_DISK)
            again = _files_subset(files, [r["_file"] for r in transforms.files_of(checked).collect()])
            log.info(
                "%d (hour, series) groups hold duplicates: deduplicating them (reading %d of %d files again)",
                doubtful.count(),
                len(again.data_files),
                len(files.data_files),
            )
            records = transforms.normalize(lake.read_lake(spark, again) or _empty_raw(spark)).where(range_cond)
            # only the recomputed groups are cached anew; the others are read from `checked`'s cache
            fixed = transforms.redo_partials(records, doubtful, windows, partitions)
            fixed = fixed.persist(StorageLevel.MEMORY_AND_DISK)
            fixed.count()
            parts = transforms.unique_groups(checked).unionByName(fixed)
            cached = [checked, doubtful, fixed]

    tables: dict[str, DataFrame] = {}
    table_rows: dict[str, int] = {}
    collected: dict[str, list[dict[str, Any]]] = {}
    out = options.out.rstrip("/")
    for name in TABLES:
        if name in transforms.ROLLUPS:
            df = transforms.rollup(parts, transforms.ROLLUPS[name])
        elif name == "errors_daily":
            df = transforms.error_breakdown(parts, tables["series_daily"])
        elif name == "paths_daily":
            df = transforms.path_changes(parts)
        else:
            pairs = [(r["check_name"], r["target"]) for r in collected["target_daily"]]
            objectives = objectives_frame(spark, pairs, options.slo)
            df = transforms.slo_compliance(parts, objectives)
        tables[name] = df = df.persist(StorageLevel.MEMORY_AND_DISK)
        with _step(f"rollup {name}"):
            per_day = {r["date"]: int(r["count"]) for r in df.groupBy("date").count().collect()}
            table_rows[name] = write_table(spark, df, f"{out}/rollups/{name}", days, per_day)
        log.info("rollup %s: %d rows", name, table_rows[name])
        if name == "target_daily":
            collected[name] = _rows(df)
            stats.clean_records = sum(int(r["runs"]) for r in collected[name])
            stats.duplicate_records = (
                stats.records_read - stats.corrupt_records - stats.out_of_range_records - stats.clean_records
            )
            log.info(
                "records: %d read, %d corrupt (skipped), %d outside the range, %d duplicates, %d rolled up; "
                "%d unreadable files",
                stats.records_read,
                stats.corrupt_records,
                stats.out_of_range_records,
                stats.duplicate_records,
                stats.clean_records,
                len(stats.corrupt_files),
            )

    with _step("building the report"):
        data = _report_data(parts, tables, collected, stats, options, single_day=len(days) == 1)
        report_dir = report_dir_for(options.out, span)
        report.write_report(report_dir, data)
    log.info("report: %s/report.html", report_dir)
    for df in tables.values():
        df.unpersist()
    for df in cached:
        df.unpersist()
    elapsed = time.monotonic() - started
    log.info("netobs report %s: finished in %.1f s", span, elapsed)
    return JobSummary(stats, report_dir, table_rows, elapsed)


def _report_data(
    parts: DataFrame,
    tables: dict[str, DataFrame],
    collected: dict[str, list[dict[str, Any]]],
    stats: IngestStats,
    options: JobOptions,
    *,
    single_day: bool,
) -> report.ReportData:
    """Collect the small, range-level tables the report shows (everything else stays in the rollups)."""
    series_keys = list(transforms.SERIES_KEYS)
    target_keys = list(transforms.TARGET_KEYS)
    if single_day:
        targets = [{k: v for k, v in r.items() if k != "date"} for r in collected["target_daily"]]
    else:
        targets = _rows(transforms.rollup(parts, target_keys))
    targets.sort(key=report.badness)
    worst = [(t["check_name"], t["target"]) for t in targets[: options.report_top]]
    series = _rows(
        tables["series_daily"]
        .groupBy(*series_keys)
        .agg(F.sum("runs").alias("runs"), F.sum("successes").alias("successes"))
        .withColumn("availability_pct", F.col("successes") * 100.0 / F.col("runs"))
    )
    trend_rows: list[dict[str, Any]] = []
    if worst:
        wanted = F.lit(False)
        for check, target in worst:
            wanted = wanted | ((F.col("check_name") == check) & (F.col("target") == target))
        trend_rows = _rows(
            tables["target_hourly"]
            .where(wanted)
            .select(
                "check_name",
                "target",
                "date",
                "hour",
                "runs",
                "availability_pct",
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
            )
            .orderBy("date", "hour")
        )
    errors = _rows(
        tables["errors_daily"]
        .groupBy("check_name", "target", "error_type")
        .agg(F.sum("failures").alias("failures"), F.size(F.collect_set("pop")).alias("pops"))
        .orderBy(F.desc("failures"))
    )
    if single_day:
        paths = _rows(tables["paths_daily"].drop("date").orderBy(F.desc("path_changes")))
    else:  # distinct paths do not add up over days: count them over the range
        distinct = (
            transforms.traceroute_runs(parts)
            .groupBy(*series_keys)
            .agg(F.size(F.collect_set("path_hash")).alias("distinct_paths"))
        )
        paths = _rows(
            tables["paths_daily"]
            .groupBy(*series_keys)
            .agg(
                F.sum("traceroute_runs").alias("traceroute_runs"),
                F.sum("path_changes").alias("path_changes"),
                F.max("ecmp_paths_max").alias("ecmp_paths_max"),
            )
            .join(distinct, series_keys)
            .orderBy(F.desc("path_changes"))
        )
    slo_sums = (
        tables["slo_daily"]
        .groupBy("check_name", "check_type", "target")
        .agg(
            *(F.sum(c).alias(c) for c in ("runs_total", "runs_in_maintenance", "runs", "successes", "fast_runs")),
            *(F.first(c).alias(c) for c in ("availability_target_pct", "latency_threshold_ms", "latency_target_pct")),
        )
    )
    slos = _rows(transforms.with_budgets(slo_sums))
    return report.ReportData(
        first_day=options.first_day.isoformat(),
        last_day=options.last_day.isoformat(),
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        stats={
            "hour partitions": stats.partitions,
            "data files": stats.data_files,
            "ignored files": len(stats.ignored_files),
            "unreadable files (skipped)": len(stats.corrupt_files),
            "records read": stats.records_read,
            "corrupt records (skipped)": stats.corrupt_records,
            "records outside the range": stats.out_of_range_records,
            "duplicate records": stats.duplicate_records,
            "records rolled up": stats.clean_records,
        },
        unreadable_files=list(stats.corrupt_files),
        targets=targets,
        series=series,
        trends=trend_rows,
        errors=errors,
        paths=paths,
        slos=slos,
        maintenance_windows=len(options.slo.maintenance),
        top=options.report_top,
    )
