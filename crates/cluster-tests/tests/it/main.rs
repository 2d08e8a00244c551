//! Black-box suites against real `flotilla` processes, driven by our own OCI
//! client and by real clients (skopeo, oras-py). Numbered by area:
//! 1x OCI distribution conformance and auth, 2x real clients, 3x durability,
//! 4x clusters (formation, any-node service, failover, partitions, TLS, cluster identity, garbage collection, repair, scrub, rebalancing, bootstrap from one join list, the compose deployment, the model version gate, one identity on every node and surface).
//!
//! Run: `cargo build -p flotilla-node --bin flotilla && cargo test -p flotilla-cluster-tests`
//! (or `scripts/test.sh`, which also installs skopeo and oras-py).

mod common;

mod t10_oci_pull;
mod t11_oci_push;
mod t12_oci_content_discovery;
mod t13_oci_content_management;
mod t14_oci_failure_edges;
mod t15_auth;
mod t16_token_client;
mod t20_skopeo;
mod t21_oras;
mod t22_docker;
mod t30_durability;
mod t31_housekeeping;
mod t40_cluster;
mod t41_failover;
mod t42_tls;
mod t43_cluster_identity;
mod t44_gc;
mod t45_maintenance;
mod t46_bootstrap;
mod t47_compose;
mod t48_model_version;
mod t49_identity;
