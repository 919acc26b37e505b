"""The C engine of ``_connect.c``: plain TCP connects, and plain HTTP/1.1 exchanges, scheduled, issued and timed
by a thread of their own (used by ``netobs._native``)."""

DONE: int
TIMEOUT: int
SKIPPED: int
MISSED: int
RELEASED: int
CONNECTING: int
WAITING: int
RECEIVING: int

class ConnectEngine:
    def __init__(self) -> None: ...
    def add(
        self,
        user_id: int,
        family: int,
        packed_address: bytes,
        port: int,
        first_slot_s: float,
        interval_s: float,
        timeout_s: float,
        shed_after_s: float,
        request: bytes | None = None,
        traceparent_at: int = -1,
        max_body_bytes: int = 0,
        head_request: bool = False,
    ) -> int: ...
    def remove(self, handle: int) -> None: ...
    def drain(
        self,
    ) -> list[tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, bytes | None, bytes | None]]:
        """(user_id, kind, errno or missed count, slot_ns, start_mono_ns, start_wall_ns, elapsed_ns, rtt_us,
        then for an HTTP job: stage, connect_ns, tx_wall_ns, ttfb_ns, transfer_ns, the traceparent's 16 + 8 id
        bytes, the response read; zeros and None for a plain connect)"""
    def fileno(self) -> int: ...
    def close(self) -> None: ...
