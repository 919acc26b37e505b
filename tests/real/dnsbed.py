"""A DNS test bed on loopback: zones written and signed at run time, real servers on free ports.

- ``named`` (BIND 9, authoritative): ``good.test`` (signed), ``expired.test`` (signatures expired a year
  ago), ``tampered.test`` (signed, then one A record changed), ``plain.test`` (unsigned);
- ``unbound`` (validating resolver): stub zones to named, the DS of each signed zone as trust anchor,
  Extended DNS Errors on, everything else refused (so no query leaves the machine); plain DNS on one port,
  DNS-over-TLS on another with a certificate made here (CN/SAN ``dns.test`` and 127.0.0.1);
- ``FakeDnsServer``: an asyncio UDP+TCP server that answers wrongly on purpose (mismatched id or
  question, garbage) or correctly after a delay.

Everything lives in one temporary directory and stops with the bed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rrset

from tests.certs import self_signed

LOOPBACK = "127.0.0.1"
TLS_NAME = "dns.test"
SIGNED_ZONES = ("good.test", "expired.test", "tampered.test")
ZONES = (*SIGNED_ZONES, "plain.test")
BIG_TXT_RECORDS = 40  # "big.<zone>" TXT: ~2.6 kB, more than an EDNS 1232-byte UDP answer holds


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 right now (chosen by the kernel)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def zone_text(zone: str) -> str:
    lines = [
        "$TTL 300",
        f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60",
        f"@ IN NS ns.{zone}.",
        f"ns IN A {LOOPBACK}",
        "www IN A 192.0.2.10",
        "www IN A 192.0.2.11",
        "www IN AAAA 2001:db8::10",
        "@ IN MX 10 mail",
        "mail IN A 192.0.2.25",
        'txt IN TXT "netobs test record"',
        "alias IN CNAME www",
    ]
    lines += [f'big IN TXT "{i:03d}-{"x" * 56}"' for i in range(BIG_TXT_RECORDS)]
    return "\n".join(lines) + "\n"


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def sign_zone(workdir: Path, zone: str, expired: bool = False) -> tuple[Path, str]:
    """Sign ``<zone>.db`` with a fresh KSK+ZSK; returns (signed file, DS text from the dsset file)."""
    keys = workdir / "keys"
    keys.mkdir(exist_ok=True)
    fmt = "%Y%m%d%H%M%S"
    year_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=365)
    # Keys published and active since well before the oldest signature (dnssec-signzone checks that).
    since = (year_ago - datetime.timedelta(days=30)).strftime(fmt)
    for flags in (["-f", "KSK"], []):
        cmd = ["dnssec-keygen", "-q", "-K", str(keys), "-a", "ECDSAP256SHA256", "-P", since, "-A", since]
        _run([*cmd, *flags, zone], workdir)
    signed = workdir / f"{zone}.signed"
    cmd = ["dnssec-signzone", "-q", "-S", "-K", str(keys), "-d", str(workdir), "-O", "full"]
    cmd += ["-o", zone, "-f", str(signed)]
    if expired:  # signatures valid for a month, a year ago (-P: skip the post-signing check, it would fail)
        cmd += ["-P", "-s", year_ago.strftime(fmt), "-e", (year_ago + datetime.timedelta(days=30)).strftime(fmt)]
    _run([*cmd, str(workdir / f"{zone}.db")], workdir)
    ds_text = (workdir / f"dsset-{zone}.").read_text()
    return signed, ds_text


def tamper(signed: Path, zone: str) -> None:
    """Change www's first A record after signing: its RRSIG no longer verifies."""
    lines = signed.read_text().splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if parts[:1] == [f"www.{zone}."] and parts[3:5] == ["A", "192.0.2.10"]:
            lines[i] = line.replace("192.0.2.10", "192.0.2.66")
            signed.write_text("\n".join(lines) + "\n")
            return
    raise RuntimeError(f"no www A record in {signed}")


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """The DoT server's certificate (for TLS_NAME and LOOPBACK), trusted by clients as its own CA."""
    return self_signed(
        workdir / "dot.pem", workdir / "dot.key", TLS_NAME, dns_names=[TLS_NAME], ip_addresses=[LOOPBACK], ca=True,
        valid_days=2,
    )  # fmt: skip


