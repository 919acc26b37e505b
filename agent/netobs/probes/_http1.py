"""HTTP/1.1 on the wire (RFC 9112), client side, one request per connection (``Connection: close``).

Theory of operation. The probe sends one request and reads one response on a fresh connection, then closes
it: no pipelining, no keep-alive, no upgrade. For that, a general HTTP/1.1 state machine (h11, used before)
cost ~50-70 µs of CPU per exchange (event objects, header validation and normalisation on both sides),
as much as the rest of an HTTP run's Python; this module does what the probe needs in a few µs:

- :func:`encode_request` writes the request head (and body), refusing what cannot be sent (a method or
  header name that is not a token, a target or value with control characters, text that is not ASCII);
- :class:`ResponseReader` reads the response from a byte source: the status line and header fields
  (1xx interim responses skipped), then the body framed as RFC 9112 section 6.3 says (none for HEAD, 204
  and 304; chunked when ``Transfer-Encoding`` is ``chunked``; ``Content-Length`` bytes; else until the
  server closes), counting it against ``max_body_bytes`` as it arrives.

Anything else the peer sends (a status line that is not HTTP/1.x, a malformed field line, a head over
``MAX_HEAD_BYTES``, conflicting lengths, a transfer coding other than chunked, a bad chunk, a close before
the message is complete) raises :class:`ProtocolViolation`; a body over the cap raises
:class:`BodyTooLarge` as soon as it is seen. Lines may end in CRLF or a bare LF (RFC 9112 2.2); an obsolete
folded field line (RFC 9112 5.2) is joined to the previous value with a space.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

MAX_HEAD_BYTES = 16384  # the longest response head (status line + fields) accepted, as h11's default
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_METHOD = re.compile(_TOKEN)
_TARGET = re.compile(r"[\x21-\x7e]+")  # request-target: visible ASCII, no spaces
_FIELD_NAME = re.compile(_TOKEN)
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")  # no control characters but HTAB
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
# A header field line (decoded as Latin-1): name, value. The value is taken greedily and its trailing blanks
# stripped after (a lazy group followed by blanks made the regex engine try the end of the line after every
# character). One syntax for one line, for every line of a head at once (each ending in "\n"), and for a
# head that has to be read line by line.
_FIELD = "(" + _TOKEN + r"):[ \t]*([^\x00\r\n]*)"
_FIELD_LINE = re.compile(_FIELD)
_FIELD_LINES = re.compile(_FIELD + r"\r?\n")
_FIELD_BLOCK = re.compile(f"(?:{_FIELD_LINES.pattern})*")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY_STATUS = frozenset({204, 304})


class ProtocolViolation(Exception):
    """The peer broke the HTTP protocol (garbage, a reset stream, or a close before the response ended)."""


class BodyTooLarge(Exception):
    """The response body passed the configured cap; reading stopped there."""

    def __init__(self, limit_bytes: int, read_bytes: int) -> None:
        super().__init__(f"response body passed max_body_bytes={limit_bytes} (read {read_bytes} bytes)")
        self.limit_bytes = limit_bytes
        self.read_bytes = read_bytes


def check_request(method: str, target: str, headers: list[tuple[str, str]]) -> None:
    """ValueError naming the part of a request that cannot be sent (HTTP/1.1 or HTTP/2): a method or header
    name that is not a token, a target or value with control characters, text that is not ASCII."""
    if not _METHOD.fullmatch(method):
        raise ValueError(f"method {method!r} is not an HTTP token")
    if not _TARGET.fullmatch(target):
        raise ValueError(f"request target {target!r} has spaces, control or non-ASCII characters")
    for name, value in headers:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if not _FIELD_VALUE.fullmatch(value) or value != value.strip(" \t"):
            raise ValueError(f"header {name} value {value!r} has control characters or surrounding whitespace")
        if not value.isascii():
            raise ValueError(f"header {name} value {value!r} is not ASCII")


def encode_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """The request as bytes: request line, ``headers`` in order (Host first is the caller's job), body.
    ValueError naming the part that cannot be sent (:func:`check_request`)."""
    check_request(method, target, headers)
    head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"])
    return head.encode("ascii") + body


def _fields(block: bytes) -> list[tuple[str, str]]:
    """The header fields (lower-case names) of a head's lines after the status line. A head of plain field
    lines (the usual one) is checked and read with two regex calls; any other goes line by line."""
    text = block.decode("latin-1") + "\n" if block else ""
    if _FIELD_BLOCK.fullmatch(text):
        return [(name.lower(), value.rstrip(" \t")) for name, value in _FIELD_LINES.findall(text)]
    return _fields_line_by_line(block)


def _fields_line_by_line(block: bytes) -> list[tuple[str, str]]:
    """The header fields of a head's lines after the status line, one at a time: what a head that is not
    all plain field lines needs (obsolete line folding; or the first malformed line, named in the error)."""
    fields: list[tuple[str, str]] = []
    for raw in block.split(b"\n") if block else ():
        line = raw.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t") and fields:  # obs-fold: continues the previous value
            name, value = fields[-1]
            more = line.strip(b" \t").decode("latin-1")
            fields[-1] = (name, f"{value} {more}".strip())
            continue
        field = _FIELD_LINE.fullmatch(line.decode("latin-1"))
        if field is None:
            raise ProtocolViolation(f"invalid HTTP/1.1 response: header line {line[:80]!r}")
        fields.append((field[1].lower(), field[2].rstrip(" \t")))
    return fields


class ResponseReader:
    """Reads one HTTP/1.x response from ``read`` (an awaitable byte source, ``b""`` at the end)."""

    def __init__(self, read: Callable[[], Awaitable[bytes]], max_body_bytes: int, head_request: bool = False) -> None:
        self._read = read
        self._max_body_bytes = max_body_bytes
        self._head_request = head_request
        self._buf = bytearray()

    async def fill(self) -> bool:
        """Reads more into the buffer; False when the peer has closed."""
        data = await self._read()
        if not data:
            return False
        self._buf += data
        return True

    async def read(self) -> tuple[str, int, list[tuple[str, str]], bytes]:
        """(peer's HTTP version, status code, header fields with lower-case names, body)."""
        while True:
            version, status, fields = await self._read_head()
            if status >= 200:
                break
            if status == 101:
                raise ProtocolViolation("101 Switching Protocols to a request that asked for no upgrade")
        return version, status, fields, await self._read_body(status, fields)

    async def _read_head(self) -> tuple[str, int, list[tuple[str, str]]]:
        buf = self._buf
        while (end := _HEAD_END.search(buf)) is None:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolViolation(f"invalid HTTP/1.1 response: head longer than {MAX_HEAD_BYTES} bytes")
            await self._more()
        if end.start() > MAX_HEAD_BYTES:
            raise ProtocolViolation(f"invalid HTTP/1.1 response: head longer than {MAX_HEAD_BYTES} bytes")
        head = bytes(buf[: end.start()])
        del buf[: end.end()]
        status_line, _, block = head.partition(b"\n")
        status_line = status_line.removesuffix(b"\r")
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise ProtocolViolation(f"invalid HTTP/1.1 response: status line {status_line[:80]!r}")
        fields = _fields(block)
        return match[1].decode("ascii"), int(match[2]), fields

    async def _read_body(self, status: int, fields: list[tuple[str, str]]) -> bytes:
        if self._head_request or status in _NO_BODY_STATUS:
            return b""
        codings = [v for k, v in fields if k == "transfer-encoding"]
        if codings:
            coding = ",".join(codings).replace(" ", "").replace("\t", "").lower()
            if coding != "chunked":
                raise ProtocolViolation(f"invalid HTTP/1.1 response: unsupported Transfer-Encoding {coding!r}")
            return await self._read_chunked()
        lengths = [v for k, v in fields if k == "content-length"]
        if lengths:
            values = {v.strip() for v in ",".join(lengths).split(",")}
            length = values.pop() if len(values) == 1 else ""
            if not (length.isascii() and length.isdigit()):
                raise ProtocolViolation(f"invalid HTTP/1.1 response: Content-Length {', '.join(lengths)!r}")
            return await self._read_exactly(int(length))
        while True:  # no length: the body ends when the server closes
            self._check_cap(len(self._buf))
            if not await self.fill():
                return bytes(self._buf)

    async def _read_exactly(self, length: int) -> bytes:
        buf = self._buf
        while len(buf) < length:
            self._check_cap(len(buf))
            await self._more()
        body = bytes(buf[:length])
        del buf[:]  # anything after the body on a closing connection is not ours to read
        self._check_cap(len(body))
        return body

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        buf = self._buf
        while True:
            line = await self._read_line()
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ProtocolViolation(f"invalid HTTP/1.1 response: chunk size line {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            while len(buf) < size + 2:
                self._check_cap(len(body) + len(buf))
                await self._more()
            if buf[size : size + 2] != b"\r\n":
                raise ProtocolViolation("invalid HTTP/1.1 response: chunk data not followed by CRLF")
            body += buf[:size]
            del buf[: size + 2]
            self._check_cap(len(body))
        while await self._read_line():  # trailer fields, up to the empty line
            pass
        return bytes(body)

    async def _read_line(self) -> bytes:
        buf = self._buf
        while (end := buf.find(b"\n")) < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolViolation(f"invalid HTTP/1.1 response: line longer than {MAX_HEAD_BYTES} bytes")
            await self._more()
        line = bytes(buf[:end]).removesuffix(b"\r")
        del buf[: end + 1]
        return line

    async def _more(self) -> None:
        if not await self.fill():
            raise ProtocolViolation("connection closed before the response was complete")

    def _check_cap(self, size: int) -> None:
        if size > self._max_body_bytes:
            raise BodyTooLarge(self._max_body_bytes, size)


def parse_response(
    data: bytes, max_body_bytes: int, head_request: bool = False
) -> tuple[str, int, list[tuple[str, str]], bytes]:
    """:meth:`ResponseReader.read` of a response read whole already (``data``, then the end of the
    connection): what the native engine read (``netobs._native``) parsed and checked as the probe's own
    reads are. Raises as ``ResponseReader.read`` does."""
    chunks = [data] if data else []

    async def read() -> bytes:
        return chunks.pop() if chunks else b""

    reading = ResponseReader(read, max_body_bytes, head_request).read()
    try:
        reading.send(None)  # nothing in it waits: the first step runs it to the end
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    reading.close()
    raise RuntimeError("ResponseReader waited on a source that never waits")
