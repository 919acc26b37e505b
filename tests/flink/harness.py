"""Helpers of the Flink job's end-to-end tests and benchmark: the real stack, topics, the job process,
Kafka I/O and Alertmanager queries. Runs in the Flink virtualenv (PYTHONPATH=pipelines/flink:agent)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from netobs.stack.layout import StackLayout
from netobs.stack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_offset(rng: random.Random | None = None) -> int:
    """A stack port offset whose Kafka and Alertmanager ports are free right now (tests share the machine)."""
    rng = rng or random.Random()
    from netobs.stack.ports import DEFAULT_PORTS

    for _ in range(200):
        offset = rng.randrange(21000, 30000)
        ports = DEFAULT_PORTS.shifted(offset)
        if all(_port_free(p) for p in (ports.kafka, ports.kafka_controller, ports.alertmanager)):
            return offset
    raise RuntimeError("no free port offset for Kafka and Alertmanager")


def start_stack(state_dir: Path, say: Callable[[str], None] = print) -> Stack:
    """Kafka and Alertmanager from the project's stack launcher, on free ports; the caller stops it."""
    layout = StackLayout.create(state_dir=state_dir, port_offset=free_port_offset())
    stack = Stack(layout, say=say)
    failures = stack.up(["kafka", "alertmanager"])
    if failures:
        stack.down(["kafka", "alertmanager"])
        raise RuntimeError("stack did not come up:\n" + "\n".join(str(f) for f in failures))
    return stack


@dataclass(frozen=True)
class Topics:
    results: str
    alerts: str
    deadletter: str

    @classmethod
    def unique(cls, partitions: int = 2) -> Topics:
        tag = f"nobs-{uuid.uuid4().hex[:8]}"
        return cls(f"{tag}.results", f"{tag}.alerts", f"{tag}.deadletter")

    def create(self, bootstrap: str, partitions: int = 2) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics(
            [NewTopic(self.results, partitions, 1), NewTopic(self.alerts, 1, 1), NewTopic(self.deadletter, 1, 1)]
        )
        for future in futures.values():
            future.result(timeout=60)


def series_key(value: bytes) -> bytes:
    """Key a result by its series (agent, check, target), as a keyed producer would: spreads partitions."""
    try:
        record = json.loads(value)
        return f"{record['agent_id']}|{record['check_name']}|{record['target']}".encode()
    except (ValueError, KeyError, TypeError):
        return value[:32]


def produce(
    bootstrap: str, topic: str, values: Iterable[bytes], key: Callable[[bytes], bytes] | None = series_key
) -> int:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
        }
    )
    n = 0
    for value in values:
        while True:
            try:
                producer.produce(topic, value, key=None if key is None else key(value))
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10000 == 0:
            producer.poll(0)
    producer.flush(60)
    return n


def consume_all(bootstrap: str, topic: str, *, idle_s: float = 3.0, max_s: float = 30.0) -> list[bytes]:
    """Every committed message of ``topic`` (read_committed), until none arrived for ``idle_s``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"nobs-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + max_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            out.append(bytes(msg.value() or b""))
            last = time.monotonic()
    finally:
        consumer.close()
    return out


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "nobs-offsets"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum over partitions of the offsets ``group`` committed (the job commits on checkpoints)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        try:
            parts = consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10)
        except KafkaException:  # the group coordinator is still loading: nothing committed yet
            return 0
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def alertmanager_alerts(base_url: str) -> list[dict[str, Any]]:
    """The active alerts Alertmanager's v2 API lists (resolved ones disappear once endsAt has passed)."""
    with urllib.request.urlopen(f"{base_url}/api/v2/alerts", timeout=5) as response:
        return list(json.load(response))


def wait_for(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.5, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what or predicate}")
        time.sleep(interval_s)


class JobProcess:
    """``python -m netobs_flink.job`` in its own process group (a local mini-cluster)."""

    def __init__(self, args: list[str], log_file: Path) -> None:
        env = dict(os.environ)
        # The package build the test script chose (scripts/test.d/50-flink.sh: the compiled one).
        package_root = env.get("FLINK_PYTHONPATH") or str(ROOT / "pipelines" / "flink")
        env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
        self.log_file = log_file
        self._log = log_file.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netobs_flink.job", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
        self._log.close()

    def python_workers(self) -> int:
        """How many Beam Python worker processes the job runs (process mode: one per subtask)."""
        count = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                session = int(stat.read_text().rsplit(")", 1)[1].split()[3])
                cmdline = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
            count += session == self.proc.pid and b"pyflink.fn_execution.beam.beam_boot" in cmdline
        return count

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def job_args(
    bootstrap: str,
    topics: Topics,
    *,
    group: str,
    alertmanager: str = "",
    lake: Path | None = None,
    checkpoints: Path | None = None,
    extra: Iterable[str] = (),
) -> list[str]:
    jars = os.environ.get("NETOBS_FLINK_JARS", "")
    args = [
        "--bootstrap-servers",
        bootstrap,
        "--results-topic",
        topics.results,
        "--alerts-topic",
        topics.alerts,
        "--deadletter-topic",
        topics.deadletter,
        "--group-id",
        group,
        "--jars",
        jars,
    ]
    if alertmanager:
        args += ["--alertmanager-url", alertmanager]
    if lake is not None:
        args += ["--lake", str(lake)]
    if checkpoints is not None:
        args += ["--checkpoint-dir", str(checkpoints)]
    return args + list(extra)


def wait_until_running(bootstrap: str, topics: Topics, job: JobProcess, timeout_s: float = 240.0) -> None:
    """Send a malformed canary and wait for it on the dead-letter topic: the job runs end to end."""
    canary = f"canary-{uuid.uuid4().hex}".encode()
    produce(bootstrap, topics.results, [canary])

    def seen() -> bool:
        if not job.alive():
            raise AssertionError("the job exited:\n" + job.tail())
        return canary in consume_all(bootstrap, topics.deadletter, idle_s=1.0, max_s=5.0)

    wait_for(seen, timeout_s, interval_s=1.0, what="the job to dead-letter its canary")
