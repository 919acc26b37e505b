#!/usr/bin/env bash
# Fetch Apache Kafka jars from Maven Central with Maven. Prints the lib directory on stdout.
# Cached by the hash of scripts/stack/kafka/pom.xml.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

POM="$REPO_ROOT/scripts/stack/kafka/pom.xml"
KEY="$(hash_files "$POM")"
LIB_DIR="$NETOBS_CACHE/kafka/$KEY/lib"

fetch() {
    if [[ -f "$LIB_DIR/.complete" ]]; then return 0; fi
    local work="$NETOBS_CACHE/kafka/$KEY.tmp"
    rm -rf "$work"; mkdir -p "$work"
    log "fetching Kafka jars with Maven (pom $KEY)"
    local start=$SECONDS
    mvn -B -q -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$work/lib" -DincludeScope=runtime >"$work/fetch.log" 2>&1 || {
        log "Kafka fetch failed; log: $work/fetch.log"; tail -30 "$work/fetch.log" >&2; exit 1; }
    touch "$work/lib/.complete"
    rm -rf "$NETOBS_CACHE/kafka/$KEY"; mv "$work" "$NETOBS_CACHE/kafka/$KEY"
    log "Kafka jars fetched in $((SECONDS - start)) s: $LIB_DIR"
}

with_lock kafka fetch
echo "$LIB_DIR"
