"""A byte stream over a connected socket, plain or TLS: what the probes need of asyncio's streams.

Theory of operation. ``asyncio.open_connection`` gives a ``StreamReader``/``StreamWriter`` pair over a
``StreamReaderProtocol``: three Python objects with general machinery (line reading, limits, separator
search, transport-closing hooks) per connection, and an HTTP probe makes one connection per run. ``Stream``
is the protocol and the stream at once: ``data_received`` appends to a buffer and wakes the one reader,
``read`` hands out what is buffered, ``write`` goes straight to the transport and ``drain`` waits only
while the transport has asked to pause writing. Reading pauses the transport while more than
``READ_HIGH_WATER_BYTES`` wait unread, so a fast server cannot fill memory. A connection lost with an
error raises that error from ``read`` once the buffer is empty (and from ``drain``), as streams do.
HTTPS, the TCP probe's TLS handshake and DNS over TCP and TLS use it; plain HTTP reads and writes the
socket itself (``_sockio.SocketStream``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from typing import Any, cast

READ_HIGH_WATER_BYTES = 256 * 1024


class Stream(asyncio.Protocol):
    """One connection's stream (see the module's notes). Open one with :func:`open_stream`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False

    # -- protocol callbacks (the event loop's side) ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, so no isinstance check).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._wake()
        if len(self._buf) > READ_HIGH_WATER_BYTES and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake(self) -> None:
        _release(self._waiter)
        self._waiter = None

    def _wake_drain(self) -> None:
        _release(self._drain_waiter)
        self._drain_waiter = None

    # -- the stream (the probe's side) --------------------------------------------------------------
    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, waiting for some; ``b""`` once the peer has closed and all was read."""
        while not self._buf:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        buf = self._buf
        if len(buf) <= n:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        if self._read_paused and len(buf) <= READ_HIGH_WATER_BYTES // 2 and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Returns when the transport takes more writes; the connection's error if it was lost."""
        while self._write_paused and not self._eof:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
        if self._error is not None:
            raise self._error

    async def start_tls(self, context: ssl_module.SSLContext, server_hostname: str | None) -> None:
        """Upgrades the connection to TLS, the handshake awaited; reads and writes go through TLS after.
        On a failed handshake the error propagates (the caller aborts the stream)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        tls = await loop.start_tls(self.transport, self, context, server_hostname=server_hostname)
        # The loop does not call connection_made again for the upgraded transport.
        self.transport = cast(asyncio.Transport, tls)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport is not None else default

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _release(waiter: asyncio.Future[None] | None) -> None:
    """Wakes whoever awaits ``waiter`` (if anyone)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def open_stream(
    sock: socket.socket, ssl: ssl_module.SSLContext | None = None, server_hostname: str | None = None
) -> Stream:
    """A :class:`Stream` over the connected ``sock``; with ``ssl``, after the TLS handshake."""
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(Stream, sock=sock, ssl=ssl, server_hostname=server_hostname)
    return stream
