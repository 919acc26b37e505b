#!/usr/bin/env bash
# The Spark job's tests (tests/spark) in the Spark virtualenv, warnings as errors (tests/spark/pytest.ini).
source "$(dirname "$0")/../lib.sh"
cd "$NETOBS_ROOT"
venv="$(bash scripts/setup.d/40-spark.sh)"
PYTHONPATH="$NETOBS_ROOT/pipelines/spark" \
    "$venv/bin/python" -m pytest -c tests/spark/pytest.ini --rootdir "$NETOBS_ROOT" -q -ra tests/spark "$@"
