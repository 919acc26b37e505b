#!/usr/bin/env bash
# Setup hook (run by scripts/test): everything the local pipeline stack and its end-to-end tests
# need. Idempotent and cached under $NETOBS_CACHE by version/manifest hash: seconds when warm.
#   - Debian: prometheus, prometheus-alertmanager, a JRE (Kafka), maven; Go >= 1.24 must be on PATH
#   - the OpenTelemetry Collector (OCB build), Jaeger v2 (Go build), Kafka jars (Maven)
#   - the Python Kafka client the e2e tests read topics with (into the agent venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { printf '[20-stack %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if ((${#need[@]})); then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go: the collector and Jaeger modules need Go >= 1.24 (the machine image has it in /usr/local/go;
# Debian bookworm's golang-go is 1.19, too old, so it is not a fallback).
gover="$(go env GOVERSION 2>/dev/null || true)"
minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$gover")"
if [[ ! "$minor" =~ ^[0-9]+$ ]] || ((minor < 24)); then
    say "need Go >= 1.24 on PATH for the collector and Jaeger builds (found: '${gover:-none}')"
    exit 1
fi

# One build at a time: the machine has two cores. Each script is a no-op when cached.
start=$SECONDS
bash "$ROOT/scripts/stack/fetch-kafka.sh" >/dev/null
bash "$ROOT/scripts/stack/build-collector.sh" >/dev/null
bash "$ROOT/scripts/stack/build-jaeger.sh" >/dev/null
say "stack artefacts ready in $((SECONDS - start)) s"

# The e2e tests consume Kafka with confluent-kafka (librdkafka wheels). Until it is in the
# project's dev dependencies, install it into the agent venv here.
if [[ -z "${NETOBS_VENV:-}" ]]; then
    say "NETOBS_VENV unset (not run from scripts/test): skipping the Python test dependencies"
    exit 0
fi
if ! "$NETOBS_VENV/bin/python" -c "import confluent_kafka" 2>/dev/null; then
    say "installing confluent-kafka into $NETOBS_VENV"
    "$NETOBS_VENV/bin/python" -m pip install -q "confluent-kafka>=2.6,<3"
fi
