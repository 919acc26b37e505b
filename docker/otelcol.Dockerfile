# syntax=docker/dockerfile:1
# The netobs collector distribution (otel-collector/builder-config.yaml), built with the OpenTelemetry
# Collector Builder as scripts/stack/build-collector.sh does locally. The k8s gateway runs this image.
# Build from the repository root:
#   docker build -f docker/otelcol.Dockerfile -t netobs/otelcol:0.156.0-netobs .
FROM golang:1.25-bookworm AS build
ARG OCB_VERSION=v0.156.0
RUN go install go.opentelemetry.io/collector/cmd/builder@${OCB_VERSION}
WORKDIR /build
COPY otel-collector/builder-config.yaml manifest.yaml
RUN sed -i 's|^dist:|dist:\n  output_path: /build/src|' manifest.yaml \
 && (builder --config manifest.yaml --skip-compilation || true) \
 && cd src && go mod tidy -e && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /netobs-otelcol .

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /netobs-otelcol /netobs-otelcol
USER 10001:10001
ENTRYPOINT ["/netobs-otelcol"]
