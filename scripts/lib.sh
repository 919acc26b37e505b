# Shared shell helpers for netobs scripts. Source it; do not run it.
# Everything heavy is cached outside the checkout, under $NETOBS_CACHE, keyed by version.
set -euo pipefail

NETOBS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NETOBS_ROOT
export NETOBS_CACHE="${NETOBS_CACHE:-$HOME/.cache/netobs}"
mkdir -p "$NETOBS_CACHE"

log() { printf '[netobs %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Install the Debian packages listed in scripts/apt-packages.txt that are missing.
ensure_apt_packages() {
    local missing=() pkg
    while read -r pkg; do
        pkg="${pkg%%#*}"; pkg="${pkg// /}"
        [[ -z "$pkg" ]] && continue
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done < "$NETOBS_ROOT/scripts/apt-packages.txt"
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# The agent's virtualenv, keyed by pyproject.toml and the Python version; the project itself is
# installed editable on every call (seconds), so a clone elsewhere reuses the same dependencies.
ensure_agent_venv() {
    local key
    key="$( (cat "$NETOBS_ROOT/pyproject.toml"; python3 --version) | sha256sum | cut -c1-16)"
    NETOBS_VENV="$NETOBS_CACHE/venv/agent-$key"
    mkdir -p "$NETOBS_CACHE/venv"
    # One builder at a time (parallel shells would otherwise delete each other's half-built venv).
    exec 9>"$NETOBS_CACHE/venv/.agent.lock"
    flock 9
    if [[ ! -x "$NETOBS_VENV/bin/netobs" || ! -f "$NETOBS_VENV/.complete" ]]; then
        log "creating the agent virtualenv $NETOBS_VENV (first run only)"
        rm -rf "$NETOBS_VENV"
        python3 -m venv "$NETOBS_VENV"
        "$NETOBS_VENV/bin/pip" install -q --upgrade pip setuptools wheel
        "$NETOBS_VENV/bin/pip" install -q -e "$NETOBS_ROOT[dev]"
        touch "$NETOBS_VENV/.complete"
    fi
    "$NETOBS_VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$NETOBS_ROOT" >/dev/null
    flock -u 9
    export NETOBS_VENV
    export PATH="$NETOBS_VENV/bin:$PATH"
}
