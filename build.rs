//! Builds tail/tail.rs, the libc-free program container processes exec right before
//! their own (see that file), into OUT_DIR for `include_bytes!`. It is compiled by the
//! same rustc with its own flags: no std, no C runtime, a static non-PIE executable.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=tail/tail.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    if arch != "x86_64" {
        return Err(format!("tail/tail.rs is written for x86_64, not {arch}").into());
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?).join("paddock-tail");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=paddock_tail",
        ])
        .args(["--target", &env::var("TARGET")?])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args([
            "-C",
            "relocation-model=static",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-Wl,--build-id=none",
            "-C",
            "link-arg=-Wl,-z,noexecstack",
        ])
        .arg("-o")
        .arg(&out)
        .arg("tail/tail.rs")
        .status()?;
    if !status.success() {
        return Err(format!("rustc tail/tail.rs: {status}").into());
    }
    Ok(())
}
