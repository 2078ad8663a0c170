//! `cargo xtask bench`: the connection storm (storm_bench), the tracer's
//! cost per program and per event (cost_bench), the snapshot
//! listing (snapshot_bench), the live view (live_bench), -S at scale
//! (summary_bench) and --replay of a large log (replay_bench), each in fresh
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
    Cost,
    Snapshot,
    Live,
    Summary,
    Replay,
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
    if opts.only.is_none_or(|s| s == Scenario::Cost) {
        // Per-run figures settle well before the rate table's storm size.
        report.push_str(&crate::cost_bench::table(opts.connections.min(20_000))?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Snapshot) {
        report.push_str(&crate::snapshot_bench::table(opts.runs.unwrap_or(3))?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Live) {
        report.push_str(&crate::live_bench::table(opts.runs.unwrap_or(3))?);
        report.push_str(&crate::live_bench::at_scale_table()?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Summary) {
        report.push_str(&crate::summary_bench::table()?);
    }
    if opts.only.is_none_or(|s| s == Scenario::Replay) {
        report.push_str(&crate::replay_bench::table()?);
    }
    println!("\n{report}");
    let dir = workspace_root().join("bench");
    fs::create_dir_all(&dir)?;
    let path = dir.join("RESULTS.md");
    // One scenario replaces its own section and keeps the others' figures.
    if opts.only.is_some()
        && let Ok(old) = fs::read_to_string(&path)
    {
        report = splice(&old, &report);
    }
    fs::write(&path, report)?;
    println!("bench: wrote bench/RESULTS.md");
    Ok(())
}

/// `old` with each `## ` section of `new` in place of the section of the
/// same title (up to its colon), and `new`'s header line for the machine.
fn splice(old: &str, new: &str) -> String {
    let sections = |text: &str| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for line in text.split_inclusive('\n') {
            match (line.starts_with("## "), parts.last_mut()) {
                (false, Some(last)) => last.push_str(line),
                _ => parts.push(line.to_string()),
            }
        }
        parts
    };
    let title = |section: &str| section.split(':').next().unwrap_or_default().to_string();
    let new_sections = sections(new);
    let mut out = sections(old);
    if let (Some(head), Some(new_head)) = (out.first_mut(), new_sections.first()) {
        *head = new_head.clone();
    }
    for section in new_sections.iter().skip(1) {
        match out.iter_mut().skip(1).find(|s| title(s) == title(section)) {
            Some(slot) => *slot = section.clone(),
            None => out.push(section.clone()),
        }
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_scenario_replaces_only_its_section() {
        let old =
            "# Benchmark results\n\nMachine: old.\n\n## Storm: a\n\n1\n\n## Live view: b\n\n2\n";
        let new = "# Benchmark results\n\nMachine: new.\n\n## Live view: c\n\n3\n";
        assert_eq!(
            super::splice(old, new),
            "# Benchmark results\n\nMachine: new.\n\n## Storm: a\n\n1\n\n## Live view: c\n\n3\n"
        );
    }
}
