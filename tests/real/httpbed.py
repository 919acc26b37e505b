"""Test bed for the HTTP and TCP probes: real servers on free loopback ports (needs root for the netns).

- :func:`make_pki`: a test CA and leaf certificates for ``localhost``/127.0.0.1 (valid for a year,
  expiring in 5 days, expired yesterday) and one for another name (a name mismatch);
- :class:`Nginx`: the Debian nginx with its own config: one plain HTTP port and one TLS port per
  certificate (HTTP/2 enabled), with the locations in ``LOCATIONS`` (a 300 ms first-byte delay through the
  echo module, a redirect chain, a 503, a 1 MiB file, the received traceparent echoed back);
- :class:`MisbehavingServers`: small asyncio servers in a child process: ``garbage`` (answers any request
  with bytes that are not HTTP), ``endless`` (a chunked body that never ends) and ``stall`` (accepts and
  never says a word: a stalled TLS or HTTP peer);
- :class:`Blackhole`: an address that never answers -- a veth into a second namespace and a permanent
  neighbour entry with a MAC nobody owns, so SYNs leave and vanish; :meth:`Blackhole.run` runs a coroutine
  in a thread switched into the namespace;
- :func:`curl_phases`: curl's own per-phase timings of one request, for comparison.

Run as ``python httpbed.py serve`` it is the misbehaving servers' child process: it prints their ports as
one JSON line and serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

T = TypeVar("T")

DELAY_S = 0.3  # the first-byte delay of /delay
BIG_BYTES = 1 << 20  # size of /big.bin
ECHO_MODULE = "/usr/share/nginx/modules/ngx_http_echo_module.so"
CERT_NAMES = ("valid", "expiring", "expired", "wrongname")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- certificates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    certs: dict[str, tuple[Path, Path]]  # name -> (certificate, key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_pki(directory: Path) -> Pki:
    """A CA and one leaf per :data:`CERT_NAMES`, as PEM files in ``directory``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("netobs test CA"))
        .issuer_name(_name("netobs test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=60))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    local_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    windows = {
        "valid": (now - dt.timedelta(days=1), now + dt.timedelta(days=365), local_names),
        "expiring": (now - dt.timedelta(days=1), now + dt.timedelta(days=5), local_names),
        "expired": (now - dt.timedelta(days=30), now - dt.timedelta(days=1), local_names),
        "wrongname": (now - dt.timedelta(days=1), now + dt.timedelta(days=365), [x509.DNSName("other.test")]),
    }
    certs: dict[str, tuple[Path, Path]] = {}
    for name, (not_before, not_after, sans) in windows.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name}.netobs.test"))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        certs[name] = (cert_path, key_path)
    return Pki(ca_file, certs)


# -- nginx -----------------------------------------------------------------------------------------------

LOCATIONS = f"""
        default_type text/plain;
        location = / {{ add_header X-Netobs yes; return 200 "hello netobs\\n"; }}
        location = /delay {{ echo_sleep {DELAY_S}; echo "delayed"; }}
        location = /traceparent {{ add_header X-Seen-Traceparent $http_traceparent; return 200 "seen\\n"; }}
        location = /r1 {{ return 302 /r2; }}
        location = /r2 {{ return 301 /r3; }}
        location = /r3 {{ return 307 /; }}
        location = /status/503 {{ return 503 "busy\\n"; }}
        location = /big.bin {{ }}
"""


