"""An example service instrumented with OpenTelemetry, for the joined-trace demo and test.

A plain ``http.server`` that extracts the W3C ``traceparent`` of each request, serves it inside a
SERVER span (with a child span for its pretend database call) and sends its spans over OTLP to
the collector. A netobs HTTP check injects ``traceparent``, so the check's trace in Jaeger holds
the agent's phase spans and this service's spans together.

    python examples/instrumented_service.py --port 18090 --otlp 127.0.0.1:4317

Paths: ``/`` (200), ``/health`` (200), ``/slow`` (200 after 300 ms), ``/broken`` (500).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "demo-shop"


def make_tracer(otlp_endpoint: str) -> tuple[TracerProvider, trace.Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    return provider, provider.get_tracer("netobs.examples.instrumented_service")


def make_handler(tracer: trace.Tracer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            parent = extract(dict(self.headers.items()))
            with tracer.start_as_current_span(
                f"GET {path}",
                context=parent,
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": "GET", "url.path": path},
            ) as span:
                status, body = self._serve(path)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, path: str) -> tuple[int, bytes]:
            if path in {"/", "/health"}:
                with tracer.start_as_current_span("db.query", attributes={"db.system.name": "sqlite"}):
                    time.sleep(0.005)
                return 200, b"ok\n"
            if path == "/slow":
                with tracer.start_as_current_span("slow.work"):
                    time.sleep(0.3)
                return 200, b"slow ok\n"
            if path == "/broken":
                return 500, b"broken\n"
            return 404, b"not found\n"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--otlp", default="127.0.0.1:4317", help="collector OTLP gRPC endpoint")
    args = parser.parse_args(argv)

    provider, tracer = make_tracer(args.otlp)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(tracer))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{SERVICE_NAME} listening on http://{args.host}:{args.port}/ (OTLP to {args.otlp})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
