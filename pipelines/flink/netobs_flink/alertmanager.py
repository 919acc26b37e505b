"""Alertmanager v2 API client: ``POST /api/v2/alerts``. Standard library HTTP, transport injectable."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from netobs_flink.detect.alert import AlertEvent, to_alertmanager

# (url, body, timeout_s) -> HTTP status; raises OSError on a transport failure.
Post = Callable[[str, bytes, float], int]


class AlertmanagerError(Exception):
    """Alertmanager did not accept the alerts (transport failure or a non-2xx status)."""


def _urllib_post(url: str, body: bytes, timeout_s: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class AlertmanagerClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        resend_ttl_s: float = 180.0,
        generator_url: str = "",
        post: Post = _urllib_post,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.timeout_s = timeout_s
        self.resend_ttl_s = resend_ttl_s
        self.generator_url = generator_url
        self._post = post

    def send(self, events: Sequence[AlertEvent], now_ms: int) -> None:
        """Post the current form of each alert (firing ones get ``endsAt = now + resend_ttl_s``)."""
        if not events:
            return
        body = [
            to_alertmanager(e, now_ms=now_ms, resend_ttl_s=self.resend_ttl_s, generator_url=self.generator_url)
            for e in events
        ]
        payload = json.dumps(body).encode()
        try:
            status = self._post(self.url, payload, self.timeout_s)
        except OSError as exc:
            raise AlertmanagerError(f"POST {self.url}: {exc}") from exc
        if not 200 <= status < 300:
            raise AlertmanagerError(f"POST {self.url}: HTTP {status}")
