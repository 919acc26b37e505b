"""Benchmark: the agent probing N targets at a fixed interval, with all telemetry on, against blackbox_exporter.

For each probe type (icmp, tcp, http) two phases run one after the other on the same targets:

1. **agent**: a child process runs the real agent (config -> ``Agent``: scheduler, runner, probe, the real
   ``Telemetry`` with OTLP/gRPC exporters for metrics, spans and one log record per result). The exporters
   send to an OTLP sink in this process that accepts every export and discards it, so serialisation and
   export cost are in the agent's CPU, the sink's are not. After a warm-up ending with one export of
   every signal (one-time work such as encoding each metric series' attributes stays out), it measures over
   ``--duration-s``: probes/s, the agent process's CPU per probe (``time.process_time``: all its threads),
   and schedule lateness (every run's start against its slot) p50/p99. For ICMP, ``ping`` runs on a sample
   of the targets meanwhile and the agent's median RTT per sampled address is compared with ping's.
2. **blackbox**: ``prometheus-blackbox-exporter`` (the Debian package) gets ``/probe?module=<type>&target=...``
   for the same targets at the same cadence (each target once per interval, random offset) from a driver
   in this process; its CPU per probe comes from ``/proc/<pid>/stat`` (utime + stime) over the same window.
   By default a real Prometheus (the Debian package) scrapes the exporter, as in production ("scrape
   included"): one job with every target, ``/probe`` through the usual relabelling, scrape interval =
   the interval; probes and successes are counted from its ``up`` and ``probe_success`` series
   (``--blackbox-scrape server``). Without Prometheus, a driver in this process asks with Prometheus's
   request headers, ``Accept-Encoding: gzip`` among them, each target once per interval at a random
   offset (``--blackbox-scrape prometheus``); ``--blackbox-scrape plain`` sends a bare GET instead
   (cheaper for the exporter: no compression; what this bench measured before the seventh session).

Targets: ICMP 127.1.x.y (loopback answers them all); TCP a listener per target on 127.3.x.y:port in a child
process that accepts and closes; HTTP one nginx on 127.0.0.1:port, one URL path per target; HTTPS the same
nginx on a TLS port with a self-signed certificate both probers trust (a full handshake per probe). Everything
stays on loopback. The two phases do not overlap: blackbox at 2,000 ICMP probes/s needs most of this
2-core machine, which would distort the agent's lateness.

    python bench/bench_agent.py                       # 2,000 targets, 1 s interval, 60 s per phase
    python bench/bench_agent.py --targets 500 --duration-s 20 --types icmp
    python bench/bench_agent.py --json                # also one JSON line per phase at the end
    python bench/bench_agent.py --types https --targets 200   # a full TLS handshake per probe
    python bench/bench_agent.py --types tcp --no-blackbox --agent-path /tmp/old/agent   # A/B: another revision

Needs root (raw ICMP sockets, or set net.ipv4.ping_group_range), nginx, prometheus-blackbox-exporter and
(for the default scrape mode) prometheus.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "agent"))
sys.path.insert(1, str(ROOT))  # tests.certs, for the HTTPS server's certificate

TYPES = ("icmp", "tcp", "http", "https")
DEFAULT_TYPES = ("icmp", "tcp", "http")  # https apart: a handshake per probe, ~3 cores at 2,000/s
GOAL_ICMP_CPU_US = 150.0
GOAL_LATENESS_P99_MS = 5.0
GOAL_RATIO = 5.0


# -- small helpers -----------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of process ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * tick_s, int(fields[12]) * tick_s


def icmp_targets(n: int) -> list[str]:
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def tcp_hosts(n: int) -> list[str]:
    return [f"127.3.{i // 250}.{i % 250 + 1}" for i in range(n)]


# -- the OTLP sink: accepts every export, discards it --------------------------------------------------


@contextlib.contextmanager
def otlp_sink() -> Iterator[int]:
    """A gRPC server answering every OTLP Export call with an empty (success) response."""
    import grpc  # type: ignore[import-untyped]

    class Discard(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, handler_call_details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: b"",
                request_deserializer=None,
                response_serializer=None,
            )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Discard(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


# -- target servers ----------------------------------------------------------------------------------

TCP_SERVER = r"""
import asyncio, resource, sys
hosts, port = sys.argv[1].split(","), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

