//! What the bench scenarios share: statistics, a namespace of their own, the
//! storm generator's command line and rate. Tracers start and stop through
//! the test kit's `Tracer`.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::release_bin;

/// Client and server threads of every storm.
pub const WORKERS: u64 = 4;

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// "median (min-max)" of `values` times `scale`, as whole numbers.
pub fn spread(values: &[f64], scale: f64) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.0} ({:.0}-{:.0})",
        median(values) * scale,
        min * scale,
        max * scale
    )
}

/// The test kit's namespace: one per scenario, removed on drop.
pub use tests::Netns;

pub fn check(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// enetstat with a filter that excludes the storm (port 7000).
pub const FILTERED_OUT: [&str; 5] = ["-E", "-n", "--stop-json", "--port", "9"];

/// `tcpload storm` of `connections` in `ns`, closing with resets when `rst`.
pub fn storm_command(ns: &Netns, connections: u64, rst: bool) -> Command {
    let mut cmd = ns.command(release_bin("tcpload"));
    cmd.args(["storm", "--listen", "127.0.0.1:7000", "--count"])
        .arg(connections.to_string())
        .args(["--workers", &WORKERS.to_string()]);
    if rst {
        cmd.arg("--rst");
    }
    cmd
}

/// A figure of the JSON stop object enetstat ends its stderr with
/// (`--stop-json`).
pub fn enetstat_stop_figure(stderr: &[String], field: &str) -> Result<u64> {
    stderr
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|stop| stop[field].as_u64())
        .with_context(|| format!("no '{field}' in enetstat's stop object: {stderr:?}"))
}

pub fn mount_tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return Ok(());
    }
    check(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))
}

/// The rate a finished `tcpload storm` reports.
pub fn storm_rate(out: &std::process::Output) -> Result<f64> {
    if !out.status.success() {
        bail!(
            "tcpload storm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // "storm N connections in S s: R conn/s"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .rev()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("unexpected storm output {text:?}"))
}

/// Time on CPU of all of `pid`'s threads, in ns (schedstat: finer than
/// `cpu_seconds`' clock ticks, for per-event figures).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, starting with the state
    // (field 3); utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| -> f64 {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0.0)
    };
    let ticks = field(14) + field(15);
    ticks / 100.0
}
