"""Everything the detector core outputs over fixed inputs, as text: what test_native_build.py compares
between the interpreted sources and the mypyc-compiled package (run once per build, each with its own
PYTHONPATH, since both are the same module names).

    python tests/flink/detector_trace.py OUT [--stop-at K --save STATES] [--resume STATES]

The trace: the latency detector replayed over the NAB series in tests/data/nab (seasonal model on and
off), then synthetic HTTP, ICMP and traceroute series through ``WriteBehindSeries`` (latency shifts,
outages, loss, path changes, an expiring certificate; seasons of 0, 300 and 3600 s) with every alert,
correlator input and final series state. ``--stop-at K --save F`` stops the synthetic part after window
K and pickles the live series states to F; ``--resume F`` loads them and runs windows K.. (a checkpoint
taken by one build and restored by the other).
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import random
from pathlib import Path

from netobs_flink.detect.latency import LatencyConfig
from netobs_flink.detect.replay import replay_file
from netobs_flink.series import DetectorConfigs, SeriesState, WindowSummary, WriteBehindSeries

NAB = Path(__file__).resolve().parents[1] / "data" / "nab"
T0 = 1_700_000_000_000
WINDOWS = 900
SEASONS = (0.0, 300.0, 3600.0)
POPS = ("fra", "sin", "iad", "gru")


class _Store:
    def __init__(self, saved: dict[str, SeriesState] | None = None) -> None:
        self.saved: dict[str, bytes] = {k: pickle.dumps(v) for k, v in (saved or {}).items()}

    def get(self, key: str) -> SeriesState | None:
        data = self.saved.get(key)
        return None if data is None else pickle.loads(data)

    def put(self, key: str, state: SeriesState) -> None:
        self.saved[key] = pickle.dumps(state)


def nab_trace() -> list[str]:
    out = []
    for csv in sorted(NAB.glob("*/*.csv")):
        for season_s in (86400.0, 0.0):
            for alert in replay_file(csv, config=LatencyConfig(season_s=season_s)):
                out.append(f"{csv.name} {season_s} {alert!r}")
    return out


def window(rnd: random.Random, s: int, k: int) -> WindowSummary:
    slow = s % 6 == 1 and 300 < k < 420
    down = s % 6 == 2 and 500 < k < 800
    lossy = s % 6 == 4 and 200 < k < 450
    phases = {"dns": 1 + rnd.random(), "connect": 2 + rnd.random() * (5 if slow else 1)} if s % 2 else {}
    return WindowSummary(
        agent_id=f"a{s % 4}",
        pop=POPS[s % 4],
        check_name="web",
        check_type=("http", "icmp", "traceroute")[s % 3],
        target=f"t{s // 4}.test",
        first_ms=T0 + k * 1000,
        last_ms=T0 + k * 1000 + 500,
        count=2,
        failures=2 if down else (1 if rnd.random() < 0.02 else 0),
        last_success=not down,
        total_ms=None if down else 20 + rnd.gauss(0, 1) + (15 if slow else 0),
        phases_ms=phases,
        loss_ratio=(0.5 if lossy else 0.0) if s % 3 == 1 else None,
        path_hash=f"p{(k // 200) % 2}" if s % 3 == 2 else None,
        path_rtt_ms=(30.0 + (k // 200) % 2 * 10) if s % 3 == 2 else None,
        cert_expiry_days=(40 - k / 30) if s % 5 == 0 else None,
        cert_subject="CN=x" if s % 5 == 0 else None,
        error_type="timeout" if down else None,
        trace_id=f"tr{k}",
    )


def series_trace(
    stop_at: int | None, resume: dict[tuple[float, int], dict[str, SeriesState]] | None
) -> tuple[list[str], dict[tuple[float, int], dict[str, SeriesState]]]:
    """(trace lines, live states at ``stop_at`` per (season, persist_every)) of the synthetic series."""
    out: list[str] = []
    saved: dict[tuple[float, int], dict[str, SeriesState]] = {}
    start = 0 if resume is None else stop_at or 0
    end = WINDOWS if stop_at is None or resume is not None else stop_at
    for season_s in SEASONS:
        configs = DetectorConfigs(latency=LatencyConfig(warmup_s=60, season_s=season_s, min_samples=10))
        for persist_every in (1, 16):
            rnd = random.Random(f"{season_s}/{persist_every}")
            store = _Store(None if resume is None else resume[season_s, persist_every])
            cache = WriteBehindSeries(store, configs, persist_every)
            for k in range(end):
                for s in range(24):
                    w = window(rnd, s, k)  # drawn for every k, so a resumed run sees the same numbers
                    if k < start:
                        continue
                    alerts, outputs = cache.process(w)
                    out += [f"{season_s} {persist_every} {k} {a.to_json()}" for a in alerts]
                    out += [f"{season_s} {persist_every} {k} {o!r}" for o in outputs]
            saved[season_s, persist_every] = {key: live.state for key, live in cache.live.items()}
            if end == WINDOWS:
                for key, live in sorted(cache.live.items()):
                    out.append(f"{season_s} {persist_every} {key} {dataclasses.asdict(live.state)!r}")
    return out, saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="where to write the trace (one line per output)")
    p.add_argument("--stop-at", type=int, help="window of the synthetic series to stop at (with --save) or resume at")
    p.add_argument("--save", type=Path, help="pickle the live series states at --stop-at to this file")
    p.add_argument("--resume", type=Path, help="start from the states in this file, at window --stop-at")
    p.add_argument("--no-nab", action="store_true", help="leave out the NAB replay")
    args = p.parse_args(argv)
    if (args.save or args.resume) and args.stop_at is None:
        p.error("--save and --resume need --stop-at")
    resume = pickle.loads(args.resume.read_bytes()) if args.resume else None
    lines = [] if args.no_nab else nab_trace()
    series_lines, states = series_trace(args.stop_at, resume)
    lines += series_lines
    if args.save:
        args.save.write_bytes(pickle.dumps(states))
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
