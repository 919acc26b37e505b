"""A job restarted from its checkpoint neither loses nor repeats alerts or archived records."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.flink.harness import JobProcess, Topics, consume_all, job_args, produce, wait_for, wait_until_running
from tests.flink.records import encode, result
from tests.flink.test_job_e2e import DETECT_ARGS, POPS

pytestmark = pytest.mark.real


def _checkpoints(root: Path) -> int:
    """How many checkpoints completed so far (the newest ``chk-N``; only the last 3 are kept on disk)."""
    done = [int(p.name.split("-")[1]) for p in root.glob("*/chk-*") if (p / "_metadata").is_file()]
    return max(done, default=0)


# The job's defaults run Python in Beam worker processes (process) with state on the heap (hashmap); the
# other e2e tests use them. Thread mode (inside the JVM) and RocksDB (incremental checkpoints) are the
# other options: this test restores from both kinds of checkpoint.
@pytest.mark.parametrize(("python_mode", "state_backend"), [("thread", "hashmap"), ("process", "rocksdb")])
def test_restart_from_checkpoint_loses_and_repeats_nothing(
    bootstrap: str, topics: Topics, tmp_path: Path, python_mode: str, state_backend: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    target = f"restart-{tag}.test"
    group = f"nobs-{tag}"
    args = job_args(
        bootstrap,
        topics,
        group=group,
        lake=tmp_path / "lake",
        checkpoints=tmp_path / "chk",
        extra=[*DETECT_ARGS, "--python-mode", python_mode, "--state-backend", state_backend],
    )
    sent: list[dict[str, object]] = []

    def send(at_ms: int, down: set[str]) -> None:
        records = [result(at_ms=at_ms, pop=p, target=target, success=p not in down) for p in POPS]
        sent.extend(records)
        produce(bootstrap, topics.results, [encode(r) for r in records])

    first = JobProcess(args, tmp_path / "job1.log")
    try:
        wait_until_running(bootstrap, topics, first)
        now = int(time.time() * 1000)
        for i in range(30, 0, -1):
            send(now - i * 1000, set())

        def outage_on_kafka() -> bool:
            send(int(time.time() * 1000), {"fra", "sin", "iad"})
            events = [json.loads(v) for v in consume_all(bootstrap, topics.alerts, idle_s=1.0)]
            return any(e["kind"] == "target_outage" and e["status"] == "firing" for e in events)

        wait_for(outage_on_kafka, 120, interval_s=1.0, what="the outage alert on the alerts topic")
        before = _checkpoints(tmp_path / "chk")
        wait_for(lambda: _checkpoints(tmp_path / "chk") > before, 30, what="one more checkpoint")
        for _ in range(3):  # results the first job may or may not have checkpointed before it dies
            send(int(time.time() * 1000), {"fra", "sin", "iad"})
            time.sleep(0.5)
    finally:
        first.stop(signal.SIGKILL)  # a crash: no last checkpoint, nothing flushed

    # While it is down the target recovers; the restarted job must resolve the alert it had open.
    for _ in range(5):
        send(int(time.time() * 1000), set())
        time.sleep(1.0)
    second = JobProcess([*args, "--restore", "auto"], tmp_path / "job2.log")
    try:
        assert "restoring from" in _wait_log(second, "restoring from")

        def resolved_on_kafka() -> list[dict[str, object]] | None:
            send(int(time.time() * 1000), set())
            events = [json.loads(v) for v in consume_all(bootstrap, topics.alerts, idle_s=1.0)]
            outage = [e for e in events if e["kind"] == "target_outage"]
            return events if any(e["status"] == "resolved" for e in outage) else None

        events = wait_for(resolved_on_kafka, 240, interval_s=2.0, what="the outage to resolve after the restart")
        # Nothing is sent any more; two checkpoints later everything sent is committed to the lake.
        after = _checkpoints(tmp_path / "chk")
        wait_for(lambda: _checkpoints(tmp_path / "chk") >= after + 2, 60, what="two more checkpoints")
        sent_ids = Counter(str(r["result_id"]) for r in sent)
        archived = _archived_ids(tmp_path / "lake")
    finally:
        second.stop()

    outage = [(e["fingerprint"], e["status"]) for e in events if e["kind"] == "target_outage"]
    assert Counter(outage) == Counter({(outage[0][0], "firing"): 1, (outage[0][0], "resolved"): 1})
    # A local alert may fire twice (superseded by the outage, then again while the outage shrinks): two
    # episodes with their own start. Exactly once means no transition (event_id) appears twice.
    repeated = [eid for eid, n in Counter(e["event_id"] for e in events).items() if n > 1]
    assert repeated == [], [
        (e["kind"], e["status"], e["at_ms"], e["labels"]) for e in events if e["event_id"] in repeated
    ]
    assert all(n == 1 for n in archived.values()), "no record archived twice"
    missing = [rid for rid in sent_ids if rid not in archived]
    assert missing == [], f"{len(missing)} of {len(sent_ids)} records lost"
    assert set(archived) == set(sent_ids)


def _archived_ids(lake: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for f in lake.glob("date=*/hour=*/part-*.jsonl"):
        for line in f.read_text().splitlines():
            if line:
                ids[json.loads(line)["result_id"]] += 1
    return ids


def _wait_log(job: JobProcess, text: str) -> str:
    return str(
        wait_for(
            lambda: text if text in job.log_file.read_text(errors="replace") else None,
            60,
            what=f"{text!r} in the job log",
        )
    )
