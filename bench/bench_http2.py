"""Micro-benchmark: the CPU of one HTTP/2 exchange on the client side, the agent's client against the h2
library's state machine (what the agent used before ``netobs.probes._h2``).

Both clients do what an HTTP probe does on a fresh connection: the preface and SETTINGS, one GET with the
probe's headers, then take in the server's SETTINGS, the response HEADERS (nginx's usual fields, HPACK and
Huffman coded by the h2 library's server) and a small DATA frame that ends the stream, and produce what
they send back (acknowledgements). The server's bytes are made once, beforehand; only the client side
is timed. Prints µs per exchange, the median of ``--repeat`` rounds. Needs the dev dependencies (h2).

    python bench/bench_http2.py
    python bench/bench_http2.py --exchanges 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from netobs.probes._h2 import H2Client
from netobs.probes._http_wire import H2_WINDOW_BYTES

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"127.0.0.1:8443"),
    (b":path", b"/t/17"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"user-agent", b"netobs/0.1"),
]
RESPONSE = [
    (":status", "200"),
    ("server", "nginx/1.22.1"),
    ("date", "Mon, 23 Nov 2026 10:00:00 GMT"),
    ("content-type", "text/plain"),
    ("content-length", "3"),
]


def server_answer(client_bytes: bytes) -> bytes:
    """What the h2 library's server sends to ``client_bytes`` (a preface and a GET): SETTINGS, their ACK,
    the response HEADERS and DATA."""
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    server.initiate_connection()
    server.receive_data(client_bytes)
    server.send_headers(1, RESPONSE)
    server.send_data(1, b"ok\n", end_stream=True)
    return server.data_to_send()


def own_client(answer: bytes) -> Callable[[], None]:
    def exchange() -> None:
        client = H2Client(1_000_000, H2_WINDOW_BYTES)
        client.start(REQUEST, b"")
        client.receive(answer)
        client.data_to_send()
        assert client.ended and client.status == 200

    return exchange


def h2_library_client(answer: bytes) -> Callable[[], None]:
    """The h2 library as ``_http_wire.Http2Exchange`` used it (its configuration, settings and window)."""
    codes = h2.settings.SettingCodes

    def exchange() -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: 100,
                codes.INITIAL_WINDOW_SIZE: H2_WINDOW_BYTES,
                codes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(H2_WINDOW_BYTES - 65535)
        conn.send_headers(conn.get_next_available_stream_id(), REQUEST, end_stream=True)
        conn.data_to_send()
        events = conn.receive_data(answer)
        conn.data_to_send()
        assert type(events[-1]).__name__ == "StreamEnded"

    return exchange


def measure(exchange: Callable[[], None], count: int) -> float:
    for _ in range(min(count, 200)):  # warm-up
        exchange()
    start = time.perf_counter()
    for _ in range(count):
        exchange()
    return (time.perf_counter() - start) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=5000, help="exchanges per round (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed (default 3)")
    args = parser.parse_args(argv)
    probe = H2Client(1_000_000, H2_WINDOW_BYTES)
    answer = server_answer(probe.start(REQUEST, b""))
    for name, make in (("netobs _h2.H2Client", own_client), ("h2 library", h2_library_client)):
        rounds = [measure(make(answer), args.exchanges) for _ in range(args.repeat)]
        each = ", ".join(f"{r:.1f}" for r in rounds)
        print(f"{name:22s} {statistics.median(rounds):8.1f} us per exchange  (rounds: {each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
