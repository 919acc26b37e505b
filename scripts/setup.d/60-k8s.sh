#!/usr/bin/env bash
# kustomize for the k8s/ tests, built from the Go module proxy and cached outside the checkout:
#   $NETOBS_CACHE/bin/kustomize-<version>
# With --print it then prints KUSTOMIZE=<path> on stdout (what tests/deploy reads); progress goes to stderr.
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

( flock 9; build_kustomize ) 9>"$NETOBS_CACHE/locks/kustomize.lock"

if [[ "${1:-}" == "--print" ]]; then
    echo "KUSTOMIZE=$KUSTOMIZE"
fi
