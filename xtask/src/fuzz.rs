//! `cargo xtask fuzz` (and the end of `cargo xtask test`): each fuzz target
//! of netstat-userspace/fuzz for a bounded time, with libFuzzer on the
//! pinned nightly, starting from its committed corpus. New inputs go to
//! target/fuzz-corpus, not into the repository. A crash, a hang or an
//! allocation past the limits below fails the run and leaves the input in
//! netstat-userspace/fuzz/artifacts.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

/// The parsers of outside input (`netstat_userspace::fuzzing`).
pub const TARGETS: &[&str] = &["proc_net", "sock_diag", "services", "btf", "log_record"];

/// No parser may allocate this much at once, or hold this much in all.
const MALLOC_LIMIT_MB: &str = "256";
const RSS_LIMIT_MB: &str = "1024";
/// Seconds one input may take before it counts as a hang.
const TIMEOUT_S: &str = "10";

/// What one target's run found.
pub struct Outcome {
    pub target: &'static str,
    pub passed: bool,
    pub executions: Option<u64>,
    pub corpus: usize,
    pub seeds: usize,
}

pub fn run(toolchain: &str, seconds: u64) -> Result<Vec<Outcome>> {
    let root = crate::workspace_root();
    let fuzz_dir = root.join("netstat-userspace/fuzz");
    // One build for all targets, so that each run's time is fuzzing.
    println!("xtask: building the fuzz targets (cargo +{toolchain} fuzz build)");
    let status = cargo_fuzz(toolchain, "build", &fuzz_dir)
        .status()
        .context("running cargo fuzz build")?;
    anyhow::ensure!(status.success(), "cargo fuzz build failed");
    let mut outcomes = Vec::new();
    for &target in TARGETS {
        let seeds = fuzz_dir.join("corpus").join(target);
        let grown = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&grown)?;
        println!("xtask: fuzz {target}: {seconds} s from {}", seeds.display());
        let out = cargo_fuzz(toolchain, "run", &fuzz_dir)
            .arg(target)
            .arg(&grown)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .arg(format!("-timeout={TIMEOUT_S}"))
            .arg("-print_final_stats=1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let outcome = Outcome {
            target,
            passed: out.status.success(),
            executions: executions(&log),
            corpus: files_in(&grown) + files_in(&seeds),
            seeds: files_in(&seeds),
        };
        if !outcome.passed {
            // libFuzzer's report of the finding and where it saved the input.
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            for line in tail.into_iter().rev() {
                println!("  {line}");
            }
        }
        println!("{}", outcome.line());
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `cargo +TOOLCHAIN fuzz SUBCOMMAND --fuzz-dir FUZZ_DIR`.
/// An error if any target found a failing input.
pub fn no_finding(outcomes: &[Outcome]) -> Result<()> {
    match outcomes.iter().find(|o| !o.passed) {
        Some(o) => anyhow::bail!("fuzz target {} found a failing input (above)", o.target),
        None => Ok(()),
    }
}

fn cargo_fuzz(toolchain: &str, subcommand: &str, fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{toolchain}"))
        .args(["fuzz", subcommand])
        .arg("--fuzz-dir")
        .arg(fuzz_dir)
        .current_dir(crate::workspace_root());
    cmd
}

impl Outcome {
    pub fn line(&self) -> String {
        let mut s = format!("xtask: fuzz {}: ", self.target);
        match self.executions {
            Some(n) => _ = write!(s, "{n} executions"),
            None => s.push_str("executions unknown"),
        }
        let _ = write!(
            s,
            ", corpus {} inputs ({} committed), {}",
            self.corpus,
            self.seeds,
            if self.passed { "no finding" } else { "FAILED" }
        );
        s
    }
}

/// libFuzzer's `stat::number_of_executed_units: N` (or `Done N runs`).
fn executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        let n = l
            .strip_prefix("stat::number_of_executed_units:")
            .or_else(|| l.strip_prefix("Done ")?.split(" runs").next())?;
        n.trim().parse().ok()
    })
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().count())
}

#[cfg(test)]
mod tests {
    #[test]
    fn executions_from_libfuzzers_report() {
        let log = "#2\tINITED cov: 10\nDone 123456 runs in 61 second(s)\nstat::number_of_executed_units: 123457\n";
        assert_eq!(super::executions(log), Some(123457));
        assert_eq!(super::executions("Done 99 runs in 1 second(s)\n"), Some(99));
        assert_eq!(super::executions("crash"), None);
    }
}
