//! Developer chores: `cargo xtask setup | build | run -- <flags> | test | bench`.
//!
//! Every command first runs `setup`, which installs what is missing on a fresh
//! Debian machine (saying what it does) and prints the commands to run
//! elsewhere.

mod alternating;
mod bench;
mod live_bench;
mod setup;
mod snapshot_bench;

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
    /// Run every test: unit tests and the root-only integration tests.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks and write bench/RESULTS.md.
    Bench {
        /// Connections per storm (default 100000).
        #[arg(long)]
        connections: Option<u64>,
        /// Runs per scenario (default 3).
        #[arg(long)]
        runs: Option<usize>,
        /// Only one scenario: `storm`, `snapshot` or `live` (default: all).
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
        Task::Test { args } => {
            setup::ensure(setup::Needs::Test)?;
            require_root("the integration tests load eBPF programs and create network namespaces")?;
            build()?;
            // Release: the storm tests need the consumer at full speed.
            cargo(&["test", "--release", "--no-fail-fast"], &args)
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
