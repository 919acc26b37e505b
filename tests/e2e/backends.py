"""Readers of what the stack's backends hold: PromQL, the Jaeger query API, a Kafka topic."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError

from netobs.stack.ports import HOST, StackPorts


def http_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def promql(ports: StackPorts, query: str) -> list[dict[str, Any]]:
    url = f"http://{HOST}:{ports.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    body = http_json(url)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, interval_s: float = 1.0) -> Any:
    """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


def jaeger_trace(ports: StackPorts, trace_id: str) -> dict[str, Any] | None:
    try:
        body = http_json(f"http://{HOST}:{ports.jaeger_query_http}/api/traces/{trace_id}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    data = body.get("data") or []
    return data[0] if data else None


class TopicReader:
    """Reads a topic from the beginning with a fresh consumer group; keeps what it has seen."""

    def __init__(self, ports: StackPorts, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": f"{HOST}:{ports.kafka}",
                "group.id": f"netobs-e2e-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.values: list[bytes] = []
        self.placement: dict[bytes, tuple[int, bytes | None]] = {}  # value -> (partition, key)

    def poll_for(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"kafka consumer error: {err}")
            value = msg.value()
            if value is not None:
                self.values.append(value)
                self.placement[value] = (int(msg.partition() or 0), msg.key())

    def wait_for(self, predicate: Callable[[list[bytes]], bool], timeout_s: float) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.values):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s; {len(self.values)} messages read")
            self.poll_for(1.0)
        return self.values

    def close(self) -> None:
        self.consumer.close()


def result_ids(values: list[bytes]) -> list[str]:
    ids = []
    for value in values:
        try:
            body = json.loads(value)
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("result_id"), str):
            ids.append(body["result_id"])
    return ids
