//! Developer chores: `cargo xtask setup | build | run -- <flags> | test | lint | fuzz | dist | bench`.
//!
//! Every command first runs `setup`, which installs what is missing on a fresh
//! Debian machine (saying what it does) and prints the commands to run
//! elsewhere.

mod alternating;
mod apt;
mod bench;
mod bench_kit;
mod cost_bench;
mod dist;
mod fuzz;
mod lint;
mod live_bench;
mod matrix;
mod replay_bench;
mod setup;
mod sizes;
mod snapshot_bench;
mod storm_bench;
mod summary_bench;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "enetstat developer tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces and test tools that are missing.
    Setup,
    /// Build enetstat (release) with its kernel programs.
    Build,
    /// Build and run enetstat with the given flags, e.g. `cargo xtask run -- -tanp`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests, then the root-only integration tests on
    /// the host kernel and in a VM for each kernel of the matrix.
    Test {
        /// Where the integration tests run: `host`, a kernel of the matrix
        /// (`5.10`, `6.1`, `6.12`), or `all`.
        #[arg(long, default_value = "all")]
        kernel: String,
        /// VMs booted at once (default: one per core; each emulated guest
        /// keeps one host thread busy).
        #[arg(long)]
        vm_jobs: Option<usize>,
        /// Seconds of fuzzing per fuzz target after the tests (0: none).
        #[arg(long, default_value_t = 60)]
        fuzz_seconds: u64,
        /// Extra arguments for every test binary (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Formatting, clippy (warnings are errors) on every crate, the layers
    /// of netstat-userspace/layers.txt and the paths docs/ARCHITECTURE.md names.
    Lint,
    /// Run each fuzz target (cargo-fuzz, libFuzzer) for a bounded time.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Build target/dist/enetstat_<version>_amd64.deb and a .tar.gz (binary,
    /// man page, shell completions, systemd unit).
    Dist,
    /// Run the benchmarks and write bench/RESULTS.md.
    Bench {
        /// Connections per storm (default 100000).
        #[arg(long)]
        connections: Option<u64>,
        /// Runs per scenario (default 3).
        #[arg(long)]
        runs: Option<usize>,
        /// Only one scenario: `storm`, `cost`, `snapshot`, `live` or `summary` (default: all).
        #[arg(long)]
        only: Option<bench::Scenario>,
    },
}

fn main() {
    if let Err(e) = run(Args::parse().task) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::ensure(setup::Needs::Test),
        Task::Build => {
            setup::ensure(setup::Needs::Build)?;
            build()
        }
        Task::Run { args } => {
            setup::ensure(setup::Needs::Build)?;
            build()?;
            let status = Command::new(release_bin("enetstat"))
                .args(&args)
                .status()
                .context("running enetstat")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test {
            kernel,
            vm_jobs,
            fuzz_seconds,
            args,
        } => {
            let (host, vms) = kernels(&kernel)?;
            setup::ensure(setup::Needs::Test)?;
            if !vms.is_empty() {
                setup::ensure_vm_tools()?;
            }
            require_root("the integration tests load eBPF programs and create network namespaces")?;
            build()?;
            // The package test installs this build's package.
            dist::build(VERSION)?;
            let binaries = matrix::build_tests()?;
            let jobs = vm_jobs
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(1);
            let report = matrix::run(&binaries, host, &vms, &args, jobs);
            let fuzzed = match fuzz_seconds {
                0 => Vec::new(),
                seconds => fuzz::run(&setup::ensure_fuzzing()?, seconds)?,
            };
            println!("\nxtask: integration tests by kernel\n{}", report.table());
            for outcome in &fuzzed {
                println!("{}", outcome.line());
            }
            if !report.all_passed() {
                bail!("some tests failed or gave no result (table above)");
            }
            fuzz::no_finding(&fuzzed)
        }
        Task::Lint => {
            setup::ensure(setup::Needs::Build)?;
            setup::ensure_lint_tools()?;
            lint::run()
        }
        Task::Fuzz { seconds } => {
            let toolchain = setup::ensure_fuzzing()?;
            setup::ensure(setup::Needs::Build)?;
            fuzz::no_finding(&fuzz::run(&toolchain, seconds)?)
        }
        Task::Dist => {
            setup::ensure(setup::Needs::Build)?;
            build()?;
            dist::build(VERSION).map(|_| ())
        }
        Task::Bench {
            connections,
            runs,
            only,
        } => {
            setup::ensure(setup::Needs::Bench)?;
            require_root("the benchmarks load eBPF programs and create network namespaces")?;
            build()?;
            bench::run(&bench::Options {
                connections: connections.unwrap_or(100_000),
                runs,
                only,
            })
        }
    }
}

/// `--kernel`'s choice: whether the host runs the integration tests, and
/// which kernels of the matrix do.
fn kernels(choice: &str) -> Result<(bool, Vec<&'static matrix::Kernel>)> {
    match choice {
        "all" => Ok((true, matrix::MATRIX.iter().collect())),
        "host" => Ok((true, Vec::new())),
        name => match matrix::MATRIX.iter().find(|k| k.name == name) {
            Some(kernel) => Ok((false, vec![kernel])),
            None => {
                let names: Vec<&str> = matrix::MATRIX.iter().map(|k| k.name).collect();
                bail!(
                    "--kernel {name}: not a kernel of the matrix; use host, {} or all",
                    names.join(", ")
                )
            }
        },
    }
}

/// enetstat's version (the workspace's; the packages are named after it).
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn build() -> Result<()> {
    cargo(&["build", "--release"], &[])
}

fn cargo(args: &[&str], extra: &[String]) -> Result<()> {
    println!("xtask: cargo {} {}", args.join(" "), extra.join(" "));
    let status = Command::new(env_or("CARGO", "cargo"))
        .args(args)
        .args(extra)
        .current_dir(workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

fn require_root(why: &str) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc_geteuid() } != 0 {
        bail!("this must run as root ({why}): sudo -E env PATH=$PATH cargo xtask ...");
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn release_bin(name: &str) -> PathBuf {
    workspace_root().join("target/release").join(name)
}
