"""Background processes with pid files: spawn detached, check, stop.

A pid file holds JSON ``{"pid", "argv0", "started_at"}``; a pid counts as ours only while
``/proc/<pid>/cmdline`` still starts with ``argv0`` (pids get reused) and the process is not a
zombie. Children spawned by this interpreter are kept in a registry and reaped on stop, so a
test process that stops what it started leaves no zombies behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PidRecord:
    pid: int
    argv0: str
    started_at: float


def spawn(argv: Sequence[str], env: Mapping[str, str], log_file: Path, pid_file: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session, stdout+stderr appended to ``log_file``; returns the pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    record = {"pid": proc.pid, "argv0": argv[0], "started_at": time.time()}
    pid_file.write_text(json.dumps(record) + "\n")
    return proc.pid


def read_pid(pid_file: Path) -> PidRecord | None:
    try:
        body = json.loads(pid_file.read_text())
        return PidRecord(pid=int(body["pid"]), argv0=str(body["argv0"]), started_at=float(body["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_alive(record: PidRecord) -> bool:
    """True while the recorded process runs (not exited, not a zombie, pid not reused)."""
    child = _children.get(record.pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{record.pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    if state in {"Z", "X"}:
        return False
    if not cmdline:
        # Mid-exec: the new image's arguments are not set up yet (seen with large binaries
        # being paged in); the pid exists and is not a zombie, so it is ours and alive.
        return True
    return cmdline.split(b"\0", 1)[0].decode(errors="replace") == record.argv0


def exit_code(pid: int) -> int | None:
    """The exit code of a child this interpreter spawned, once it has exited."""
    child = _children.get(pid)
    return None if child is None else child.poll()


def signal_process(record: PidRecord, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group the component leads (it was started in its own session)."""
    try:
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        pass


def stop(record: PidRecord, timeout_s: float, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Signal the process and wait up to ``timeout_s``, then SIGKILL; returns True if it had to be killed."""
    if not is_alive(record):
        _reap(record.pid)
        return False
    signal_process(record, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(record):
            _reap(record.pid)
            return False
        time.sleep(0.1)
    signal_process(record, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while is_alive(record) and time.monotonic() < end:
        time.sleep(0.05)
    _reap(record.pid)
    return True


def _reap(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            _children[pid] = child


def tail(path: Path, lines: int = 12) -> list[str]:
    """The last ``lines`` non-empty lines of a text file (empty list if unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
