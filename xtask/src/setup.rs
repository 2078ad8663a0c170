//! `cargo xtask setup`: what building and testing enetstat needs, installed
//! when missing. Idempotent: each step checks first and says what it does.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// What the caller is about to do, which decides what must be present.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needs {
    Build,
    Test,
    Bench,
}

/// Debian packages holding the commands the tests and benchmarks run.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("nft", "nftables"),
    ("netstat", "net-tools"),
    ("setpriv", "util-linux"),
    ("unshare", "util-linux"),
    ("prlimit", "util-linux"),
    // The package test rates the shipped units.
    ("systemd-analyze", "systemd"),
    ("bpftool", "bpftool"),
    ("curl", "curl"),
    // Certificates for the --web-config test.
    ("openssl", "openssl"),
    // The metrics tests scrape with a real Prometheus server and check with promtool.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
];
const BENCH_TOOLS: &[(&str, &str)] = &[("tcpstates", "libbpf-tools"), ("bpftrace", "bpftrace")];
/// What the kernel matrix's VMs need: QEMU, and what virtme-ng runs in the
/// guest (busybox for its initramfs, depmod for the unpacked modules).
const VM_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    ("depmod", "kmod"),
    ("file", "file"),
];
/// virtme-ng, from PyPI (Debian 12 has none); this release is the one
/// verified to boot Debian's 5.10, 6.1 and 6.12 images here.
const VIRTME_NG: &str = "virtme-ng==1.42";

pub fn ensure(needs: Needs) -> Result<()> {
    let toolchain = ebpf_toolchain()?;
    ensure_ebpf_toolchain(&toolchain)?;
    ensure_bpf_linker(&toolchain)?;
    if needs >= Needs::Test {
        ensure_commands(TEST_TOOLS)?;
    }
    if needs >= Needs::Bench {
        ensure_commands(BENCH_TOOLS)?;
    }
    Ok(())
}

/// cargo-fuzz (libFuzzer's driver), pinned so that CI runs what was tried.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What fuzzing needs: cargo-fuzz, and the pinned nightly (which the eBPF
/// build already installs). Returns that nightly's name.
pub fn ensure_fuzzing() -> Result<String> {
    let toolchain = ebpf_toolchain()?;
    if !succeeds("cargo", &["fuzz", "--version"]) {
        say("cargo-fuzz is missing; it runs the fuzz targets");
        let install = [
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
        ];
        run("cargo", &install, &[])?;
    }
    Ok(toolchain)
}

/// What `cargo xtask lint` needs besides the build: rustfmt and clippy for
/// stable, clippy for the kernel crate's nightly.
pub fn ensure_lint_tools() -> Result<()> {
    let toolchain = ebpf_toolchain()?;
    for (toolchain, components) in [
        ("stable", &["rustfmt", "clippy"][..]),
        (toolchain.as_str(), &["clippy"]),
    ] {
        let installed = output(
            "rustup",
            &["component", "list", "--toolchain", toolchain, "--installed"],
        )
        .unwrap_or_default();
        for component in components {
            if !installed.lines().any(|l| l.starts_with(component)) {
                say(&format!(
                    "{component} for {toolchain} is missing; the lint runs it"
                ));
                run(
                    "rustup",
                    &["component", "add", "--toolchain", toolchain, component],
                    &[],
                )?;
            }
        }
    }
    Ok(())
}

/// What `cargo xtask test` needs to boot the matrix's kernels.
pub fn ensure_vm_tools() -> Result<()> {
    ensure_commands(VM_TOOLS)?;
    if on_path("vng") {
        return Ok(());
    }
    say("virtme-ng (vng) is missing; it boots the matrix's kernels");
    if !succeeds("python3", &["-m", "pip", "--version"]) {
        apt_install(&["python3-pip"])?;
    }
    run(
        "python3",
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--break-system-packages",
            VIRTME_NG,
        ],
        &[("PIP_ROOT_USER_ACTION", "ignore")],
    )?;
    if !on_path("vng") {
        bail!(
            "pip installed {VIRTME_NG} but no `vng` is on PATH; add pip's script directory to PATH"
        );
    }
    Ok(())
}

pub fn make_executable(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

pub(crate) fn say(what: &str) {
    println!("xtask setup: {what}");
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let shown: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say(&format!(
        "running {} {program} {}",
        shown.join(" "),
        args.join(" ")
    ));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed", args.join(" "));
    }
    Ok(())
}