async def main():
    def accepted(reader, writer):
        writer.transport.abort()
    servers = [await asyncio.start_server(accepted, h, port, backlog=256) for h in hosts]
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl{tls_http2} backlog=4096;
        ssl_certificate {tmp}/bench-cert.pem;
        ssl_certificate_key {tmp}/bench-key.pem;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def write_certificate(tmp: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (and its key) for nginx's TLS port; the CA file both
    probers trust."""
    from tests.certs import self_signed

    cert, _ = self_signed(
        tmp / "bench-cert.pem", tmp / "bench-key.pem", "netobs bench", ip_addresses=["127.0.0.1"], ca=True
    )
    return cert


@contextlib.contextmanager
def targets_for(kind: str, n: int, tmp: Path, https_h2: bool = False) -> Iterator[tuple[list[str], list[str]]]:
    """(agent targets, blackbox targets) for ``kind``, with their servers running (``https_h2``: nginx offers
    HTTP/2 on its TLS port)."""
    if kind == "icmp":
        t = icmp_targets(n)
        yield t, t
        return
    if kind == "tcp":
        hosts = tcp_hosts(n)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", TCP_SERVER, ",".join(hosts), str(port)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the TCP target server did not start")
            t = [f"{h}:{port}" for h in hosts]
            yield t, t
        finally:
            proc.terminate()
            proc.wait(10)
        return
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port, tls_port = free_port(), free_port()
    write_certificate(tmp)
    conf = NGINX_CONF.format(tmp=tmp, port=port, tls_port=tls_port, tls_http2=" http2" if https_h2 else "")
    (tmp / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")], stderr=subprocess.DEVNULL)
    try:
        _wait_port("127.0.0.1", port)
        base = f"https://127.0.0.1:{tls_port}" if kind == "https" else f"http://127.0.0.1:{port}"
        t = [f"{base}/t/{i}" for i in range(n)]
        yield t, t
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


# -- phase 1: the agent, in a child process --------------------------------------------------------------

# Source text for the child processes (this bench's and bench_layers.py's): CPU seconds by thread name.
CHILD_THREAD_CPU = r"""
def thread_cpu_s():
    # Every thread of the process: Python's by their names, the others (the C engine's) by their comm.
    import os, threading
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                head, rest = fh.read().rsplit(")", 1)
            f = rest.split()
            name = names.get(int(tid), head.split("(", 1)[1])
            out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return out
"""

AGENT_CHILD = (
    r"""
import asyncio, json, os, sys, time
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["agent_path"])
from netobs.agent import Agent
from netobs.config import AgentConfig
from netobs.telemetry import Telemetry

class BenchTelemetry(Telemetry):
    measuring = False
    def setup(self, sample):
        self.lateness_s, self.done, self.ok, self.errors, self.skipped = [], 0, 0, {}, 0
        self.sample = {t: [] for t in sample}
        self.measured_ms = {}  # what the probes measured: each phase, and ICMP's RTTs
    def _measured(self, name, value_ms):
        values = self.measured_ms.get(name)
        if values is None:
            values = self.measured_ms[name] = []
        if len(values) < 200_000:
            values.append(value_ms)
    def record(self, result):
        super().record(result)
        if self.measuring:
            self.done += 1
            self.ok += result.success
            if not result.success:
                key = f"{result.error_type}: {result.error_message}"[:120]
                self.errors[key] = self.errors.get(key, 0) + 1
            rtts = self.sample.get(result.target)
            if rtts is not None and result.icmp is not None:
                rtts.extend(r for r in result.icmp.rtts_ms if r is not None)
            if result.success:
                for name, ms in result.phases_ms.items():
                    self._measured(name, ms)
                if result.icmp is not None:
                    for rtt in result.icmp.rtts_ms:
                        if rtt is not None:
                            self._measured("rtt", rtt)
    def count_skipped(self, check_type, reason):
        super().count_skipped(check_type, reason)
        if self.measuring:
            self.skipped += 1
    def record_lateness(self, lateness_s, check_type):
        super().record_lateness(lateness_s, check_type)
        if self.measuring:
            self.lateness_s.append(lateness_s)

