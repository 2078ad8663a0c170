use which::which;

/// Rebuild the kernel programs when bpf-linker changes (e.g. after `cargo xtask setup`
/// installs one built against another LLVM).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => println!("cargo:warning=bpf-linker not found ({e}); run `cargo xtask setup`"),
    }
}
