"""TCP probe: connect time to host:port, and optionally the TLS handshake and certificate.

The connect phase is the kernel's measure of the handshake (SYN to SYN-ACK, ``_sockio.handshake_rtt_ms``),
which the agent's own load does not delay; when a SYN was retransmitted it is the time the connect took."""

from __future__ import annotations

import ssl
from typing import ClassVar

from netobs.config import TcpCheck, split_host_port
from netobs.probes._sockio import connect_socket, handshake_rtt_ms
from netobs.probes._stream import open_stream
from netobs.probes.base import Outcome, ProbeContext, Resolver, SystemResolver, literal_ip
from netobs.probes.tls import client_context, tls_info
from netobs.probes.traceroute import path_trace
from netobs.result import TcpResult


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
        ip = literal_ip(host, check.ip_version)
        if ip is None:
            with ctx.phase("dns"):
                ip = (await self.resolver.resolve(host, check.ip_version))[0]
        ctx.resolved_ip = ip
        async with path_trace(ctx, ip, port, enabled=check.trace_path):
            connect = ctx.phase("connect", **{"network.peer.address": ip, "network.peer.port": port})
            with connect:
                sock = await connect_socket(ip, port)
                connect.measured(handshake_rtt_ms(sock))
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
