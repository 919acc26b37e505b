"""One local Spark session for the whole suite (starting one costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netobs_spark.job import build_session
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_session("local[2]", driver_memory="1g", app_name="netobs-spark-tests")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()
