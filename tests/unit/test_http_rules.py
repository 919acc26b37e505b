"""Pure rules of the HTTP probe: URL parts, redirect targets, expectations, traceparent."""

from __future__ import annotations

import re

import pytest

from netobs.config import HttpExpect
from netobs.probes._http_rules import evaluate, next_hop, parse_target, random_traceparent, traceparent
from netobs.probes._http_wire import Response
from netobs.result import ErrorType


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.test", ("http", "example.test", 80, "example.test", "/")),
        ("https://Example.TEST/a/b?x=1&y=2", ("https", "example.test", 443, "example.test", "/a/b?x=1&y=2")),
        ("https://example.test:8443/p", ("https", "example.test", 8443, "example.test:8443", "/p")),
        ("http://example.test:80/", ("http", "example.test", 80, "example.test", "/")),
        ("http://[::1]:8080/v6", ("http", "::1", 8080, "[::1]:8080", "/v6")),
        ("https://127.0.0.1/", ("https", "127.0.0.1", 443, "127.0.0.1", "/")),
        ("http://user:pw@example.test/#frag", ("http", "example.test", 80, "example.test", "/")),
        (
            "http://bücher.test/ä b?q=ü",
            ("http", "xn--bcher-kva.test", 80, "xn--bcher-kva.test", "/%C3%A4%20b?q=%C3%BC"),
        ),
        ("http://a.test/%41?x=%2F", ("http", "a.test", 80, "a.test", "/%41?x=%2F")),
    ],
)
def test_parse_target(url: str, expected: tuple[str, str, int, str, str]) -> None:
    t = parse_target(url)
    assert (t.scheme, t.host, t.port, t.authority, t.path) == expected


@pytest.mark.parametrize("url", ["ftp://example.test/", "http:///nohost", "http://example.test:99999/"])
def test_parse_target_rejects(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the cause
        parse_target(url)


def _resp(status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Response:
    return Response(status, "1.1", headers or [], body)


@pytest.mark.parametrize(
    ("status", "location", "method", "expected"),
    [
        (200, None, "GET", None),
        (302, None, "GET", None),  # a redirect status without Location ends the chain
        (302, "/next", "GET", ("https://a.test/next", "GET", b"body")),
        (301, "https://b.test/x", "POST", ("https://b.test/x", "GET", b"")),
        (302, "other", "POST", ("https://a.test/dir/other", "GET", b"")),
        (303, "/see", "PUT", ("https://a.test/see", "GET", b"")),
        (303, "/see", "HEAD", ("https://a.test/see", "HEAD", b"body")),
        (307, "/again", "POST", ("https://a.test/again", "POST", b"body")),
        (308, "//c.test:81/p", "DELETE", ("https://c.test:81/p", "DELETE", b"body")),
    ],
)
def test_next_hop(status: int, location: str | None, method: str, expected: tuple[str, str, bytes] | None) -> None:
    headers = [("location", location)] if location else []
    assert next_hop("https://a.test/dir/page", method, b"body", _resp(status, headers)) == expected


HTML = [("content-type", "text/html")]


@pytest.mark.parametrize(
    ("expect", "response", "error"),
    [
        (HttpExpect(), _resp(200), None),
        (HttpExpect(), _resp(204), None),
        (HttpExpect(), _resp(301), ErrorType.HTTP_STATUS),
        (HttpExpect(), _resp(503), ErrorType.HTTP_STATUS),
        (HttpExpect(status_codes=[503, 404]), _resp(404), None),
        (HttpExpect(status_codes=[201]), _resp(200), ErrorType.HTTP_STATUS),
        (HttpExpect(headers_match={"Content-Type": "^text/html"}), _resp(200, HTML), None),
        (HttpExpect(headers_match={"content-type": "json"}), _resp(200, HTML), ErrorType.ASSERTION),
        (HttpExpect(headers_match={"x-missing": "."}), _resp(200), ErrorType.ASSERTION),
        # repeated headers are matched on their combined value
        (HttpExpect(headers_match={"vary": "a, b"}), _resp(200, [("vary", "a"), ("vary", "b")]), None),
        (HttpExpect(body_match=["hello \\w+"]), _resp(200, body=b"say hello world"), None),
        (HttpExpect(body_match=["^goodbye"]), _resp(200, body=b"hello"), ErrorType.ASSERTION),
        (HttpExpect(body_not_match=["error"]), _resp(200, body=b"an error page"), ErrorType.ASSERTION),
        (HttpExpect(body_not_match=["error"]), _resp(200, body=b"\xff\xfe fine"), None),
        (HttpExpect(status_codes=[500], body_match=["x"]), _resp(500, body=b"y"), ErrorType.ASSERTION),
    ],
)  # fmt: skip
def test_evaluate(expect: HttpExpect, response: Response, error: ErrorType | None) -> None:
    problem = evaluate(expect, response)
    assert (problem[0] if problem else None) == error
    if problem:
        assert problem[1]  # a message that says what broke


@pytest.mark.parametrize(
    ("trace_id", "span_id", "sampled", "expected"),
    [
        (1, 2, True, "00-00000000000000000000000000000001-0000000000000002-01"),
        (2**128 - 1, 2**64 - 1, False, "00-" + "f" * 32 + "-" + "f" * 16 + "-00"),
    ],
)
def test_traceparent(trace_id: int, span_id: int, sampled: bool, expected: str) -> None:
    assert traceparent(trace_id, span_id, sampled) == expected


def test_random_traceparent_is_valid_and_fresh() -> None:
    values = {random_traceparent() for _ in range(50)}
    assert len(values) == 50
    for value in values:
        assert re.fullmatch(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-00", value)
