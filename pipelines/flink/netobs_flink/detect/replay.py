"""Offline replay: run the latency detector over a (timestamp, value) CSV as if it were one check's latency.

Used by ``netobs detect replay`` and by ``bench/eval_nab.py``. Pure standard library.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from netobs_flink.detect.alert import FIRING, AlertEvent
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector


class ReplayError(ValueError):
    """The CSV cannot be replayed; the message names the file, row and column."""


@dataclass(frozen=True)
class ReplayAlert:
    """One alert over its whole life (``resolved_at_ms`` is None when it still fires at the end)."""

    kind: str
    severity: str
    fired_at_ms: int
    resolved_at_ms: int | None
    trigger: str

    def to_dict(self) -> dict[str, object]:
        return {
            "fired_at": _iso(self.fired_at_ms),
            "resolved_at": None if self.resolved_at_ms is None else _iso(self.resolved_at_ms),
            "kind": self.kind,
            "severity": self.severity,
            "trigger": self.trigger,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_timestamp_ms(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` / ISO 8601 (UTC unless an offset is given) or epoch s/ms."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return int(number if number > 1e11 else number * 1000.0)
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def read_series(
    stream: TextIO, *, timestamp_column: str = "timestamp", value_column: str = "value", name: str = "<csv>"
) -> list[tuple[int, float]]:
    """Rows as (epoch ms, value), sorted by time; rows with an empty or non-finite value are skipped."""
    reader = csv.DictReader(stream)
    fields = reader.fieldnames or []
    for column in (timestamp_column, value_column):
        if column not in fields:
            raise ReplayError(f"{name}: no column {column!r} (columns: {', '.join(fields) or 'none'})")
    out: list[tuple[int, float]] = []
    for line, row in enumerate(reader, start=2):
        raw_value = (row.get(value_column) or "").strip()
        if not raw_value:
            continue
        try:
            at_ms = parse_timestamp_ms(row[timestamp_column] or "")
            value = float(raw_value)
        except ValueError as exc:
            raise ReplayError(f"{name}:{line}: {exc}") from None
        if math.isfinite(value):
            out.append((at_ms, value))
    out.sort(key=lambda p: p[0])
    return out


def replay_events(series: Iterable[tuple[int, float]], config: LatencyConfig | None = None) -> Iterator[AlertEvent]:
    detector = LatencyDetector(config, labels={"check": "replay", "target": "replay", "phase": "total"})
    for at_ms, value in series:
        yield from detector.observe(at_ms, value)


def replay(series: Iterable[tuple[int, float]], config: LatencyConfig | None = None) -> list[ReplayAlert]:
    """Alerts over their whole life, in the order they fired."""
    open_: dict[str, tuple[AlertEvent, int]] = {}
    done: list[tuple[int, ReplayAlert]] = []
    order = 0
    for event in replay_events(series, config):
        if event.status == FIRING:
            open_[event.fingerprint] = (event, order)
            order += 1
            continue
        fired, idx = open_.pop(event.fingerprint)
        done.append((idx, _whole(fired, event.at_ms)))
    done += [(idx, _whole(fired, None)) for fired, idx in open_.values()]
    return [alert for _, alert in sorted(done, key=lambda p: p[0])]


def _whole(fired: AlertEvent, resolved_ms: int | None) -> ReplayAlert:
    return ReplayAlert(
        kind=fired.kind,
        severity=fired.severity,
        fired_at_ms=fired.at_ms,
        resolved_at_ms=resolved_ms,
        trigger=fired.annotations.get("trigger", ""),
    )


def replay_file(
    path: Path, *, timestamp_column: str = "timestamp", value_column: str = "value", config: LatencyConfig | None = None
) -> list[ReplayAlert]:
    with path.open(newline="") as stream:
        series = read_series(stream, timestamp_column=timestamp_column, value_column=value_column, name=str(path))
    return replay(series, config)
