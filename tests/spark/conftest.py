"""One local Spark session for the whole suite (starting one costs seconds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from netobs_spark.job import build_session
from netobs_spark.schema import CORRUPT_RECORD_COLUMN, record_ddl
from pyspark.sql import DataFrame, SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_session("local[2]", driver_memory="1g", app_name="netobs-spark-tests")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


def frame(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    """Records (dicts in the contract format) as a raw DataFrame, read like the lake's JSON lines."""
    lines = spark.sparkContext.parallelize([json.dumps(r) for r in records], 1)
    return (
        spark.read.schema(record_ddl(with_corrupt_column=True))
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        .json(lines)
    )
