// libseccomp is linked statically so that `paddock` stays one self-contained binary.
fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    println!("cargo:rustc-link-search=native=/usr/lib/{arch}-linux-gnu");
    println!("cargo:rustc-link-lib=static=seccomp");
    println!("cargo:rerun-if-changed=build.rs");
}
