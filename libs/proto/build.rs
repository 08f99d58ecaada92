//! Compiles every `.proto` under the workspace's `proto/` folder with protoc from `protoc-bin-vendored`,
//! so a fresh machine needs no system protoc.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut protos = Vec::new();
    collect(&root, &mut protos)?;
    protos.sort();
    println!("cargo:rerun-if-changed={}", root.display());
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // the descriptors of every method, so servers can tell a real method from an invented path
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("longship_descriptors.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(descriptors)
        .compile_with_config(config, &protos, &[root])?;
    Ok(())
}
