#!/usr/bin/env bash
# Build the netobs OpenTelemetry Collector with the OpenTelemetry Collector Builder.
# Prints the path of the binary on stdout. Cached by the hash of the manifest and the Go version.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OCB_VERSION="v0.156.0"   # keep equal to the component versions in otel-collector/builder-config.yaml
MANIFEST="$REPO_ROOT/otel-collector/builder-config.yaml"
HASH_EXTRA="$OCB_VERSION $(go env GOVERSION)"
KEY="$(hash_files "$MANIFEST")"
OUT_DIR="$NETOBS_CACHE/otelcol/$KEY"
BIN="$OUT_DIR/netobs-otelcol"

build() {
    if [[ -x "$BIN" ]]; then return 0; fi
    local ocb_dir="$NETOBS_CACHE/tools/ocb-$OCB_VERSION"
    if [[ ! -x "$ocb_dir/builder" ]]; then
        log "installing OpenTelemetry Collector Builder $OCB_VERSION"
        GOBIN="$ocb_dir" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
    fi
    local work="$OUT_DIR.tmp"
    rm -rf "$work"; mkdir -p "$work"
    # The manifest leaves output_path unset; point it at the cache.
    sed "s|^dist:|dist:\n  output_path: $work/src|" "$MANIFEST" >"$work/manifest.yaml"
    log "building collector (manifest $KEY); a cold build takes several minutes"
    local start=$SECONDS
    # The builder's own `go mod tidy` also resolves the components' *test* imports, and
    # some of those (contrib pkg/golden) are not on the module proxy at this version.
    # So: let the builder only generate the sources, then tidy with -e (tolerates the
    # missing test-only modules) and compile ourselves.
    # The builder writes go.mod (core modules pinned to its version) before its tidy step,
    # so its failure there is expected; a missing go.mod is not.
    compile() {
        "$ocb_dir/builder" --config "$work/manifest.yaml" --skip-compilation ||
            echo "builder's go mod tidy failed (expected: test-only modules missing); continuing"
        test -f "$work/src/go.mod" &&
        (cd "$work/src" && go mod tidy -e &&
            CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o netobs-otelcol .)
    }
    with_heartbeat "collector build" compile >"$work/build.log" 2>&1 || {
        log "collector build failed; log: $work/build.log"; tail -30 "$work/build.log" >&2; exit 1; }
    cp "$work/src/netobs-otelcol" "$work/netobs-otelcol"
    rm -rf "$work/src"
    rm -rf "$OUT_DIR"; mv "$work" "$OUT_DIR"
    log "collector built in $((SECONDS - start)) s: $BIN"
}

with_lock otelcol build
echo "$BIN"
