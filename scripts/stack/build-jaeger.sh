#!/usr/bin/env bash
# Build the Jaeger v2 all-in-one binary from Go modules. Prints the path of the binary.
# Cached by the hash of scripts/stack/jaeger/go.mod (+ go.sum) and the Go version.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SRC="$REPO_ROOT/scripts/stack/jaeger"
HASH_EXTRA="$(go env GOVERSION)"
KEY="$(hash_files "$SRC/go.mod" $(ls "$SRC/go.sum" 2>/dev/null))"
OUT_DIR="$NETOBS_CACHE/jaeger/$KEY"
BIN="$OUT_DIR/jaeger"

build() {
    if [[ -x "$BIN" ]]; then return 0; fi
    local work="$OUT_DIR.tmp"
    rm -rf "$work"; mkdir -p "$work/src"
    cp "$SRC/go.mod" "$work/src/"
    if [[ -f "$SRC/go.sum" ]]; then cp "$SRC/go.sum" "$work/src/"; fi
    log "building Jaeger v2 (key $KEY); a cold build takes several minutes"
    local start=$SECONDS
    compile() (
        cd "$work/src"
        # -mod=mod lets go fill go.sum for the packages the binary needs (no test deps).
        CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags="-s -w" -o "$work/jaeger" \
            github.com/jaegertracing/jaeger/cmd/jaeger
    )
    with_heartbeat "Jaeger build" compile >"$work/build.log" 2>&1 || {
        log "Jaeger build failed; log: $work/build.log"; tail -30 "$work/build.log" >&2; exit 1; }
    cp "$work/src/go.sum" "$work/go.sum"
    rm -rf "$work/src"
    rm -rf "$OUT_DIR"; mv "$work" "$OUT_DIR"
    log "Jaeger built in $((SECONDS - start)) s: $BIN"
}

with_lock jaeger build
echo "$BIN"
