#!/usr/bin/env bash
# The Flink job's tests, in the Flink virtualenv: the detector unit tests again on the mypyc-compiled build
# the job runs (FLINK_PYTHONPATH), then tests/flink (real Kafka, Alertmanager, mini-cluster; the job and
# these tests import the compiled package too; test_native_build.py compares it with the sources).
source "$(dirname "$0")/../lib.sh"
cd "$NETOBS_ROOT"
eval "$(bash scripts/setup.d/50-flink.sh --print | sed 's/^/export /')"
export NETOBS_FLINK_JARS="$FLINK_JARS"
export PYTHONPATH="$FLINK_PYTHONPATH:$NETOBS_ROOT/agent:$NETOBS_ROOT"
log "detector unit tests on the compiled build ($FLINK_PYTHONPATH)"
units=()
for f in tests/unit/test_detect_*.py tests/unit/test_flink_*.py; do
    # test_detect_replay drives the agent's CLI (not in this venv); detector_trace.py replays compiled.
    [[ "$f" == */test_detect_replay.py ]] || units+=("$f")
done
"$FLINK_VENV/bin/python" -m pytest -c tests/flink/pytest.ini --rootdir "$NETOBS_ROOT" -p no:cacheprovider -q "${units[@]}"
"$FLINK_VENV/bin/python" -m pytest -c tests/flink/pytest.ini --rootdir "$NETOBS_ROOT" -p no:cacheprovider -q -ra \
    tests/flink "$@"
