"""The streaming job end to end: real Kafka, the Flink mini-cluster and a real Alertmanager."""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netobs_flink.job import scratch_dir

from tests.flink.harness import (
    JobProcess,
    Topics,
    alertmanager_alerts,
    consume_all,
    job_args,
    produce,
    wait_for,
    wait_until_running,
)
from tests.flink.records import MALFORMED, encode, result

pytestmark = pytest.mark.real

POPS = ("fra", "sin", "iad", "gru")
DETECT_ARGS = [
    "--checkpoint-interval-s",
    "2",
    "--window-s",
    "1",
    "--allowed-lateness-s",
    "1",
    "--idle-timeout-s",
    "3",
    "--resend-interval-s",
    "5",
    "--latency-warmup-s",
    "30",
    "--latency-season-s",
    "0",
    "--latency-min-samples",
    "20",
    "--parallelism",
    "2",
]


class Feed:
    """Results of 4 POPs x some targets, one round per call, event time = now (or given)."""

    def __init__(self, bootstrap: str, topic: str, targets: list[str]) -> None:
        self.bootstrap, self.topic, self.targets = bootstrap, topic, targets
        self.rng = random.Random(5)

    def round(self, at_ms: int, *, down: dict[str, set[str]] | None = None, slow: dict[str, set[str]] | None = None):
        records = []
        for target in self.targets:
            for pop in POPS:
                failing = pop in (down or {}).get(target, set())
                extra = 100.0 if pop in (slow or {}).get(target, set()) else 0.0
                records.append(
                    result(
                        at_ms=at_ms,
                        pop=pop,
                        target=target,
                        success=not failing,
                        duration_ms=20.0 + extra + self.rng.gauss(0, 1),
                    )
                )
        produce(self.bootstrap, self.topic, [encode(r) for r in records])
        return records


@pytest.fixture(scope="module")
def running_job(
    tmp_path_factory: pytest.TempPathFactory, bootstrap: str, alertmanager: str
) -> Iterator[tuple[Topics, JobProcess, Path]]:
    topics = Topics.unique()
    topics.create(bootstrap)
    work = tmp_path_factory.mktemp("nobs-flink-job")
    job = JobProcess(
        job_args(
            bootstrap,
            topics,
            group=f"nobs-{uuid.uuid4().hex[:6]}",
            alertmanager=alertmanager,
            lake=work / "lake",
            checkpoints=work / "chk",
            extra=DETECT_ARGS,
        ),
        work / "job.log",
    )
    try:
        wait_until_running(bootstrap, topics, job)
        yield topics, job, work
    finally:
        job.stop()


def test_the_job_runs_compiled_and_keeps_its_scratch_files_in_its_own_folder(
    running_job: tuple[Topics, JobProcess, Path],
) -> None:
    _, job, _ = running_job
    assert "detector core: compiled (mypyc)" in job.log_file.read_text(errors="replace")
    # The mini-cluster unpacks its RPC system's jar into io.tmp.dirs (it used to land in /tmp, per run).
    scratch = Path(tempfile.gettempdir()) / "netobs-flink" / str(job.proc.pid)
    assert any(scratch.rglob("*.jar")), f"no unpacked jar under {scratch}"


def test_scratch_folders_of_runs_that_are_gone_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])  # a run whose process has exited
    dead.wait()
    root = tmp_path / "netobs-flink"
    for name in (str(dead.pid), str(os.getppid()), "notes"):
        (root / name).mkdir(parents=True)
        (root / name / "file").write_text("x")
    mine = scratch_dir()
    assert mine == root / str(os.getpid()) and mine.is_dir()
    assert sorted(p.name for p in root.iterdir()) == sorted([str(os.getpid()), str(os.getppid()), "notes"])


def _labels(alerts: list[dict[str, Any]], tag: str) -> list[dict[str, str]]:
    return [a["labels"] for a in alerts if tag in a["labels"].get("target", "")]


