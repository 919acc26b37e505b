#!/usr/bin/env bash
# Create (once) the Spark job's virtualenv: $NETOBS_CACHE/venv/spark-<hash of requirements + python>.
# Prints the venv path on stdout; progress goes to stderr. Java 17 must be installed (apt-packages.txt).
source "$(dirname "$0")/../lib.sh"

requirements="$NETOBS_ROOT/pipelines/spark/requirements.txt"
key="$( (cat "$requirements"; python3 --version) | sha256sum | cut -c1-16)"
venv="$NETOBS_CACHE/venv/spark-$key"
lock="$NETOBS_CACHE/locks/spark-venv.lock"
mkdir -p "$(dirname "$lock")"

if [[ ! -f "$venv/.complete" ]]; then
    # Concurrent callers (tests, `netobs report`) wait for the one building the venv.
    exec 9>"$lock"
    flock 9
    if [[ ! -f "$venv/.complete" ]]; then
        log "creating the Spark virtualenv $venv (first run only; pyspark is a large download)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip setuptools wheel >&2
        "$venv/bin/pip" install -q -r "$requirements" >&2
        touch "$venv/.complete"
        log "Spark virtualenv ready"
    fi
    exec 9>&-
fi
if ! command -v java >/dev/null; then
    log "warning: no java on PATH; Spark needs Java 17 (openjdk-17-jre-headless)"
fi
echo "$venv"
