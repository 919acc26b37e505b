"""Benchmark the streaming job: sustained records/s (parallelism 2) and outage-to-Alertmanager delay.

Runs in the Flink virtualenv, against the project's real Kafka and Alertmanager (started on free ports):

    eval "$(bash scripts/setup.d/50-flink.sh --print | sed 's/^/export /')"
    NETOBS_FLINK_JARS=$FLINK_JARS PYTHONPATH=pipelines/flink:agent:. $FLINK_VENV/bin/python bench/bench_flink.py

Throughput: a backlog of ``--records`` results from ``--series`` series (``--spacing-ms`` apart in event
time per series) is written to the results topic first; the job then drains it with detection, dead-letter
and archive on. The job commits its Kafka offsets on each checkpoint, which completes only once every
operator (the Python detectors included) has processed everything before it, so committed offsets over
time are the end-to-end rate. Reported: records/s between the first commit past 10% of the backlog and
the one that covers all of it (conservative: that last checkpoint may start up to one interval after the
drain ended), with each commit step on stderr as it comes.

Live (``--live-rate R``): then ``--series`` series probe live, each at its own offset in its interval
(series / R seconds), i.e. R records/s offered for ``--live-s``; the committed offsets then say whether the
job keeps up with R (lag within a checkpoint step or two) or falls behind (lag growing). This is "sustained
records/s" in the plainest sense, without a backlog's start-up and final checkpoint in the figure.

Delay: then 4 POPs probe ``--trials`` targets live every ``--interval-s``, each (POP, target) at its own
offset in the interval as the agents' scheduler does; one target at a time goes down from 3 POPs. Delay =
the time the outage alert appears in Alertmanager's API - started_at_ms of the first failing result. The
goal is one probe interval + 5 s (an outage needs 2 failed results per POP).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer
from netobs_flink.job import results_group
from tests.flink.harness import (
    JobProcess,
    Topics,
    alertmanager_alerts,
    committed_total,
    job_args,
    produce,
    series_key,
    start_stack,
    wait_until_running,
)
from tests.flink.records import encode, result

POPS = ("fra", "sin", "iad", "gru")


def backlog(series: int, records: int, spacing_ms: int, end_ms: int) -> list[bytes]:
    per_series = max(1, records // series)
    start = end_ms - per_series * spacing_ms
    out = []
    for k in range(per_series):
        at = start + k * spacing_ms
        for s in range(series):
            pop = POPS[s % len(POPS)]
            out.append(
                encode(
                    result(
                        at_ms=at,
                        pop=pop,
                        target=f"bench-{s // len(POPS)}.test",
                        duration_ms=20.0 + (s % 7) + (k % 5) * 0.3,
                    )
                )
            )
    return out


def detector_core(job: JobProcess, timeout_s: float = 60.0) -> str:
    """What the job logs at start about its detector core: compiled (mypyc) or interpreted, and from where."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and job.alive():
        for line in job.log_file.read_text(errors="replace").splitlines():
            if "detector core: " in line:
                return line.split("detector core: ", 1)[1]
        time.sleep(0.2)
    return "unknown (the job logged no 'detector core' line)"


