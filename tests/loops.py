"""The event loops the agent's socket code is tested on: asyncio's and uvloop (the agent's). uvloop is
imported only when a uvloop loop is made: the Flink detector's unit tests share tests/unit/conftest.py and
run in an environment without it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

LOOP_NAMES = ("asyncio", "uvloop")
Run = Callable[[Coroutine[Any, Any, None]], None]  # runs a coroutine to its end on a fresh loop


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of kind ``name`` (one of LOOP_NAMES)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
