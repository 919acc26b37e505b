"""Result records in the contract format (docs/lake.md) and a lake written from them, for the Spark tests."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import uuid
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def epoch_ms(day: str, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Milliseconds since the epoch of a UTC time on ``day`` (YYYY-MM-DD)."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int(start.timestamp() * 1000) + ((hour * 60 + minute) * 60 + second) * 1000


def record(
    *,
    started_at_ms: int,
    check_name: str = "web",
    check_type: str = "http",
    target: str = "https://a.example/",
    pop: str = "fra1",
    success: bool = True,
    duration_ms: float = 100.0,
    error_type: str | None = None,
    result_id: str | None = None,
    phases_ms: dict[str, float] | None = None,
    icmp: dict[str, Any] | None = None,
    traceroute: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result record as the agent writes it (only the sub-record of its type is set)."""
    rec: dict[str, Any] = {
        "result_id": result_id or str(uuid.uuid4()),
        "started_at_ms": started_at_ms,
        "duration_ms": duration_ms,
        "agent_id": f"agent-{pop}",
        "pop": pop,
        "check_name": check_name,
        "check_type": check_type,
        "target": target,
        "success": success,
        "resolved_ip": "127.0.0.1",
        "error_type": None if success else (error_type or "timeout"),
        "error_message": None if success else "it failed",
        "phases_ms": phases_ms or {},
        "trace_id": None,
        "span_id": None,
        "labels": {"env": "test"},
        "icmp": icmp,
        "dns": None,
        "http": None,
        "tcp": None,
        "traceroute": traceroute,
        "schema_version": 1,
    }
    if check_type == "http":
        rec["http"] = {"method": "GET", "url": target, "status_code": 200 if success else 503, "redirects": []}
    return rec


def icmp_sub(sent: int, received: int, rtt_avg_ms: float | None, jitter_ms: float | None) -> dict[str, Any]:
    return {
        "sent": sent,
        "received": received,
        "loss_ratio": 1 - received / sent,
        "rtt_avg_ms": rtt_avg_ms,
        "jitter_ms": jitter_ms,
        "rtts_ms": [],
    }


def traceroute_sub(path_hash: str, distinct_paths: int = 1) -> dict[str, Any]:
    return {
        "method": "udp",
        "reached": True,
        "hop_count": 3,
        "path_hash": path_hash,
        "hops": [{"ttl": 1, "address": "10.0.0.1", "rtt_ms": 0.5, "loss": 0.0, "rtts_ms": [0.5]}],
        "paths": [],
        "distinct_paths": distinct_paths,
    }


def partition_dir(lake: str, started_at_ms: int) -> str:
    when = dt.datetime.fromtimestamp(started_at_ms / 1000, tz=dt.UTC)
    return os.path.join(lake, f"date={when.date().isoformat()}", f"hour={when.hour:02d}")


def write_lake(lake: str, records: list[dict[str, Any]], *, gz_every: int = 0, name: str = "part-0") -> list[str]:
    """Write ``records`` into their event-time partitions as JSON lines; every ``gz_every``-th
    partition file is gzip-compressed. Returns the files written."""
    by_dir: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_dir.setdefault(partition_dir(lake, rec["started_at_ms"]), []).append(rec)
    written = []
    for i, (directory, recs) in enumerate(sorted(by_dir.items())):
        os.makedirs(directory, exist_ok=True)
        body = "".join(json.dumps(r) + "\n" for r in recs).encode()
        if gz_every and i % gz_every == 0:
            path = os.path.join(directory, f"{name}.jsonl.gz")
            with gzip.open(path, "wb") as f:
                f.write(body)
        else:
            path = os.path.join(directory, f"{name}.jsonl")
            with open(path, "wb") as f:
                f.write(body)
        written.append(path)
    return written


def write_parquet(path: str, records: list[dict[str, Any]]) -> None:
    """Records as one Parquet file with the contract's top-level scalar columns and the ICMP and
    traceroute sub-records (the reader fills the other columns with nulls)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    icmp = pa.struct(
        [("sent", pa.int64()), ("received", pa.int64()), ("rtt_avg_ms", pa.float64()), ("jitter_ms", pa.float64())]
    )
    schema = pa.schema(
        [
            ("result_id", pa.string()),
            ("started_at_ms", pa.int64()),
            ("duration_ms", pa.float64()),
            ("agent_id", pa.string()),
            ("pop", pa.string()),
            ("check_name", pa.string()),
            ("check_type", pa.string()),
            ("target", pa.string()),
            ("success", pa.bool_()),
            ("error_type", pa.string()),
            ("phases_ms", pa.map_(pa.string(), pa.float64())),
            ("icmp", icmp),
            ("schema_version", pa.int64()),
        ]
    )
    rows = []
    for r in records:
        row = {name: r.get(name) for name in schema.names}
        row["phases_ms"] = list((r.get("phases_ms") or {}).items())
        if r.get("icmp"):
            row["icmp"] = {k: r["icmp"].get(k) for k in ("sent", "received", "rtt_avg_ms", "jitter_ms")}
        rows.append(row)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
