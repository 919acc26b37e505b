"""SLO declarations (YAML), validated once at the edge.

File format::

    slos:
      - check: web                  # check_name the SLO applies to (required)
        targets: [https://a.example/]   # optional: only these targets (default: every target of the check)
        availability_percent: 99.9  # optional: successful runs / runs, in (0, 100)
        latency:                    # optional: share of successful runs at or under threshold_ms
          threshold_ms: 300
          percent: 99
    maintenance:                    # optional: runs started inside a window are left out of SLOs
      - start: 2026-11-20T02:00:00Z # ISO 8601 with a zone, or epoch milliseconds
        end: 2026-11-20T03:00:00Z
        checks: [web]               # optional filters; absent = every check / target / POP
        targets: [https://a.example/]
        pops: [fra1]
        reason: kernel upgrade

Every problem is reported as ``<file>: <field path>: <what is wrong and what is allowed>``; all problems
of a file are reported together. An SLO declares at least one of availability and latency, and one
(check, target) may be covered by one SLO only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class SloError(Exception):
    """An SLO file that cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class LatencyObjective:
    threshold_ms: float
    percent: float


@dataclass(frozen=True, slots=True)
class Slo:
    check: str
    targets: tuple[str, ...] | None  # None: every target of the check
    availability_percent: float | None
    latency: LatencyObjective | None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    start_ms: int
    end_ms: int  # exclusive
    checks: tuple[str, ...] | None
    targets: tuple[str, ...] | None
    pops: tuple[str, ...] | None
    reason: str


@dataclass(frozen=True, slots=True)
class SloConfig:
    slos: tuple[Slo, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()


_TOP_KEYS = {"slos", "maintenance"}
_SLO_KEYS = {"check", "targets", "availability_percent", "latency"}
_LATENCY_KEYS = {"threshold_ms", "percent"}
_WINDOW_KEYS = {"start", "end", "checks", "targets", "pops", "reason"}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, path: str, value: Any, allowed: set[str], required: set[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping with keys {sorted(allowed)}, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), f"unknown key; allowed: {sorted(allowed)}")
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}" if path else key, "is required")
        return value

    def text(self, path: str, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"must be a non-empty string, got {_kind(value)}")
            return None
        return value.strip()

    def texts(self, path: str, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.fail(path, f"must be a non-empty list of strings, got {_kind(value)}")
            return None
        items = [self.text(f"{path}[{i}]", v) for i, v in enumerate(value)]
        return tuple(i for i in items if i is not None)

    def percent(self, path: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 100:
            self.fail(path, f"must be a number greater than 0 and less than 100, got {value!r}")
            return None
        return float(value)

    def positive(self, path: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.fail(path, f"must be a number greater than 0, got {value!r}")
            return None
        return float(value)

    def instant_ms(self, path: str, value: Any) -> int | None:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, dt.datetime):  # YAML timestamps arrive parsed
            if value.tzinfo is not None:
                return int(value.timestamp() * 1000)
        elif isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return int(parsed.timestamp() * 1000)
        self.fail(path, f"must be an ISO 8601 time with a zone (2026-11-20T02:00:00Z) or epoch ms, got {value!r}")
        return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


def parse_slo_config(data: Any, source: str = "<slo>") -> SloConfig:
    """Validate already-parsed YAML data. Raises :class:`SloError` listing every problem."""
    c = _Checker()
    if data is None:
        data = {}
    top = c.mapping("", data, _TOP_KEYS, set())
    if top is None:
        raise SloError(source, c.problems)
    slos: list[Slo] = []
    raw_slos = top.get("slos") or []
    if not isinstance(raw_slos, list):
        c.fail("slos", f"must be a list, got {_kind(raw_slos)}")
        raw_slos = []
    covered: dict[tuple[str, str | None], str] = {}
    for i, raw in enumerate(raw_slos):
        path = f"slos[{i}]"
        item = c.mapping(path, raw, _SLO_KEYS, {"check"})
        if item is None:
            continue
        check = c.text(f"{path}.check", item.get("check")) if "check" in item else None
        targets = c.texts(f"{path}.targets", item.get("targets"))
        availability = None
        if item.get("availability_percent") is not None:
            availability = c.percent(f"{path}.availability_percent", item["availability_percent"])
        latency = None
        if item.get("latency") is not None:
            raw_latency = c.mapping(f"{path}.latency", item["latency"], _LATENCY_KEYS, _LATENCY_KEYS)
            if raw_latency is not None and set(raw_latency) >= _LATENCY_KEYS:
                threshold = c.positive(f"{path}.latency.threshold_ms", raw_latency["threshold_ms"])
                share = c.percent(f"{path}.latency.percent", raw_latency["percent"])
                if threshold is not None and share is not None:
                    latency = LatencyObjective(threshold, share)
        if "availability_percent" not in item and "latency" not in item:
            c.fail(path, "declares no objective; give availability_percent, latency or both")
        if check is None:
            continue
        for target in targets if targets is not None else (None,):
            key = (check, target)
            if key in covered:
                what = f"target {target!r}" if target is not None else "every target"
                c.fail(path, f"check {check!r} ({what}) already has an SLO at {covered[key]}")
            covered[key] = path
        slos.append(Slo(check, targets, availability, latency))
    windows: list[MaintenanceWindow] = []
    raw_windows = top.get("maintenance") or []
    if not isinstance(raw_windows, list):
        c.fail("maintenance", f"must be a list, got {_kind(raw_windows)}")
        raw_windows = []
    for i, raw in enumerate(raw_windows):
        path = f"maintenance[{i}]"
        item = c.mapping(path, raw, _WINDOW_KEYS, {"start", "end"})
        if item is None:
            continue
        start = c.instant_ms(f"{path}.start", item["start"]) if "start" in item else None
        end = c.instant_ms(f"{path}.end", item["end"]) if "end" in item else None
        if start is not None and end is not None and end <= start:
            c.fail(f"{path}.end", "must be after start")
        reason = item.get("reason", "")
        if not isinstance(reason, str):
            c.fail(f"{path}.reason", f"must be a string, got {_kind(reason)}")
            reason = ""
        checks = c.texts(f"{path}.checks", item.get("checks"))
        targets = c.texts(f"{path}.targets", item.get("targets"))
        pops = c.texts(f"{path}.pops", item.get("pops"))
        if start is not None and end is not None:
            windows.append(MaintenanceWindow(start, end, checks, targets, pops, reason))
    if c.problems:
        raise SloError(source, c.problems)
    return SloConfig(tuple(slos), tuple(windows))


def load_slo_config(path: str | Path) -> SloConfig:
    """Read and validate an SLO file. Raises :class:`SloError` (including for unreadable or bad YAML)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SloError(source, [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise SloError(source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    return parse_slo_config(data, source)


def slo_for(config: SloConfig, check: str, target: str) -> Slo | None:
    """The SLO covering (check, target): one naming the target wins over a check-wide one."""
    fallback = None
    for slo in config.slos:
        if slo.check != check:
            continue
        if slo.targets is None:
            fallback = slo
        elif target in slo.targets:
            return slo
    return fallback
