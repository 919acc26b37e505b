"""Evaluate the latency detector on labeled NAB series: recall, precision and detection delay per series.

    python bench/eval_nab.py [--data ../shared/data/nab] [--json]

Scoring (the project owners' rules, see the data's README): an alert whose fire time falls inside a
labeled window is a true positive for that window (only the first one counts; later alerts in the same
window are neither true nor false positives); a window with no alert is a miss; an alert outside every
window is a false positive. Delay = first alert time - window start. Series without windows must have
no alert at all. Exit status 1 when a series without anomalies has an alert.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from netobs_flink.detect.replay import parse_timestamp_ms, replay_file

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"


@dataclass(frozen=True, slots=True)
class SeriesScore:
    name: str
    windows: int
    hits: int
    alerts: int
    true_positives: int
    false_positives: int
    delays_s: tuple[float, ...]

    @property
    def recall(self) -> float | None:
        return self.hits / self.windows if self.windows else None

    @property
    def precision(self) -> float | None:
        counted = self.true_positives + self.false_positives
        return self.true_positives / counted if counted else None

    @property
    def median_delay_s(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None


def score(name: str, alert_ms: list[int], windows_ms: list[tuple[int, int]]) -> SeriesScore:
    """Score alert fire times against labeled windows (pure; see the module docstring)."""
    first_in: dict[int, int] = {}
    tp = fp = 0
    for at in sorted(alert_ms):
        inside = [i for i, (lo, hi) in enumerate(windows_ms) if lo <= at <= hi]
        if not inside:
            fp += 1
            continue
        i = inside[0]
        if i not in first_in:
            first_in[i] = at
            tp += 1
    delays = tuple((first_in[i] - windows_ms[i][0]) / 1000.0 for i in sorted(first_in))
    return SeriesScore(name, len(windows_ms), len(first_in), len(alert_ms), tp, fp, delays)


def evaluate(data: Path) -> list[SeriesScore]:
    labels = json.loads((data / "windows.json").read_text())
    scores = []
    for name in sorted(labels):
        windows = [(parse_timestamp_ms(lo), parse_timestamp_ms(hi)) for lo, hi in labels[name]]
        alerts = replay_file(data / name)
        scores.append(score(name, [a.fired_at_ms for a in alerts], windows))
    return scores


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with windows.json and the CSVs")
    parser.add_argument("--json", action="store_true", help="one JSON object per series instead of a table")
    args = parser.parse_args(argv)
    scores = evaluate(args.data)
    if args.json:
        for s in scores:
            print(
                json.dumps(
                    {
                        "series": s.name,
                        "windows": s.windows,
                        "hits": s.hits,
                        "alerts": s.alerts,
                        "recall": s.recall,
                        "precision": s.precision,
                        "median_delay_s": s.median_delay_s,
                    }
                )
            )
    else:
        print(f"{'series':<56} {'win':>3} {'hit':>3} {'alerts':>6} {'recall':>6} {'prec':>5} {'median delay':>12}")
        for s in scores:
            delay_h = None if s.median_delay_s is None else s.median_delay_s / 3600.0
            print(
                f"{s.name:<56} {s.windows:>3} {s.hits:>3} {s.alerts:>6} {_fmt(s.recall, '.2f'):>6} "
                f"{_fmt(s.precision, '.2f'):>5} {_fmt(delay_h, '.2f') + ' h':>12}"
            )
        windows = sum(s.windows for s in scores)
        hits = sum(s.hits for s in scores)
        tp = sum(s.true_positives for s in scores)
        counted = tp + sum(s.false_positives for s in scores)
        delays = [d for s in scores for d in s.delays_s]
        recall = hits / windows if windows else None
        precision = tp / counted if counted else None
        delay_h = statistics.median(delays) / 3600.0 if delays else None
        print(
            f"{'all':<56} {windows:>3} {hits:>3} {sum(s.alerts for s in scores):>6} "
            f"{_fmt(recall, '.2f'):>6} {_fmt(precision, '.2f'):>5} {_fmt(delay_h, '.2f') + ' h':>12}"
        )
    clean_failures = [s.name for s in scores if s.windows == 0 and s.alerts]
    for name in clean_failures:
        print(f"FAIL: {name} has no labeled anomaly but raised alerts", file=sys.stderr)
    return 1 if clean_failures else 0


if __name__ == "__main__":
    sys.exit(main())
