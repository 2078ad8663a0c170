use aya_build::{Package, Toolchain};

/// Compiles the kernel programs (netstat-ebpf) with nightly + bpf-linker and
/// leaves the object in OUT_DIR for `include_bytes_aligned!`.
fn main() -> aya_build::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../netstat-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "netstat-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
