#!/usr/bin/env bash
# The Flink job's end-to-end tests, in the Flink virtualenv (real Kafka, Alertmanager, mini-cluster).
source "$(dirname "$0")/../lib.sh"
cd "$NETOBS_ROOT"
eval "$(bash scripts/setup.d/50-flink.sh --print | sed 's/^/export /')"
export NETOBS_FLINK_JARS="$FLINK_JARS"
export PYTHONPATH="$NETOBS_ROOT/pipelines/flink:$NETOBS_ROOT/agent:$NETOBS_ROOT"
"$FLINK_VENV/bin/python" -m pytest -c tests/flink/pytest.ini --rootdir "$NETOBS_ROOT" -p no:cacheprovider -q -ra \
    tests/flink "$@"