def test_latency_shift_and_outage_fire_and_resolve_in_alertmanager(
    running_job: tuple[Topics, JobProcess, Path], bootstrap: str, alertmanager: str
) -> None:
    topics, job, _ = running_job
    tag = uuid.uuid4().hex[:6]
    down_target, slow_target = f"down-{tag}.test", f"slow-{tag}.test"
    feed = Feed(bootstrap, topics.results, [down_target, slow_target])
    # Dead letters on every partition first: they carry their Kafka time (now), which must not move event
    # time, or the history below (90 s old) would all be late and dropped.
    produce(bootstrap, topics.results, [f"not a record {tag} {i}".encode() for i in range(16)])
    now = int(time.time() * 1000)
    for i in range(90, 0, -1):  # a minute and a half of normal history, one result a second
        feed.round(now - i * 1000)

    anomaly = {"down": {down_target: {"fra", "sin", "iad"}}, "slow": {slow_target: {"fra"}}}

    def firing() -> list[dict[str, str]] | None:
        feed.round(int(time.time() * 1000), **anomaly)
        labels = _labels(alertmanager_alerts(alertmanager), tag)
        names = {(lab["alertname"], lab.get("target"), lab.get("pop"), lab.get("phase")) for lab in labels}
        want = {("NetobsTargetOutage", down_target, None, None), ("NetobsLatencyIncrease", slow_target, "fra", "total")}
        return labels if want <= names else None

    labels = wait_for(firing, 120, interval_s=1.0, what="the outage and the latency alerts in Alertmanager")
    assert job.alive()
    # The default process mode: each of the 2 subtasks has its own worker (not both in the client's
    # interpreter, which would serialize them on one GIL).
    assert job.python_workers() == 2
    outage = next(lab for lab in labels if lab["alertname"] == "NetobsTargetOutage")
    assert outage["severity"] == "critical" and outage["check"] == "web"
    latency = [lab for lab in labels if lab["alertname"] == "NetobsLatencyIncrease"]
    assert {lab["pop"] for lab in latency} == {"fra"}, "only the slow POP"
    assert {lab["target"] for lab in latency} == {slow_target}
    assert not [lab for lab in labels if lab["alertname"] == "NetobsTargetOutage" and lab["target"] == slow_target]

    def resolved() -> bool:
        feed.round(int(time.time() * 1000))
        names = {lab["alertname"] for lab in _labels(alertmanager_alerts(alertmanager), tag)}
        return not names & {"NetobsTargetOutage", "NetobsLatencyIncrease"}

    wait_for(resolved, 120, interval_s=1.0, what="the alerts to resolve in Alertmanager")

    def both_resolved_on_kafka() -> list[dict[str, Any]] | None:
        events = [json.loads(v) for v in consume_all(bootstrap, topics.alerts, idle_s=1.0)]
        mine = [e for e in events if tag in e["labels"].get("target", "")]
        kinds = Counter((e["kind"], e["status"]) for e in mine)
        done = kinds[("target_outage", "resolved")] and kinds[("latency_increase", "resolved")]
        return mine if done else None

    mine = wait_for(both_resolved_on_kafka, 60, interval_s=2.0, what="resolved events on the alerts topic")
    repeated = [eid for eid, n in Counter(e["event_id"] for e in mine).items() if n > 1]
    assert repeated == [], [
        (e["kind"], e["status"], e["at_ms"], e["labels"]) for e in mine if e["event_id"] in repeated
    ]
    outage_events = [e for e in mine if e["kind"] == "target_outage"]
    assert [e["status"] for e in outage_events] == ["firing", "resolved"]
    assert outage_events[0]["annotations"]["trace_id"]


def test_malformed_messages_go_to_deadletter_and_the_job_keeps_running(
    running_job: tuple[Topics, JobProcess, Path], bootstrap: str
) -> None:
    topics, job, work = running_job
    tag = uuid.uuid4().hex[:6]
    old_hour_ms = 1_704_164_400_000  # 2024-01-02 03:00:00 UTC: archived under that hour, whatever today is
    valid = [result(at_ms=old_hour_ms + i * 1000, pop="fra", target=f"arch-{tag}.test") for i in range(5)]
    marked = [m + b" " + tag.encode() if m.startswith(b"not") else m for m in MALFORMED]
    produce(bootstrap, topics.results, [*marked[:3], encode(valid[0]), *marked[3:], *(encode(v) for v in valid[1:])])
    produce(bootstrap, topics.results, [encode(valid[0])])  # a duplicate result_id: archived once

    def dead() -> list[bytes] | None:
        got = consume_all(bootstrap, topics.deadletter, idle_s=1.0)
        return got if all(m in got for m in marked) else None

    got = wait_for(dead, 90, interval_s=2.0, what="the malformed messages on the dead-letter topic")
    assert not [g for g in got if tag.encode() in g and g not in marked]
    assert not [g for g in got if f"arch-{tag}".encode() in g], "valid records are not dead-lettered"
    assert job.alive()

    hour_dir = work / "lake" / "date=2024-01-02" / "hour=03"

    def archived() -> list[dict[str, Any]] | None:
        files = sorted(hour_dir.glob("part-*.jsonl")) if hour_dir.is_dir() else []
        lines = [json.loads(line) for f in files for line in f.read_text().splitlines() if line]
        mine = [r for r in lines if r["target"] == f"arch-{tag}.test"]
        return mine if len(mine) >= len(valid) else None

    mine = wait_for(archived, 90, interval_s=2.0, what="the valid records in the lake")
    assert sorted(r["result_id"] for r in mine) == sorted(v["result_id"] for v in valid), "each once"
    assert all(
        r == v
        for r, v in zip(
            sorted(mine, key=lambda r: r["result_id"]), sorted(valid, key=lambda v: v["result_id"]), strict=True
        )
    )
