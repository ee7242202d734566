//! Compiles `proto/ivt/v1/retrieval.proto` into tonic/prost code and a file-descriptor set that the
//! server's reflection service publishes, so `grpcurl` works without the .proto files, and the
//! Milvus client (`proto/milvus/`) for the Milvus gallery backend.
//! protoc comes from `protoc-bin-vendored`: nothing is downloaded and no system package is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Build scripts are single-threaded, so setting PROTOC for prost-build here is race-free.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ivt_v1_descriptor.bin"))
        .compile_protos(&["proto/ivt/v1/retrieval.proto"], &["proto"])?;
    // The Milvus gallery backend's client: only a client, and no `connect()` helper (Milvus has
    // an RPC named `Connect`, which clashes with it in the full API).
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos(&["proto/milvus/milvus.proto"], &["proto"])?;
    Ok(())
}
