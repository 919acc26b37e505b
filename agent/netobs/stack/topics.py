"""The Kafka topics of the pipeline, defined once (the stack creates them on ``up``)."""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int


RESULTS = Topic("netobs.results", partitions=3, retention_ms=7 * DAY_MS)
ALERTS = Topic("netobs.alerts", partitions=1, retention_ms=30 * DAY_MS)
DEADLETTER = Topic("netobs.deadletter", partitions=1, retention_ms=14 * DAY_MS)

TOPICS: tuple[Topic, ...] = (RESULTS, ALERTS, DEADLETTER)
