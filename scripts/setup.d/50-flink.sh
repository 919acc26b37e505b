#!/usr/bin/env bash
# The PyFlink job's virtualenv and connector jars, both cached under $NETOBS_CACHE:
#   venv: $NETOBS_CACHE/venv/flink-<hash of pipelines/flink/requirements.txt + python version>
#   jars: $NETOBS_CACHE/flink-jars/<hash of pom.xml + java/>/*.jar  (Maven Central via mvn, plus
#         netobs-flink.jar: the job's Java helpers compiled with javac against flink-dist)
#   native: $NETOBS_CACHE/flink-native/<hash of the job's Python sources + venv>/netobs_flink: the package
#         with its detector core compiled by mypyc (pipelines/flink/build_native.py; gcc, ~15 s)
# With --print it then prints FLINK_VENV=..., FLINK_JARS=... and FLINK_PYTHONPATH=... (the folder holding
# the netobs_flink package the job runs from: the compiled copy, or pipelines/flink itself when
# NETOBS_FLINK_NATIVE=0) on stdout (what `netobs flink` reads); progress goes to stderr.
source "$(dirname "$0")/../lib.sh"

REQ="$NETOBS_ROOT/pipelines/flink/requirements.txt"
POM="$NETOBS_ROOT/pipelines/flink/pom.xml"
venv_key="$( (cat "$REQ"; python3 --version) | sha256sum | cut -c1-16)"
JAVA_SRC="$NETOBS_ROOT/pipelines/flink/java"
jar_key="$(cat "$POM" "$JAVA_SRC"/io/netobs/flink/*.java | sha256sum | cut -c1-16)"
FLINK_VENV="$NETOBS_CACHE/venv/flink-$venv_key"
FLINK_SRC="$NETOBS_ROOT/pipelines/flink"
native_key="$( (cd "$FLINK_SRC" && cat build_native.py netobs_flink/*.py netobs_flink/detect/*.py; echo "$venv_key") \
    | sha256sum | cut -c1-16)"
NATIVE_DIR="$NETOBS_CACHE/flink-native/$native_key"
JAR_DIR="$NETOBS_CACHE/flink-jars/$jar_key"
mkdir -p "$NETOBS_CACHE/locks"

make_venv() {
    [[ -f "$FLINK_VENV/.complete" ]] && return 0
    local start=$SECONDS
    log "creating the Flink virtualenv $FLINK_VENV (first run only: apache-flink is a large download)"
    rm -rf "$FLINK_VENV"
    python3 -m venv "$FLINK_VENV"
    "$FLINK_VENV/bin/pip" install -q --upgrade pip setuptools wheel
    "$FLINK_VENV/bin/pip" install -q --progress-bar off -r "$REQ"
    touch "$FLINK_VENV/.complete"
    log "Flink virtualenv ready in $((SECONDS - start)) s"
}

fetch_jars() {
    [[ -f "$JAR_DIR/.complete" ]] && return 0
    local start=$SECONDS work="$JAR_DIR.tmp"
    log "fetching the Flink connector jars with Maven"
    rm -rf "$work"; mkdir -p "$work"
    mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$work" -DincludeScope=runtime \
        >"$work.log" 2>&1 || { log "jar fetch failed; log: $work.log"; tail -30 "$work.log" >&2; exit 1; }
    local flink_lib
    flink_lib="$(echo "$FLINK_VENV"/lib/python3*/site-packages/pyflink/lib)"
    mkdir -p "$work.classes"
    javac -nowarn -d "$work.classes" -cp "$flink_lib/*" "$JAVA_SRC"/io/netobs/flink/*.java
    jar cf "$work/netobs-flink.jar" -C "$work.classes" .
    rm -rf "$work.classes"
    touch "$work/.complete"
    rm -rf "$JAR_DIR"; mv "$work" "$JAR_DIR"
    log "Flink jars fetched in $((SECONDS - start)) s: $JAR_DIR"
}

build_native() {
    [[ -f "$NATIVE_DIR/.complete" ]] && return 0
    mkdir -p "$NETOBS_CACHE/flink-native"
    "$FLINK_VENV/bin/python" "$FLINK_SRC/build_native.py" "$NATIVE_DIR" \
        || { log "the mypyc build failed (set NETOBS_FLINK_NATIVE=0 to run the job interpreted)"; exit 1; }
    touch "$NATIVE_DIR/.complete"
    # Keep the 4 newest builds (each source change makes one; ~1.5 MB each).
    ls -1dt "$NETOBS_CACHE"/flink-native/*/ | tail -n +5 | xargs -r rm -rf
}

( flock 9; make_venv ) 9>"$NETOBS_CACHE/locks/flink-venv.lock"
( flock 9; fetch_jars ) 9>"$NETOBS_CACHE/locks/flink-jars.lock"
if [[ "${NETOBS_FLINK_NATIVE:-1}" == "0" ]]; then
    FLINK_PYTHONPATH="$FLINK_SRC"
else
    ( flock 9; build_native ) 9>"$NETOBS_CACHE/locks/flink-native.lock"
    FLINK_PYTHONPATH="$NATIVE_DIR"
fi

if [[ "${1:-}" == "--print" ]]; then
    echo "FLINK_VENV=$FLINK_VENV"
    echo "FLINK_JARS=$JAR_DIR"
    echo "FLINK_PYTHONPATH=$FLINK_PYTHONPATH"
fi
