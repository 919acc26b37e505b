"""Fixtures shared by unit test modules."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from tests.loops import LOOP_NAMES, Run, new_loop


@pytest.fixture(params=LOOP_NAMES)
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a coroutine on a fresh loop: once on asyncio's, once on uvloop."""

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=lambda: new_loop(request.param)) as r:
            r.run(coro)

    return runner
