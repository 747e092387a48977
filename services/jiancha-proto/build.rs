//! Compiles `proto/jiancha/v1/*.proto` with protox (pure Rust: no system `protoc`): the
//! messages with prost, the services with tonic, and the encoded descriptor set that
//! server reflection serves.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "jiancha/v1/event.proto",
        "jiancha/v1/alert.proto",
        "jiancha/v1/state.proto",
        "jiancha/v1/ingest.proto",
        "jiancha/v1/monitor.proto",
        "jiancha/v1/catalog.proto",
        "jiancha/v1/accountability.proto",
        "jiancha/v1/stats.proto",
    ];
    let descriptors = protox::compile(files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("jiancha_v1_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
