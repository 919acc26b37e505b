"""The HTTP/1.1 request encoder and response reader (``netobs.probes._http1``), without sockets.

Valid responses are also parsed by h11 (the general HTTP/1.1 library the probe used before) as a
reference: both must give the same version, status, fields and body, however the bytes are split.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Iterator

import h11
import pytest

from netobs.probes._http1 import (
    MAX_HEAD_BYTES,
    BodyTooLarge,
    ProtocolViolation,
    ResponseReader,
    _fields,
    _fields_line_by_line,
    encode_request,
)

BODY = b"hello netobs"


def _source(chunks: Iterable[bytes]) -> tuple[Callable[[], Awaitable[bytes]], list[int]]:
    reads: list[int] = []
    it = iter(chunks)

    async def read() -> bytes:
        data = next(it, b"")
        reads.append(len(data))
        return data

    return read, reads


def _splits(raw: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [raw]
    if how == "bytes":
        return [raw[i : i + 1] for i in range(len(raw))]
    rng = random.Random(len(raw))
    out, i = [], 0
    while i < len(raw):
        n = rng.randint(1, 9)
        out.append(raw[i : i + n])
        i += n
    return out


Parsed = tuple[str, int, list[tuple[str, str]], bytes]


async def _parse(raw: bytes, how: str = "whole", cap: int = 1 << 20, head: bool = False) -> Parsed:
    read, _ = _source(_splits(raw, how))
    return await ResponseReader(read, cap, head_request=head).read()


def _h11(raw: bytes, head: bool = False) -> Parsed:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="HEAD" if head else "GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    status, version, body = 0, "", b""
    fields: list[tuple[str, str]] = []
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status, version = event.status_code, event.http_version.decode()
            fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return version, status, fields, body


VALID = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello netobs",
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n7\r\n netobs\r\n0\r\nX-Checksum: 1\r\n\r\n"
    ),
    "until-close, HTTP/1.0": b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello netobs",
    "interim 100 then 200": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello netobs",
    "no reason phrase": b"HTTP/1.1 204 \r\nX-A: 1\r\n\r\n",
    "304 without body": b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 12\n\nhello netobs",
    "repeated fields, spaces around values": (
        b"HTTP/1.1 301 Moved\r\nSet-Cookie: a=1\r\nset-cookie:b=2  \r\nLocation:   /next\r\nContent-Length: 0\r\n\r\n"
    ),
    "empty body": b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
    "latin-1 in a value": b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.parametrize("how", ["whole", "bytes", "random"])
@pytest.mark.parametrize("name", sorted(VALID))
async def test_valid_responses_read_as_h11_reads_them(name: str, how: str) -> None:
    raw = VALID[name]
    got = await _parse(raw, how)
    assert got == _h11(raw)


async def test_what_the_reader_gives() -> None:
    version, status, fields, body = await _parse(VALID["chunked"])
    assert (version, status, body) == ("1.1", 200, BODY)
    assert fields == [("transfer-encoding", "chunked")]  # names lower-cased; trailers are not fields
    version, status, fields, body = await _parse(VALID["repeated fields, spaces around values"])
    assert fields == [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("location", "/next"), ("content-length", "0")]
    assert (await _parse(VALID["until-close, HTTP/1.0"]))[0::3] == ("1.0", BODY)


async def test_the_same_length_twice_is_one_length_and_both_fields_are_kept() -> None:
    # (h11 kept one of the two fields; the probe reports the fields as the server sent them.)
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\nhello netobs"
    assert await _parse(raw) == ("1.1", 200, [("content-length", "12"), ("content-length", "12")], BODY)


async def test_an_obsolete_folded_line_joins_the_previous_value() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\n\tthree\r\nContent-Length: 0\r\n\r\n"
    assert (await _parse(raw))[2] == [("x-long", "one two three"), ("content-length", "0")]


def _fields_or_error(read: Callable[[bytes], list[tuple[str, str]]], block: bytes) -> object:
    try:
        return read(block)
    except ProtocolViolation as exc:
        return str(exc)


def test_a_head_read_at_once_gives_what_reading_it_line_by_line_gives() -> None:
    # Random heads of well-formed and malformed field lines (blanks around values, empty values, Latin-1
    # bytes, control characters, folded lines, CRLF or LF): the two-regex reading of a plain head and the
    # line-by-line one agree on the fields, or on the error.
    rng = random.Random(20261123)
    pieces = [b"X-A", b"content-length", b"Etag", b":", b": ", b" ", b"\t", b"value", b"\xe9t\xe9", b"\x00", b"\x7f",
              b'"q"', b"a b", b"\r"]  # fmt: skip
    plain = errors = 0
    for _ in range(3000):
        lines = []
        for _ in range(rng.randrange(1, 6)):
            if rng.random() < 0.85:
                name = rng.choice([b"X-A", b"content-length", b"Etag", b"Set-Cookie"])
                value = b"".join(rng.choice(pieces[5:]) for _ in range(rng.randrange(0, 4)))
                line = name + rng.choice([b":", b": ", b":\t"]) + value
            else:
                line = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
            lines.append(line + rng.choice([b"\r", b""]))
        block = b"\n".join(lines)
        expected = _fields_or_error(_fields_line_by_line, block)
        assert _fields_or_error(_fields, block) == expected, block
        plain += isinstance(expected, list) and b"\n " not in block and b"\n\t" not in block
        errors += isinstance(expected, str)
    assert plain > 500 and errors > 500  # both paths well exercised


async def test_head_and_no_body_statuses_read_no_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"  # HEAD: the length is the GET's, no body follows
    assert await _parse(raw, head=True) == ("1.1", 200, [("content-length", "12")], b"")
    assert await _parse(raw, head=True) == _h11(raw, head=True)


async def test_bytes_after_a_sized_body_are_left_unread() -> None:
    assert (await _parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more"))[3] == b"hello"


INVALID = {
    "not HTTP": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "status line"),
    "version 2 status line": (b"HTTP/2 200 OK\r\n\r\n", "status line"),
    "short status code": (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
    "field without colon": (b"HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n", "header line"),
    "space before colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", "header line"),
    "fold before any field": (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "header line"),
    "conflicting lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "Content-Length"),
    "length not a number": (b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "Content-Length"),
    "negative length": (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    "unsupported coding": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", "Transfer-Encoding"),
    "bad chunk size": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "chunk size"),
    "chunk without CRLF": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", "CRLF"),
    "close in the head": (b"HTTP/1.1 200 OK\r\nContent-Le", "closed before"),
    "close in a sized body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "closed before"),
    "close in a chunked body": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "closed before"),
    "close before the last chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "closed"),
    "nothing at all": (b"", "closed before"),
    "101 unasked": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101"),
}


@pytest.mark.parametrize("how", ["whole", "bytes"])
@pytest.mark.parametrize("name", sorted(INVALID))
async def test_what_http_does_not_allow_is_a_protocol_violation(name: str, how: str) -> None:
    raw, words = INVALID[name]
    with pytest.raises(ProtocolViolation, match=words):
        await _parse(raw, how)


async def test_a_head_that_never_ends_stops_at_the_limit() -> None:
    endless = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Filler: " + b"y" * 1000 + b"\r\n"] * 1000
    read, reads = _source(endless)
    with pytest.raises(ProtocolViolation, match=f"longer than {MAX_HEAD_BYTES}"):
        await ResponseReader(read, 1000).read()
    assert sum(reads) < 2 * MAX_HEAD_BYTES  # stopped reading soon after the limit


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",  # until close
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000\r\n",  # one giant chunk
    ],
)
async def test_an_endless_body_stops_just_past_the_cap(head: bytes) -> None:
    def chunks() -> Iterator[bytes]:
        yield head
        while True:
            yield b"z" * 4096

    read, reads = _source(chunks())
    with pytest.raises(BodyTooLarge) as caught:
        await ResponseReader(read, 50_000).read()
    assert caught.value.limit_bytes == 50_000
    assert 50_000 < caught.value.read_bytes <= 50_000 + 2 * 4096
    assert sum(reads) < 50_000 + len(head) + 3 * 4096


async def test_a_chunked_body_over_the_cap_in_small_chunks() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4\r\nabcd\r\n" * 10 + b"0\r\n\r\n"
    with pytest.raises(BodyTooLarge, match="max_body_bytes=20"):
        await _parse(raw, cap=20)
    assert (await _parse(raw, cap=40))[3] == b"abcd" * 10


def test_the_request_on_the_wire() -> None:
    headers = [
        ("host", "example.test:8080"),
        ("User-Agent", "netobs"),
        ("content-length", "2"),
        ("connection", "close"),
    ]
    assert encode_request("POST", "/a?b=c", headers, b"hi") == (
        b"POST /a?b=c HTTP/1.1\r\nhost: example.test:8080\r\nUser-Agent: netobs\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\nhi"
    )
    assert encode_request("GET", "/", []) == b"GET / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "header", "words"),
    [
        ("GE T", "/", ("a", "b"), "method"),
        ("GET", "/a b", ("a", "b"), "target"),
        ("GET", "/é", ("a", "b"), "target"),
        ("GET", "/", ("bad name", "b"), "header name"),
        ("GET", "/", ("x", "a\r\nInjected: 1"), "control characters"),
        ("GET", "/", ("x", " padded"), "whitespace"),
        ("GET", "/", ("x", "café"), "ASCII"),
    ],
)
def test_what_cannot_be_sent_is_a_value_error(method: str, target: str, header: tuple[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        encode_request(method, target, [header])
