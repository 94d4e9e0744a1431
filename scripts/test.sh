#!/usr/bin/env bash
# The README's test command: installs what the tests need beyond crates.io
# (scripts/setup-test-deps.sh: headless Chromium for the HTML report's test), then
# runs every unit and integration test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
exec cargo test "$@"
