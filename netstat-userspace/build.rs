use aya_build::{Package, Toolchain};

/// The pinned nightly of `netstat-ebpf/rust-toolchain.toml`.
const TOOLCHAIN_FILE: &str = include_str!("../netstat-ebpf/rust-toolchain.toml");

/// Compiles the kernel programs (netstat-ebpf) with the pinned nightly +
/// bpf-linker and leaves the object in OUT_DIR for `include_bytes_aligned!`.
fn main() -> aya_build::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../netstat-ebpf");
    println!("cargo:rerun-if-changed={root_dir}/rust-toolchain.toml");
    let channel = TOOLCHAIN_FILE
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"'))
        .expect("netstat-ebpf/rust-toolchain.toml names a channel");
    aya_build::build_ebpf(
        [Package {
            name: "netstat-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(channel),
    )
}
