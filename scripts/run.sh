#!/usr/bin/env bash
# Runs one Flotilla node: a single-node cluster in ./flotilla-data on
# 127.0.0.1:5000 unless flags, FLOTILLA_* variables or --config say otherwise.
# Extra arguments go to `flotilla serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOTILLA_SKIP_PYTHON=1 ./scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"
exec cargo run --release --quiet -p flotilla-node --bin flotilla -- serve "$@"