class Nginx:
    """nginx on free loopback ports: ``ports["plain"]`` and one TLS port per certificate name."""

    def __init__(self, pki: Pki, directory: Path) -> None:
        self.pki = pki
        self.dir = directory
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        d = self.dir
        servers = [f"server {{ listen 127.0.0.1:{self.ports['plain']}; root {d}/www; {LOCATIONS} }}"]
        for name in CERT_NAMES:
            cert, key = self.pki.certs[name]
            servers.append(
                f"server {{ listen 127.0.0.1:{self.ports[name]} ssl http2; root {d}/www;\n"
                f"  ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate {cert}; ssl_certificate_key {key}; {LOCATIONS} }}"
            )
        temp = " ".join(f"{kind}_temp_path {d}/tmp-{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        return (
            f"load_module {ECHO_MODULE};\nuser root;\n"
            f"daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{ access_log off; client_body_temp_path {d}/tmp-body; {temp}\n" + "\n".join(servers) + "\n}\n"
        )

    def start(self) -> None:
        (self.dir / "www").mkdir(exist_ok=True)
        (self.dir / "www" / "big.bin").write_bytes(b"n" * BIG_BYTES)
        for _attempt in range(3):  # a free port can be taken by someone else before nginx binds it
            self.ports = {name: free_port() for name in ("plain", *CERT_NAMES)}
            conf = self.dir / "nginx.conf"
            conf.write_text(self._config())
            with (self.dir / "nginx.out").open("wb") as log:
                self.proc = subprocess.Popen(
                    ["nginx", "-p", str(self.dir), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
                )
            if _wait_for_ports(list(self.ports.values()), self.proc, timeout_s=10.0):
                return
            self.stop()
        raise RuntimeError(f"nginx did not start: {(self.dir / 'nginx.out').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _wait_for_ports(ports: list[int], proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.05)
    return not pending


# -- misbehaving servers (child process) -------------------------------------------------------------------


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"\x16\x03 this is not HTTP at all\r\n\r\n\x00\xff")
    await writer.drain()


async def _endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"z" * 0x10000 + b"\r\n"
    for _ in range(1 << 16):  # 4 GiB: endless for any test, finite for a runaway
        writer.write(chunk)
        await writer.drain()


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass


async def _serve_until_stdin_closes() -> None:
    handlers = {"garbage": _garbage, "endless": _endless, "stall": _stall}
    ports: dict[str, int] = {}
    servers = []

    def guarded(
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                await handler(reader, writer)
            writer.transport.abort()

        return run

    for name, handler in handlers.items():
        server = await asyncio.start_server(guarded(handler), "127.0.0.1", 0)
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # returns at EOF: the parent is done
    os._exit(0)  # connections may still be open: no orderly shutdown needed


class MisbehavingServers:
    """The child process serving ``garbage``, ``endless`` and ``stall`` on ``ports``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("misbehaving servers did not start")
        self.ports: dict[str, int] = json.loads(line)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- an address that never answers -------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_NOBODY_MAC = "02:00:5e:00:53:01"  # locally administered; no interface here has it


class Blackhole:
    """Namespace ``netns`` where ``address``:any never answers (SYNs go out of a veth to a MAC nobody has)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.netns = f"nobs-{tag}-bh"
        self.sink = f"nobs-{tag}-sink"
        octet = 16 + secrets.randbelow(200)
        self.address = f"10.{octet}.0.3"
        self._veth = (f"nobs{tag}a", f"nobs{tag}b")

    def __enter__(self) -> Blackhole:
        a, b = self._veth
        neigh = ["neigh", "replace", self.address, "lladdr", _NOBODY_MAC, "dev", a, "nud", "permanent"]
        steps = [
            ["ip", "netns", "add", self.netns],
            ["ip", "netns", "add", self.sink],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
            ["ip", "-n", self.netns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", self.sink],
            ["ip", "-n", self.netns, "addr", "add", self.address.rsplit(".", 1)[0] + ".1/24", "dev", a],
            ["ip", "-n", self.netns, "link", "set", a, "up"],
            ["ip", "-n", self.sink, "link", "set", b, "up"],
            ["ip", "-n", self.netns, *neigh],
        ]
        try:
            for argv in steps:
                subprocess.run(argv, check=True, capture_output=True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for ns in (self.netns, self.sink):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run ``factory()`` on a fresh event loop in a thread that lives in the namespace (blocking)."""
        box: dict[str, Any] = {}

        def target() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)

            async def main() -> T:
                return await factory()

            try:
                box["value"] = asyncio.run(main())
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"netns-{self.netns}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]


# -- curl --------------------------------------------------------------------------------------------------

CURL_FORMAT = (
    "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total} %{http_version}"
)


def curl_phases(url: str, ca_file: Path | None = None, http1: bool = False) -> tuple[dict[str, float], str]:
    """curl's timings of one request turned into the agent's phases (ms), and the HTTP version it used.

    curl reports cumulative times since the start; a phase is the difference of consecutive marks
    (``tls`` is 0 on plain HTTP, where time_appconnect is 0).
    """
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", "10", "-w", CURL_FORMAT]
    if ca_file is not None:
        argv += ["--cacert", str(ca_file)]
    if http1:
        argv.append("--http1.1")
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout.split()
    lookup, connect, appconnect, start, total = (float(v) * 1000.0 for v in out[:5])
    tls_end = appconnect if appconnect > 0 else connect
    phases = {
        "dns": lookup,
        "connect": connect - lookup,
        "tls": tls_end - connect,
        "ttfb": start - tls_end,
        "transfer": total - start,
    }
    return phases, out[5]


@dataclass
class Bed:
    """Everything of the test bed that runs at once: certificates, nginx, the misbehaving servers."""

    pki: Pki
    nginx: Nginx
    odd: MisbehavingServers

    def port(self, server: str) -> int:
        return self.nginx.ports.get(server) or self.odd.ports[server]

    def url(self, server: str, path: str = "/", scheme: str | None = None) -> str:
        scheme = scheme or ("http" if server in ("plain", "garbage", "endless") else "https")
        return f"{scheme}://localhost:{self.port(server)}{path}"


@contextlib.contextmanager
def running_bed() -> Iterator[Bed]:
    with temp_dir() as directory:
        pki = make_pki(directory)
        nginx = Nginx(pki, directory)
        nginx.start()
        try:
            odd = MisbehavingServers()
            try:
                yield Bed(pki, nginx, odd)
            finally:
                odd.stop()
        finally:
            nginx.stop()


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nobs-httpbed-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    asyncio.run(_serve_until_stdin_closes())
