"""The TCP probe against real servers: nginx (plain and TLS with test-made certificates), a closed port, a
stalled TLS peer and an address that never answers; connect time compared with curl's."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netobs.config import TcpCheck
from netobs.probes.tcp import TcpProbe
from netobs.result import ErrorType, ProbeResult
from netobs.runner import Runner
from netobs.telemetry import Telemetry
from tests import cycles
from tests.real import busy, httpbed

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def bed() -> Iterator[httpbed.Bed]:
    with httpbed.running_bed() as running:
        yield running


def _check(target: str, **fields: Any) -> TcpCheck:
    fields.setdefault("timeout_s", 3.0)
    return TcpCheck(name="tcp", type="tcp", targets=[target], interval_s=30.0, **fields)


async def _run(check: TcpCheck, probe: TcpProbe | None = None) -> ProbeResult:
    tel = Telemetry.in_memory()
    runner = Runner("a1", "test", {"tcp": probe or TcpProbe()}, sinks=[tel.record], tracer=tel.tracer)
    result = await runner.run(check, check.targets[0])
    spans = tel.span_exporter.get_finished_spans()
    assert sorted(s.name for s in spans if s.parent is not None) == sorted(result.phases_ms)
    return result


async def test_connect(bed: httpbed.Bed) -> None:
    result = await _run(_check(f"localhost:{bed.port('plain')}"))
    assert result.success, result.error_message
    assert set(result.phases_ms) == {"dns", "connect"}
    assert result.phases_ms["connect"] < 50
    assert result.resolved_ip == "127.0.0.1"
    assert result.tcp is not None
    assert result.tcp.port == bed.port("plain")
    assert result.tcp.tls is None


async def test_port_from_the_check(bed: httpbed.Bed) -> None:
    result = await _run(_check("127.0.0.1", port=bed.port("plain")))
    assert result.success, result.error_message
    assert result.tcp is not None
    assert result.tcp.port == bed.port("plain")


async def test_an_address_has_no_dns_phase(bed: httpbed.Bed) -> None:
    """Nothing is looked up for an IP address: no dns phase and no dns span (as ICMP, ping and curl)."""
    result = await _run(_check(f"127.0.0.1:{bed.port('plain')}"))
    assert result.success, result.error_message
    assert set(result.phases_ms) == {"connect"}
    assert result.resolved_ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("target", "address", "ip_version"), [("127.0.0.1:{port}", "127.0.0.1", "6"), ("[::1]:{port}", "::1", "4")]
)
async def test_an_address_of_the_other_family_fails_to_resolve(
    bed: httpbed.Bed, target: str, address: str, ip_version: str
) -> None:
    result = await _run(_check(target.format(port=bed.port("plain")), ip_version=ip_version))
    assert (result.success, result.error_type) == (False, ErrorType.RESOLVE)
    assert result.error_message == f"{address} is not an IPv{ip_version} address"
    assert result.phases_ms == {}


@pytest.mark.parametrize(
    ("server", "fields", "expiry_days", "subject"),
    [
        ("valid", {}, (364.9, 365.0), "CN=valid.netobs.test"),
        ("expiring", {}, (4.99, 5.0), "CN=expiring.netobs.test"),
        ("wrongname", {"tls_server_name": "other.test"}, (364.9, 365.0), "CN=wrongname.netobs.test"),
        ("expired", {"tls_verify": False}, (-1.01, -0.99), "CN=expired.netobs.test"),
    ],
)
async def test_tls(
    bed: httpbed.Bed, server: str, fields: dict[str, Any], expiry_days: tuple[float, float], subject: str
) -> None:
    check = _check(f"localhost:{bed.port(server)}", tls=True, ca_file=str(bed.pki.ca_file), **fields)
    result = await _run(check)
    assert result.success, result.error_message
    assert set(result.phases_ms) == {"dns", "connect", "tls"}
    assert result.tcp is not None
    tls = result.tcp.tls
    assert tls is not None
    assert tls.version == "TLSv1.3"
    assert tls.cert_subject == subject
    assert tls.cert_issuer == "CN=netobs test CA"
    assert tls.cert_expiry_days is not None
    assert expiry_days[0] < tls.cert_expiry_days <= expiry_days[1]
    assert tls.chain_verified is fields.get("tls_verify", True)


async def test_the_tls_handshake_is_the_kernels_not_the_delay_of_a_busy_agent(bed: httpbed.Bed) -> None:
    """The loop is held for 500 ms right after the ClientHello went out: the server's answer waits in the
    socket, and the tls phase runs to the kernel's stamp of its arrival (the run takes the 500 ms)."""
    check = _check(f"127.0.0.1:{bed.port('valid')}", tls=True, ca_file=str(bed.pki.ca_file))
    probe = TcpProbe(connector=busy.held_connector(busy.TLS13_SENDS["client_hello"]))
    result = await _run(check, probe)
    assert result.success, result.error_message
    assert result.duration_ms >= busy.HOLD_S * 1000
    assert 0 < result.phases_ms["tls"] < 50, result.phases_ms