"""
    + CHILD_THREAD_CPU
    + r"""
async def main():
    cfg = AgentConfig.model_validate(spec["config"])
    telemetry = BenchTelemetry.from_config(cfg)
    telemetry.setup(spec["sample"])
    agent = Agent(cfg, telemetry=telemetry)
    agent.start()
    await asyncio.sleep(spec["warmup_s"])
    # Steady state: one export of every signal before the window, so one-time work (the first metric
    # export encodes each series' attributes once) is not charged to the measured probes.
    await asyncio.get_running_loop().run_in_executor(None, telemetry.flush)
    print("measuring", flush=True)
    telemetry.measuring = True
    cpu0, t0, threads0, sys0 = time.process_time(), time.monotonic(), thread_cpu_s(), os.times().system
    await asyncio.sleep(spec["duration_s"])
    telemetry.measuring = False
    cpu1, t1, threads1, sys1 = time.process_time(), time.monotonic(), thread_cpu_s(), os.times().system
    await agent.scheduler.stop(cancel_running=True)
    telemetry.flush()
    telemetry.shutdown()
    print(json.dumps({
        "cpu_s": cpu1 - cpu0, "sys_s": sys1 - sys0, "wall_s": t1 - t0, "done": telemetry.done, "ok": telemetry.ok,
        "skipped": telemetry.skipped,
        "lateness_s": telemetry.lateness_s, "sample_rtts_ms": telemetry.sample,
        "measured_ms": telemetry.measured_ms,
        "errors": sorted(telemetry.errors.items(), key=lambda kv: -kv[1])[:5],
        "thread_cpu_s": {k: v - threads0.get(k, 0.0) for k, v in threads1.items()},
        "loop": type(asyncio.get_running_loop()).__module__,
        "package": os.path.dirname(sys.modules["netobs"].__file__),
    }), flush=True)

if spec["uvloop"]:
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""
)


def check_config(kind: str, targets: list[str], interval_s: float, tmp: Path) -> dict[str, Any]:
    timeout_s = round(min(interval_s * 0.9, 5.0), 3)
    check: dict[str, Any] = {
        "name": f"bench-{kind}",
        "type": "http" if kind == "https" else kind,
        "targets": targets,
        "interval_s": interval_s,
        "timeout_s": timeout_s,
    }
    if kind == "icmp":
        check |= {"count": 1}
    if kind == "https":
        check |= {"ca_file": str(tmp / "bench-cert.pem")}  # verified, as blackbox's module does
    return check


def run_agent_phase(
    kind: str, targets: list[str], args: argparse.Namespace, sink_port: int, sample: list[str], *, tmp: Path
) -> dict[str, Any]:
    config = {
        "agent_id": "bench",
        "pop": "bench",
        "exporter": {"endpoint": f"127.0.0.1:{sink_port}", "protocol": "grpc", "insecure": True},
        "outputs": {"stdout_json": False},
        "checks": [check_config(kind, targets, args.interval_s, tmp)],
    }
    spec = {
        "agent_path": str(args.agent_path),
        "config": config,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
        "sample": sample,
        "uvloop": args.loop == "uvloop",
    }
    # The agent's log goes to a file: a pipe nobody reads while the phase runs would fill and block it.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", AGENT_CHILD, json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdout is not None
        ping_results: dict[str, list[float]] = {}
        line = proc.stdout.readline()
        if line.strip() == "measuring" and sample:
            ping_results = ping_sample(sample, args.duration_s)
        out, _ = proc.communicate(timeout=args.duration_s + args.warmup_s + 120)
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"agent child failed ({proc.returncode}):\n{errors.read()[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    report["ping_rtts_ms"] = ping_results
    return report


