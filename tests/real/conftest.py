"""Tests against real servers and kernels run on the agent's production event loop, uvloop
(``netobs agent run`` and ``once`` default to it); the unit tests keep the standard asyncio loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    return {"uvloop": uvloop.new_event_loop}
