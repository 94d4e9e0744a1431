#!/usr/bin/env bash
# Installs what the tests need beyond crates.io: headless Chromium (Debian package
# `chromium`), which tests/html_report.rs renders the HTML report with.
# Idempotent: does nothing when Chromium is already on the PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "setup-test-deps: chromium present ($(command -v chromium || command -v chromium-browser))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-deps: no apt-get here; install Chromium with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "setup-test-deps: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt may hold the lock for a while (unattended upgrades): wait for it.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium; then
        break
    fi
    if [ "$attempt" -eq 10 ]; then
        echo "setup-test-deps: apt-get install chromium failed" >&2
        exit 1
    fi
    sleep 10
done
echo "setup-test-deps: installed $(command -v chromium)"
