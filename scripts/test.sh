#!/usr/bin/env bash
# Runs every test: unit and property tests of each crate, openraft's storage
# suite, and the black-box suites against real `flotilla` processes with real
# clients (skopeo, oras). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
# The target directory lives outside the checkout so CI's fresh clones reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"
./scripts/check-layers.sh
# The same feature set as `cargo test --workspace`, so the binary is built once.
cargo build --quiet --workspace --all-targets
export FLOTILLA_BIN="$CARGO_TARGET_DIR/debug/flotilla"
cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/flotilla-test.log"
exit "${PIPESTATUS[0]}"
