"""The agent as a user runs it: a real process, real sockets, SIGHUP reloads, SIGTERM stops."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    yield int(srv.getsockname()[1])
    srv.close()


def _config(port: int, metrics_port: int, extra_target: str = "") -> str:
    targets = f"'127.0.0.1:{port}'" + (f", '{extra_target}'" if extra_target else "")
    return (
        "agent_id: proc-test\npop: lab\n"
        f"outputs: {{prometheus_listen: '127.0.0.1:{metrics_port}'}}\n"
        "checks:\n"
        f"  - {{name: up, type: tcp, targets: [{targets}], interval_s: 0.3, timeout_s: 0.25}}\n"
    )


class AgentProcess:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netobs", "agent", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stderr_lines: list[str] = []

    def results(self, seconds: float, until: Any = None) -> list[dict[str, Any]]:
        """Result records printed within ``seconds``, or until ``until(records, stderr_lines)`` holds
        (stderr is collected on the side). Waiting for a condition keeps the test robust on a loaded machine."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out: list[dict[str, Any]] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if until is not None and until(out, self.stderr_lines):
                break
            ready, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], left)
            for stream in ready:
                line = stream.readline()
                if not line:
                    continue
                if stream is self.proc.stdout:
                    out.append(json.loads(line))
                else:
                    self.stderr_lines.append(line)
        return out

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def test_run_reload_and_stop(tmp_path: Path, listener: int) -> None:
    config = tmp_path / "probes.yaml"
    metrics_port = free_port()
    config.write_text(_config(listener, metrics_port))
    agent = AgentProcess(config)
    try:
        first = agent.results(30.0, until=lambda rs, _: len(rs) >= 3)
        assert len(first) >= 3, agent.stderr_lines
        assert all(r["success"] and r["target"] == f"127.0.0.1:{listener}" for r in first), first
        assert {r["agent_id"] for r in first} == {"proc-test"}
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert f'netobs_target="127.0.0.1:{listener}"' in metrics

        # An invalid new config is refused and the old one keeps running.
        config.write_text("checks: [{name: up, type: tcp, targets: [], interval_s: 1}]\n")
        agent.proc.send_signal(signal.SIGHUP)
        during = agent.results(
            30.0, until=lambda rs, err: len(rs) >= 2 and any("reload refused" in line for line in err)
        )
        assert len(during) >= 2
        assert any("reload refused" in line for line in agent.stderr_lines), agent.stderr_lines
        assert any("checks[0].targets" in line for line in agent.stderr_lines)

        # A valid change applies: the new target is probed (refused: nothing listens there).
        closed = f"127.0.0.1:{free_port()}"
        config.write_text(_config(listener, metrics_port, extra_target=closed))
        agent.proc.send_signal(signal.SIGHUP)
        after = agent.results(
            30.0,
            until=lambda rs, err: (
                {r["target"] for r in rs} >= {closed, f"127.0.0.1:{listener}"}
                and any("jobs kept" in line for line in err)
            ),
        )
        by_target = {r["target"]: r for r in after}
        assert by_target[closed]["error_type"] == "connection_refused"
        assert by_target[f"127.0.0.1:{listener}"]["success"] is True
        assert any("1 jobs kept, 1 added, 0 removed" in line for line in agent.stderr_lines), agent.stderr_lines
    finally:
        code = agent.stop()
    assert code == 0


def test_once_prints_one_record_per_target_and_exit_code(tmp_path: Path, listener: int) -> None:
    config = tmp_path / "probes.yaml"
    closed = f"127.0.0.1:{free_port()}"
    config.write_text(
        "checks:\n"
        f"  - {{name: up, type: tcp, targets: ['127.0.0.1:{listener}', '{closed}'], interval_s: 5, timeout_s: 1}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "netobs", "agent", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {r["target"]: r["success"] for r in records} == {f"127.0.0.1:{listener}": True, closed: False}
    assert proc.returncode == 1  # one target failed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("checks: [{name: x, type: tcp, targets: ['h:1'], interval_s: 30, timeout_s: 30}]", "must be < interval_s"),
        ("checks: [{name: x, type: tcp, targets: ['h:1'], colour: red}]", "checks[0].colour: unknown key"),
        (":\n- [", "malformed YAML"),
    ],
)
def test_bad_config_exits_2_naming_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(content)
    for action in ("validate", "run", "once"):
        proc = subprocess.run(
            [sys.executable, "-m", "netobs", "agent", action, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 2, (action, proc.stderr)
        assert proc.stderr.startswith(f"{config}: "), proc.stderr
        assert message in proc.stderr