/// The pinned nightly that compiles the kernel programs, from
/// `netstat-ebpf/rust-toolchain.toml` (the one place it is named).
fn ebpf_toolchain() -> Result<String> {
    let file = crate::workspace_root().join("netstat-ebpf/rust-toolchain.toml");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_string())
        .with_context(|| format!("{} names no channel", file.display()))
}

/// aya-build compiles the kernel programs with the pinned nightly and
/// `-Z build-std`, which needs that nightly's standard library source.
/// Installed by date, never by updating `nightly`: a newer nightly would
/// bring an LLVM that Debian has no bpf-linker build for.
fn ensure_ebpf_toolchain(toolchain: &str) -> Result<()> {
    let installed = output(
        "rustup",
        &["component", "list", "--toolchain", toolchain, "--installed"],
    )
    .is_some_and(|list| list.lines().any(|l| l.starts_with("rust-src")));
    if installed {
        return Ok(());
    }
    if !succeeds("rustup", &["--version"]) {
        bail!(
            "rustup is needed for the eBPF toolchain: install it from rustup.rs, then run `rustup toolchain install {toolchain} --component rust-src`"
        );
    }
    say(&format!(
        "{toolchain} with rust-src is missing (it builds the eBPF programs)"
    ));
    run(
        "rustup",
        &[
            "toolchain",
            "install",
            toolchain,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ],
        &[],
    )
}

/// The bpf-linker release known to build here with stable 1.95 against LLVM
/// 22; pinned so that a later release cannot change that under CI.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// bpf-linker links the eBPF object; it must be built against the same LLVM
/// major version as the eBPF toolchain's rustc.
fn ensure_bpf_linker(toolchain: &str) -> Result<()> {
    let llvm = llvm_major(toolchain)?;
    if bpf_linker_fits(&llvm) {
        return Ok(());
    }
    let packages = [
        format!("llvm-{llvm}-dev"),
        format!("libpolly-{llvm}-dev"),
        "libzstd-dev".to_string(),
        "zlib1g-dev".to_string(),
    ];
    let prefix = format!("/usr/lib/llvm-{llvm}");
    let feature = format!("llvm-{llvm}");
    let install = [
        "install",
        "--force",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        &feature,
    ];
    say(&format!(
        "bpf-linker for LLVM {llvm} is missing; building it ({toolchain} uses LLVM {llvm})"
    ));
    if !std::path::Path::new(&prefix)
        .join("bin/llvm-config")
        .exists()
    {
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
        apt_install(&packages)?;
    }
    run("cargo", &install, &[("LLVM_PREFIX", &prefix)])
}

/// Whether an installed bpf-linker runs and uses LLVM `major` (told by the
/// libLLVM it links; a statically linked one is taken as it is).
fn bpf_linker_fits(major: &str) -> bool {
    let Some(path) = find_on_path("bpf-linker") else {
        return false;
    };
    if !succeeds("bpf-linker", &["--version"]) {
        return false;
    }
    let path = path.to_string_lossy();
    let libs = output("ldd", &[&path]).unwrap_or_default();
    !libs.contains("libLLVM")
        || libs.contains(&format!("libLLVM.so.{major}"))
        || libs.contains(&format!("libLLVM-{major}"))
}

fn llvm_major(toolchain: &str) -> Result<String> {
    let version = output("rustup", &["run", toolchain, "rustc", "-vV"])
        .with_context(|| format!("running rustc -vV of {toolchain}"))?;
    version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .with_context(|| format!("rustc -vV of {toolchain} printed no LLVM version"))
}

fn ensure_commands(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(command, _)| !on_path(command))
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    say(&format!("missing test tools from {}", missing.join(", ")));
    apt_install(&missing)
}

fn on_path(command: &str) -> bool {
    find_on_path(command).is_some()
}

fn find_on_path(command: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
}

/// Installs Debian packages, or on other systems says what to install.
fn apt_install(packages: &[&str]) -> Result<()> {
    let root = output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    if !on_path("apt-get") || !root {
        bail!(
            "please install these packages (Debian names): {}\n  on Debian/Ubuntu as root: apt-get update && apt-get install -y {}",
            packages.join(" "),
            packages.join(" ")
        );
    }
    run("apt-get", &["update", "-qq"], &[])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    run("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])
}
