"""The lake the Flink archive writes and this job reads (contract: docs/lake.md).

``<lake>/date=YYYY-MM-DD/hour=HH/<file>`` where ``date``/``hour`` are the UTC day and hour of the record's
``started_at_ms``; a file is JSON lines (``.jsonl``, ``.jsonl.gz``) or Parquet (``.parquet``) with the
record's columns. Names starting with ``.`` or ``_`` (in-progress parts, ``_SUCCESS``) are not data.

Listing goes through Hadoop's FileSystem API, so the same code reads a local directory, HDFS or an
object store on a cluster. Reading never fails on bad data: a JSON line that does not parse lands in the
corrupt-record column, and a file that cannot be read at all is skipped (``ignoreCorruptFiles``) and
shows up as a file that produced no rows.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from netobs_spark.schema import CORRUPT_RECORD_COLUMN, record_ddl

JSON_SUFFIXES = (".jsonl", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet",)
SOURCE_FILE_COLUMN = "_source_file"


def days_in_range(first_day: dt.date, last_day: dt.date) -> list[dt.date]:
    """Every day from first_day to last_day, both included."""
    if last_day < first_day:
        raise ValueError(f"the range ends ({last_day}) before it starts ({first_day})")
    return [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]


def partition_path(lake: str, day: dt.date, hour: int) -> str:
    """The directory of one hour of the lake."""
    return f"{lake.rstrip('/')}/date={day.isoformat()}/hour={hour:02d}"


def canonical_path(path: str) -> str:
    """One spelling per file (``file:/x``, ``file:///x`` and ``/x`` are the same local file)."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return posixpath.normpath(unquote(parsed.path))
    return path


@dataclass
class LakeFiles:
    """The files of a range of the lake, by format; sizes in bytes by canonical path."""

    json: list[str] = field(default_factory=list)
    parquet: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # neither format (not data, or an unknown suffix)
    size_bytes: dict[str, int] = field(default_factory=dict)
    partitions: int = 0  # hour directories found

    @property
    def data_files(self) -> list[str]:
        return self.json + self.parquet


def list_lake_files(spark: SparkSession, lake: str, days: list[dt.date]) -> LakeFiles:
    """The files under the hour partitions of ``days`` (missing days and hours are simply absent)."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    found = LakeFiles()
    for day in days:
        pattern = jvm.org.apache.hadoop.fs.Path(f"{lake.rstrip('/')}/date={day.isoformat()}/hour=*")
        fs = pattern.getFileSystem(hadoop_conf)
        hours = fs.globStatus(pattern) or []
        for hour in sorted(hours, key=lambda s: str(s.getPath().toString())):
            if not hour.isDirectory():
                continue
            found.partitions += 1
            for status in sorted(fs.listStatus(hour.getPath()), key=lambda s: str(s.getPath().toString())):
                if status.isDirectory():
                    continue
                path = str(status.getPath().toString())
                name = posixpath.basename(path)
                if name.startswith((".", "_")):
                    continue
                found.size_bytes[canonical_path(path)] = int(status.getLen())
                if name.endswith(JSON_SUFFIXES):
                    found.json.append(path)
                elif name.endswith(PARQUET_SUFFIXES):
                    found.parquet.append(path)
                else:
                    found.ignored.append(path)
    return found


def read_lake(spark: SparkSession, files: LakeFiles) -> DataFrame | None:
    """The records of ``files`` (the record's columns, the corrupt-record column and the source file).

    Returns None when there is no data file. Unreadable files are skipped by the session setting
    ``spark.sql.files.ignoreCorruptFiles`` (see ``job.session_conf``).
    """
    frames = []
    if files.json:
        json = (
            spark.read.schema(record_ddl(with_corrupt_column=True))
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .json(files.json)
        )
        frames.append(json.select("*", F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN)))
    if files.parquet:
        parquet = spark.read.schema(record_ddl()).parquet(*files.parquet)
        frames.append(
            parquet.select(
                "*",
                F.lit(None).cast("string").alias(CORRUPT_RECORD_COLUMN),
                F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN),
            )
        )
    if not frames:
        return None
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union
