//! Compiles the inter-node protos with protox (pure Rust; no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in ["proto/cluster.proto", "proto/blobs.proto"] {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(["proto/cluster.proto", "proto/blobs.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".flotilla.blobs.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