def wait_for_dns(port: int, qname: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 20) -> None:
    """Poll until the server on ``port`` answers ``qname`` SOA (any rcode) over UDP."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            dns.query.udp(dns.message.make_query(qname, "SOA"), LOOPBACK, timeout=0.5, port=port)
            return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer: {log.read_text()[-2000:]}")


@dataclass
class DnsBed:
    workdir: Path
    auth_port: int = 0
    resolver_port: int = 0
    tls_port: int = 0
    ds: dict[str, str] = field(default_factory=dict)  # zone -> DS text (trust anchor)
    cert: Path | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        for zone in ZONES:
            (self.workdir / f"{zone}.db").write_text(zone_text(zone))
        files = {"plain.test": self.workdir / "plain.test.db"}
        for zone in SIGNED_ZONES:
            files[zone], self.ds[zone] = sign_zone(self.workdir, zone, expired=zone == "expired.test")
        tamper(files["tampered.test"], "tampered.test")
        self.auth_port = free_port()
        self._start_named(files)
        self.cert, key = make_certificate(self.workdir)
        self.resolver_port, self.tls_port = free_port(), free_port()
        self._start_unbound(key)

    def _spawn(self, cmd: list[str], log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / log_name
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.procs.append(proc)
        return proc, log

    def _start_named(self, files: dict[str, Path]) -> None:
        d = self.workdir
        zones = "".join(f'zone "{z}" {{ type primary; file "{files[z]}"; }};\n' for z in ZONES)
        (d / "named.conf").write_text(
            f"""options {{
    directory "{d}";
    listen-on port {self.auth_port} {{ {LOOPBACK}; }};
    listen-on-v6 {{ none; }};
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
}};
controls {{ }};
{zones}"""
        )
        proc, log = self._spawn(["named", "-g", "-4", "-n", "1", "-c", str(d / "named.conf")], "named.log")
        wait_for_dns(self.auth_port, "good.test.", proc, log)

    def _start_unbound(self, key: Path) -> None:
        d = self.workdir
        anchors = "".join(f'    trust-anchor-file: "{d}/dsset-{z}."\n' for z in SIGNED_ZONES)
        stubs = "".join(f'stub-zone:\n    name: "{z}."\n    stub-addr: {LOOPBACK}@{self.auth_port}\n' for z in ZONES)
        local = "".join(f'    local-zone: "{z}." transparent\n' for z in ZONES)
        (d / "unbound.conf").write_text(
            f"""server:
    interface: {LOOPBACK}@{self.resolver_port}
    interface: {LOOPBACK}@{self.tls_port}
    tls-port: {self.tls_port}
    tls-service-key: "{key}"
    tls-service-pem: "{self.cert}"
    port: {self.resolver_port}
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    num-threads: 1
    ede: yes
    module-config: "validator iterator"
    local-zone: "." refuse
{local}{anchors}remote-control:
    control-enable: no
{stubs}"""
        )
        _run(["unbound-checkconf", str(d / "unbound.conf")], d)
        proc, log = self._spawn(["unbound", "-d", "-c", str(d / "unbound.conf")], "unbound.log")
        wait_for_dns(self.resolver_port, "good.test.", proc, log)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def dns_bed() -> Iterator[DnsBed]:
    workdir = Path(tempfile.mkdtemp(prefix="nobs-dns-"))
    bed = DnsBed(workdir)
    try:
        bed.start()
        yield bed
    finally:
        bed.stop()
        if os.environ.get("NETOBS_KEEP_DNSBED") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


class FakeDnsServer:
    """UDP+TCP on one free port; ``mode``: ``wrong_id``, ``wrong_question``, ``garbage`` or ``delay``
    (a correct answer, ``delay_s`` late)."""

    def __init__(self, mode: str, delay_s: float = 0.0, port: int = 0) -> None:
        self.mode = mode
        self.delay_s = delay_s
        self.port = port  # 0: a free port
        self.queries = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def reply(self, wire: bytes) -> bytes:
        self.queries += 1
        if self.mode == "garbage":
            return b"\x13\x37garbage, not DNS"
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        if self.mode == "wrong_question":
            response.question = [dns.rrset.RRset(dns.name.from_text("other.test."), 1, 1)]
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.99"))
        if self.mode == "wrong_id":
            response.id = (query.id + 1) % 65536
        return response.to_wire()

    async def __aenter__(self) -> FakeDnsServer:
        loop = asyncio.get_running_loop()
        self.port = self.port or free_port()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                async def answer() -> None:
                    await asyncio.sleep(server.delay_s)
                    self.transport.sendto(server.reply(data), addr)

                tasks.add(t := asyncio.ensure_future(answer()))
                t.add_done_callback(tasks.discard)

        tasks: set[asyncio.Future[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            try:
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(size)
                    await asyncio.sleep(self.delay_s)
                    out = self.reply(wire)
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.transport.abort()  # closes the socket now, not on a later loop turn
                self._writers.discard(writer)

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(LOOPBACK, self.port))
        self._tcp = await asyncio.start_server(handle, LOOPBACK, self.port)
        self._tasks = tasks
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            # A connection accepted just before close() gets its handler (and its writer) on a later loop
            # turn: let those start, so that every server-side transport is closed here, not by the GC.
            await asyncio.sleep(0.05)
            for writer in list(self._writers):
                writer.transport.abort()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()


def dig(
    port: int, name: str, rdtype: str, *options: str, server: str = LOOPBACK
) -> tuple[list[tuple[str, str, str]], float, str]:
    """Run dig; returns (answer records as (name, type, data) with dig's spacing normalised, query time in
    ms as dig reports it, rcode)."""
    cmd = ["dig", f"@{server}", "-p", str(port), name, rdtype, "+tries=1", "+time=3", "+nocookie", *options]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout
    answers: list[tuple[str, str, str]] = []
    query_ms = -1.0
    rcode = "?"
    section = None
    for line in out.splitlines():
        if line.startswith(";; ->>HEADER<<-"):
            rcode = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; ANSWER SECTION"):
            section = "answer"
        elif line.startswith(";; Query time:"):
            query_ms = float(line.split(":")[1].split()[0])
        elif not line.strip() or line.startswith(";"):
            section = None if not line.strip() else section
        elif section == "answer":
            parts = line.split(None, 4)
            data = dns.rdata.from_text("IN", parts[3], parts[4]).to_text()  # dnspython's canonical text
            answers.append((parts[0], parts[3], data))
    return answers, query_ms, rcode
