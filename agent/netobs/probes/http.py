"""HTTP(S) probe: one request (and its redirects), each hop timed phase by phase.

Every hop resolves its host with the injected resolver (``dns``; none for an IP address), connects to the
first address (``connect``: the kernel's handshake RTT where it has one, ``_sockio.handshake_rtt_ms``),
does the TLS handshake with the host name as SNI (``tls``), sends the request and waits for the response to
start (``ttfb``) and reads it to the end (``transfer``); a hop is a fresh connection. The bytes go through
the socket itself, plain (``_sockio.SocketStream``) or under TLS (``_tlsio.TlsStream``), and the kernel
stamps what arrives, so the TLS handshake (its round trips), ``ttfb`` (from the request handed to the
kernel to the arrival of the response's start: its first byte over HTTP/1.1, its HEADERS over HTTP/2) and
``transfer`` (from there to the arrival of its end) are timings that a busy agent does not lengthen. The
phases of all hops add up in ``ProbeResult.phases_ms``; each redirect hop keeps its own in
``HttpResult.redirects``. The ``traceparent`` header names the hop's ``ttfb`` span as the parent, so an
instrumented server's spans nest under the request that caused them.

HTTP/1.1 (``_http1``) and HTTP/2 (``_h2``) are spoken over that byte stream (``_http_wire``); over TLS, ALPN picks
the version (``http_version: auto`` offers both); ``http_version: "2"`` on http:// is HTTP/2 with prior
knowledge. Failures map to: TLS_CERT (verification), TLS_HANDSHAKE (handshake failed or did not finish
before the deadline), PROTOCOL (the peer broke HTTP), BODY_TOO_LARGE, HTTP_STATUS and ASSERTION; refused,
unreachable and timeout come from the runner's mapping.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import ClassVar

from opentelemetry.trace import Span

from netobs._lightspans import span_ids
from netobs.config import HttpCheck
from netobs.probes._http_rules import Target, evaluate, next_hop, parse_target, random_traceparent, traceparent
from netobs.probes._http_wire import (
    BodyTooLarge,
    Exchange,
    Http1Exchange,
    Http2Exchange,
    ProtocolViolation,
    Request,
    Response,
)
from netobs.probes._sockio import SocketStream, connect_socket, handshake_rtt_ms
from netobs.probes._tlsio import TlsStream
from netobs.probes.base import Connector, Outcome, ProbeContext, Resolver, SystemResolver, literal_ip
from netobs.probes.tls import client_context, tls_info
from netobs.probes.traceroute import path_trace
from netobs.result import ErrorType, HttpHop, HttpResult, TlsInfo

USER_AGENT = "netobs-agent/0.1"
_ALPN = {"auto": ("h2", "http/1.1"), "2": ("h2",), "1.1": ("http/1.1",)}
# The TLS phase ends this much (at most a tenth of timeout_s) before the run's deadline, so a stalled
# handshake is reported as a handshake failure rather than the run's generic timeout.
_TLS_MARGIN_S = 0.05


class _Failed(Exception):
    """A hop failed in a way the probe names itself (an ErrorType and a message)."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def request_body(check: HttpCheck) -> bytes:
    """The body the check's first request sends."""
    return check.body.encode("utf-8") if check.body is not None else b""


def settle(
    ctx: ProbeContext, url: str, method: str, body: bytes, response: Response, *, before: dict[str, float]
) -> Outcome | tuple[str, str, bytes]:
    """What a hop's ``response`` (to ``method`` on ``url``) means for the run: its outcome (the expectations
    checked), or the (url, method, body) of the redirect to follow, the hop kept in ``ctx.detail.redirects``
    with its phases (those of ``ctx.phases_ms`` since ``before``)."""
    check: HttpCheck = ctx.check
    result: HttpResult = ctx.detail
    result.status_code = response.status_code
    result.http_version = response.http_version
    result.final_url = url
    redirect = next_hop(url, method, body, response) if check.follow_redirects else None
    if redirect is not None:
        if len(result.redirects) >= check.max_redirects:
            return Outcome.fail(
                ErrorType.HTTP_STATUS,
                f"status {response.status_code}: more than max_redirects={check.max_redirects} redirects",
            )
        hop_phases = {k: round(v - before.get(k, 0.0), 3) for k, v in ctx.phases_ms.items()}
        result.redirects.append(HttpHop(url=url, status_code=response.status_code, phases_ms=hop_phases))
        return redirect
    if ctx.span is not None:
        ctx.span.set_attribute("http.response.status_code", response.status_code)
    problem = evaluate(check.expect, response)
    return Outcome.ok() if problem is None else Outcome.fail(*problem)


