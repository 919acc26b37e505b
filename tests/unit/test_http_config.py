"""Validation of the HTTP check's request headers at the config edge."""

from __future__ import annotations

import pytest

from netobs.config import ConfigError, parse_config


def _config(headers: str) -> str:
    return f"checks:\n  - name: web\n    type: http\n    targets: ['https://example.test/']\n    headers: {headers}\n"


@pytest.mark.parametrize(
    "headers",
    ["{}", "{X-Api-Key: abc}", "{Host: vhost.test, Accept: 'text/html'}", "{traceparent: 'x', X_Odd: 'a:b'}"],
)
def test_accepted_headers(headers: str) -> None:
    cfg = parse_config(_config(headers))
    assert cfg.checks[0].type == "http"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ("{'Bad Name': x}", "is not an HTTP token"),
        ("{'X-A': \"one\\r\\nInjected: yes\"}", "must not contain CR, LF or NUL"),
        ("{Content-Length: '5'}", "is set by the probe"),
        ("{Transfer-Encoding: chunked}", "is set by the probe"),
        ("{connection: close}", "is set by the probe"),
    ],
)
def test_rejected_headers(headers: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(headers), "checks.yaml")
    [line] = info.value.problems
    assert line.startswith("checks[0].headers:")
    assert problem in line
    assert "(line 5)" in line
