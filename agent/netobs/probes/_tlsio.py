"""TLS on the socket itself, timed by the kernel's receive stamps as plain sockets are (``_sockio``).

Theory of operation. Over the loop's TLS transport the handshake, the time to first byte and the transfer
of an HTTPS request can only be timed when the event loop gets round to them, so on a busy agent they grow
with the agent's own backlog (a held loop adds all of its delay to whichever phase is under way). Here the
TLS records go through a :class:`~netobs.probes._sockio.SocketStream` (``recvmsg`` with ``SO_TIMESTAMPNS``,
``send``), and an ``ssl.SSLObject`` over two memory BIOs does the TLS, so every byte read comes with the
kernel's stamp of its arrival:

- the handshake (:meth:`TlsStream.handshake`) is timed round trip by round trip: from each flight of the
  client handed to the kernel to the stamp of the last segment of the server's answer that the handshake
  needed. The client's own work between flights (verifying the chain, deriving keys), which a busy loop
  delays, is left out; a TLS 1.3 handshake is one round trip, TLS 1.2 two;
- application data: ``latest_tx_ns`` is when the latest ``write`` handed its record to the kernel and
  ``latest_rx_ns`` the kernel's stamp of the latest read that gave application data back, from which an
  exchange times its response (``_http_wire``) and DNS its answer (:meth:`TlsStream.exchange_ms`). Records
  that carry none (a TLS 1.3 session ticket that arrives ahead of the response) leave ``latest_rx_ns``
  alone: they are not the response's first byte.

The stream has the ``read``/``write``/``drain``/``abort`` of ``_http_wire.ByteStream``. ``read`` returns
``b""`` once the peer has closed (with or without ``close_notify``: an HTTP response that ended early is
caught by the HTTP layer, which knows its length).
"""

from __future__ import annotations

import ssl

from netobs.probes._sockio import SocketStream, elapsed_ms

# What one raw read asks the socket for: a TLS record is at most 16 KiB plus its overhead.
_RAW_READ_BYTES = 65536


class TlsStream:
    """A TLS client connection over ``raw``, a stream on a connected socket (see the module's notes). Call
    :meth:`handshake` first; failures raise what ``ssl`` raises (``ssl.SSLCertVerificationError``,
    ``ssl.SSLError``), or ``ConnectionResetError`` when the peer closes during the handshake."""

    __slots__ = ("_in", "_out", "_raw", "handshake_ms", "latest_rx_ns", "latest_tx_ns", "ssl_object")

    def __init__(self, raw: SocketStream, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self._raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._in, self._out, server_side=False, server_hostname=server_hostname)
        self.handshake_ms: float | None = None  # the kernel-stamped time of the handshake, once done
        self.latest_tx_ns: int | None = None  # when the latest write after the handshake went to the kernel
        self.latest_rx_ns: int | None = None  # the kernel's stamp of the latest read of application data

    async def handshake(self) -> None:
        """The TLS handshake; sets ``handshake_ms`` (None when the kernel gave no stamps)."""
        ssl_object = self.ssl_object
        total_ns = 0
        stamped = True
        flight_sent_ns: int | None = None  # when the client's latest flight was handed to the kernel
        while True:
            try:
                ssl_object.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            out = self._out.read()
            if flight_sent_ns is not None and (out or done):
                # The server's answer to the previous flight is complete: it ends with the latest read.
                stamp = self._raw.latest_rx_ns
                if stamp is None:
                    stamped = False
                else:
                    total_ns += stamp - flight_sent_ns
                flight_sent_ns = None
            if out:
                self._raw.write(out)
                await self._raw.drain()
                if not done:
                    flight_sent_ns = self._raw.latest_tx_ns
            if done:
                break
            data = await self._raw.read(_RAW_READ_BYTES)
            if not data:
                raise ConnectionResetError("the peer closed the connection during the TLS handshake")
            self._in.write(data)
        self.handshake_ms = total_ns / 1e6 if stamped and total_ns > 0 else None

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of application data, waiting for some; ``b""`` once the peer has closed."""
        ssl_object = self.ssl_object
        while True:
            try:
                data = ssl_object.read(n)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            else:
                if data:
                    self.latest_rx_ns = self._raw.latest_rx_ns
                return data
            out = self._out.read()  # a record the TLS layer answers with (a key update)
            if out:
                self._raw.write(out)
            raw = await self._raw.read(_RAW_READ_BYTES)
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()

    def write(self, data: bytes) -> None:
        self.ssl_object.write(data)
        self._raw.write(self._out.read())
        self.latest_tx_ns = self._raw.latest_tx_ns

    async def drain(self) -> None:
        await self._raw.drain()

    def exchange_ms(self) -> float | None:
        """From the latest ``write`` to the kernel's stamp of the latest application data read, or None (see
        ``SocketStream.exchange_ms``)."""
        return elapsed_ms(self.latest_tx_ns, self.latest_rx_ns)

    def abort(self) -> None:
        self._raw.abort()
