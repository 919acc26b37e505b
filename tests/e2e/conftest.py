"""The real pipeline stack for end-to-end tests, brought up once per session.

Each test session claims a *slot*: a port offset (added to every port of
agent/netobs/stack/ports.py) and a state dir, locked for the whole session. Sessions running at
the same time on one machine (several developers' test runs) take different slots; a
developer's own stack (offset 0) is never touched. ``NETOBS_E2E_PORT_OFFSET`` pins one offset
(waiting for its lock). The broken-component test uses the slot's offset + 1000.
Builds come from the cache the setup hook (scripts/setup.d/20-stack.sh) filled.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netobs.stack.layout import StackLayout
from netobs.stack.stack import Stack

# Offsets whose port sets (and +1000 sets) overlap neither each other nor the default set, and
# stay below the ephemeral port range (tests/e2e/test_config_contract.py checks this).
E2E_SLOTS = (11000, 11050, 11100, 11150)


def _say(line: str) -> None:
    print(f"[stack] {line}", flush=True)


@pytest.fixture(scope="session")
def e2e_offset() -> Iterator[int]:
    """The port offset this session owns (its lock is held until the session ends)."""
    pinned = os.environ.get("NETOBS_E2E_PORT_OFFSET")
    candidates = [int(pinned)] if pinned else list(E2E_SLOTS)
    lock_dir = Path(tempfile.gettempdir())
    for i, offset in enumerate(candidates):
        fh = (lock_dir / f"netobs-e2e-{offset}.lock").open("w")
        last = i == len(candidates) - 1
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if last else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        try:
            yield offset
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        return


@pytest.fixture(scope="session")
def stack(e2e_offset: int) -> Iterator[Stack]:
    # A fixed state dir per slot: if an earlier run died without its teardown, its processes are
    # found through their pid files and stopped before this run starts afresh.
    default = Path(tempfile.gettempdir()) / f"netobs-e2e-stack-{e2e_offset}"
    state = Path(os.environ.get("NETOBS_E2E_STATE") or default)
    layout = StackLayout.create(state_dir=state, port_offset=e2e_offset)
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
