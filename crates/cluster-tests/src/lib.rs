//! # flotilla-cluster-tests
//!
//! A black-box harness for Flotilla: [`sandbox`] starts real `flotilla`
//! processes on loopback ports with temporary data directories, [`client`] is a
//! small blocking OCI client that hands back the raw HTTP response so a test can
//! assert what a real client would see, [`content`] builds blobs, manifests and
//! indexes, [`raw`] sends requests byte for byte (paths no URL library would
//! leave alone), [`tools`] runs real clients (skopeo, oras) with deadlines,
//! [`cluster`] reads a sandbox's `/_cluster` API, [`faults`] cuts the network
//! between loopback nodes, and [`wait`] polls with deadlines.
//!
//! The suites live in `tests/it/` (one binary, numbered modules).

pub mod client;
pub mod cluster;
pub mod content;
pub mod faults;
pub mod oci_layout;
pub mod raw;
pub mod sandbox;
pub mod spawner;
pub mod tools;
pub mod wait;

pub use client::{Credentials, OciClient};
pub use sandbox::{Node, Sandbox, SandboxBuilder};
