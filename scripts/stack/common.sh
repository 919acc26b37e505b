# Shared helpers for the stack build/fetch scripts (sourced, not executed).
# Every artefact is cached under ${NETOBS_CACHE:-$HOME/.cache/netobs}, keyed by a
# version or manifest hash, so a second run is a no-op.
set -euo pipefail

NETOBS_CACHE="${NETOBS_CACHE:-$HOME/.cache/netobs}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || echo "$HOME/go/pkg/mod")}"
export GOCACHE="${GOCACHE:-$(go env GOCACHE 2>/dev/null || echo "$HOME/.cache/go-build")}"
# Two cores are shared with other work: one Go build at a time, two compile jobs.
export GOFLAGS="${GOFLAGS:--p=2}"

log() { printf '[netobs-stack] %s\n' "$*" >&2; }
exec 3>&2  # the caller's stderr, for progress lines while a step's output goes to its log file

# hash_files FILE... -> short sha256 over the files' contents plus extra key material in $HASH_EXTRA.
# Whole-line comments (#, //, <!-- -->) do not count: editing a comment must not force a rebuild.
hash_files() {
    { cat "$@" | grep -Ev '^[[:space:]]*(#|//|<!--)'; printf '%s' "${HASH_EXTRA:-}"; } |
        sha256sum | cut -c1-16
}

# with_lock NAME CMD... -> run CMD under an exclusive lock so that parallel callers
# (setup hook and `netobs stack up`) never build the same artefact twice at once.
with_lock() {
    local name="$1"; shift
    mkdir -p "$NETOBS_CACHE/locks"
    (
        flock 9
        "$@"
    ) 9>"$NETOBS_CACHE/locks/$name.lock"
}

# with_heartbeat WHAT CMD... -> run CMD, printing "WHAT: still running (N s)" every 30 s so a
# long cold build is visibly alive.
with_heartbeat() {
    local what="$1"; shift
    local start=$SECONDS
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        while :; do
            sleep 30 & nap=$!
            wait "$nap"
            log "$what: still running ($((SECONDS - start)) s)" 2>&3
        done
    ) &
    local beat=$!
    local rc=0
    "$@" || rc=$?
    kill "$beat" 2>/dev/null || true
    wait "$beat" 2>/dev/null || true
    return "$rc"
}