class HttpProbe:
    check_type: ClassVar[str] = "http"
    traced: ClassVar[bool] = True

    def __init__(self, resolver: Resolver | None = None, connector: Connector | None = None) -> None:
        self.resolver = resolver or SystemResolver()
        self.connector: Connector = connector or connect_socket
        self._tls_contexts: dict[tuple[bool, str | None, tuple[str, ...]], ssl.SSLContext] = {}

    async def run(self, ctx: ProbeContext) -> Outcome:
        check: HttpCheck = ctx.check
        ctx.detail = HttpResult(method=check.method, url=ctx.target)
        return await self.follow(ctx, ctx.target, check.method, request_body(check))

    async def follow(self, ctx: ProbeContext, url: str, method: str, body: bytes) -> Outcome:
        """The run's hops from ``url`` on, redirects followed; ``ctx.detail`` is the run's ``HttpResult``
        (with the hops before, when the native engine exchanged the first: ``netobs._native``)."""
        while True:
            before = dict(ctx.phases_ms)
            try:
                response = await self._hop(ctx, url, method, body)
            except _Failed as failed:
                return Outcome.fail(failed.error_type, failed.message)
            step = settle(ctx, url, method, body, response, before=before)
            if isinstance(step, Outcome):
                return step
            url, method, body = step

    async def _hop(self, ctx: ProbeContext, url: str, method: str, body: bytes) -> Response:
        check: HttpCheck = ctx.check
        result: HttpResult = ctx.detail
        try:
            target = parse_target(url)
        except ValueError as exc:
            raise _Failed(ErrorType.PROTOCOL, f"cannot follow to {url!r}: {exc}") from None
        ip = literal_ip(target.host, check.ip_version)
        if ip is None:
            with ctx.phase("dns", **{"server.address": target.host}):
                ips = await self.resolver.resolve(target.host, check.ip_version)
            if not ips:
                raise socket.gaierror(socket.EAI_NONAME, f"{target.host} has no address")
            ip = ips[0]
        ctx.resolved_ip = ip
        first_hop = not result.redirects  # trace the path once per run, to the first server
        async with path_trace(ctx, ip, target.port, enabled=check.trace_path and first_hop):
            connect = ctx.phase("connect", **{"network.peer.address": ip, "network.peer.port": target.port})
            with connect:
                sock = await self.connector(ip, target.port)
                connect.measured(handshake_rtt_ms(sock))
        stream: TlsStream | SocketStream | None = None
        try:
            if target.scheme == "https":
                stream = await self._tls(ctx, check, target, sock, ip)
                result.tls = tls_info(stream.ssl_object, verified=check.tls_verify)
                h2_chosen = stream.ssl_object.selected_alpn_protocol() == "h2"
                if check.http_version == "2" and not h2_chosen:
                    raise _Failed(ErrorType.PROTOCOL, "http_version 2 required but the server did not offer h2")
            else:
                stream = SocketStream(sock, asyncio.get_running_loop())
                h2_chosen = check.http_version == "2"
            exchange: Exchange = (Http2Exchange if h2_chosen else Http1Exchange)(stream, check.max_body_bytes)
            request = self.request_of(check, target, method, body)
            attrs = {
                "http.request.method": method,
                "url.full": url,
                "server.address": target.host,
                "server.port": target.port,
                "network.protocol.version": exchange.http_version,
            }
            try:
                ttfb = ctx.phase("ttfb", **attrs)
                with ttfb as span:
                    request.headers.extend(self._trace_header(ctx, check, span, result))
                    await exchange.send_and_wait_first_byte(request)
                    ttfb.measured(exchange.first_byte_ms())  # the kernel's, as the connect and TLS phases
                transfer = ctx.phase("transfer")
                with transfer as transfer_span:
                    response = await exchange.read_response()
                    if transfer_span is not None:
                        transfer_span.set_attribute("http.response.status_code", response.status_code)
                    transfer.measured(exchange.transfer_ms())
            except ProtocolViolation as exc:
                raise _Failed(ErrorType.PROTOCOL, str(exc)) from None
            except BodyTooLarge as exc:
                result.body_bytes = exc.read_bytes
                raise _Failed(ErrorType.BODY_TOO_LARGE, str(exc)) from None
            result.body_bytes = len(response.body)
            return response
        finally:
            if stream is not None:
                stream.abort()
            sock.close()

    async def _tls(
        self, ctx: ProbeContext, check: HttpCheck, target: Target, sock: socket.socket, ip: str
    ) -> TlsStream:
        stream = TlsStream(SocketStream(sock, asyncio.get_running_loop()), self._context(check), target.host)
        budget_s = max(0.0, ctx.remaining_s() - min(_TLS_MARGIN_S, check.timeout_s / 10))
        try:
            tls = ctx.phase("tls", **{"server.address": target.host})
            with tls:
                async with asyncio.timeout(budget_s):
                    await stream.handshake()
                tls.measured(stream.handshake_ms)
            return stream
        except ssl.SSLCertVerificationError as exc:
            result: HttpResult = ctx.detail
            result.tls = await self._inspect_certificate(ctx, target, ip)
            raise _Failed(ErrorType.TLS_CERT, exc.verify_message or str(exc)) from None
        except TimeoutError:
            raise _Failed(
                ErrorType.TLS_HANDSHAKE, f"TLS handshake not finished within timeout_s={check.timeout_s:g}"
            ) from None
        except (ssl.SSLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise _Failed(ErrorType.TLS_HANDSHAKE, f"TLS handshake failed: {reason}") from None

    async def _inspect_certificate(self, ctx: ProbeContext, target: Target, ip: str) -> TlsInfo | None:
        """Facts of a certificate that failed verification (expiry, subject), from a second, unverified
        handshake outside the timed phases; None when that fails too or no time is left."""
        budget_s = ctx.remaining_s() - _TLS_MARGIN_S
        if budget_s <= 0:
            return None
        try:
            async with asyncio.timeout(budget_s):
                sock = await self.connector(ip, target.port)
                try:
                    raw = SocketStream(sock, asyncio.get_running_loop())
                    stream = TlsStream(raw, self._unverified(), target.host)
                    await stream.handshake()
                    return tls_info(stream.ssl_object, verified=False)
                finally:
                    sock.close()
        except (OSError, TimeoutError):
            return None

    @staticmethod
    def request_of(check: HttpCheck, target: Target, method: str, body: bytes) -> Request:
        """The request of one hop (without its traceparent). A configured Host header replaces the URL's
        authority (a virtual host on an address); SNI stays the URL's host, as with curl."""
        custom = {k.lower(): v for k, v in check.headers.items()}
        headers = [(k, v) for k, v in (("user-agent", USER_AGENT), ("accept", "*/*")) if k not in custom]
        headers.extend((k, v) for k, v in check.headers.items() if k.lower() not in {"host", "traceparent"})
        authority = custom.get("host", target.authority)
        return Request(method, target.scheme, authority, target.path, headers, body)

    @staticmethod
    def _trace_header(
        ctx: ProbeContext, check: HttpCheck, span: Span | None, result: HttpResult
    ) -> list[tuple[str, str]]:
        if not check.inject_traceparent:
            return []
        parent = span or ctx.span
        value = traceparent(*span_ids(parent)) if parent is not None else random_traceparent()
        result.traceparent = value
        return [("traceparent", value)]

    def _context(self, check: HttpCheck) -> ssl.SSLContext:
        alpn = _ALPN[check.http_version]
        key = (check.tls_verify, check.ca_file, alpn)
        tls_ctx = self._tls_contexts.get(key)
        if tls_ctx is None:
            tls_ctx = self._tls_contexts[key] = client_context(check.tls_verify, check.ca_file, list(alpn))
        return tls_ctx

    def _unverified(self) -> ssl.SSLContext:
        key = (False, None, ())
        tls_ctx = self._tls_contexts.get(key)
        if tls_ctx is None:
            tls_ctx = self._tls_contexts[key] = client_context(False)
        return tls_ctx