def session_cpu_s(session_id: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of a session, as {"jvm": ...,
    "python": ...} (the job's JVM, its Python client and workers): the cost per record, whatever else
    the shared machine is doing."""
    tick = os.sysconf("SC_CLK_TCK")
    total = {"jvm": 0.0, "python": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            kind = "jvm" if "java" in head else "python"
            total[kind] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--records", type=int, default=400_000, help="backlog to drain (0: none, e.g. for --live-rate)")
    p.add_argument("--spacing-ms", type=int, default=100, help="event-time gap between a series' results")
    p.add_argument("--window-s", type=int, default=1)
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--interval-s", type=float, default=5.0)
    p.add_argument("--no-archive", action="store_true", help="leave the lake out (to see what it costs)")
    p.add_argument("--python-mode", choices=("process", "thread"), default="process")
    p.add_argument("--allowed-lateness-s", type=float, default=1.0)
    p.add_argument(
        "--latency-season-s",
        type=float,
        default=60.0,
        help="the latency detectors' seasonal period (default 60: the models mature within the run, the steady "
        "cost of the job's default one-day season, which a real deployment reaches after a day; 0: off)",
    )
    p.add_argument("--state-backend", choices=("hashmap", "rocksdb"), default="hashmap")
    p.add_argument(
        "--live-rate",
        type=float,
        default=0.0,
        help="then offer this many records/s live from --series series (each probing every series/rate s) "
        "and report whether the job keeps up; 0: no live phase",
    )
    p.add_argument("--live-s", type=float, default=150.0, help="length of the live phase (the first 30 s warm up)")
    p.add_argument(
        "--checkpoint-interval-s",
        type=float,
        default=10.0,
        help="the job's checkpoints and so its Kafka offset commits (default: the job's own default, 10 s; "
        "2 s costs the JVM ~25 us more per record with 20,000 series: every checkpoint copies all the state)",
    )
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nobs-bench-flink-") as tmp:
        work = Path(tmp)
        stack = start_stack(work / "stack", say=lambda line: None)
        bootstrap = f"127.0.0.1:{stack.layout.ports.kafka}"
        am = f"http://127.0.0.1:{stack.layout.ports.alertmanager}"
        topics = Topics.unique()
        topics.create(bootstrap, partitions=args.partitions)
        group = f"nobs-bench-{uuid.uuid4().hex[:6]}"
        job = None
        try:
            n = 0
            if args.records > 0:
                values = backlog(args.series, args.records, args.spacing_ms, int(time.time() * 1000) - 60_000)
                t = time.monotonic()
                n = produce(bootstrap, topics.results, values)
                print(f"backlog: {n} records of {args.series} series written in {time.monotonic() - t:.1f} s")
            job = JobProcess(
                job_args(
                    bootstrap,
                    topics,
                    group=group,
                    alertmanager=am,
                    lake=None if args.no_archive else work / "lake",
                    checkpoints=work / "chk",
                    extra=[
                        "--checkpoint-interval-s",
                        str(args.checkpoint_interval_s),
                        "--state-backend",
                        args.state_backend,
                        "--window-s",
                        str(args.window_s),
                        "--allowed-lateness-s",
                        str(args.allowed_lateness_s),
                        "--python-mode",
                        args.python_mode,
                        "--idle-timeout-s",
                        "3",
                        "--resend-interval-s",
                        "30",
                        "--parallelism",
                        str(args.parallelism),
                        "--latency-warmup-s",
                        "60",
                        "--latency-season-s",
                        str(args.latency_season_s),
                    ],
                ),
                work / "job.log",
            )
            print(f"detector core: {detector_core(job)}")
            if args.records <= 0:  # no backlog: the job only has to be running for the live phase
                wait_until_running(bootstrap, topics, job)
            else:
                t_start = time.monotonic()
                # Committed offsets move in steps (one per checkpoint): measure between two observed commits,
                # with the counts actually committed then (not nominal fractions that one step may jump over).
                first: tuple[float, int, dict[str, float]] | None = None  # the first commit past 10%
                last: tuple[float, int, dict[str, float]] | None = None  # the commit that covers everything
                steps = 0
                load_during_drain = 0.0
                previous = 0
                progress: tuple[float, float] | None = None  # (time, job CPU s) at the last commit step
                while last is None:
                    if not job.alive():
                        print(job.tail(), file=sys.stderr)
                        return 1
                    done = committed_total(bootstrap, results_group(group), topics.results)
                    now = time.monotonic()
                    if done != previous:
                        steps += first is not None
                        cpu_now = sum(session_cpu_s(job.proc.pid).values())
                        if progress is not None:  # each commit step: progress, and where the time goes
                            dt = now - progress[0]
                            print(
                                f"  committed {done:,} ({done / n:.0%}) at {now - t_start:.1f} s: "
                                f"{(done - previous) / max(dt, 1e-9):,.0f} records/s, "
                                f"job CPU {(cpu_now - progress[1]) / max(dt, 1e-9):.2f} cores",
                                file=sys.stderr,
                            )
                        progress = (now, cpu_now)
                        previous = done
                        if first is None and done >= 0.1 * n:
                            first = (now, done, session_cpu_s(job.proc.pid))
                        elif done >= n:
                            last = (now, done, session_cpu_s(job.proc.pid))
                            load_during_drain = os.getloadavg()[0]
                    if now - t_start > 1800:
                        print("backlog not drained in 30 min", file=sys.stderr)
                        return 1
                    time.sleep(0.25)
                assert first is not None
                measured = last[1] - first[1]
                rate = measured / max(last[0] - first[0], 1e-9)
                print(
                    f"throughput: {rate:,.0f} records/s (the last {measured / n:.0%} of the backlog, "
                    f"{steps} commit steps; "
                    f"parallelism {args.parallelism}, {args.series} series, "
                    f"{max(1, 1000 * args.window_s // args.spacing_ms)} results per series-window); "
                    f"whole backlog incl. start-up {n / (last[0] - t_start):,.0f} records/s"
                )
                if measured < 0.5 * n or steps < 3:
                    print("  (few commit steps: use a larger --records for a steadier figure)")
                per_record = {k: (last[2][k] - first[2][k]) / max(measured, 1) * 1e6 for k in ("jvm", "python")}
                cpu_per_record_us = sum(per_record.values())
                print(
                    f"cost: {cpu_per_record_us:.0f} us of CPU per record (JVM {per_record['jvm']:.0f}, Python "
                    f"{per_record['python']:.0f}), i.e. {2e6 / max(cpu_per_record_us, 1e-9):,.0f} records/s if the job "
                    "had both cores of this machine to itself"
                )

                print(f"load average at the end of the drain: {load_during_drain:.2f} (1 min)")
            if args.live_rate > 0:
                live_load(bootstrap, topics, group, job, args)
            if args.trials > 0:
                wait_until_running(bootstrap, topics, job)
                delays = live_delays(bootstrap, am, topics, args.trials, args.interval_s)
                print(
                    f"outage -> Alertmanager delay over {len(delays)} trials (probe interval "
                    f"{args.interval_s:.0f} s): p50 {statistics.median(delays):.1f} s, p99 "
                    f"{percentile(delays, 0.99):.1f} s, max {max(delays):.1f} s; goal <= {args.interval_s + 5:.0f} s; "
                    f"load average {os.getloadavg()[0]:.2f}"
                )
        finally:
            if job is not None:
                job.stop()
            stack.down(["kafka", "alertmanager"])
    return 0


def _live_templates(series: int) -> list[tuple[str, bytes]]:
    """Per series, its result record as JSON text with ``%s`` for the result_id and ``%d`` for the start time
    (formatting one costs ~1 µs, so the producer takes little of the CPU the job is measured on)."""
    tag = uuid.uuid4().hex[:8]
    out = []
    for s in range(series):
        record = result(
            at_ms=0, pop=POPS[s % len(POPS)], target=f"live-{tag}-{s // len(POPS)}.test", duration_ms=20.0 + s % 7
        )
        record["result_id"] = "RID"
        text = encode(record).decode()
        assert "%" not in text
        text = text.replace('"RID"', '"%s"').replace('"started_at_ms":0,', '"started_at_ms":%d,')
        out.append((text, series_key(encode(record))))
    return out


def live_load(bootstrap: str, topics: Topics, group: str, job: JobProcess, args: argparse.Namespace) -> None:
    """Offer ``--live-rate`` records/s as ``--series`` agents' series would (each at its own offset in its
    interval), and follow what the job commits: it keeps up when its lag (offered - committed) stays within
    what one checkpoint step explains instead of growing."""
    rate, series = args.live_rate, args.series
    interval_ms = 1000.0 * series / rate
    templates = _live_templates(series)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})

    base = committed_total(bootstrap, results_group(group), topics.results)

    def committed() -> int:
        return committed_total(bootstrap, results_group(group), topics.results) - base

    warmup_s = 30.0
    print(
        f"live: {rate:,.0f} records/s offered from {series} series (one result every {interval_ms / 1000:.2f} s "
        f"each) for {args.live_s:.0f} s, the first {warmup_s:.0f} s a warm-up",
        file=sys.stderr,
    )
    start = time.time()
    start_ms = int(start * 1000)
    produced, next_sample, cpu0 = 0, start + warmup_s, time.process_time()
    samples: list[tuple[float, int, int, float]] = []  # (s since start, produced, committed, job CPU s)
    while (now := time.time()) - start < args.live_s:
        due = int((now - start) * rate)
        while produced < due:
            s = produced % series
            text, key = templates[s]
            at_ms = start_ms + int((produced // series) * interval_ms + s * interval_ms / series)
            try:
                producer.produce(topics.results, (text % (f"live-{produced:024x}", at_ms)).encode(), key=key)
            except BufferError:
                producer.poll(0.05)
                continue
            produced += 1
        producer.poll(0)
        if now >= next_sample:
            samples.append((now - start, produced, committed(), sum(session_cpu_s(job.proc.pid).values())))
            lag = samples[-1][1] - samples[-1][2]
            print(
                f"  at {samples[-1][0]:5.0f} s: offered {produced:,}, committed {samples[-1][2]:,}, "
                f"lag {lag:,} records ({lag / rate:.1f} s of input)",
                file=sys.stderr,
            )
            next_sample += 10.0
        if not job.alive():
            print(job.tail(), file=sys.stderr)
            return
        time.sleep(0.01)
    producer.flush(30)
    producer_cpu_us = (time.process_time() - cpu0) / max(produced, 1) * 1e6
    if len(samples) < 3:
        print("live: too short to judge (use a longer --live-s)")
        return
    (t0, p0, c0, cpu_a), (t1, p1, c1, cpu_b) = samples[0], samples[-1]
    lags_s = [(p - c) / rate for _, p, c, _ in samples]
    step_s = args.checkpoint_interval_s
    kept_up = lags_s[-1] <= 2 * step_s + 5 and max(lags_s[len(lags_s) // 2 :]) <= 2 * step_s + 5
    print(
        f"live: offered {(p1 - p0) / (t1 - t0):,.0f} records/s, committed {(c1 - c0) / (t1 - t0):,.0f} records/s "
        f"over {t1 - t0:.0f} s after the warm-up; lag {lags_s[0]:.1f} s -> {lags_s[-1]:.1f} s of input "
        f"(max {max(lags_s):.1f} s; one checkpoint step is {step_s:.0f} s): "
        f"{'KEPT UP' if kept_up else 'FELL BEHIND'}; job CPU {(cpu_b - cpu_a) / (t1 - t0):.2f} cores "
        f"({(cpu_b - cpu_a) / max(c1 - c0, 1) * 1e6:.0f} us per record); the producer {producer_cpu_us:.1f} us "
        f"per record; load average {os.getloadavg()[0]:.2f}"
    )


def live_delays(bootstrap: str, am: str, topics: Topics, trials: int, interval_s: float) -> list[float]:
    """Outage-to-Alertmanager delays. Like the agents' scheduler, every (POP, target) probes at its own
    offset within the interval, so results arrive all the time, not in bursts."""
    tag = uuid.uuid4().hex[:6]
    targets = [f"live-{tag}-{i}.test" for i in range(trials)]
    rng = random.Random(3)
    due = {(t, pop): time.time() + rng.uniform(0, interval_s) for t in targets for pop in POPS}
    outage_from: dict[str, float] = {}  # target -> when it goes down (3 POPs fail from then on)
    first_failure_ms: dict[str, int] = {}
    seen: dict[str, float] = {}
    start = time.time()
    while len(seen) < trials and time.time() - start < 60 + trials * 4 * interval_s:
        now = time.time()
        k = int((now - start - 3 * interval_s) // (3 * interval_s))  # a new outage every 3 intervals
        if 0 <= k < trials and targets[k] not in outage_from:
            outage_from[targets[k]] = now
        batch = []
        for (target, pop), when in due.items():
            if when > now:
                continue
            failing = pop != "gru" and target in outage_from and target not in seen and when >= outage_from[target]
            at_ms = int(when * 1000)
            if failing:
                first_failure_ms.setdefault(target, at_ms)
            batch.append(encode(result(at_ms=at_ms, pop=pop, target=target, success=not failing)))
            due[(target, pop)] = when + interval_s
        if batch:
            produce(bootstrap, topics.results, batch)
        for alert in alertmanager_alerts(am):
            target = alert["labels"].get("target", "")
            if alert["labels"].get("alertname") == "NetobsTargetOutage" and target in first_failure_ms:
                seen.setdefault(target, time.time())
        time.sleep(0.05)
    return [seen[t] - first_failure_ms[t] / 1000.0 for t in seen]


if __name__ == "__main__":
    sys.exit(main())
