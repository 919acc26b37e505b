"""A fake ``RequestExporter`` (``netobs._otlpdirect``) for tests of the agent's export threads."""

from __future__ import annotations

from typing import Any


class CountingExporter:
    """Counts the items of the requests it accepts and drops them; its first ``fail`` requests fail, by
    raising ``error`` or (when it is None) by returning False, as an exporter that gave up does."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.fail = fail
        self.error = error
        self.items = 0

    def export_request(self, request: Any, count: int) -> bool:
        if self.fail > 0:
            self.fail -= 1
            if self.error is not None:
                raise self.error
            return False
        self.items += count
        return True

    def shutdown(self) -> None:
        pass
