"""Synthetic result records (the contract's JSON shape) for the Flink job's tests and benchmark."""

from __future__ import annotations

import json
import uuid
from typing import Any


def result(
    *,
    at_ms: int,
    pop: str,
    target: str,
    check: str = "web",
    check_type: str = "http",
    success: bool = True,
    duration_ms: float = 20.0,
    error_type: str | None = None,
    result_id: str | None = None,
) -> dict[str, Any]:
    """One result record; HTTP-like with connect and ttfb phases that add up to the duration."""
    connect = round(duration_ms * 0.3, 3)
    return {
        "schema_version": 1,
        "result_id": result_id or str(uuid.uuid4()),
        "started_at_ms": at_ms,
        "duration_ms": duration_ms,
        "agent_id": f"agent-{pop}",
        "pop": pop,
        "check_name": check,
        "check_type": check_type,
        "target": target,
        "resolved_ip": "127.0.0.1",
        "success": success,
        "error_type": None if success else (error_type or "timeout"),
        "error_message": None if success else "synthetic failure",
        "phases_ms": {"connect": connect, "ttfb": round(duration_ms - connect, 3)} if success else {},
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "labels": {},
        "icmp": None,
        "dns": None,
        "http": None,
        "tcp": None,
        "traceroute": None,
    }


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


# Messages on the results topic that are no result record: each goes to the dead-letter topic.
MALFORMED = [
    b"not json at all",
    b"[1, 2, 3]",
    b'{"result_id": "x", "started_at_ms": "yesterday", "agent_id": "a", "check_name": "c", '
    b'"check_type": "http", "target": "t", "success": true}',
    b'{"result_id": "x", "agent_id": "a"}',
    b"",
]
