"""The real pipeline stack for end-to-end tests, brought up once per session.

It runs on its own ports (``NETOBS_E2E_PORT_OFFSET``, default 11000, added to every port of
agent/netobs/stack/ports.py) and its own state dir, so a developer's running stack is untouched.
Builds come from the cache the setup hook (scripts/setup.d/20-stack.sh) filled.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netobs.stack.layout import StackLayout
from netobs.stack.stack import Stack

E2E_PORT_OFFSET = int(os.environ.get("NETOBS_E2E_PORT_OFFSET", "11000"))


def _say(line: str) -> None:
    print(f"[stack] {line}", flush=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # A fixed state dir: if an earlier run died without its teardown, its processes are found
    # through their pid files and stopped before this run starts afresh.
    default = Path(tempfile.gettempdir()) / f"netobs-e2e-stack-{E2E_PORT_OFFSET}"
    state = Path(os.environ.get("NETOBS_E2E_STATE") or default)
    layout = StackLayout.create(state_dir=state, port_offset=E2E_PORT_OFFSET)
    stack = Stack(layout, say=_say)
    stack.down()
    shutil.rmtree(state, ignore_errors=True)
    try:
        failures = stack.up()
        assert not failures, "stack did not come up:\n" + "\n".join(str(f) for f in failures)
        yield stack
    finally:
        stack.down()


@pytest.fixture
def otlp_endpoint(stack: Stack) -> str:
    return f"127.0.0.1:{stack.layout.ports.otelcol_otlp_grpc}"
