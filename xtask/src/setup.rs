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
];
const BENCH_TOOLS: &[(&str, &str)] = &[("tcpstates", "libbpf-tools")];

pub fn ensure(needs: Needs) -> Result<()> {
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    if needs >= Needs::Test {
        ensure_commands(TEST_TOOLS)?;
    }
    if needs >= Needs::Bench {
        ensure_commands(BENCH_TOOLS)?;
    }
    Ok(())
}

fn say(what: &str) {
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

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
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

/// aya-build compiles the kernel programs with nightly and `-Z build-std`,
/// which needs nightly's standard library source.
fn ensure_rust_src() -> Result<()> {
    let installed = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .is_some_and(|list| list.lines().any(|l| l.starts_with("rust-src")));
    if installed {
        return Ok(());
    }
    if !succeeds("rustup", &["--version"]) {
        bail!(
            "rustup is needed for the nightly toolchain: install it from rustup.rs, then run `rustup toolchain install nightly --component rust-src`"
        );
    }
    say("nightly rust-src is missing (needed to build the eBPF programs)");
    run(
        "rustup",
        &[
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ],
        &[],
    )
}

/// bpf-linker links the eBPF object; it must be built against the same LLVM
/// major version as nightly's rustc.
fn ensure_bpf_linker() -> Result<()> {
    if succeeds("bpf-linker", &["--version"]) {
        return Ok(());
    }
    let llvm = nightly_llvm_major()?;
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
        "bpf-linker",
        "--no-default-features",
        "--features",
        &feature,
    ];
    say(&format!(
        "bpf-linker is missing; building it against LLVM {llvm} (nightly's LLVM)"
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

fn nightly_llvm_major() -> Result<String> {
    let version = output("rustc", &["+nightly", "-vV"]).context("running rustc +nightly -vV")?;
    version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .context("rustc +nightly -vV printed no LLVM version")
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
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(command).is_file())
    })
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
