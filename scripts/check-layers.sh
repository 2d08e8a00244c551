#!/usr/bin/env bash
# Keeps the crate arrows pointing one way (storage → model → raft → api → node):
# storage never imports openraft, tonic, axum or foca; model (the replicated
# data model and its pure apply) never imports an async runtime, consensus or
# transport; raft never imports axum; api never names openraft, tonic or RocksDB.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() { # crate, pattern, what
    local crate=$1 pattern=$2
    if grep -nE "^($pattern)\b" "crates/$crate/Cargo.toml"; then
        echo "layering: crates/$crate must not depend on $pattern" >&2; status=1
    fi
    if grep -rnE "\b($pattern)::" "crates/$crate/src"; then
        echo "layering: crates/$crate/src must not name $pattern" >&2; status=1
    fi
}
forbid storage 'openraft|tonic|axum|foca|flotilla-raft|flotilla_raft|flotilla-api|flotilla_api'
forbid model 'openraft|tonic|axum|hyper|tokio|foca|rocksdb|flotilla-raft|flotilla_raft|flotilla-api|flotilla_api|flotilla-node|flotilla_node'
forbid raft 'axum|hyper|flotilla-api|flotilla_api|flotilla-node|flotilla_node'
forbid api 'openraft|tonic|rocksdb|flotilla-node|flotilla_node'
[ $status -eq 0 ] && echo "layering: ok"
exit $status