def ping_sample(addresses: list[str], within_s: float) -> dict[str, list[float]]:
    """Per-packet RTTs from iputils ping, 10 packets to each address, all addresses in parallel."""
    gap_s = max(0.05, min(0.5, within_s / 20))
    procs = {
        a: subprocess.Popen(
            ["ping", "-n", "-c", "10", "-i", f"{gap_s:g}", "-W", "1", a],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for a in addresses
    }
    out: dict[str, list[float]] = {}
    for address, p in procs.items():
        text, _ = p.communicate(timeout=60)
        out[address] = [float(m) for m in re.findall(r"time=([0-9.]+) ms", text)]
    return out


# -- phase 2: blackbox_exporter ------------------------------------------------------------------------

BLACKBOX_CONFIG = """
modules:
  icmp:
    prober: icmp
    timeout: {timeout_s}s
    icmp:
      preferred_ip_protocol: ip4
  tcp:
    prober: tcp
    timeout: {timeout_s}s
    tcp:
      preferred_ip_protocol: ip4
  http:
    prober: http
    timeout: {timeout_s}s
    http:
      preferred_ip_protocol: ip4
  https:
    prober: http
    timeout: {timeout_s}s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca_file}
"""


@dataclass
class DriverStats:
    done: int = 0
    ok: int = 0
    errors: int = 0
    gzipped: int = 0  # answers the exporter compressed
    latency_s: list[float] = field(default_factory=list)


SCRAPE_MODES = {
    "server": "by a real Prometheus",
    "prometheus": "by a driver with Prometheus's headers (gzip)",
    "plain": "by a driver with bare GETs",
}


def prometheus_scrape_headers(timeout_s: float) -> str:
    """The headers Prometheus (2.54) sends with every scrape, as HTTP/1.1 header lines."""
    return (
        "User-Agent: Prometheus/2.54.0\r\n"
        "Accept: application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;"
        "q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2\r\n"
        "Accept-Encoding: gzip\r\n"
        f"X-Prometheus-Scrape-Timeout-Seconds: {timeout_s:g}\r\n"
    )


class _Conn:
    """One keep-alive HTTP/1.1 connection to the exporter."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: str = "") -> None:
        self.reader = reader
        self.writer = writer
        self.headers = headers  # extra header lines, each ending in CRLF
        self.gzipped = False  # whether the last answer came compressed

    async def get(self, host: str, path: str) -> bytes:
        """The body of ``GET path``, decompressed when the server gzipped it."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{self.headers}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        body = await self._body(head)
        self.gzipped = re.search(rb"(?i)\r\ncontent-encoding:\s*gzip", head) is not None
        return gzip.decompress(body) if self.gzipped else body

    async def _body(self, head: bytes) -> bytes:
        match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if match is not None:
            return await self.reader.readexactly(int(match.group(1)))
        if re.search(rb"(?i)\r\ntransfer-encoding:\s*chunked", head) is None:
            raise RuntimeError(f"neither content-length nor chunked in {head[:200]!r}")
        chunks = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])


