"""The C engine of ``_connect.c``: plain TCP connect runs scheduled, issued and timed by a thread of their own
(used by ``netobs._nativetcp``)."""

DONE: int
TIMEOUT: int
SKIPPED: int
MISSED: int
RELEASED: int

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
    ) -> int: ...
    def remove(self, handle: int) -> None: ...
    def drain(self) -> list[tuple[int, int, int, int, int, int, int, int]]:
        """(user_id, kind, errno or missed count, slot_ns, start_mono_ns, start_wall_ns, elapsed_ns, rtt_us)"""
    def fileno(self) -> int: ...
    def close(self) -> None: ...
