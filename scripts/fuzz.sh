#!/usr/bin/env bash
# A longer fuzz run than `cargo test` makes: every target of tests/fuzz.rs
# (frames both ways, upgrade heads, the inflater, templates, stages,
# thresholds, per-connection patterns, scenario files, Socket.IO and graphql-ws
# packets, JSON pointers) with many more inputs and a random seed. An input that
# panics or allocates beyond its target's bound is saved under
# tests/fuzz/corpus/TARGET/ (commit it: every test run replays it).
#
# Usage: scripts/fuzz.sh [ITERATIONS_PER_TARGET] [SEED]
#   (default 200000 and a random seed; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${1:-200000}
SEED=${2:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
echo "fuzz: $ITERS inputs per target, seed $SEED" >&2
FUZZ_ITERS=$ITERS FUZZ_SEED=$SEED FUZZ_SAVE=1 \
    cargo test --release --test fuzz -- --test-threads 2 --nocapture
echo "fuzz: no failures (seed $SEED)" >&2
