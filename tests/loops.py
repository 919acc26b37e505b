"""The event loops the agent's socket code is tested on: asyncio's and uvloop (the agent's)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
Run = Callable[[Coroutine[Any, Any, None]], None]  # runs a coroutine to its end on a fresh loop
