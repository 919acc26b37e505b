"""The C code of ``_wire.c``: the span and result-log writers (the same bytes as
``_lightspans.encode_spans_python`` and ``_resultlogs.encode_result_logs_python``, or None when a record
holds something only those handle), a histogram series' ``Buckets`` and a light span's ``SpanCore``."""

from collections.abc import Callable, Sequence
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

class SpanCore:
    """A light span's fields and ``end`` (``_lightspans.PySpanCore`` in C); ``start_time`` None is now."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None
    kind: Any
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any], int]]
    start_time: int
    end_time: int | None
    status_code: Any
    status_description: str | None
    parent_is_remote: bool

    def __init__(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_span_id: int | None,
        kind: Any,
        attributes: dict[str, Any],
        start_time: int | None,
        on_end: Callable[[Any], None],
        parent_is_remote: bool,
        status_code: Any,
    ) -> None: ...
    def end(self, end_time: int | None = None) -> None: ...
