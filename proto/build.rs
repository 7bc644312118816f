//! Compiles every schema under `schemas/` with protox (pure Rust, no system `protoc`).

use std::path::PathBuf;

/// Kept in step with the `redacted!` list in src/redact.rs.
const REDACTED: &[&str] = &[
    ".tropa.e2e.v1.Invitation",
    ".tropa.e2e.v1.Hello",
    ".tropa.e2e.v1.Plaintext",
    ".tropa.e2e.v1.Content",
    ".tropa.e2e.v1.Text",
    ".tropa.e2e.v1.Receipt",
    ".tropa.e2e.v1.ContactRequest",
    ".tropa.relay.v1.CreateMailbox",
    ".tropa.relay.v1.MailboxCreated",
    ".tropa.relay.v1.Deposit",
    ".tropa.relay.v1.SignedCommand",
    ".tropa.relay.v1.RecipientCommand",
    ".tropa.relay.v1.Ack",
    ".tropa.relay.v1.Secure",
    ".tropa.relay.v1.Delivery",
    ".tropa.relay.v1.PutLink",
    ".tropa.relay.v1.GetLink",
    ".tropa.relay.v1.DeleteLink",
    ".tropa.relay.v1.LinkData",
];

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
    // Types that carry message text, passwords, keys or mailbox IDs get a
    // redacted Debug (src/redact.rs) instead of the derived one, so a log
    // line or a panic message can never print them.
    cfg.skip_debug(REDACTED);
    cfg.compile_fds(fds)?;
    Ok(())
}
