"""Pure rules of the HTTP probe: URL parts, redirects, assertions and the W3C traceparent header."""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from netobs.config import HttpExpect
from netobs.probes._http_wire import Response
from netobs.result import ErrorType

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"  # RFC 3986 reserved and unreserved characters, and "%"


@dataclass(frozen=True, slots=True)
class Target:
    """What one hop connects to and asks for."""

    url: str
    scheme: str  # "http" or "https"
    host: str  # name (or IP literal, without brackets) to resolve, and the TLS server name
    port: int
    authority: str  # Host header / :authority
    path: str  # path and query, at least "/"


@functools.lru_cache(maxsize=8192)  # a check's URLs are parsed on every run; a Target is immutable
def parse_target(url: str) -> Target:
    """Split an absolute http(s) URL into what goes on the wire: the host in IDNA (punycode) form, the
    path percent-encoded where it is not ASCII; raises ValueError for anything else (no host, bad port,
    scheme)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme in {url!r} (http or https)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"host of {url!r} is not a valid internationalised name: {exc}") from None
    port = parts.port or _DEFAULT_PORTS[scheme]  # .port raises ValueError when out of range
    shown_host = f"[{host}]" if ":" in host else host
    authority = shown_host if port == _DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    path = quote(path, safe=_PATH_SAFE)  # non-ASCII and spaces percent-encoded; existing escapes kept
    return Target(url, scheme, host, port, authority, path)


def next_hop(url: str, method: str, body: bytes, response: Response) -> tuple[str, str, bytes] | None:
    """(url, method, body) of the request a redirect response asks for, or None if it is no redirect.

    303 turns any method but HEAD into a body-less GET; so do 301/302 for a POST (what browsers and curl
    do); 307/308 repeat the request as it was.
    """
    if response.status_code not in REDIRECT_STATUSES:
        return None
    location = response.header("location")
    if not location:
        return None
    new_url = urljoin(url, location.strip())
    if (response.status_code == 303 and method != "HEAD") or (response.status_code in (301, 302) and method == "POST"):
        return new_url, "GET", b""
    return new_url, method, body


def evaluate(expect: HttpExpect, response: Response) -> tuple[ErrorType, str] | None:
    """The first expectation the final response breaks, as (error type, message); None when all hold.

    Status first (default: any 2xx), then headers (each regex must match the header's combined value),
    then the body regexes (searched in the body decoded as UTF-8, undecodable bytes replaced).
    """
    status = response.status_code
    if expect.status_codes:
        if status not in expect.status_codes:
            allowed = ", ".join(str(s) for s in expect.status_codes)
            return ErrorType.HTTP_STATUS, f"status {status} not among the accepted ({allowed})"
    elif not 200 <= status < 300:
        return ErrorType.HTTP_STATUS, f"status {status} is not 2xx"
    for name, pattern in expect.headers_match.items():
        value = response.header(name)
        if value is None:
            return ErrorType.ASSERTION, f"header {name!r} is missing"
        if not re.search(pattern, value):
            return ErrorType.ASSERTION, f"header {name!r}: {value[:200]!r} does not match {pattern!r}"
    if expect.body_match or expect.body_not_match:
        text = response.body.decode("utf-8", "replace")
        for pattern in expect.body_match:
            if not re.search(pattern, text):
                return ErrorType.ASSERTION, f"body does not match {pattern!r}"
        for pattern in expect.body_not_match:
            if re.search(pattern, text):
                return ErrorType.ASSERTION, f"body matches {pattern!r}, which it must not"
    return None


def traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """W3C Trace Context ``traceparent`` value (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def random_traceparent() -> str:
    """A traceparent for an untraced run: fresh ids, not sampled (the agent records no span for it)."""
    trace_id = 0
    while trace_id == 0:
        trace_id = secrets.randbits(128)
    span_id = 0
    while span_id == 0:
        span_id = secrets.randbits(64)
    return traceparent(trace_id, span_id, sampled=False)
