"""Fixtures of the Flink job's end-to-end tests: a real Kafka and Alertmanager (the project's stack
launcher, on free ports), unique topics per test, and the job as a local mini-cluster process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netobs.stack.stack import Stack
from tests.flink.harness import Topics, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("nobs-flink-stack"), say=lambda line: print(f"[stack] {line}"))
    try:
        yield stack
    finally:
        stack.down(["kafka", "alertmanager"])


@pytest.fixture(scope="session")
def bootstrap(stack: Stack) -> str:
    return f"127.0.0.1:{stack.layout.ports.kafka}"


@pytest.fixture(scope="session")
def alertmanager(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.layout.ports.alertmanager}"


@pytest.fixture
def topics(bootstrap: str) -> Topics:
    created = Topics.unique()
    created.create(bootstrap)
    return created


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
