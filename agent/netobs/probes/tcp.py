"""TCP probe: connect time to host:port, and optionally the TLS handshake and certificate."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from typing import ClassVar

from netobs.config import TcpCheck, split_host_port
from netobs.probes._stream import open_stream
from netobs.probes.base import Outcome, ProbeContext, Resolver, SystemResolver
from netobs.probes.tls import client_context, tls_info
from netobs.probes.traceroute import path_trace
from netobs.result import TcpResult


async def connect_socket(ip: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to ``ip``:``port`` (an address, not a name: no DNS here).

    The connect is issued here and its completion awaited on the loop's writer callback: uvloop's
    ``sock_connect`` passes every address, numeric or not, through getaddrinfo on its thread pool (a
    thread round trip per probe, ~10% of a TCP probe's CPU). A refusal or an unreachable network raises
    the ``OSError`` subclass of its errno, as ``sock_connect`` does."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        err = sock.connect_ex((ip, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            fd = sock.fileno()
            loop.add_writer(fd, _set_connected, done)
            try:
                await done
            finally:
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))  # OSError picks the subclass: ConnectionRefusedError...
    except BaseException:
        sock.close()
        raise
    return sock


def _set_connected(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class TcpProbe:
    check_type: ClassVar[str] = "tcp"
    traced: ClassVar[bool] = True

    def __init__(self, resolver: Resolver | None = None) -> None:
        self.resolver = resolver or SystemResolver()
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    async def run(self, ctx: ProbeContext) -> Outcome:
        check: TcpCheck = ctx.check
        host, port = split_host_port(ctx.target)
        port = port or check.port
        assert port is not None  # config validation guarantees a port
        ctx.detail = TcpResult(port=port)
        with ctx.phase("dns"):
            ips = await self.resolver.resolve(host, check.ip_version)
        ip = ips[0]
        ctx.resolved_ip = ip
        async with path_trace(ctx, ip, port, enabled=check.trace_path):
            with ctx.phase("connect", **{"network.peer.address": ip, "network.peer.port": port}):
                sock = await connect_socket(ip, port)
        if not check.tls:
            sock.close()
            return Outcome.ok()
        key = (check.tls_verify, check.ca_file)
        tls_ctx = self._contexts.get(key)
        if tls_ctx is None:
            tls_ctx = self._contexts[key] = client_context(check.tls_verify, check.ca_file)
        server_name = check.tls_server_name or host
        # The stream owns the socket from here on: close it through the stream only, also after a failed
        # handshake, or the event loop keeps a transport on a file descriptor the kernel may reuse. Aborted,
        # as the HTTP probe does: the run is measured, a TLS close_notify exchange would only keep the
        # transport open on the loop (uvloop refuses to close a loop that still has one).
        stream = await open_stream(sock)
        try:
            with ctx.phase("tls", **{"server.address": server_name}):
                await stream.start_tls(tls_ctx, server_hostname=server_name)
            ctx.detail.tls = tls_info(stream.get_extra_info("ssl_object"), verified=check.tls_verify)
        finally:
            stream.abort()
        return Outcome.ok()
