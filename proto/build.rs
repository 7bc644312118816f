//! Compiles every schema under `schemas/` with protox (pure Rust, no system `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("schemas");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed=schemas");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&dir])?;
    let mut cfg = prost_build::Config::new();
    // Envelopes are 16 KiB: share them instead of copying on the relay path.
    cfg.bytes([".tropa.relay"]);
    cfg.compile_fds(fds)?;
    Ok(())
}
