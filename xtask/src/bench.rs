//! `cargo xtask bench`: the connection storm (storm_bench), the snapshot
//! listing (snapshot_bench) and the live view (live_bench), each in fresh
//! network namespaces. Results go to stdout and bench/RESULTS.md as
//! markdown tables.

use std::fs;

use anyhow::Result;

use crate::workspace_root;

pub struct Options {
    pub connections: u64,
    /// Runs per row; None: each scenario's default.
    pub runs: Option<usize>,
    pub only: Option<Scenario>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Storm,
    Snapshot,
    Live,
}

pub fn run(opts: &Options) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut report = format!(
        "# Benchmark results\n\nMachine: {cores} cores, Linux {}.\n\n",
        kernel.trim()
    );
    if opts.only.is_none_or(|s| s == Scenario::Storm) {
        report.push_str(&crate::storm_bench::table(
            opts.connections,
            opts.runs.unwrap_or(3),
        )?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Snapshot) {
        report.push_str(&crate::snapshot_bench::table(opts.runs.unwrap_or(3))?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Live) {
        report.push_str(&crate::live_bench::table(opts.runs.unwrap_or(3))?);
    }
    println!("\n{report}");
    let dir = workspace_root().join("bench");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("RESULTS.md"), report)?;
    println!("bench: wrote bench/RESULTS.md");
    Ok(())
}