@pytest.mark.parametrize(
    ("server", "ca", "message"),
    [
        ("expired", True, "certificate has expired"),
        ("wrongname", True, "Hostname mismatch"),
        ("valid", False, "unable to get local issuer certificate"),
    ],
)
async def test_certificate_failures(bed: httpbed.Bed, server: str, ca: bool, message: str) -> None:
    check = _check(f"localhost:{bed.port(server)}", tls=True, ca_file=str(bed.pki.ca_file) if ca else None)
    result = await _run(check)
    assert result.error_type == str(ErrorType.TLS_CERT)
    assert message in (result.error_message or "")


async def test_refused() -> None:
    result = await _run(_check(f"127.0.0.1:{httpbed.free_port()}"))
    assert result.error_type == str(ErrorType.REFUSED)
    assert result.duration_ms < 1000


async def test_stalled_tls_peer_ends_at_the_deadline(bed: httpbed.Bed) -> None:
    result = await _run(_check(f"localhost:{bed.port('stall')}", tls=True, timeout_s=1.0))
    assert result.error_type in {str(ErrorType.TIMEOUT), str(ErrorType.TLS_HANDSHAKE)}
    assert 1000 <= result.duration_ms < 1300
    assert "tls" in result.phases_ms


@pytest.mark.parametrize(
    ("server", "fields", "error"),
    [
        ("plain", {}, None),
        ("valid", {"tls": True}, None),
        ("stall", {"tls": True, "timeout_s": 0.3}, ErrorType.TIMEOUT),
        ("closed", {}, ErrorType.REFUSED),
    ],
)
async def test_runs_leave_no_reference_cycles(
    bed: httpbed.Bed, server: str, fields: dict[str, Any], error: ErrorType | None
) -> None:
    port = httpbed.free_port() if server == "closed" else bed.port(server)
    check = _check(f"localhost:{port}", ca_file=str(bed.pki.ca_file), **fields)
    with cycles.production_runner({"tcp": TcpProbe()}) as (runner, exporter):
        garbage, results = await cycles.cyclic_garbage(lambda: runner.run(check, check.targets[0]))
    assert {r.error_type for r in results} == {None if error is None else str(error)}
    assert not garbage, f"{cycles.RUNS} runs left objects in reference cycles: {garbage.most_common(8)}"
    assert exporter.items >= len(results)


async def test_address_that_never_answers_times_out() -> None:
    with httpbed.Blackhole() as hole:
        check = _check(f"{hole.address}:443", timeout_s=1.0)
        result = await asyncio.to_thread(hole.run, lambda: _run(check))
    assert result.error_type == str(ErrorType.TIMEOUT)
    assert 1000 <= result.duration_ms < 1300
    assert result.resolved_ip == hole.address


async def test_a_network_without_a_route_is_unreachable() -> None:
    # In the blackhole namespace only its own /24 has a route: a connect anywhere else fails at once
    # (ENETUNREACH from the kernel, nothing sent) and must map to "unreachable", not to a timeout.
    with httpbed.Blackhole() as hole:
        check = _check("192.0.2.1:443", timeout_s=1.0)
        result = await asyncio.to_thread(hole.run, lambda: _run(check))
    assert result.error_type == str(ErrorType.UNREACHABLE), result.error_message
    assert result.duration_ms < 500


async def test_connect_is_the_handshake_not_the_delay_of_a_busy_agent(bed: httpbed.Bed) -> None:
    """The loop is held for 60 ms right after the SYN went out (an agent with more to do than CPU): the
    connect phase and its span still say what the handshake took, from the kernel, not when the loop
    got round to the socket."""
    tel = Telemetry.in_memory()
    runner = Runner("a1", "test", {"tcp": TcpProbe()}, sinks=[tel.record], tracer=tel.tracer)
    check = _check(f"127.0.0.1:{bed.port('plain')}")
    run = asyncio.create_task(runner.run(check, check.targets[0]))
    asyncio.get_running_loop().call_soon(time.sleep, 0.06)  # after the run's first step: its connect
    result = await run
    assert result.success, result.error_message
    assert result.duration_ms >= 60
    assert 0 < result.phases_ms["connect"] < 5.0
    span = next(s for s in tel.span_exporter.get_finished_spans() if s.name == "connect")
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == round(result.phases_ms["connect"] * 1_000_000)


async def test_connect_time_agrees_with_curl(bed: httpbed.Bed) -> None:
    agent, curl = [], []
    for _ in range(5):
        result = await _run(_check(f"localhost:{bed.port('plain')}"))
        assert result.success
        agent.append(result.phases_ms["connect"])
        phases, _ = await asyncio.to_thread(httpbed.curl_phases, bed.url("plain"))
        curl.append(phases["connect"])
    a, c = statistics.median(agent), statistics.median(curl)
    print(f"\nTCP connect, medians of 5: agent {a:.3f} ms, curl {c:.3f} ms")
    # loopback connects take well under a millisecond; allow scheduling noise on a loaded machine
    assert abs(a - c) <= 15.0 + 0.5 * max(a, c)
