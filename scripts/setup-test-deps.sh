#!/usr/bin/env bash
# Installs the system packages the integration tests use, from Debian's archive,
# and does nothing when they are already there (safe to run again):
#   prometheus  /usr/bin/prometheus and promtool, for tests/prometheus.rs
#   chromium    headless browser, for the HTML report's rendering test
# and, from PyPI, Python's `websockets` (WebSocket servers of another stack:
# tests/servers/ws_token.py for tests/python_ws.rs, jsonrpc_ooo.py for replies
# matched by id out of order, push_seq.py for server push) and
# `kubernetes-validate` (the Kubernetes API's schemas, offline: tests/k8s.rs
# validates the manifests `wsherd k8s run` renders and deploy/kubernetes/);
# from the npm
# registry, into tests/servers/node/node_modules as its package-lock.json pins
# them:
#   ws          ws_deflate.js (tests/node_ws.rs) and under graphql-ws
#   socket.io   socketio_server.js, for the Socket.IO v4 tests
#   graphql-ws  graphql_ws_server.js (with graphql), for the GraphQL over
#   graphql     WebSocket (graphql-transport-ws) tests
# Needs root (or sudo) and apt-get; scripts/test.sh (the README's test command)
# runs it before `cargo test`.
set -euo pipefail

# Python websockets, pinned: tests/servers/ws_token.py uses its asyncio server.
WEBSOCKETS_VERSION=13.1
if ! python3 -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "setup-test-deps: installing Python websockets==$WEBSOCKETS_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "websockets==$WEBSOCKETS_VERSION"
fi

# kubernetes-validate, pinned: its schemas of the Kubernetes API check the
# manifests offline (tests/k8s.rs runs `kubernetes-validate --strict`).
KUBERNETES_VALIDATE_VERSION=1.37.0
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
    echo "setup-test-deps: installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# Node packages, as tests/servers/node/package-lock.json pins them: `npm ci`
# (all of them, afresh) when any one is missing.
NODE_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/servers/node"
NODE_PACKAGES=(ws socket.io graphql-ws graphql)
missing=()
for pkg in "${NODE_PACKAGES[@]}"; do
    [ -f "$NODE_DIR/node_modules/$pkg/package.json" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v npm >/dev/null 2>&1 || { echo "setup-test-deps: npm is needed (Node.js 20 or later)" >&2; exit 1; }
    echo "setup-test-deps: installing Node ${NODE_PACKAGES[*]} from the npm registry (missing: ${missing[*]})"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --silent)
fi

want=()
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || want+=(prometheus)
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || want+=(chromium)

if [ ${#want[@]} -eq 0 ]; then
    echo "setup-test-deps: prometheus, promtool and chromium already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-deps: no apt-get here; install ${want[*]} with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "setup-test-deps: need root to install ${want[*]} (apt-get install -y ${want[*]})" >&2
        exit 1
    fi
fi
echo "setup-test-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt may hold the lock for a while (unattended upgrades): wait for it.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
        break
    fi
    if [ "$attempt" -eq 10 ]; then
        echo "setup-test-deps: apt-get install ${want[*]} failed" >&2
        exit 1
    fi
    sleep 10
done
# Debian's package starts a prometheus service where systemd runs; the tests start
# their own on other ports, so leave it be.
command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v chromium >/dev/null
echo "setup-test-deps: done"