async def drive_blackbox(
    port: int, module: str, targets: list[str], args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    """Ask the exporter to probe every target once per interval; measure its CPU over the window."""
    from urllib.parse import quote

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    stats = DriverStats()
    measuring = False
    host = f"127.0.0.1:{port}"
    workers = max(8, min(256, len(targets) // 8))
    headers = prometheus_scrape_headers(args.interval_s) if args.blackbox_scrape == "prometheus" else ""

    async def worker() -> None:
        conn: _Conn | None = None
        while True:
            target = await queue.get()
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection("127.0.0.1", port), headers)
                body = await conn.get(host, f"/probe?module={module}&target={quote(target, safe='')}")
                success = b"\nprobe_success 1" in body
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                if conn is not None:
                    conn.writer.close()
                conn = None
                if measuring:
                    stats.errors += 1
                continue
            if measuring:
                stats.done += 1
                stats.ok += success
                stats.gzipped += conn.gzipped
                stats.latency_s.append(time.perf_counter() - start)

    def fire(target: str, slot: float) -> None:
        queue.put_nowait(target)
        loop.call_at(slot + args.interval_s, fire, target, slot + args.interval_s)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    now = loop.time()
    for t in targets:
        slot = now + random.uniform(0, args.interval_s)
        loop.call_at(slot, fire, t, slot)
    await asyncio.sleep(args.warmup_s)
    measuring = True
    (user0, sys0), t0 = proc_cpu_s(pid), time.monotonic()
    await asyncio.sleep(args.duration_s)
    measuring = False
    (user1, sys1), t1 = proc_cpu_s(pid), time.monotonic()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "cpu_s": user1 - user0 + sys1 - sys0,
        "sys_s": sys1 - sys0,
        "wall_s": t1 - t0,
        "done": stats.done,
        "ok": stats.ok,
        "errors": stats.errors,
        "backlog": queue.qsize(),
        "gzipped": stats.gzipped,
    }


def _duration(seconds: float) -> str:
    """A Prometheus duration (milliseconds: intervals below a second are allowed)."""
    return f"{round(seconds * 1000)}ms"


def prometheus_config(exporter: str, module: str, targets: list[str], interval_s: float) -> dict[str, Any]:
    """A scrape job asking ``exporter`` to probe every target with ``module`` once per interval."""
    return {
        "global": {"scrape_interval": _duration(interval_s), "scrape_timeout": _duration(interval_s)},
        "scrape_configs": [
            {
                "job_name": "blackbox",
                "metrics_path": "/probe",
                "params": {"module": [module]},
                "static_configs": [{"targets": targets}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": exporter},
                ],
            }
        ],
    }


def _prometheus_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:  # not listening yet, or 503 (urllib.error.HTTPError is an OSError)
        return False


def _promql_sum(port: int, expr: str, at: float) -> float:
    """The sum of ``expr`` at time ``at`` (0 when it has no series)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": f"sum({expr})", "time": at})
    with urllib.request.urlopen(url, timeout=30) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def scrape_with_prometheus(
    port: int, module: str, targets: list[str], args: argparse.Namespace, pid: int, *, tmp: Path
) -> dict[str, Any]:
    """A real Prometheus scrapes the exporter on ``port``; its CPU over the window, and the scrapes and
    successes in that window from Prometheus's own ``up`` and ``probe_success`` samples."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus; or --blackbox-scrape prometheus)")
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(f"127.0.0.1:{port}", module, targets, args.interval_s)))
    data = tmp / f"prometheus-{module}"
    prom_port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Prometheus answers 503 until its storage is open, and applies new targets a few seconds after it
        # starts: wait until it is ready and has scraped every target once.
        deadline = time.monotonic() + 60
        while not _prometheus_ready(prom_port) or _promql_sum(prom_port, "count(up)", time.time()) < len(targets):
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not scrape all {len(targets)} targets within 60 s")
            time.sleep(0.5)
        time.sleep(args.warmup_s)
        (user0, sys0), t0 = proc_cpu_s(pid), time.time()
        time.sleep(args.duration_s)
        (user1, sys1), t1 = proc_cpu_s(pid), time.time()
        time.sleep(min(2.0, args.interval_s) + 0.5)  # the window's last scrapes are ingested
        window = _duration(t1 - t0)
        done = _promql_sum(prom_port, f"count_over_time(up[{window}])", t1)
        up = _promql_sum(prom_port, f"sum_over_time(up[{window}])", t1)
        ok = _promql_sum(prom_port, f"sum_over_time(probe_success[{window}])", t1)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    return {
        "cpu_s": user1 - user0 + sys1 - sys0,
        "sys_s": sys1 - sys0,
        "wall_s": t1 - t0,
        "done": int(done),
        "ok": int(ok),
        "errors": int(done - up),  # scrapes that failed (up = 0)
        "backlog": 0,
        "gzipped": None,  # Prometheus always asks for gzip; what came back is not seen here
    }


