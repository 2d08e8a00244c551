#!/usr/bin/env bash
# Benchmarks Flotilla against CNCF distribution 2.8 (Debian's docker-registry)
# on loopback with one client; prints a markdown table (see docs/benchmarks.md).
# Installs docker-registry if missing, builds the release binaries, and passes
# every argument to flotilla-bench:
#   scripts/bench.sh --quick                      # smoke run, a few minutes
#   scripts/bench.sh                              # full run
#   scripts/bench.sh --only docker-registry       # baseline only (no flotilla build)
#   scripts/bench.sh --json > bench.json
set -euo pipefail
cd "$(dirname "$0")/.."
FLOTILLA_BENCH=1 FLOTILLA_SKIP_PYTHON=1 ./scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"

only=""
previous=""
for arg in "$@"; do
    case "$arg" in
        --only=*) only="${arg#--only=}" ;;
        *) [ "$previous" = "--only" ] && only="$arg" ;;
    esac
    previous="$arg"
done

cargo build --release --quiet -p flotilla-bench --bin flotilla-bench
if [ "$only" != "docker-registry" ]; then
    cargo build --release --quiet -p flotilla-node --bin flotilla
fi
"$CARGO_TARGET_DIR/release/flotilla-bench" "$@"
