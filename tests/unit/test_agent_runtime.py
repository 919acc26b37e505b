"""The agent's process-wide runtime settings (GIL hand-over interval, GC) that keep its schedule on time."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from netobs.agent import GC_THRESHOLDS, SWITCH_INTERVAL_S, tune_runtime


@pytest.fixture
def restored_runtime() -> Iterator[None]:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_tune_runtime_shortens_the_gil_interval_and_freezes_the_startup_heap(restored_runtime: None) -> None:
    sys.setswitchinterval(0.005)  # Python's default
    survivor = [object() for _ in range(10)]
    tune_runtime()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert SWITCH_INTERVAL_S < 0.005
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(survivor)  # what lived at start is never scanned again
