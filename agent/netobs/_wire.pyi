"""The C writers of ``_wire.c``: the same bytes as ``_lightspans.encode_spans_python`` and
``_resultlogs.encode_result_logs_python``, or None when a record holds something only those handle."""

from collections.abc import Sequence
from typing import Any

def encode_spans(spans: Sequence[Any], kinds: tuple[Any, ...], statuses: tuple[Any, ...]) -> bytes | None: ...
def encode_result_logs(
    records: Sequence[tuple[int, int, str, str, str, str]], severity_number: int, event_name: str
) -> bytes | None: ...

class Buckets:
    """One histogram series' numbers (``_fastmetrics.PyBuckets`` in C): ``add`` and ``snapshot`` are atomic."""

    def __init__(self, bounds: Sequence[float]) -> None: ...
    def add(self, value: float) -> bool: ...
    def snapshot(self) -> tuple[int, float, tuple[int, ...], float, float]: ...