def run_blackbox_phase(kind: str, targets: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    binary = shutil.which("prometheus-blackbox-exporter")
    if binary is None:
        raise RuntimeError(
            "prometheus-blackbox-exporter is not installed (apt-get install prometheus-blackbox-exporter)"
        )
    config = tmp / "blackbox.yml"
    timeout_s = round(min(args.interval_s * 0.9, 5.0), 3)
    config.write_text(BLACKBOX_CONFIG.format(timeout_s=timeout_s, ca_file=tmp / "bench-cert.pem"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            # The scrape timeout the driver announces is the interval (Prometheus: scrape_timeout <= the
            # scrape interval); blackbox subtracts this offset (default 0.5 s, more than a sub-second
            # interval), so the module's own timeout (0.9 intervals) is what bounds a probe.
            "--timeout-offset=0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port("127.0.0.1", port)
        if args.blackbox_scrape == "server":
            result = scrape_with_prometheus(port, kind, targets, args, proc.pid, tmp=tmp)
        else:
            result = asyncio.run(drive_blackbox(port, kind, targets, args, proc.pid))
        return result | {"scrape": args.blackbox_scrape}
    finally:
        proc.terminate()
        proc.wait(10)


# -- report ---------------------------------------------------------------------------------------------


def summarise(kind: str, agent: dict[str, Any] | None, blackbox: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"type": kind}
    if agent is not None:
        done = max(agent["done"], 1)
        lateness_ms = [x * 1000 for x in agent["lateness_s"]]
        row |= {
            "agent_probes_per_s": agent["done"] / agent["wall_s"],
            "agent_success_ratio": agent["ok"] / done,
            "agent_skipped_per_s": agent.get("skipped", 0) / agent["wall_s"],
            "agent_cpu_us_per_probe": agent["cpu_s"] / done * 1e6,
            "agent_cpu_share": agent["cpu_s"] / agent["wall_s"],
            "agent_kernel_us_per_probe": agent["sys_s"] / done * 1e6,
            "lateness_p50_ms": percentile(lateness_ms, 0.5),
            "lateness_p99_ms": percentile(lateness_ms, 0.99),
            "lateness_max_ms": max(lateness_ms, default=float("nan")),
            "event_loop": agent["loop"],
            "agent_package": agent["package"],
            "agent_top_errors": agent.get("errors", []),
            "agent_measured_ms": {
                name: {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
                for name, values in agent.get("measured_ms", {}).items()
            },
            "agent_thread_cpu_us_per_probe": {
                name: round(cpu_s / done * 1e6, 1) for name, cpu_s in agent.get("thread_cpu_s", {}).items()
            },
        }
        diffs = []
        for address, ping_rtts in agent.get("ping_rtts_ms", {}).items():
            ours = agent["sample_rtts_ms"].get(address) or []
            if ours and ping_rtts:
                diffs.append(statistics.median(ours) - statistics.median(ping_rtts))
        if diffs:
            row |= {
                "rtt_vs_ping_addresses": len(diffs),
                "rtt_vs_ping_median_diff_ms": statistics.median(diffs),
                "rtt_vs_ping_max_abs_diff_ms": max(abs(d) for d in diffs),
            }
    if blackbox is not None:
        done = max(blackbox["done"], 1)
        row |= {
            "blackbox_probes_per_s": blackbox["done"] / blackbox["wall_s"],
            "blackbox_success_ratio": blackbox["ok"] / done,
            "blackbox_cpu_us_per_probe": blackbox["cpu_s"] / done * 1e6,
            "blackbox_kernel_us_per_probe": blackbox["sys_s"] / done * 1e6,
            "blackbox_errors": blackbox["errors"],
            "blackbox_scrape": blackbox["scrape"],
            **(
                {"blackbox_gzipped_ratio": blackbox["gzipped"] / max(1, blackbox["done"])}
                if blackbox["gzipped"] is not None
                else {}
            ),
        }
        if agent is not None and row["agent_cpu_us_per_probe"] > 0:
            row["cpu_ratio_blackbox_over_agent"] = row["blackbox_cpu_us_per_probe"] / row["agent_cpu_us_per_probe"]
    return row


def print_row(row: dict[str, Any]) -> None:
    kind = row["type"]
    print(f"\n== {kind} ==")
    if "agent_probes_per_s" in row:
        print(
            f"agent:    {row['agent_probes_per_s']:8.1f} probes/s  success {row['agent_success_ratio']:.3f}  "
            f"CPU {row['agent_cpu_us_per_probe']:7.1f} us/probe (kernel {row['agent_kernel_us_per_probe']:.0f}; "
            f"{row['agent_cpu_share'] * 100:.1f}% of a core)  "
            f"lateness p50 {row['lateness_p50_ms']:.2f} ms  p99 {row['lateness_p99_ms']:.2f} ms  "
            f"max {row['lateness_max_ms']:.1f} ms  [{row['event_loop']}]"
        )
        if row["agent_skipped_per_s"]:
            print(f"  agent skipped {row['agent_skipped_per_s']:.1f} runs/s: started too late (overload)")
    if row.get("agent_thread_cpu_us_per_probe"):
        threads = ", ".join(f"{k} {v:g}" for k, v in sorted(row["agent_thread_cpu_us_per_probe"].items()))
        print(f"  agent CPU by thread (us/probe): {threads}")
    if row.get("agent_measured_ms"):
        measured = ", ".join(
            f"{name} {v['p50']:.3f} / {v['p99']:.3f}" for name, v in sorted(row["agent_measured_ms"].items())
        )
        # On loopback the network takes tens of µs: the rest of a phase is the agent's own delay under load.
        print(f"  agent measured (ms, p50 / p99 of successful runs): {measured}")
    for message, count in row.get("agent_top_errors", []):
        print(f"  agent failures: {count} x {message}")
    if "rtt_vs_ping_addresses" in row:
        print(
            f"RTT vs ping ({row['rtt_vs_ping_addresses']} addresses, median of per-address median "
            f"differences): {row['rtt_vs_ping_median_diff_ms']:+.3f} ms, "
            f"max |diff| {row['rtt_vs_ping_max_abs_diff_ms']:.3f} ms"
        )
    if "blackbox_probes_per_s" in row:
        print(
            f"blackbox: {row['blackbox_probes_per_s']:8.1f} probes/s  success {row['blackbox_success_ratio']:.3f}  "
            f"CPU {row['blackbox_cpu_us_per_probe']:7.1f} us/probe (kernel {row['blackbox_kernel_us_per_probe']:.0f})  "
            f"scrape errors {row['blackbox_errors']}  scraped {SCRAPE_MODES[row['blackbox_scrape']]}"
            + (f" (gzipped answers {row['blackbox_gzipped_ratio']:.2f})" if "blackbox_gzipped_ratio" in row else "")
        )
    if "cpu_ratio_blackbox_over_agent" in row:
        print(f"blackbox/agent CPU per probe: {row['cpu_ratio_blackbox_over_agent']:.1f}x (goal >= {GOAL_RATIO:g}x)")


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per measured type: each goal of the benchmark with the figure and whether it was met."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = []
    for row in rows:
        if "agent_cpu_us_per_probe" not in row:
            continue
        cpu = row["agent_cpu_us_per_probe"]
        parts = [f"{row['agent_probes_per_s']:,.0f} probes/s"]
        if row["type"] == "icmp":
            parts.append(f"CPU {cpu:.1f} <= {GOAL_ICMP_CPU_US:g} us/probe {verdict(cpu <= GOAL_ICMP_CPU_US)}")
        p99 = row["lateness_p99_ms"]
        parts.append(f"lateness p99 {p99:.2f} < {GOAL_LATENESS_P99_MS:g} ms {verdict(p99 < GOAL_LATENESS_P99_MS)}")
        if "cpu_ratio_blackbox_over_agent" in row:
            ratio = row["cpu_ratio_blackbox_over_agent"]
            parts.append(f"blackbox/agent {ratio:.1f}x >= {GOAL_RATIO:g}x {verdict(ratio >= GOAL_RATIO)}")
        lines.append(f"{row['type']:<6} " + "; ".join(parts))
    return lines


def add_agent_path(parser: argparse.ArgumentParser) -> None:
    """``--agent-path``: which copy of the agent a benchmark runs (this one's and bench_layers.py's)."""
    parser.add_argument(
        "--agent-path",
        type=Path,
        default=ROOT / "agent",
        help="the folder holding the netobs package the agent runs from (default: this checkout's agent/); "
        "for an A/B, a copy of another revision: git archive REV agent | tar -x -C /tmp/old",
    )


def check_agent_path(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (args.agent_path / "netobs" / "agent.py").is_file():
        parser.error(f"--agent-path {args.agent_path}: no netobs/agent.py there (want the folder holding netobs/)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=2000, help="targets per probe type (default 2000)")
    parser.add_argument("--interval-s", type=float, default=1.0, help="interval of every target (default 1)")
    parser.add_argument("--duration-s", type=float, default=60.0, help="measured window per phase (default 60)")
    parser.add_argument("--warmup-s", type=float, default=None, help="before measuring (default 1.5 intervals)")
    parser.add_argument(
        "--types",
        default=",".join(DEFAULT_TYPES),
        help="comma-separated: icmp,tcp,http,https (default icmp,tcp,http; https with fewer --targets)",
    )
    parser.add_argument("--no-blackbox", action="store_true", help="skip the blackbox_exporter phases")
    parser.add_argument(
        "--https-h2",
        action="store_true",
        help="nginx offers HTTP/2 on its TLS port (ALPN): the agent's https probes speak HTTP/2 (default HTTP/1.1)",
    )
    parser.add_argument("--ping-sample", type=int, default=10, help="ICMP addresses compared with ping")
    parser.add_argument(
        "--blackbox-scrape",
        choices=list(SCRAPE_MODES),
        default="server",
        help="who asks blackbox_exporter to probe: a real Prometheus scraping it (server, the default), or a "
        "driver in the bench with Prometheus's scrape headers, gzip included (prometheus), or with bare GETs "
        "(plain)",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="agent event loop (auto: uvloop if installed)",
    )
    add_agent_path(parser)
    parser.add_argument("--json", action="store_true", help="also print one JSON line per type")
    args = parser.parse_args(argv)
    check_agent_path(parser, args)
    if args.warmup_s is None:
        args.warmup_s = 1.5 * args.interval_s
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401

            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    kinds = [k.strip() for k in args.types.split(",") if k.strip()]
    for k in kinds:
        if k not in TYPES:
            parser.error(f"unknown type {k!r}; allowed: {', '.join(TYPES)}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"bench: {args.targets} targets per type, interval {args.interval_s:g} s, {args.duration_s:g} s measured "
        f"after {args.warmup_s:g} s warm-up; telemetry: OTLP/gRPC metrics+spans+logs to a discarding local sink; "
        f"loop: {args.loop}; blackbox scraped {SCRAPE_MODES[args.blackbox_scrape]}; {os.cpu_count()} CPUs; "
        f"agent from {args.agent_path}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="netobs-bench-") as tmp_name, otlp_sink() as sink_port:
        tmp = Path(tmp_name)
        for kind in kinds:
            with targets_for(kind, args.targets, tmp, https_h2=args.https_h2) as (agent_targets, bb_targets):
                sample = agent_targets[: args.ping_sample] if kind == "icmp" else []
                agent = run_agent_phase(kind, agent_targets, args, sink_port, sample, tmp=tmp)
                blackbox = None if args.no_blackbox else run_blackbox_phase(kind, bb_targets, args, tmp)
            row = summarise(kind, agent, blackbox)
            rows.append(row)
            print_row(row)
            sys.stdout.flush()
    print("\ngoals (issue 2):")
    for line in goal_lines(rows):
        print(f"  {line}")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
