"""HTTP/2 on the wire (RFC 9113), client side, one request on a fresh connection, I/O-free.

Theory of operation. The probe opens a connection, sends one request on stream 1 and reads its response;
nothing else ever runs on the connection. A general HTTP/2 state machine (the h2 library, used before)
cost ~250-300 µs of CPU per exchange (a settings object per side, event objects, header validation and
normalisation, a frame object per frame), more than the rest of an HTTPS run's Python; :class:`H2Client`
does what the probe needs in a few tens of µs, most of them HPACK's decoding of the response headers
(the ``hpack`` library's decoder: Huffman codes and the dynamic table).

- :meth:`H2Client.start`: the connection preface, our SETTINGS (no server push, a receive window of
  ``window_bytes`` for the stream and the connection), and the request's HEADERS (literal fields, never
  indexed: our header table stays empty) followed by as much of the body as the server's windows allow;
- :meth:`H2Client.receive`: the server's frames, as they come: its SETTINGS (acknowledged; its initial
  window and frame size apply to the rest of the body), PING (answered), WINDOW_UPDATE (more of the body),
  the response's HEADERS and CONTINUATION (1xx interim responses skipped, trailers ignored), DATA
  (counted against ``max_body_bytes``; the windows are topped up as it is consumed), and the end of the
  stream. Frames of unknown types are ignored, as RFC 9113 says;
- :meth:`H2Client.data_to_send`: what the client has to send in return.

Anything the server does that leaves no response (its first frame is not SETTINGS: not an HTTP/2 server; a
frame over the 16 KiB we accept; a malformed frame or header block; a reset of our stream; a GOAWAY that
drops it; a push we refused) raises :class:`~netobs.probes._http1.ProtocolViolation`; a body over the cap
raises :class:`~netobs.probes._http1.BodyTooLarge` as soon as it is seen.
"""

from __future__ import annotations

import struct

import hpack
import hpack.exceptions

from netobs.probes._http1 import BodyTooLarge, ProtocolViolation

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME_BYTES = 16384  # the largest frame payload we accept (SETTINGS_MAX_FRAME_SIZE left at its default)
MAX_HEADER_LIST_BYTES = 65536  # the response header list we accept (and announce)
DEFAULT_WINDOW_BYTES = 65535  # every flow-control window's size before SETTINGS or WINDOW_UPDATE change it
STREAM = 1  # the request's stream: a client's first

# Frame types and flags (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Settings (RFC 9113 6.5.2).
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
_MAX_WINDOW = 2**31 - 1

_FRAME_HEAD = struct.Struct(">IBI")  # length (24 bits) and type (8) in one word, flags, stream id
_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_GOAWAY = struct.Struct(">II")
# Request pseudo-header fields that have an exact entry in HPACK's static table (RFC 7541 appendix A).
_STATIC_FIELDS = {
    (b":method", b"GET"): 2,
    (b":method", b"POST"): 3,
    (b":path", b"/"): 4,
    (b":scheme", b"http"): 6,
    (b":scheme", b"https"): 7,
}
_STATIC_NAMES = {b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6}


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _FRAME_HEAD.pack((len(payload) << 8) | kind, flags, stream_id) + payload


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytearray:
    """``value`` as an HPACK integer (RFC 7541 5.1) with a ``prefix_bits`` prefix in a first byte whose
    other bits are ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytearray((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return out


def _hpack_string(data: bytes) -> bytearray:
    return _hpack_int(len(data), 7, 0) + data  # not Huffman-coded


def encode_headers(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A header block of ``fields``: static-table entries where they match exactly, every other field a
    literal that is never indexed (RFC 7541 6.2.3), so the server's view of our header table stays empty."""
    block = bytearray()
    for name, value in fields:
        index = _STATIC_FIELDS.get((name, value))
        if index is not None:
            block.append(0x80 | index)
            continue
        name_index = _STATIC_NAMES.get(name)
        if name_index is not None:
            block += _hpack_int(name_index, 4, 0x10)
        else:
            block.append(0x10)
            block += _hpack_string(name)
        block += _hpack_string(value)
    return bytes(block)


