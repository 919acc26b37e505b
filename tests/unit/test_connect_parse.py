"""The native engine's parse of plain responses (``_connect.parse_plain``) against the probe's own reader
(``_http1.parse_response``): the same answer whenever the engine answers, and the engine answers for the
responses a probe usually gets."""

from __future__ import annotations

import random

import pytest

from netobs import _connect
from netobs.probes._http1 import BodyTooLarge, ProtocolViolation, parse_response

HEAD = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\n"

PLAIN = [
    HEAD + b"Content-Length: 13\r\nConnection: close\r\n\r\nhello netobs\n",
    HEAD + b"Content-Length: 0\r\n\r\n",
    HEAD + b"content-length:5  \r\nX-Empty:\r\nX-Tab:\tv a l\t \r\n\r\nabcde and what follows",
    b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
    b"HTTP/1.1 200\r\n\r\nuntil the close",  # no reason, no fields, no length
    b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n",  # no body, whatever the length says
    b"HTTP/1.1 200 caf\xe9 \x80\r\nX-Latin: d\xe9j\xe0 vu\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nA: 1\r\nA: 2\r\nContent-Length: 4\r\n\r\nbusy",
]

NOT_PLAIN = [
    b"",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",  # no end of the head
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  # interim first
    HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    HEAD + b"Content-Length: 5, 5\r\n\r\nhello",
    HEAD + b"Content-Length: 10\r\n\r\nshort",
    HEAD + b"Content-Length: x\r\n\r\n",
    HEAD + b"X-Folded: a\r\n b\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",  # bare LF
    b"HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\n\r\n",
    b"HTTP/1.1 20x OK\r\n\r\n",
    b"HTTP/1.1 200OK\r\n\r\n",
    b"\x16\x03 this is not HTTP at all\r\n\r\n\x00\xff",
    HEAD + b"Bad Name: v\r\n\r\n",
    HEAD + b"X-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 20000 + b"\r\n\r\n",  # head over 16 KiB
]


def _reference(data: bytes, max_body_bytes: int, head_request: bool) -> object:
    try:
        return parse_response(data, max_body_bytes, head_request)
    except (ProtocolViolation, BodyTooLarge) as exc:
        return type(exc)


@pytest.mark.parametrize("data", PLAIN)
def test_plain_responses_parse_as_the_probes_reader_does(data: bytes) -> None:
    got = _connect.parse_plain(data, 1 << 20, False)
    assert got is not None
    assert got == parse_response(data, 1 << 20, False)


@pytest.mark.parametrize("data", NOT_PLAIN)
def test_anything_else_is_left_to_the_probes_reader(data: bytes) -> None:
    assert _connect.parse_plain(data, 1 << 20, False) is None


def test_head_requests_and_the_body_cap() -> None:
    data = HEAD + b"Content-Length: 13\r\n\r\n"
    assert _connect.parse_plain(data, 1 << 20, True) == parse_response(data, 1 << 20, True)
    assert _connect.parse_plain(data, 1 << 20, False) is None  # the body never came
    body = PLAIN[0]
    assert _connect.parse_plain(body, 13, False) is not None
    assert _connect.parse_plain(body, 12, False) is None  # over the cap: the reader says BodyTooLarge


def test_mutated_responses_never_parse_differently() -> None:
    """Random edits of the cases above: whenever the engine answers, the reader answers the same."""
    rng = random.Random(20261123)
    alphabet = b"\r\n :\t\x00\x7fHTTP/1.0123456789abcxyzContent-Length,Transfer-Encoding\xe9"
    answered = 0
    for _ in range(20000):
        data = bytearray(rng.choice(PLAIN + NOT_PLAIN))
        for _edit in range(rng.randint(1, 3)):
            at = rng.randint(0, len(data))
            choice = rng.random()
            if choice < 0.4 and data:
                del data[at : at + rng.randint(1, 4)]
            elif choice < 0.8:
                data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3)))
            else:
                data[at:at] = rng.choice([b"\r\n", b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n"])
        cap, head = rng.choice([1 << 20, 8]), rng.random() < 0.1
        got = _connect.parse_plain(bytes(data), cap, head)
        if got is not None:
            answered += 1
            assert got == _reference(bytes(data), cap, head), bytes(data)
    assert answered > 1000  # the comparison ran on many plain responses, not none
