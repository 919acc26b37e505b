"""TCP probe: connect time to host:port, and optionally the TLS handshake and certificate.

The connect phase is the kernel's measure of the handshake (SYN to SYN-ACK, ``_sockio.handshake_rtt_ms``),
which the agent's own load does not delay; when a SYN was retransmitted it is the time the connect took.
The TLS handshake runs on the socket itself (``_tlsio.TlsStream``) and is timed by the kernel's receive
stamps, round trip by round trip, in the same way."""

from __future__ import annotations

import asyncio
import ssl
from typing import ClassVar

from netobs.config import TcpCheck, split_host_port
from netobs.probes._sockio import SocketStream, connect_socket, handshake_rtt_ms
from netobs.probes._tlsio import TlsStream
from netobs.probes.base import Connector, Outcome, ProbeContext, Resolver, SystemResolver, literal_ip
from netobs.probes.tls import client_context, tls_info
from netobs.probes.traceroute import path_trace
from netobs.result import TcpResult


class TcpProbe:
    check_type: ClassVar[str] = "tcp"
    traced: ClassVar[bool] = True

    def __init__(self, resolver: Resolver | None = None, connector: Connector | None = None) -> None:
        self.resolver = resolver or SystemResolver()
        self.connector: Connector = connector or connect_socket
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
                sock = await self.connector(ip, port)
                connect.measured(handshake_rtt_ms(sock))
        if not check.tls:
            sock.close()
            return Outcome.ok()
        key = (check.tls_verify, check.ca_file)
        tls_ctx = self._contexts.get(key)
        if tls_ctx is None:
            tls_ctx = self._contexts[key] = client_context(check.tls_verify, check.ca_file)
        server_name = check.tls_server_name or host
        try:
            stream = TlsStream(SocketStream(sock, asyncio.get_running_loop()), tls_ctx, server_name)
            tls = ctx.phase("tls", **{"server.address": server_name})
            with tls:
                await stream.handshake()
                tls.measured(stream.handshake_ms)
            ctx.detail.tls = tls_info(stream.ssl_object, verified=check.tls_verify)
        finally:
            sock.close()  # the run is measured: no TLS close_notify exchange
        return Outcome.ok()
