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
