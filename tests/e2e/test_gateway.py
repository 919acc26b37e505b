"""The k8s gateway config on loopback: OTLP over TLS with bearer tokens, routed like the local stack."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from netobs.stack.components import Collector
from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS
from tests.certs import self_signed
from tests.e2e.backends import TopicReader, result_ids, wait_for
from tests.e2e.emitter import Emitter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-gateway-token-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _self_signed(directory: Path) -> tuple[Path, Path]:
    return self_signed(directory / "tls.crt", directory / "tls.key", "localhost", dns_names=["localhost"])


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    workdir = tmp_path_factory.mktemp("gateway")
    cert_file, key_file = _self_signed(workdir)
    tokens = workdir / "tokens"
    tokens.write_text(f"{TOKEN} # e2e agents\n")
    ports = stack.layout.ports
    grpc_port, health_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "NETOBS_GATEWAY_LISTEN_HOST": "127.0.0.1",
        "NETOBS_GATEWAY_OTLP_GRPC_PORT": str(grpc_port),
        "NETOBS_GATEWAY_OTLP_HTTP_PORT": str(_free_port()),
        "NETOBS_GATEWAY_HEALTH_PORT": str(health_port),
        "NETOBS_GATEWAY_METRICS_PORT": str(_free_port()),
        "NETOBS_GATEWAY_TLS_CERT": str(cert_file),
        "NETOBS_GATEWAY_TLS_KEY": str(key_file),
        "NETOBS_GATEWAY_TOKENS_FILE": str(tokens),
        "NETOBS_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{ports.jaeger_otlp_grpc}",
        "NETOBS_PROMETHEUS_REMOTE_WRITE_URL": f"http://127.0.0.1:{ports.prometheus}/api/v1/write",
        "NETOBS_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
        "NETOBS_OTELCOL_STORAGE_DIR": str(workdir / "storage"),
    }
    binary = Collector(stack.layout).binary
    log = (workdir / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "--config", str(REPO / "otel-collector" / "config.gateway.yaml")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert proc.poll() is None, (workdir / "gateway.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    try:
        wait_for("gateway health", healthy, timeout_s=30, interval_s=0.3)
        yield grpc_port, cert_file
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _exporter(port: int, cert_file: Path, token: str | None) -> OTLPLogExporter:
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_file.read_bytes())
    headers = {"authorization": f"Bearer {token}"} if token else None
    return OTLPLogExporter(endpoint=f"localhost:{port}", credentials=credentials, headers=headers, timeout=10)


def test_gateway_accepts_tls_with_a_token_and_routes_results_to_kafka(stack: Stack, gateway: tuple[int, Path]) -> None:
    port, cert_file = gateway
    # The emitter builds the result bodies; the gateway client sends them over TLS with the token.
    bodies = Emitter(f"127.0.0.1:{stack.layout.ports.otelcol_otlp_grpc}")
    provider = LoggerProvider(resource=Resource.create({"service.name": "netobs-agent"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(_exporter(port, cert_file, TOKEN)))
    logger = provider.get_logger("netobs.e2e.gateway")
    sent = set()
    for i in range(5):
        rid = f"gw-{time.time_ns()}-{i}"
        logger.emit(
            body=f'{{"result_id":"{rid}","agent_id":"{bodies.agent_id}"}}',
            severity_number=SeverityNumber.INFO,
            attributes={"netobs.result.id": rid},
        )
        sent.add(rid)
    assert provider.force_flush(20_000)
    provider.shutdown()
    bodies.shutdown()

    reader = TopicReader(stack.layout.ports, RESULTS.name)
    try:
        values = reader.wait_for(lambda vs: sent <= set(result_ids(vs)), timeout_s=60)
    finally:
        reader.close()
    assert sent <= set(result_ids(values))


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_gateway_rejects_a_missing_or_wrong_token(gateway: tuple[int, Path], token: str | None) -> None:
    port, cert_file = gateway
    channel = grpc.secure_channel(
        f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=cert_file.read_bytes())
    )
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(logs_service_pb2.ExportLogsServiceRequest(), metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


def test_gateway_rejects_plaintext(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(
                logs_service_pb2.ExportLogsServiceRequest(),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
