#!/usr/bin/env bash
# What the k8s/ tests need, cached outside the checkout:
#   $NETOBS_CACHE/bin/kustomize-<version>            kustomize, built from the Go module proxy
#   $NETOBS_CACHE/k8s-crds/flink-operator-<version>/  the Flink Kubernetes Operator's CRDs (YAML), from
#                                                     its API jar on Maven Central (fetched with mvn)
# With --print it then prints KUSTOMIZE=<path> and FLINK_CRDS=<dir> on stdout (what tests/deploy reads);
# progress goes to stderr. Strimzi publishes no CRD YAML in a registry package: tests/deploy checks the
# Kafka resources against schemas of its own.
source "$(dirname "$0")/../lib.sh"

KUSTOMIZE_VERSION="v5.7.1"
BIN_DIR="$NETOBS_CACHE/bin"
KUSTOMIZE="$BIN_DIR/kustomize-$KUSTOMIZE_VERSION"
mkdir -p "$BIN_DIR" "$NETOBS_CACHE/locks"

build_kustomize() {
    [[ -x "$KUSTOMIZE" ]] && return 0
    local start=$SECONDS work
    work="$(mktemp -d "$BIN_DIR/.kustomize-XXXXXX")"
    log "building kustomize $KUSTOMIZE_VERSION with go install (first run only)"
    # Two cores are shared with other work: at most two compile jobs.
    GOBIN="$work" GOFLAGS="${GOFLAGS:--p=2}" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
        || { rm -rf "$work"; log "kustomize build failed"; exit 1; }
    mv "$work/kustomize" "$KUSTOMIZE"
    rmdir "$work"
    log "kustomize ready in $((SECONDS - start)) s: $KUSTOMIZE"
}

# The newest flink-kubernetes-operator-api on Maven Central; its jar carries the fabric8-generated CRDs.
FLINK_OPERATOR_VERSION="1.10.0"
FLINK_CRDS="$NETOBS_CACHE/k8s-crds/flink-operator-$FLINK_OPERATOR_VERSION"

fetch_flink_crds() {
    [[ -f "$FLINK_CRDS/.complete" ]] && return 0
    local work="$FLINK_CRDS.tmp" artifact="org.apache.flink:flink-kubernetes-operator-api:$FLINK_OPERATOR_VERSION"
    log "fetching the Flink operator CRDs ($artifact)"
    rm -rf "$work"; mkdir -p "$work"
    mvn -B -q dependency:copy -Dartifact="$artifact" -DoutputDirectory="$work" >"$work.log" 2>&1 \
        || { log "fetching $artifact failed; log: $work.log"; tail -20 "$work.log" >&2; exit 1; }
    (cd "$work" && python3 -m zipfile -e ./*.jar jar && cp jar/META-INF/fabric8/*.yml . && rm -rf jar ./*.jar)
    touch "$work/.complete"
    rm -rf "$FLINK_CRDS"; mv "$work" "$FLINK_CRDS"
}

( flock 9; build_kustomize ) 9>"$NETOBS_CACHE/locks/kustomize.lock"
( flock 9; fetch_flink_crds ) 9>"$NETOBS_CACHE/locks/k8s-crds.lock"

if [[ "${1:-}" == "--print" ]]; then
    echo "KUSTOMIZE=$KUSTOMIZE"
    echo "FLINK_CRDS=$FLINK_CRDS"
fi
