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

# (peer's HTTP version, status, header fields with lower-case names, body): _http1.parse_response's answer
PlainResponse = tuple[str, int, list[tuple[str, str]], bytes]
Response = bytes | PlainResponse

def parse_plain(data: bytes, max_body_bytes: int, head_request: bool) -> PlainResponse | None:
    """What ``_http1.parse_response`` gives for ``data`` when it is a plain response (see _connect.c); None
    for anything else."""

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
    ) -> list[tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, bytes | None, Response | None]]:
        """(user_id, kind, errno or missed count, slot_ns, start_mono_ns, start_wall_ns, elapsed_ns, rtt_us,
        then for an HTTP job: stage, connect_ns, tx_wall_ns, ttfb_ns, transfer_ns, the traceparent's 16 + 8 id
        bytes, the response read (parsed when it is plain); zeros and None for a plain connect)"""
    def fileno(self) -> int: ...
    def close(self) -> None: ...
