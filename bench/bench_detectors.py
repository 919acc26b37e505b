"""Benchmark the detector core alone (no Flink): CPU per latency sample and per series-window.

    PYTHONPATH=pipelines/flink python bench/bench_detectors.py [--series 2000] [--windows 120]
    PYTHONPATH=$(netobs flink env | sed -n 's/^FLINK_PYTHONPATH=//p') python bench/bench_detectors.py

The first runs the plain sources, the second the mypyc-compiled build the Flink job runs (the first line
printed says which).

What the Flink job's Python workers spend per (series, window) of the realistic workload, split into its
parts, so that a change to the detectors can be measured in seconds instead of a 3-minute job run:

- ``observe``: one :class:`LatencyDetector` sample, warm, for the three ways the model runs: without the
  seasonal model (``season_s 0``), with it still learning its first season (the default for the first
  day of a series: ``season_s`` 1 day), and with it mature (both models judged; a 60 s season here so
  that it matures within the run).
- ``series-window``: :class:`WriteBehindSeries.process` on one parsed window line of an HTTP-like check
  (total, connect and ttfb latencies, error rate, availability, heartbeats) with state written every 16
  windows (pickled, as Flink's MapState would), from the line's parsing to the correlator's inputs. The
  first windows (series creation) and the windows after the 60 s warm-up (alerts possible) are shown apart.
"""

from __future__ import annotations

import argparse
import pickle
import random
import time

from netobs_flink import detector_build
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector
from netobs_flink.series import FIELD_SEP, LINE_FIELDS, DetectorConfigs, SeriesState, WriteBehindSeries, parse_batch

T0 = 1_700_000_000_000
POPS = ("fra", "sin", "iad", "gru")


def observe_us(season_s: float, detectors: int = 200, warm: int = 130, measured: int = 100) -> float:
    """Mean CPU µs per warm LatencyDetector.observe with the given season."""
    config = LatencyConfig(warmup_s=60, season_s=season_s)
    pool = [LatencyDetector(config) for _ in range(detectors)]
    rnd = random.Random(1)
    values = [20.0 + rnd.random() for _ in range(warm + measured)]
    for k in range(warm):
        for d in pool:
            d.observe(T0 + k * 1000, values[k])
    start = time.process_time()
    for k in range(warm, warm + measured):
        for d in pool:
            d.observe(T0 + k * 1000, values[k])
    return (time.process_time() - start) / (measured * detectors) * 1e6


class _PickledStore:
    """A SeriesStore that pickles, as Flink's MapState of PICKLED_BYTE_ARRAY does."""

    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}

    def get(self, key: str) -> SeriesState | None:
        data = self.saved.get(key)
        return None if data is None else pickle.loads(data)

    def put(self, key: str, state: SeriesState) -> None:
        self.saved[key] = pickle.dumps(state)


def _line(series: int, k: int) -> str:
    duration = 20.0 + (series % 7) + (k % 5) * 0.3
    connect = round(duration * 0.3, 3)
    fields = dict.fromkeys(LINE_FIELDS, "")
    fields.update(
        agent_id=f"agent-{POPS[series % 4]}",
        pop=POPS[series % 4],
        check_name="web",
        check_type="http",
        target=f"bench-{series // 4}.test",
        first_ms=str(T0 + k * 1000),
        last_ms=str(T0 + k * 1000),
        n="1",
        failures="0",
        last_success="true",
        total_ms=str(duration),
        connect_ms=str(connect),
        ttfb_ms=str(round(duration - connect, 3)),
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    return FIELD_SEP.join(fields[name] for name in LINE_FIELDS)


def series_window_us(series: int, windows: int, season_s: float) -> tuple[float, float, float]:
    """(first window, windows 2-60, windows after 60) mean CPU µs per series-window."""
    configs = DetectorConfigs(latency=LatencyConfig(warmup_s=60, season_s=season_s))
    cache = WriteBehindSeries(_PickledStore(), configs, persist_every=16)
    per_window: list[float] = []
    for k in range(windows):
        lines = [_line(s, k) for s in range(series)]
        start = time.process_time()
        for summary in parse_batch(lines, print):
            cache.process(summary)
        per_window.append((time.process_time() - start) / series * 1e6)
    late = per_window[60:] or [float("nan")]
    return per_window[0], sum(per_window[1:60]) / len(per_window[1:60]), sum(late) / len(late)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=2000, help="series per window")
    p.add_argument("--windows", type=int, default=120, help="1 s windows per series (> 60 to see warm ones)")
    args = p.parse_args(argv)
    if args.windows <= 60:
        p.error("--windows must be > 60 (the first 60 are the warm-up)")
    print(f"detector core: {detector_build()}")
    print("LatencyDetector.observe, warm (CPU us per sample):")
    for label, season_s in (("no seasonal model", 0.0), ("seasonal, learning", 86400.0), ("seasonal, mature", 60.0)):
        print(f"  {label:<20} {observe_us(season_s):6.1f}")
    print(f"series-window, HTTP-like (total + 2 phases), {args.series} series x {args.windows} windows (CPU us):")
    for label, season_s in (("no seasonal model", 0.0), ("seasonal, learning", 86400.0), ("seasonal, mature", 60.0)):
        first, young, warm = series_window_us(args.series, args.windows, season_s)
        print(f"  {label:<20} first {first:6.1f}   windows 2-60 {young:6.1f}   after warm-up {warm:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