class H2Client:
    """One request and its response on a fresh HTTP/2 connection (see the module's notes)."""

    def __init__(self, max_body_bytes: int, window_bytes: int) -> None:
        self._max_body_bytes = max_body_bytes
        self._window_bytes = window_bytes
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        self._in = bytearray()
        self._out = bytearray()
        self._settings_seen = False
        self._continuing: tuple[int, int, bytearray] | None = None  # a header block waiting for CONTINUATION
        self._unacknowledged = 0  # DATA bytes received and not yet given back with WINDOW_UPDATE
        self._body_left = memoryview(b"")
        self._send_window = DEFAULT_WINDOW_BYTES  # the connection's, for our body
        self._stream_window = DEFAULT_WINDOW_BYTES
        self._peer_initial_window = DEFAULT_WINDOW_BYTES
        self._peer_max_frame = MAX_FRAME_BYTES
        self.status: int | None = None  # the final response's status, once its HEADERS came
        self.headers: list[tuple[str, str]] = []  # its fields, pseudo-header fields left out
        self.body = bytearray()
        self.ended = False  # the response is complete

    # -- sending ----------------------------------------------------------------------------------------
    def start(self, fields: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        """The connection's first bytes: preface, SETTINGS, the connection window, the request."""
        settings = b"".join(
            _SETTING.pack(key, value)
            for key, value in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, self._window_bytes),
                (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES),
            )
        )
        out = self._out
        out += PREFACE
        out += frame(SETTINGS, 0, 0, settings)
        if self._window_bytes > DEFAULT_WINDOW_BYTES:
            out += frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._window_bytes - DEFAULT_WINDOW_BYTES))
        block = encode_headers(fields)
        # Frames of at most 16 KiB: what every server takes (its SETTINGS may allow more, but come later).
        first, rest = block[:MAX_FRAME_BYTES], block[MAX_FRAME_BYTES:]
        flags = (0 if rest else END_HEADERS) | (0 if body else END_STREAM)
        out += frame(HEADERS, flags, STREAM, first)
        while rest:
            chunk, rest = rest[:MAX_FRAME_BYTES], rest[MAX_FRAME_BYTES:]
            out += frame(CONTINUATION, 0 if rest else END_HEADERS, STREAM, chunk)
        self._body_left = memoryview(body)
        self._send_body()
        return self.data_to_send()

    def _send_body(self) -> None:
        """As much of the request body as the windows and the server's frame size allow."""
        while self._body_left:
            size = min(len(self._body_left), self._send_window, self._stream_window, self._peer_max_frame)
            if size <= 0:
                return
            chunk, self._body_left = self._body_left[:size], self._body_left[size:]
            self._send_window -= size
            self._stream_window -= size
            self._out += frame(DATA, 0 if self._body_left else END_STREAM, STREAM, bytes(chunk))

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- receiving --------------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Takes in ``data`` from the server: every complete frame in it is handled."""
        buf = self._in
        buf += data
        pos = 0
        while len(buf) - pos >= 9:
            word, flags, stream_id = _FRAME_HEAD.unpack_from(buf, pos)
            length, kind = word >> 8, word & 0xFF
            stream_id &= 0x7FFFFFFF
            if not self._settings_seen and (kind != SETTINGS or flags & ACK):
                raise ProtocolViolation("not an HTTP/2 server: its first frame is not SETTINGS")
            if length > MAX_FRAME_BYTES:
                raise ProtocolViolation(f"HTTP/2 frame of {length} bytes, over the {MAX_FRAME_BYTES} allowed")
            if len(buf) - pos - 9 < length:
                break
            payload = bytes(buf[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._frame(kind, flags, stream_id, payload)
        del buf[:pos]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is not None and kind != CONTINUATION:
            raise ProtocolViolation("HTTP/2 header block interrupted before its END_HEADERS")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers_frame(flags, stream_id, payload)
        elif kind == CONTINUATION:
            self._continuation(flags, stream_id, payload)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == PING:
            if len(payload) != 8 or stream_id:
                raise ProtocolViolation("malformed HTTP/2 PING frame")
            if not flags & ACK:
                self._out += frame(PING, ACK, 0, payload)
        elif kind == RST_STREAM:
            if len(payload) != 4:
                raise ProtocolViolation("malformed HTTP/2 RST_STREAM frame")
            # A server that answered in full may reset the rest of our request's body (RFC 9113 8.1).
            if stream_id == STREAM and not self.ended:
                raise ProtocolViolation(f"server reset the stream (error code {_U32.unpack(payload)[0]})")
        elif kind == GOAWAY:
            if len(payload) < 8:
                raise ProtocolViolation("malformed HTTP/2 GOAWAY frame")
            last_stream, code = _GOAWAY.unpack_from(payload)
            if not self.ended and (code or last_stream & 0x7FFFFFFF < STREAM):
                raise ProtocolViolation(f"server ended the connection (GOAWAY, error code {code})")
        elif kind == PUSH_PROMISE:
            raise ProtocolViolation("server push, which the client's SETTINGS refused")
        # PRIORITY and unknown frame types: nothing to do.

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != STREAM or self.status is None or self.ended:
            raise ProtocolViolation(f"HTTP/2 DATA on stream {stream_id} where none may come")
        self._unacknowledged += len(payload)  # padding included (RFC 9113 6.9.1)
        self.body += _unpadded(flags, payload)
        if len(self.body) > self._max_body_bytes:
            raise BodyTooLarge(self._max_body_bytes, len(self.body))
        if flags & END_STREAM:
            self.ended = True
        elif self._unacknowledged >= self._window_bytes // 2:
            increment = _U32.pack(self._unacknowledged)
            self._out += frame(WINDOW_UPDATE, 0, 0, increment) + frame(WINDOW_UPDATE, 0, STREAM, increment)
            self._unacknowledged = 0

    def _headers_frame(self, flags: int, stream_id: int, payload: bytes) -> None:
        fragment = _unpadded(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(fragment) < 5:
                raise ProtocolViolation("malformed HTTP/2 HEADERS frame")
            fragment = fragment[5:]
        if flags & END_HEADERS:
            self._header_block(flags, stream_id, fragment)
        else:
            self._continuing = (stream_id, flags, bytearray(fragment))

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is None or self._continuing[0] != stream_id:
            raise ProtocolViolation("HTTP/2 CONTINUATION without a header block to continue")
        _stream_id, headers_flags, block = self._continuing
        block += payload
        if len(block) > MAX_HEADER_LIST_BYTES:
            raise ProtocolViolation(f"HTTP/2 header block over {MAX_HEADER_LIST_BYTES} bytes")
        if flags & END_HEADERS:
            self._continuing = None
            self._header_block(headers_flags, stream_id, bytes(block))  # END_STREAM is the HEADERS frame's

    def _header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        try:
            fields = self._decoder.decode(block, raw=True)  # every block: the decoder's table must follow
        except hpack.exceptions.HPACKError as exc:
            raise ProtocolViolation(f"invalid HTTP/2 header block: {exc}") from None
        if stream_id != STREAM:
            raise ProtocolViolation(f"HTTP/2 HEADERS on stream {stream_id}, which the client never opened")
        if self.ended:
            raise ProtocolViolation("HTTP/2 HEADERS after the end of the stream")
        if self.status is None:
            status = next((bytes(v) for k, v in fields if k == b":status"), b"")
            if len(status) != 3 or not status.isdigit():
                raise ProtocolViolation(f"response without a valid :status ({status!r})")
            code = int(status)
            if code < 200:  # an interim response (103 Early Hints): the final one follows
                if flags & END_STREAM:
                    raise ProtocolViolation(f"HTTP/2 stream ended with an interim response ({code})")
                return
            self.status = code
            self.headers = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in fields if not k.startswith(b":")
            ]
        # Otherwise trailers: nothing the probe reports.
        if flags & END_STREAM:
            self.ended = True

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id or len(payload) % 6 or (flags & ACK and payload):
            raise ProtocolViolation("malformed HTTP/2 SETTINGS frame")
        self._settings_seen = True
        if flags & ACK:
            return
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise ProtocolViolation(f"HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE {value} over 2^31-1")
                self._stream_window += value - self._peer_initial_window
                self._peer_initial_window = value
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not MAX_FRAME_BYTES <= value < 2**24:
                    raise ProtocolViolation(f"HTTP/2 SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self._peer_max_frame = value
        self._out += frame(SETTINGS, ACK, 0)
        self._send_body()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolViolation("malformed HTTP/2 WINDOW_UPDATE frame")
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if not increment:
            raise ProtocolViolation("HTTP/2 WINDOW_UPDATE of 0")
        if stream_id == 0:
            self._send_window += increment
        elif stream_id == STREAM:
            self._stream_window += increment
        self._send_body()


def _unpadded(flags: int, payload: bytes) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (RFC 9113 6.1)."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ProtocolViolation("HTTP/2 frame padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]
